"""the upstream's limits: tasks.claimed_at (a claim reserves the model's images a minute) and
model_pauses (a model the upstream refused for a limit waits, every worker's tasks of it)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import volcimage.core.db

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch_op:
        batch_op.add_column(sa.Column("claimed_at", volcimage.core.db.UTCDateTime(), nullable=True))
        batch_op.create_index("idx_tasks_claimed_at", ["claimed_at"], unique=False)
    op.create_table(
        "model_pauses",
        sa.Column("model", sa.String(length=50), nullable=False),
        sa.Column("until", volcimage.core.db.UTCDateTime(), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("model", name=op.f("pk_model_pauses")),
    )


def downgrade() -> None:
    op.drop_table("model_pauses")
    with op.batch_alter_table("tasks") as batch_op:
        batch_op.drop_index("idx_tasks_claimed_at")
        batch_op.drop_column("claimed_at")
