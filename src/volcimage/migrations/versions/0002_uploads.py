"""uploads: reference images sent by users

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 03:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import volcimage.core.db

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "uploads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("upload_id", sa.String(length=36), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("file_path", sa.String(length=255), nullable=False),
        sa.Column("thumbnail_path", sa.String(length=255), nullable=False),
        sa.Column("mime_type", sa.String(length=50), nullable=False),
        sa.Column("file_size", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("created_at", volcimage.core.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uploads")),
        sa.UniqueConstraint("upload_id", name=op.f("uq_uploads_upload_id")),
    )
    op.create_index("idx_uploads_hash", "uploads", ["content_hash"], unique=False)


def downgrade() -> None:
    op.drop_index("idx_uploads_hash", table_name="uploads")
    op.drop_table("uploads")
