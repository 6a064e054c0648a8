"""lineage and masks: images.source_image_id (what an editing tool made an image from) and
uploads.mode (the colour mode kept, so a mask can be checked without reading its file)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("source_image_id", sa.String(length=36), nullable=True))
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(sa.Column("mode", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("mode")
    with op.batch_alter_table("images") as batch:
        batch.drop_column("source_image_id")
