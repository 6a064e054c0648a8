"""users, user_sessions; tasks and uploads get an owner

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import volcimage.core.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=50), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("daily_image_quota", sa.Integer(), nullable=True),
        sa.Column("created_at", volcimage.core.db.UTCDateTime(), nullable=False),
        sa.Column("last_login_at", volcimage.core.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", volcimage.core.db.UTCDateTime(), nullable=False),
        sa.Column("expires_at", volcimage.core.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_user_sessions_token_hash")),
    )
    op.create_index("idx_user_sessions_user", "user_sessions", ["user_id"], unique=False)
    for table in ("tasks", "uploads"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column("owner_id", sa.Integer(), nullable=True))
            batch_op.create_foreign_key(
                f"fk_{table}_owner_id_users", "users", ["owner_id"], ["id"], ondelete="SET NULL"
            )
    op.create_index("idx_tasks_owner", "tasks", ["owner_id", "created_at"], unique=False)
    op.create_index("idx_uploads_owner", "uploads", ["owner_id"], unique=False)


def downgrade() -> None:
    op.drop_index("idx_uploads_owner", table_name="uploads")
    op.drop_index("idx_tasks_owner", table_name="tasks")
    for table in ("uploads", "tasks"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(f"fk_{table}_owner_id_users", type_="foreignkey")
            batch_op.drop_column("owner_id")
    op.drop_index("idx_user_sessions_user", table_name="user_sessions")
    op.drop_table("user_sessions")
    op.drop_table("users")
