"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 02:09:21.850917
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import volcimage.core.db

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("negative_prompt", sa.Text(), nullable=True),
        sa.Column("model", sa.String(length=50), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("num_images", sa.Integer(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=True),
        sa.Column("scale", sa.Float(), nullable=True),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("result_images", sa.JSON(), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_code", sa.String(length=100), nullable=True),
        sa.Column("retry_count", sa.Integer(), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("run_after", volcimage.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_expires_at", volcimage.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("created_at", volcimage.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", volcimage.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", volcimage.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("completed_at", volcimage.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("task_id", name=op.f("uq_tasks_task_id")),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index("idx_created_at", ["created_at"], unique=False)
        batch_op.create_index("idx_status", ["status"], unique=False)
        batch_op.create_index("idx_task_id", ["task_id"], unique=False)
        batch_op.create_index("idx_tasks_queue", ["status", "run_after"], unique=False)

    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.String(length=36), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("file_path", sa.String(length=255), nullable=False),
        sa.Column("thumbnail_path", sa.String(length=255), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("mime_type", sa.String(length=50), nullable=False),
        sa.Column("file_size", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("favorite", sa.Boolean(), nullable=False),
        sa.Column("created_at", volcimage.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_images_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
        sa.UniqueConstraint("image_id", name=op.f("uq_images_image_id")),
        sa.UniqueConstraint("task_id", "position", name=op.f("uq_images_task_id_position")),
    )
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.create_index("idx_image_id", ["image_id"], unique=False)
        batch_op.create_index("idx_images_hash", ["content_hash"], unique=False)
        batch_op.create_index("idx_task_id_fk", ["task_id"], unique=False)

    op.create_table(
        "upstream_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_pk", sa.Integer(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("upstream_task_id", sa.String(length=100), nullable=True),
        sa.Column("request_id", sa.String(length=100), nullable=True),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("error_code", sa.String(length=100), nullable=True),
        sa.Column("images_billed", sa.Integer(), nullable=False),
        sa.Column("lost_calls", sa.Integer(), nullable=False),
        sa.Column("created_at", volcimage.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", volcimage.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_pk"],
            ["tasks.id"],
            name=op.f("fk_upstream_calls_task_pk_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upstream_calls")),
        sa.UniqueConstraint("task_pk", "slot", name=op.f("uq_upstream_calls_task_pk_slot")),
    )
    op.create_table(
        "user_tags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("tag_name", sa.String(length=50), nullable=False),
        sa.Column("created_at", volcimage.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_user_tags_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_tags")),
        sa.UniqueConstraint("image_id", "tag_name", name=op.f("uq_user_tags_image_id_tag_name")),
    )
    with op.batch_alter_table("user_tags", schema=None) as batch_op:
        batch_op.create_index("idx_image_id_fk", ["image_id"], unique=False)
        batch_op.create_index("idx_tag_name", ["tag_name"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("user_tags", schema=None) as batch_op:
        batch_op.drop_index("idx_tag_name")
        batch_op.drop_index("idx_image_id_fk")

    op.drop_table("user_tags")
    op.drop_table("upstream_calls")
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_index("idx_task_id_fk")
        batch_op.drop_index("idx_images_hash")
        batch_op.drop_index("idx_image_id")

    op.drop_table("images")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("idx_tasks_queue")
        batch_op.drop_index("idx_task_id")
        batch_op.drop_index("idx_status")
        batch_op.drop_index("idx_created_at")

    op.drop_table("tasks")
