"""What the phone keeps offline: the ``data`` of each change in the pull feed, by entity."""

import uuid
from datetime import datetime

import msgspec

from mobile_contract.types import BoundedDate

__all__ = (
    "AppointmentView",
    "CatalogueView",
    "ClockView",
    "HouseholdView",
    "InstrumentView",
    "InstrumentsView",
    "PastVisit",
    "RedoItemView",
    "RedoRequestView",
    "RevisitView",
    "WorkOrderView",
)


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


class CatalogueView(msgspec.Struct):
    """entity ``reference``, id ``catalogue``: the kinds and sources of orders, and the company's zone."""

    kinds: list[str]
    sources: list[str]
    timezone: str
    """IANA zone (e.g. ``Asia/Shanghai``) in which the company's working days are counted."""


class InstrumentView(msgspec.Struct):
    """A thermometer in the company's registry, with its calibration certificate."""

    id: str
    model: str | None
    certificate_no: str
    calibration_expires: BoundedDate
    accuracy_c: float
    retired: bool


class InstrumentsView(msgspec.Struct):
    """entity ``reference``, id ``instruments``: every instrument a measurement may name."""

    instruments: list[InstrumentView]


class RedoItemView(msgspec.Struct, omit_defaults=True):
    """One thing to do again: ``kind`` photo (with ``purpose``), signature (with ``document_type``),
    measurement_room (with ``room``) or other (with ``text``)."""

    kind: str
    purpose: str | None = None
    document_type: str | None = None
    room: str | None = None
    text: str | None = None


class RedoRequestView(msgspec.Struct):
    """entity ``redo_request``: a supervisor asks the assignee to redo part of a completed order.

    Sent while it is open; once answered or cancelled it comes as ``remove``. Answer it with the
    action ``redo.response``."""

    id: uuid.UUID
    order_id: uuid.UUID
    order_ref: str
    items: list[RedoItemView]
    due_at: datetime
    status: str
    requested_at: datetime
