"""Review items and redo requests. No ``from __future__ import annotations`` here (SQLModel)."""

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from backend.db.types import UTCDateTime

__all__ = ("OPEN", "RedoRequest", "ReviewItem", "ReviewItemFlag")

OPEN = sa.text("status IN ('pending', 'redo_answered')")
"""The open queue's predicate, written as the partial indexes say it (the queries use it as is)."""


class ReviewItem(SQLModel, table=True):
    """One per work order: why it entered review and where the supervisor's decision stands."""

    __tablename__ = "review_item"
    __table_args__ = (
        # A company's items of one status, oldest in the queue first.
        sa.Index("ix_review_item_queue", "company_id", "status", "queued_at", "id"),
        # A kind or a team under one status: each capped count of the queue's options is a range.
        sa.Index("ix_review_item_kind_status", "company_id", "kind", "status", "queued_at"),
        sa.Index("ix_review_item_team_status", "company_id", "team_id", "status", "queued_at"),
        # The open queue (pending and redo_answered) in queue order, whole and by team or kind:
        # partial indexes, so a page is an index range however many items were decided.
        sa.Index(
            "ix_review_item_open", "company_id", "queued_at", "id", postgresql_where=OPEN, sqlite_where=OPEN
        ),
        sa.Index(
            "ix_review_item_open_team",
            "company_id",
            "team_id",
            "queued_at",
            "id",
            postgresql_where=OPEN,
            sqlite_where=OPEN,
        ),
        sa.Index(
            "ix_review_item_open_kind",
            "company_id",
            "kind",
            "queued_at",
            "id",
            postgresql_where=OPEN,
            sqlite_where=OPEN,
        ),
    )

    id: uuid.UUID = Field(primary_key=True)
    company_id: uuid.UUID = Field(foreign_key="company.id")
    order_id: uuid.UUID = Field(foreign_key="work_order.id", unique=True)
    team_id: uuid.UUID | None = Field(default=None, foreign_key="team.id")
    kind: str = Field(max_length=32, description="The order's kind, copied for the queue's filters.")
    status: str = Field(
        max_length=16, description="pending, approved, rejected, redo_requested, redo_answered"
    )
    reasons: list[str] = Field(
        default_factory=list, sa_type=sa.JSON, description="Why it entered: kind, flag, sample."
    )
    flags: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    entered_at: datetime = Field(sa_type=UTCDateTime)
    queued_at: datetime = Field(sa_type=UTCDateTime, description="When it last came (back) into the queue.")
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    decided_by: uuid.UUID | None = Field(default=None, foreign_key="app_user.id")
    decision_reason: str | None = Field(default=None, max_length=1000)
    version: int = 1


class ReviewItemFlag(SQLModel, table=True):
    """An item's flags as rows, so the queue filters and counts by flag with an index.

    The item's status, team, kind and ``queued_at`` are copied here (and kept in step by every
    write of the item's status), so a count under a flag reads this table's index only."""

    __tablename__ = "review_item_flag"
    __table_args__ = (
        sa.Index("ix_review_item_flag_company", "company_id", "flag", "item_id"),
        sa.Index(
            "ix_review_item_flag_counts", "company_id", "flag", "status", "queued_at", "team_id", "kind"
        ),
    )

    item_id: uuid.UUID = Field(foreign_key="review_item.id", primary_key=True)
    flag: str = Field(max_length=32, primary_key=True)
    company_id: uuid.UUID = Field(foreign_key="company.id")
    status: str = Field(max_length=16, description="The item's status, copied.")
    team_id: uuid.UUID | None = Field(default=None, description="The item's team, copied.")
    kind: str = Field(max_length=32, description="The item's kind, copied.")
    queued_at: datetime = Field(sa_type=UTCDateTime, description="The item's queued_at, copied.")


class RedoRequest(SQLModel, table=True):
    """What a supervisor asks the assignee to do again; it reaches their phone on the next pull."""

    __tablename__ = "redo_request"
    __table_args__ = (sa.Index("ix_redo_request_assignee_status", "assignee_id", "status"),)

    id: uuid.UUID = Field(primary_key=True)
    company_id: uuid.UUID = Field(foreign_key="company.id")
    order_id: uuid.UUID = Field(foreign_key="work_order.id", index=True)
    review_item_id: uuid.UUID = Field(foreign_key="review_item.id", index=True)
    requested_by: uuid.UUID = Field(foreign_key="app_user.id")
    assignee_id: uuid.UUID = Field(foreign_key="app_user.id")
    items: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    due_at: datetime = Field(sa_type=UTCDateTime)
    status: str = Field(max_length=16, description="open, answered, cancelled")
    before: dict[str, Any] = Field(
        default_factory=dict, sa_type=sa.JSON, description="The order's evidence when redo was asked."
    )
    response: dict[str, Any] | None = Field(
        default=None, sa_type=sa.JSON, description="What the phone sent back (redo.response)."
    )
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    answered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
