"""The action catalogue: what a phone queues while offline, one versioned payload per type.

A payload is decoded by its ``(type, v)``; the server accepts the current and the previous
version of each type. Type names and field names, once published, are never renamed: a change is a
new version. An old version is retired on a schedule published here (:data:`DEPRECATED`): from its
``deprecated_on`` every push answer that carries it announces the retirement (``Deprecation`` and
``Sunset`` headers), and from its ``sunset_on`` it is answered ``unsupported_action_version``.
"""

import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import msgspec

from mobile_contract.documents import DocumentType
from mobile_contract.types import MAX_SAFE_INT, AwareDateTime, Sha256Hex, TimeChecked

__all__ = (
    "ACTION_TYPES",
    "CURRENT_VERSIONS",
    "DEPRECATED",
    "AcceptV1",
    "AppointmentV1",
    "ArriveV1",
    "CompleteV1",
    "CompleteV2",
    "ContactV1",
    "DepartV1",
    "DocumentIssueV1",
    "DocumentRef",
    "DoorAttempt",
    "MeasurementV1",
    "MeterReadingV1",
    "NoAccessV1",
    "NoteV1",
    "PhotoV1",
    "RedoPhoto",
    "RedoResponseV1",
    "Retirement",
    "ReturnRequestV1",
    "RevisitOutcomeV1",
    "Room",
    "SignatureV1",
    "StartV1",
)

Text = Annotated[str, msgspec.Meta(max_length=2000)]
ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
Latitude = Annotated[float, msgspec.Meta(ge=-90, le=90)]
Longitude = Annotated[float, msgspec.Meta(ge=-180, le=180)]
Metres = Annotated[float, msgspec.Meta(ge=0, le=100_000)]
Satisfaction = Annotated[int, msgspec.Meta(ge=1, le=5)]
# Pen coordinates (pixels of the signing pad) and the time of each point (ms since the stroke began).
StrokeCoordinate = Annotated[float, msgspec.Meta(ge=-100_000, le=100_000)]
StrokeMillis = Annotated[int, msgspec.Meta(ge=0, le=MAX_SAFE_INT)]
MeterValue = Annotated[float, msgspec.Meta(ge=0, le=1e12)]


class Payload(TimeChecked, forbid_unknown_fields=False, kw_only=True):
    """Unknown fields are ignored, so a newer app's extra field does not break an older server.

    Every datetime is an ``AwareDateTime`` in range (``TimeChecked``): a payload with a time
    without a zone, or out of range, is rejected (``invalid_payload``) and the queue moves on.
    """


class OrderPayload(Payload, kw_only=True):
    work_order_id: uuid.UUID


# ------------------------------------------------------------------ intents


class AcceptV1(OrderPayload, kw_only=True):
    pass


class AppointmentV1(OrderPayload, kw_only=True):
    window_start: AwareDateTime
    window_end: AwareDateTime
    reason: ShortText | None = None
    requested_by: Literal["resident", "technician", "dispatcher"] = "resident"


class StartV1(OrderPayload, kw_only=True):
    pass


class CompleteV1(OrderPayload, kw_only=True):
    result: Literal["fixed", "temporary_fix", "not_fixed", "answered", "no_fault_found"]
    satisfaction: Satisfaction | None = None


class CompleteV2(CompleteV1, kw_only=True):
    """v2 adds what was done, for the receipt; v1 actions are upgraded with an empty note."""

    note: Text | None = None
    parts_used: list[Annotated[str, msgspec.Meta(max_length=100)]] = msgspec.field(default_factory=list)


class ReturnRequestV1(OrderPayload, kw_only=True):
    reason: ShortText


# ------------------------------------------------------------------ facts


class ContactV1(OrderPayload, kw_only=True):
    outcome: Literal["reached", "no_answer", "wrong_number"]
    note: Text | None = None


class DepartV1(OrderPayload, kw_only=True):
    pass


class DoorAttempt(TimeChecked, forbid_unknown_fields=False):
    method: Literal["knock", "ring", "phone", "intercom"]
    at: AwareDateTime


class ArriveV1(OrderPayload, kw_only=True):
    lat: Latitude | None = None
    lon: Longitude | None = None
    accuracy_m: Metres | None = None
    attempts: Annotated[list[DoorAttempt], msgspec.Meta(max_length=20)] = msgspec.field(default_factory=list)
    outcome: Literal["admitted", "no_answer", "refused"]
    badge_shown: bool = False


class NoAccessV1(OrderPayload, kw_only=True):
    attempts: Annotated[list[DoorAttempt], msgspec.Meta(max_length=20)] = msgspec.field(default_factory=list)
    note: Text | None = None


class NoteV1(OrderPayload, kw_only=True):
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class PhotoPurpose(StrEnum):
    before = "before"
    after = "after"
    leak = "leak"
    meter = "meter"
    seal = "seal"
    thermometer = "thermometer"
    damage = "damage"
    site_cleared = "site_cleared"


class PhotoV1(Payload, kw_only=True):
    work_order_id: uuid.UUID | None = None
    measurement_id: uuid.UUID | None = None
    blob: Sha256Hex
    purpose: PhotoPurpose
    taken_at: AwareDateTime | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.work_order_id is None) == (self.measurement_id is None):
            raise ValueError("give exactly one of work_order_id or measurement_id")


class Room(TimeChecked, forbid_unknown_fields=False):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
    kind: Literal["bedroom", "living_room", "kitchen", "bathroom", "other"]
    readings_c: Annotated[
        list[Annotated[float, msgspec.Meta(ge=-40, le=60)]], msgspec.Meta(min_length=1, max_length=10)
    ]
    height_m: Annotated[float, msgspec.Meta(ge=0.1, le=3)] | None = None
    reading_times: Annotated[list[AwareDateTime], msgspec.Meta(max_length=10)] | None = None
    """When each reading was taken: the procedure wants them a minute apart."""
    stable_drift_c: Annotated[float, msgspec.Meta(ge=0, le=20)] | None = None
    """Change over the 10 minutes before the first reading: at most 0.2 °C means stable."""


class MeasurementV1(Payload, kw_only=True):
    measurement_id: uuid.UUID
    household_id: uuid.UUID
    work_order_id: uuid.UUID | None = None
    instrument_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    rooms: Annotated[list[Room], msgspec.Meta(min_length=1, max_length=20)]
    outdoor_c: Annotated[float, msgspec.Meta(ge=-60, le=50)] | None = None
    closed_minutes: Annotated[int, msgspec.Meta(ge=0, le=24 * 60)] | None = None
    measured_at: AwareDateTime | None = None
    note: Text | None = None
    supersedes: uuid.UUID | None = None
    """A signed record is never edited: a correction is a new record naming the one it replaces."""
    supersede_reason: ShortText | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.supersedes is None) != (self.supersede_reason is None):
            raise ValueError("a correction gives both supersedes and supersede_reason")


class DocumentRef(msgspec.Struct, forbid_unknown_fields=False):
    type: DocumentType
    id: uuid.UUID


class DocumentIssueV1(Payload, kw_only=True):
    """A document written on the phone (receipt, damage slip, meter record, stop/resume) for signing.

    ``content`` is the document type's struct in :mod:`mobile_contract.documents`; signatures bind
    to ``content_sha256(content)``. Frozen once issued: a correction is a new document id with
    ``supersedes`` and ``supersede_reason``.
    """

    document: DocumentRef
    content: dict[str, Any]
    supersedes: uuid.UUID | None = None
    supersede_reason: ShortText | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.document.type == "measurement":
            raise ValueError("a measurement record is issued by measurement.record")
        if (self.supersedes is None) != (self.supersede_reason is None):
            raise ValueError("a correction gives both supersedes and supersede_reason")


class SignatureV1(Payload, kw_only=True):
    document: DocumentRef
    signer_name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    signer_role: Literal["resident", "technician", "inspector"]
    content_sha256: Sha256Hex
    blob: Sha256Hex | None = None
    strokes: (
        Annotated[
            list[list[tuple[StrokeCoordinate, StrokeCoordinate, StrokeMillis]]], msgspec.Meta(max_length=500)
        ]
        | None
    ) = None
    refused_reason: ShortText | None = None
    lat: Latitude | None = None
    lon: Longitude | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.refused_reason is None and self.blob is None and not self.strokes:
            raise ValueError("a signature needs a blob or strokes, or a refused_reason")


class MeterReadingV1(OrderPayload, kw_only=True):
    meter_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    value: MeterValue
    blob: Sha256Hex | None = None
    phase: Literal["before", "after", "single"] = "single"


class RevisitOutcomeV1(Payload, kw_only=True):
    revisit_id: uuid.UUID
    channel: Literal["phone", "visit"]
    outcome: Literal["satisfied", "unsatisfied", "fault_persists", "unreachable"]
    satisfaction: Satisfaction | None = None
    note: Text | None = None


class RedoPhoto(TimeChecked, forbid_unknown_fields=False):
    purpose: PhotoPurpose
    blob: Sha256Hex
    """Uploaded first, like the file of an ``evidence.photo``: until then the action waits."""
    taken_at: AwareDateTime | None = None


class RedoResponseV1(Payload, kw_only=True):
    """The answer to a supervisor's redo request (entity ``redo_request`` of the pull feed).

    A fact: it is kept even when the request was answered or cancelled meanwhile (flagged for the
    supervisor). Documents and measurements it names are pushed first, as usual, and must belong to
    the request's order.
    """

    redo_request_id: uuid.UUID
    photos: Annotated[list[RedoPhoto], msgspec.Meta(max_length=20)] = msgspec.field(default_factory=list)
    document_ids: Annotated[list[uuid.UUID], msgspec.Meta(max_length=10)] = msgspec.field(
        default_factory=list
    )
    measurement_ids: Annotated[list[uuid.UUID], msgspec.Meta(max_length=10)] = msgspec.field(
        default_factory=list
    )
    note: Text | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.photos or self.document_ids or self.measurement_ids or self.note):
            raise ValueError("a redo response carries photos, documents, measurements or a note")


# (type, version) -> payload struct
ACTION_TYPES: dict[tuple[str, int], type[Payload]] = {
    ("work_order.accept", 1): AcceptV1,
    ("work_order.contact", 1): ContactV1,
    ("work_order.appointment", 1): AppointmentV1,
    ("work_order.depart", 1): DepartV1,
    ("work_order.arrive", 1): ArriveV1,
    ("work_order.no_access", 1): NoAccessV1,
    ("work_order.start", 1): StartV1,
    ("work_order.note", 1): NoteV1,
    ("evidence.photo", 1): PhotoV1,
    ("measurement.record", 1): MeasurementV1,
    ("document.issue", 1): DocumentIssueV1,
    ("evidence.signature", 1): SignatureV1,
    ("meter.reading", 1): MeterReadingV1,
    ("work_order.complete", 1): CompleteV1,
    ("work_order.complete", 2): CompleteV2,
    ("work_order.return_request", 1): ReturnRequestV1,
    ("revisit.outcome", 1): RevisitOutcomeV1,
    ("redo.response", 1): RedoResponseV1,
}
CURRENT_VERSIONS: dict[str, int] = {}
for _type, _version in ACTION_TYPES:
    CURRENT_VERSIONS[_type] = max(_version, CURRENT_VERSIONS.get(_type, 0))


class Retirement(msgspec.Struct, frozen=True):
    """When an action version stops being current, and when the server stops taking it.

    Both days begin at 00:00 UTC. Between them the version is still applied as before; an app
    that still sends it is told, and should be updated before ``sunset_on``.
    """

    deprecated_on: date
    sunset_on: date

    @property
    def deprecated_at(self) -> datetime:
        return datetime(self.deprecated_on.year, self.deprecated_on.month, self.deprecated_on.day, tzinfo=UTC)

    @property
    def sunset_at(self) -> datetime:
        return datetime(self.sunset_on.year, self.sunset_on.month, self.sunset_on.day, tzinfo=UTC)


#: The retirement schedule: ``(type, v)`` -> its dates. A version leaves ``ACTION_TYPES`` only after
#: its sunset, in a later release; until then the server refuses it by date.
DEPRECATED: dict[tuple[str, int], Retirement] = {
    # v2 carries the note and the parts for the receipt. v1 is taken through this heating season;
    # apps are updated in the summer, before the next season starts in November.
    ("work_order.complete", 1): Retirement(deprecated_on=date(2026, 12, 1), sunset_on=date(2027, 10, 1)),
}
assert set(DEPRECATED) <= set(ACTION_TYPES), "only a published version is retired"
assert all(v < CURRENT_VERSIONS[t] for t, v in DEPRECATED), "the current version of a type is never retired"
