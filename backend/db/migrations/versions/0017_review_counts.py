"""review counts: a kind or a team under one status is an index range

Revision ID: 0017_review_counts
Revises: 0015_live

The queue's counts stop at 1,000 per option (``review.service.COUNT_CAP``), each a ``LIMIT``
over an index range. These two indexes make the range exist for a kind or a team (or no team)
under one status, decided ones included; the open queue had its partial indexes already.
``review_item_flag`` gets copies of its item's status, team, kind and queued_at (filled from the
items here), so a count under a flag reads only that table's index.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backend.db.types

revision: str = "0017_review_counts"
down_revision: str | None = "0016_report_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_TIME = backend.db.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("review_item_flag") as batch:
        batch.add_column(sa.Column("status", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("team_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("kind", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("queued_at", _TIME, nullable=True))
    op.execute(
        "UPDATE review_item_flag SET status = (SELECT i.status FROM review_item i WHERE i.id = item_id), "
        "team_id = (SELECT i.team_id FROM review_item i WHERE i.id = item_id), "
        "kind = (SELECT i.kind FROM review_item i WHERE i.id = item_id), "
        "queued_at = (SELECT i.queued_at FROM review_item i WHERE i.id = item_id)"
    )
    with op.batch_alter_table("review_item_flag") as batch:
        batch.alter_column("status", existing_type=sa.String(length=16), nullable=False)
        batch.alter_column("kind", existing_type=sa.String(length=32), nullable=False)
        batch.alter_column("queued_at", existing_type=_TIME, nullable=False)
    op.create_index(
        "ix_review_item_flag_counts",
        "review_item_flag",
        ["company_id", "flag", "status", "queued_at", "team_id", "kind"],
    )
    op.create_index(
        "ix_review_item_kind_status", "review_item", ["company_id", "kind", "status", "queued_at"]
    )
    op.create_index(
        "ix_review_item_team_status", "review_item", ["company_id", "team_id", "status", "queued_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_review_item_flag_counts", table_name="review_item_flag")
    with op.batch_alter_table("review_item_flag") as batch:
        for column in ("queued_at", "kind", "team_id", "status"):
            batch.drop_column(column)
    op.drop_index("ix_review_item_team_status", table_name="review_item")
    op.drop_index("ix_review_item_kind_status", table_name="review_item")
