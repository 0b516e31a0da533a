"""Wire types of the dispatcher's and supervisor's work-order API."""

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from mobile_contract.reference import Source, WorkOrderKind
from mobile_contract.types import AwareDateTime, TimeChecked

__all__ = (
    "AppointmentRead",
    "ArrivalRead",
    "AssignOrder",
    "BoardEntry",
    "CancelOrder",
    "ClockRead",
    "EventRead",
    "HouseholdRead",
    "ReturnDecision",
    "RevisitOutcome",
    "RevisitRead",
    "WorkOrderCreate",
    "WorkOrderDetail",
    "WorkOrderRead",
)

Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class WorkOrderCreate(TimeChecked, forbid_unknown_fields=True, kw_only=True):
    kind: WorkOrderKind
    household_id: uuid.UUID
    source: Source
    description: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    received_at: AwareDateTime | None = None
    """When the centre took the call; the SLA clocks start here. Default: now."""
    forwarded: bool = False
    urgent: bool = False
    team_id: uuid.UUID | None = None
    assignee_id: uuid.UUID | None = None


class AssignOrder(msgspec.Struct, forbid_unknown_fields=True):
    user_id: uuid.UUID
    reason: Reason | None = None


class CancelOrder(msgspec.Struct, forbid_unknown_fields=True):
    reason: Reason


class ReturnDecision(msgspec.Struct, forbid_unknown_fields=True):
    reason: Reason | None = None


class RevisitOutcome(msgspec.Struct, forbid_unknown_fields=True):
    channel: Literal["phone", "visit"]
    outcome: Literal["satisfied", "unsatisfied", "fault_persists", "unreachable"]
    satisfaction: Annotated[int, msgspec.Meta(ge=1, le=5)] | None = None
    note: Annotated[str, msgspec.Meta(max_length=1000)] | None = None


class HouseholdRead(msgspec.Struct):
    id: uuid.UUID
    account_number: str
    address: str
    unit: str
    heated_area_m2: float
    resident_name: str
    resident_phone: str | None
    """Masked (138****5678) for a technician unless one of their orders there is active."""
    is_key_customer: bool
    lat: float | None
    lon: float | None


class ClockRead(msgspec.Struct):
    clock: str
    target: str
    started_at: datetime
    due_at: datetime
    met_at: datetime | None
    status: str
    calendar_estimated: bool


class WorkOrderRead(msgspec.Struct):
    id: uuid.UUID
    ref: str
    kind: str
    source: str
    state: str
    forwarded: bool
    urgent: bool
    household_id: uuid.UUID
    team_id: uuid.UUID | None
    assignee_id: uuid.UUID | None
    description: str
    received_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    repeat_of_id: uuid.UUID | None
    review_flags: list[str]
    version: int
    allowed_moves: list[str]
    clocks: list[ClockRead]


class EventRead(msgspec.Struct):
    id: uuid.UUID
    type: str
    from_state: str | None
    to_state: str | None
    actor_id: uuid.UUID | None
    device_id: str | None
    occurred_at: datetime
    received_at: datetime
    corrected_at: datetime
    lat: float | None
    lon: float | None
    reason: str | None
    data: dict[str, Any]
    flags: list[str]


class AppointmentRead(msgspec.Struct):
    id: uuid.UUID
    window_start: datetime
    window_end: datetime
    reason: str | None
    requested_by: str
    created_at: datetime
    replaced_at: datetime | None


class ArrivalRead(msgspec.Struct):
    id: uuid.UUID
    user_id: uuid.UUID
    lat: float | None
    lon: float | None
    accuracy_m: float | None
    distance_m: float | None
    location_verified: bool | None
    attempts: list[dict[str, Any]]
    outcome: str
    badge_shown: bool
    occurred_at: datetime
    received_at: datetime


class RevisitRead(msgspec.Struct):
    id: uuid.UUID
    order_id: uuid.UUID
    household_id: uuid.UUID
    due_at: datetime
    state: str
    channel: str | None
    outcome: str | None
    satisfaction: int | None
    done_at: datetime | None


class PhotoRead(msgspec.Struct):
    id: uuid.UUID
    purpose: str
    sha256: str
    thumb_url: str
    display_url: str
    taken_at: datetime | None
    occurred_at: datetime
    received_at: datetime
    flags: list[str]
    original_removed_at: datetime | None = None
    """When retention or an erasure removed the original (GPS, EXIF); the copies stay."""


class MeterReadingRead(msgspec.Struct):
    id: uuid.UUID
    meter_id: str
    value: float
    phase: str
    photo_sha256: str | None
    occurred_at: datetime
    flags: list[str]


class DocumentSummary(msgspec.Struct):
    id: uuid.UUID
    type: str
    status: str
    """valid, awaiting_signatures, superseded or tampered (see /api/v1/documents/{id}/verify)."""
    missing: list[str]
    supersedes: uuid.UUID | None
    superseded_by: uuid.UUID | None


class Evidence(msgspec.Struct):
    """What a supervisor reviews: photos by purpose, readings, signed documents, what is still owed."""

    photos: list[PhotoRead]
    photos_missing: list[str]
    """Purposes the company's policy asks for that no photo has yet."""
    meter_readings: list[MeterReadingRead]
    documents: list[DocumentSummary]


class WorkOrderDetail(msgspec.Struct):
    order: WorkOrderRead
    household: HouseholdRead
    timeline: list[EventRead]
    appointments: list[AppointmentRead]
    arrivals: list[ArrivalRead]
    revisit: RevisitRead | None
    evidence: Evidence


class BoardEntry(msgspec.Struct):
    order_id: uuid.UUID
    ref: str
    kind: str
    state: str
    team_id: uuid.UUID | None
    assignee_id: uuid.UUID | None
    clock: str
    due_at: datetime
    minutes_left: int
    """Negative when overdue."""
