"""prompt_templates: saved prompts and parameters

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 08:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import volcimage.core.db

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "prompt_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("negative_prompt", sa.Text(), nullable=True),
        sa.Column("model", sa.String(length=50), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("created_at", volcimage.core.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", volcimage.core.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_prompt_templates_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_templates")),
        sa.UniqueConstraint("template_id", name=op.f("uq_prompt_templates_template_id")),
    )
    op.create_index("idx_templates_owner", "prompt_templates", ["owner_id", "name"], unique=False)


def downgrade() -> None:
    op.drop_index("idx_templates_owner", table_name="prompt_templates")
    op.drop_table("prompt_templates")
