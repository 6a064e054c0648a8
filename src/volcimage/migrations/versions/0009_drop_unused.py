"""drop what nothing reads: tasks.result_images (the images table is the record) and the
indexes a unique constraint already provides (each one slowed every insert for nothing)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# index -> (table, column): each column leads a unique constraint of its table
DUPLICATES = {
    "idx_task_id": ("tasks", "task_id"),
    "idx_image_id": ("images", "image_id"),
    "idx_task_id_fk": ("images", "task_id"),
    "idx_image_id_fk": ("user_tags", "image_id"),
}


def upgrade() -> None:
    for index, (table, _) in DUPLICATES.items():
        op.drop_index(index, table_name=table)
    with op.batch_alter_table("tasks") as batch_op:
        batch_op.drop_column("result_images")


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch_op:
        batch_op.add_column(
            sa.Column("result_images", sa.JSON(), nullable=False, server_default="[]")
        )
    for index, (table, column) in DUPLICATES.items():
        op.create_index(index, table, [column], unique=False)
