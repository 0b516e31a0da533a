"""The feed sends a household again only when it is touched: every phone starts from a new epoch

Revision ID: 0019_household_feed
Revises: 0018_kpi_rollup

Until this revision a pull sent the household of every changed order. From it on, a move or an
assignment of an order touches its household in ``change_log`` (``backend.work_orders.timeline``),
and a note, a photo or a measurement touches the order only. Changes recorded before it touch no
household, so a phone pulling across them would miss a household it must drop or show anew. Each
company's epoch therefore changes, as after a restore: every phone's next pull is a full snapshot,
and the history of the old epoch goes. Nothing else changes; downgrading keeps the new epoch.

A worker of the previous release still serving during a rolling deploy records moves without their
household. Stop the old workers before this revision runs, or run ``heatcrew sync new-epoch`` once
the last of them is gone.
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_household_feed"
down_revision: str | None = "0018_kpi_rollup"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    counters = sa.table(
        "sync_counter", sa.column("company_id", sa.Uuid()), sa.column("epoch"), sa.column("pruned_below")
    )
    bind = op.get_bind()
    for (company_id,) in bind.execute(sa.select(counters.c.company_id)).all():
        bind.execute(
            counters.update()
            .where(counters.c.company_id == company_id)
            .values(epoch=secrets.token_bytes(8).hex(), pruned_below=0)
        )
    op.execute("DELETE FROM change_log")


def downgrade() -> None:
    pass
