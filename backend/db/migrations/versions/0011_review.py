"""review: the supervisor's queue (review_item, its flags) and redo requests; a company's review policy

Revision ID: 0011_review
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backend.db.types

revision: str = "0011_review"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = backend.db.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("company") as batch:
        batch.add_column(sa.Column("review_policy", sa.JSON(), nullable=True))
    op.create_table(
        "review_item",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("team_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("entered_at", _TIME, nullable=False),
        sa.Column("queued_at", _TIME, nullable=False),
        sa.Column("decided_at", _TIME, nullable=True),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("decision_reason", sa.String(length=1000), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["company_id"], ["company.id"]),
        sa.ForeignKeyConstraint(["order_id"], ["work_order.id"]),
        sa.ForeignKeyConstraint(["team_id"], ["team.id"]),
        sa.ForeignKeyConstraint(["decided_by"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id"),
    )
    op.create_index("ix_review_item_queue", "review_item", ["company_id", "status", "queued_at", "id"])
    open_queue = sa.text("status IN ('pending', 'redo_answered')")
    for name, columns in (
        ("ix_review_item_open", ["company_id", "queued_at", "id"]),
        ("ix_review_item_open_team", ["company_id", "team_id", "queued_at", "id"]),
        ("ix_review_item_open_kind", ["company_id", "kind", "queued_at", "id"]),
    ):
        op.create_index(name, "review_item", columns, postgresql_where=open_queue, sqlite_where=open_queue)
    op.create_table(
        "review_item_flag",
        sa.Column("item_id", sa.Uuid(), nullable=False),
        sa.Column("flag", sa.String(length=32), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["review_item.id"]),
        sa.ForeignKeyConstraint(["company_id"], ["company.id"]),
        sa.PrimaryKeyConstraint("item_id", "flag"),
    )
    op.create_index("ix_review_item_flag_company", "review_item_flag", ["company_id", "flag", "item_id"])
    op.create_table(
        "redo_request",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("review_item_id", sa.Uuid(), nullable=False),
        sa.Column("requested_by", sa.Uuid(), nullable=False),
        sa.Column("assignee_id", sa.Uuid(), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("due_at", _TIME, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("before", sa.JSON(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("answered_at", _TIME, nullable=True),
        sa.ForeignKeyConstraint(["company_id"], ["company.id"]),
        sa.ForeignKeyConstraint(["order_id"], ["work_order.id"]),
        sa.ForeignKeyConstraint(["review_item_id"], ["review_item.id"]),
        sa.ForeignKeyConstraint(["requested_by"], ["app_user.id"]),
        sa.ForeignKeyConstraint(["assignee_id"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_redo_request_assignee_status", "redo_request", ["assignee_id", "status"])
    op.create_index("ix_redo_request_order_id", "redo_request", ["order_id"])
    op.create_index("ix_redo_request_review_item_id", "redo_request", ["review_item_id"])


def downgrade() -> None:
    op.drop_table("redo_request")
    op.drop_table("review_item_flag")
    op.drop_table("review_item")
    with op.batch_alter_table("company") as batch:
        batch.drop_column("review_policy")
