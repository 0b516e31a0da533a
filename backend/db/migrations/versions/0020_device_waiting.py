"""A device's actions waiting for their uploads, kept on its counter row

Revision ID: 0020_device_waiting
Revises: 0019_household_feed

``sync_device.waiting_actions``: how many actions the device's last push left waiting for an
upload (``blob_missing``), with those queued behind them; 0 once its queue moves again. Every push
writes it with the counter, in the same statement. The metrics read it at each scrape, summed by
company, in place of a gauge labelled with every device id. Workers of the previous release leave
it as it is (0 by default); nothing else changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020_device_waiting"
down_revision: str | None = "0019_household_feed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sync_device") as batch_op:
        batch_op.add_column(sa.Column("waiting_actions", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("sync_device") as batch_op:
        batch_op.drop_column("waiting_actions")
