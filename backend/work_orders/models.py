"""Work orders and what happens to them. No ``from __future__ import annotations`` here (SQLModel)."""

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from backend.db.types import UTCDateTime

__all__ = ("Appointment", "Arrival", "Revisit", "SlaClock", "WorkOrder", "WorkOrderEvent")


class WorkOrder(SQLModel, table=True):
    __tablename__ = "work_order"
    __table_args__ = (
        sa.Index("ix_work_order_company_state", "company_id", "state"),
        sa.Index("ix_work_order_assignee_state", "assignee_id", "state"),
        sa.Index("ix_work_order_household_completed", "household_id", "completed_at"),
        # Reports (backend/reports): exports and hotline KPIs by received_at, repeats by completed_at.
        sa.Index("ix_work_order_company_received", "company_id", "received_at", "id"),
        sa.Index("ix_work_order_company_source_received", "company_id", "source", "received_at"),
        sa.Index(
            "ix_work_order_company_completed",
            "company_id",
            "completed_at",
            postgresql_include=["kind", "team_id"],
        ),
        sa.Index("ix_work_order_company_repeat_of", "company_id", "repeat_of_id"),
    )

    id: uuid.UUID = Field(primary_key=True)
    company_id: uuid.UUID = Field(foreign_key="company.id")
    kind: str = Field(max_length=32)
    source: str = Field(max_length=32)
    forwarded: bool = Field(default=False, description="Forwarded (转办) by another body: accept clock runs.")
    urgent: bool = Field(default=False, description="Major event (government, media, 12345, safety).")
    household_id: uuid.UUID = Field(foreign_key="household.id")
    team_id: uuid.UUID | None = Field(default=None, foreign_key="team.id", index=True)
    assignee_id: uuid.UUID | None = Field(default=None, foreign_key="app_user.id")
    description: str = Field(max_length=2000)
    state: str = Field(max_length=24)
    state_before_return: str | None = Field(default=None, max_length=24)
    received_at: datetime = Field(
        sa_type=UTCDateTime, description="When the centre took the call: SLA start."
    )
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by: uuid.UUID | None = Field(default=None, foreign_key="app_user.id")
    updated_at: datetime = Field(sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    result: str | None = Field(default=None, max_length=32)
    result_note: str | None = Field(default=None, max_length=2000)
    satisfaction: int | None = None
    return_reason: str | None = Field(default=None, max_length=500)
    cancel_reason: str | None = Field(default=None, max_length=500)
    repeat_of_id: uuid.UUID | None = Field(default=None, foreign_key="work_order.id")
    review_flags: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    version: int = Field(default=1, description="Bumped on every change: optimistic concurrency.")


class WorkOrderEvent(SQLModel, table=True):
    """The timeline: every transition and every fact, with who, where, why and both clocks."""

    __tablename__ = "work_order_event"

    id: uuid.UUID = Field(primary_key=True)
    order_id: uuid.UUID = Field(foreign_key="work_order.id", index=True)
    type: str = Field(max_length=32)
    from_state: str | None = Field(default=None, max_length=24)
    to_state: str | None = Field(default=None, max_length=24)
    actor_id: uuid.UUID | None = Field(default=None, foreign_key="app_user.id")
    device_id: str | None = Field(default=None, max_length=64)
    occurred_at: datetime = Field(
        sa_type=UTCDateTime, description="The phone's clock (or the server's online)."
    )
    received_at: datetime = Field(sa_type=UTCDateTime, description="The server's clock when it arrived.")
    corrected_at: datetime = Field(sa_type=UTCDateTime, description="Field time corrected for clock skew.")
    lat: float | None = None
    lon: float | None = None
    reason: str | None = Field(default=None, max_length=500)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    flags: list[str] = Field(default_factory=list, sa_type=sa.JSON)


class SlaClock(SQLModel, table=True):
    __tablename__ = "sla_clock"
    __table_args__ = (
        sa.UniqueConstraint("order_id", "clock"),
        sa.Index("ix_sla_clock_open_due", "met_at", "due_at"),
        # The on-time KPIs read only this index on PostgreSQL (an index-only scan, no join).
        sa.Index(
            "ix_sla_clock_company_due",
            "company_id",
            "due_at",
            postgresql_include=["clock", "met_at", "order_kind"],
        ),
    )

    id: uuid.UUID = Field(primary_key=True)
    order_id: uuid.UUID = Field(foreign_key="work_order.id", index=True)
    company_id: uuid.UUID = Field(
        foreign_key="company.id", description="The order's company, copied: reports need no join."
    )
    order_kind: str = Field(max_length=32, description="The order's kind (never changes), copied.")
    clock: str = Field(max_length=16)
    started_at: datetime = Field(sa_type=UTCDateTime)
    due_at: datetime = Field(sa_type=UTCDateTime)
    met_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    target: str = Field(max_length=32, description="The rule, for people: '30 min', '3 working days'.")
    calendar_estimated: bool = Field(
        default=False, description="Working days counted Mon-Fri: no holiday data for that year yet."
    )


class Appointment(SQLModel, table=True):
    """A visit window agreed with the resident; a reschedule replaces it and both are kept."""

    __tablename__ = "appointment"

    id: uuid.UUID = Field(primary_key=True)
    order_id: uuid.UUID = Field(foreign_key="work_order.id", index=True)
    window_start: datetime = Field(sa_type=UTCDateTime)
    window_end: datetime = Field(sa_type=UTCDateTime)
    reason: str | None = Field(default=None, max_length=500)
    requested_by: str = Field(max_length=16, description="resident, technician or dispatcher")
    created_by: uuid.UUID | None = Field(default=None, foreign_key="app_user.id")
    created_at: datetime = Field(sa_type=UTCDateTime)
    replaced_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Arrival(SQLModel, table=True):
    """A door check-in: GPS fix, door attempts, outcome, badge."""

    __tablename__ = "arrival"

    id: uuid.UUID = Field(primary_key=True)
    order_id: uuid.UUID = Field(foreign_key="work_order.id", index=True)
    user_id: uuid.UUID = Field(foreign_key="app_user.id")
    device_id: str | None = Field(default=None, max_length=64)
    lat: float | None = None
    lon: float | None = None
    accuracy_m: float | None = None
    distance_m: float | None = Field(default=None, description="From the household's known location.")
    location_verified: bool | None = Field(default=None, description="Null: no location to check against.")
    attempts: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    outcome: str = Field(max_length=16)
    badge_shown: bool = False
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    received_at: datetime = Field(sa_type=UTCDateTime)
    corrected_at: datetime = Field(sa_type=UTCDateTime)


class Revisit(SQLModel, table=True):
    """The follow-up call or visit after a repair (回访)."""

    __tablename__ = "revisit"
    __table_args__ = (
        sa.Index(
            "ix_revisit_company_due", "company_id", "due_at", postgresql_include=["state", "satisfaction"]
        ),
    )

    id: uuid.UUID = Field(primary_key=True)
    company_id: uuid.UUID = Field(foreign_key="company.id", index=True)
    order_id: uuid.UUID = Field(foreign_key="work_order.id", unique=True)
    household_id: uuid.UUID = Field(foreign_key="household.id")
    assignee_id: uuid.UUID | None = Field(default=None, foreign_key="app_user.id")
    due_at: datetime = Field(sa_type=UTCDateTime)
    state: str = Field(default="due", max_length=16)
    channel: str | None = Field(default=None, max_length=16)
    outcome: str | None = Field(default=None, max_length=32)
    satisfaction: int | None = None
    note: str | None = Field(default=None, max_length=1000)
    done_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    done_by: uuid.UUID | None = Field(default=None, foreign_key="app_user.id")
    created_at: datetime = Field(sa_type=UTCDateTime)
