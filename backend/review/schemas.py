"""The review API's wire types (console and office clients)."""

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from backend.review.rules import ReviewFlag, ReviewPolicy
from mobile_contract.actions import PhotoPurpose
from mobile_contract.types import AwareDateTime, TimeChecked

__all__ = (
    "ApproveDecision",
    "ArrivalProof",
    "DocumentEvidence",
    "MeasurementEvidence",
    "OrderSummary",
    "PhotoEvidence",
    "RedoDecision",
    "RedoItem",
    "RedoRead",
    "RejectDecision",
    "ReviewCounts",
    "ReviewFlag",
    "ReviewItemDetail",
    "ReviewItemRead",
    "ReviewPolicy",
    "ReviewQueue",
    "TimelineEntry",
)

Status = Literal["pending", "approved", "rejected", "redo_requested", "redo_answered"]


class ReviewItemRead(msgspec.Struct):
    id: uuid.UUID
    order_id: uuid.UUID
    order_ref: str
    team_id: uuid.UUID | None
    kind: str
    status: str
    reasons: list[str]
    """Why it entered: ``kind:<kind>``, ``flag:<flag>``, ``sample``."""
    flags: list[str]
    entered_at: datetime
    queued_at: datetime
    """When it last came (back) into the queue; the queue is oldest first by this."""
    decided_at: datetime | None
    decided_by: uuid.UUID | None
    decision_reason: str | None
    version: int


class ReviewQueue(msgspec.Struct):
    items: list[ReviewItemRead]
    next_after: str | None
    """Pass as ``after`` for the next page (keyset: no OFFSET scan at a million rows); null: last page."""


class ReviewCounts(msgspec.Struct):
    """Items per value of each filter, under the other filters given (status defaults to the open queue)."""

    total: int
    by_status: dict[str, int]
    by_kind: dict[str, int]
    by_team: dict[str, int]
    """Team id (``none`` for no team) -> count."""
    by_flag: dict[str, int]
    cap: int = 1000
    """Every count stops here (bounded work at any size): a count equal to ``cap`` means that many or more."""


class OrderSummary(msgspec.Struct):
    id: uuid.UUID
    ref: str
    kind: str
    state: str
    household_id: uuid.UUID
    team_id: uuid.UUID | None
    assignee_id: uuid.UUID | None
    completed_at: datetime | None
    result: str | None
    result_note: str | None
    satisfaction: int | None


class TimelineEntry(msgspec.Struct):
    id: uuid.UUID
    type: str
    from_state: str | None
    to_state: str | None
    actor_id: uuid.UUID | None
    device_id: str | None
    occurred_at: datetime
    """The phone's clock."""
    corrected_at: datetime
    """The phone's clock corrected for its skew against the server's."""
    received_at: datetime
    """The server's clock when it arrived."""
    reason: str | None
    flags: list[str]
    data: dict[str, Any]


class ArrivalProof(msgspec.Struct):
    id: uuid.UUID
    user_id: uuid.UUID
    outcome: str
    occurred_at: datetime
    corrected_at: datetime
    received_at: datetime
    lat: float | None
    lon: float | None
    accuracy_m: float | None
    distance_m: float | None
    """From the household (or its building) when its position is known."""
    validation: Literal["verified", "not_verified", "not_validated"]
    """``not_validated``: made offline without a usable position, or the household has none."""
    attempts: list[dict[str, Any]]
    """Door attempts: method and time."""
    badge_shown: bool


class PhotoEvidence(msgspec.Struct):
    id: uuid.UUID
    purpose: str
    blob_sha256: str
    variants: dict[str, str]
    """Derived copies without metadata: ``thumb``/``display`` -> SHA-256
    (``/api/v1/blobs/{sha}/{variant}``)."""
    received_at: datetime
    corrected_at: datetime
    flags: list[str]
    exif_lat: float | None = None
    """Supervisors and admins only: the original's EXIF GPS (a claim of the file, not a fact)."""
    exif_lon: float | None = None
    exif_distance_m: float | None = None
    """Supervisors and admins only: how far the EXIF position is from the household."""


class SignatureEvidence(msgspec.Struct):
    id: uuid.UUID
    signer_role: str
    signer_name: str
    signed_at: str
    refused_reason: str | None
    intact: bool


class DocumentEvidence(msgspec.Struct):
    id: uuid.UUID
    type: str
    status: str
    """``valid``, ``awaiting_signatures``, ``superseded`` or ``tampered`` (``/documents/{id}/verify``)."""
    intact: bool
    missing: list[str]
    signatures: list[SignatureEvidence]
    pdf_url: str


class MeasurementEvidence(msgspec.Struct):
    id: uuid.UUID
    measured_at: datetime | None
    result: str
    """``pass``, ``fail``, ``incomplete`` or ``not_applicable`` against the indoor standard."""
    threshold_c: float
    period: str
    rooms: list[dict[str, Any]]
    """Each room's readings, mean and whether it meets the threshold."""
    problems: list[str]
    """Where the procedure was not followed."""
    outdoor_c: float | None
    document_status: str | None


class RedoItem(TimeChecked, forbid_unknown_fields=True):
    kind: Literal["photo", "signature", "measurement_room", "other"]
    purpose: Annotated[str, msgspec.Meta(max_length=16)] | None = None
    document_type: Annotated[str, msgspec.Meta(max_length=16)] | None = None
    room: Annotated[str, msgspec.Meta(max_length=50)] | None = None
    text: Annotated[str, msgspec.Meta(max_length=500)] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        needs = {
            "photo": "purpose",
            "signature": "document_type",
            "measurement_room": "room",
            "other": "text",
        }
        if getattr(self, needs[self.kind]) is None:
            raise ValueError(f"a {self.kind} item needs {needs[self.kind]}")
        if self.kind == "photo" and self.purpose not in {p.value for p in PhotoPurpose}:
            raise ValueError(f"unknown photo purpose {self.purpose!r}")


class RedoRead(msgspec.Struct):
    id: uuid.UUID
    status: str
    items: list[dict[str, Any]]
    due_at: datetime
    requested_by: uuid.UUID
    assignee_id: uuid.UUID
    created_at: datetime
    answered_at: datetime | None
    before: dict[str, Any]
    """The order's evidence when the redo was asked (photo, document and measurement ids)."""
    after: dict[str, Any] | None
    """What the phone sent back: the new photos, documents, measurements and note."""


class ReviewItemDetail(msgspec.Struct):
    """Everything a reviewer needs in one answer."""

    item: ReviewItemRead
    order: OrderSummary
    timeline: list[TimelineEntry]
    arrivals: list[ArrivalProof]
    photos: dict[str, list[PhotoEvidence]]
    """By purpose."""
    documents: list[DocumentEvidence]
    measurements: list[MeasurementEvidence]
    redo: list[RedoRead]
    """Redo requests, oldest first, each with its before and after evidence."""


class RejectDecision(TimeChecked, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]


class ApproveDecision(TimeChecked, forbid_unknown_fields=True):
    note: Annotated[str, msgspec.Meta(max_length=1000)] | None = None


class RedoDecision(TimeChecked, forbid_unknown_fields=True):
    items: Annotated[list[RedoItem], msgspec.Meta(min_length=1, max_length=20)]
    due_at: AwareDateTime
    reason: Annotated[str, msgspec.Meta(max_length=1000)] | None = None
