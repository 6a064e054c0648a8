"""upstream_calls.called_at: when the last paid call was made (the shared per-minute budget)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 04:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import volcimage.core.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("upstream_calls") as batch_op:
        batch_op.add_column(sa.Column("called_at", volcimage.core.db.UTCDateTime(), nullable=True))
        batch_op.create_index("idx_calls_called_at", ["called_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("upstream_calls") as batch_op:
        batch_op.drop_index("idx_calls_called_at")
        batch_op.drop_column("called_at")
