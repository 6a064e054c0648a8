"""user_sessions also hold the page's API-key sign-ins (no user, the key's fingerprint)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("user_sessions") as batch_op:
        batch_op.alter_column("user_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column("key_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.execute("DELETE FROM user_sessions WHERE user_id IS NULL")
    with op.batch_alter_table("user_sessions") as batch_op:
        batch_op.drop_column("key_hash")
        batch_op.alter_column("user_id", existing_type=sa.Integer(), nullable=False)
