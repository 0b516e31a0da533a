"""data lifecycle: retention marks, a resident's erasure, photo originals removed

Revision ID: 0014_lifecycle
Revises: 0010

- ``company.photo_original_retention_days``: the company's own retention of photo originals;
- ``photo.original_removed_at``: retention (or an erasure) removed the original, the copies stay;
- ``household.erased_at`` / ``erased_by`` / ``erase_reason``: a resident's erasure (PIPL);
- ``sync_device.answers_pruned_below``: the action log below this seq was removed by retention.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backend.db.types

revision: str = "0014_lifecycle"
down_revision: str | None = "0012_console"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("company", schema=None) as batch_op:
        batch_op.add_column(sa.Column("photo_original_retention_days", sa.Integer(), nullable=True))
    with op.batch_alter_table("photo", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("original_removed_at", backend.db.types.UTCDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("household", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("erased_at", backend.db.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("erased_by", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("erase_reason", sa.String(length=500), nullable=True))
    with op.batch_alter_table("sync_device", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("answers_pruned_below", sa.BigInteger(), nullable=False, server_default=sa.text("0"))
        )


def downgrade() -> None:
    with op.batch_alter_table("sync_device", schema=None) as batch_op:
        batch_op.drop_column("answers_pruned_below")
    with op.batch_alter_table("household", schema=None) as batch_op:
        batch_op.drop_column("erase_reason")
        batch_op.drop_column("erased_by")
        batch_op.drop_column("erased_at")
    with op.batch_alter_table("photo", schema=None) as batch_op:
        batch_op.drop_column("original_removed_at")
    with op.batch_alter_table("company", schema=None) as batch_op:
        batch_op.drop_column("photo_original_retention_days")
