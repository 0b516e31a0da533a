"""review counts: a kind or a team under one status is an index range

Revision ID: 0017_review_counts
Revises: 0015_live

The queue's counts stop at 1,000 per option (``review.service.COUNT_CAP``), each a ``LIMIT``
over an index range. These two indexes make the range exist for a kind or a team (or no team)
under one status, decided ones included; the open queue had its partial indexes already.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017_review_counts"
down_revision: str | None = "0015_live"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_review_item_kind_status", "review_item", ["company_id", "kind", "status", "queued_at"]
    )
    op.create_index(
        "ix_review_item_team_status", "review_item", ["company_id", "team_id", "status", "queued_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_review_item_team_status", table_name="review_item")
    op.drop_index("ix_review_item_kind_status", table_name="review_item")
