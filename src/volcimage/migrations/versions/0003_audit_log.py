"""audit_log: who did what and when

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import volcimage.core.db

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", volcimage.core.db.UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("client", sa.String(length=100), nullable=True),
        sa.Column("action", sa.String(length=50), nullable=False),
        sa.Column("target", sa.String(length=100), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("idx_audit_at", "audit_log", ["at"], unique=False)
    op.create_index("idx_audit_action", "audit_log", ["action"], unique=False)


def downgrade() -> None:
    op.drop_index("idx_audit_action", table_name="audit_log")
    op.drop_index("idx_audit_at", table_name="audit_log")
    op.drop_table("audit_log")
