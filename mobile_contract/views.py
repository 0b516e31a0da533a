"""What the phone keeps offline: the ``data`` of each change in the pull feed, by entity."""

import uuid
from datetime import datetime

import msgspec

__all__ = ("AppointmentView", "ClockView", "HouseholdView", "PastVisit", "RevisitView", "WorkOrderView")


class ClockView(msgspec.Struct):
    clock: str
    due_at: datetime
    met_at: datetime | None


class AppointmentView(msgspec.Struct):
    window_start: datetime
    window_end: datetime
    reason: str | None


class WorkOrderView(msgspec.Struct):
    """entity ``work_order``: one of the user's open orders."""

    id: uuid.UUID
    ref: str
    kind: str
    source: str
    state: str
    urgent: bool
    household_id: uuid.UUID
    description: str
    received_at: datetime
    allowed_moves: list[str]
    clocks: list[ClockView]
    appointment: AppointmentView | None
    version: int


class PastVisit(msgspec.Struct):
    order_ref: str
    kind: str
    completed_at: datetime
    result: str | None


class HouseholdView(msgspec.Struct):
    """entity ``household``: minimal personal data; the phone number is masked unless an order is active."""

    id: uuid.UUID
    account_number: str
    address: str
    unit: str
    resident_name: str
    resident_phone: str | None
    is_key_customer: bool
    lat: float | None
    lon: float | None
    last_visits: list[PastVisit]


class RevisitView(msgspec.Struct):
    """entity ``revisit``: a follow-up assigned to the user."""

    id: uuid.UUID
    order_id: uuid.UUID
    household_id: uuid.UUID
    due_at: datetime
    state: str
