"""tasks.admitted_at: when a task was last queued (made or retried), for the daily budgets

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import volcimage.core.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # a constant default: SQLite adds a NOT NULL column in place only with one
    column: sa.Column[object] = sa.Column(
        "admitted_at",
        volcimage.core.db.UTCDateTime(),
        nullable=False,
        server_default="1970-01-01 00:00:00",
    )
    with op.batch_alter_table("tasks") as batch_op:
        batch_op.add_column(column)
        batch_op.create_index("idx_tasks_admitted_at", ["admitted_at"], unique=False)
    op.execute("UPDATE tasks SET admitted_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch_op:
        batch_op.drop_index("idx_tasks_admitted_at")
        batch_op.drop_column("admitted_at")
