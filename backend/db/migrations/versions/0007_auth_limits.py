"""auth limits: refresh-token parents

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("refresh_token", schema=None) as batch_op:
        # Tokens issued before this revision have none; the grace check falls back to issue times.
        batch_op.add_column(sa.Column("parent_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("refresh_token", schema=None) as batch_op:
        batch_op.drop_column("parent_id")
