"""Push and pull: the envelope of queued actions, the answers, and the change feed."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import msgspec

from mobile_contract.types import MAX_SAFE_INT, AwareDateTime, DeviceId, TimeChecked

__all__ = (
    "ActionEnvelope",
    "ActionResult",
    "Change",
    "EndEvent",
    "HeadEvent",
    "OrderNow",
    "PullResponse",
    "PushRequest",
    "PushResponse",
    "RefusedAction",
    "Status",
    "SyncStatus",
)

ActionType = Annotated[str, msgspec.Meta(min_length=3, max_length=64, pattern=r"^[a-z_]+(\.[a-z_]+)+$")]


class Status(StrEnum):
    applied = "applied"
    """Done now; its effects and the device's counter committed together."""
    duplicate = "duplicate"
    """Seen before; nothing changed. ``code``/``message``/``current`` are the original answer's."""
    rejected = "rejected"
    """Permanently refused (bad payload, unknown version, not allowed); the queue moves past it."""
    conflict = "conflict"
    """An intent that no longer applies to the order as it is now (see ``current``); permanent."""
    waiting = "waiting"
    """Transient: something it needs is not there yet (``blob_missing``). The batch stops here."""
    out_of_order = "out_of_order"
    """Its ``seq`` is past a gap; resend from ``last_applied_seq + 1``."""


class ActionEnvelope(TimeChecked, forbid_unknown_fields=False):
    id: uuid.UUID
    """Made by the phone when the action is queued; never changes."""
    seq: Annotated[int, msgspec.Meta(ge=1, le=MAX_SAFE_INT)]
    """The device's counter: 1, 2, 3… in the order the actions were taken."""
    type: ActionType
    v: Annotated[int, msgspec.Meta(ge=1, le=1000)]
    occurred_at: AwareDateTime
    """The phone's clock when it happened (with its zone; a time without one is a 400)."""
    payload: Any
    """A JSON object, checked by ``(type, v)`` on the server, so one bad payload never spoils the batch."""


class PushRequest(TimeChecked, forbid_unknown_fields=False):
    device_id: DeviceId
    sent_at: AwareDateTime
    """The phone's clock when it sent this batch (with its zone); with the server's it gives the skew."""
    actions: list[ActionEnvelope]


class OrderNow(msgspec.Struct):
    """The order as the server holds it now: ``current`` of a ``conflict`` answer."""

    work_order_id: uuid.UUID
    state: str
    assigned_to_you: bool
    version: int
    allowed_moves: list[str]
    """The moves you may make from here (empty when the order is no longer yours)."""


class ActionResult(msgspec.Struct, omit_defaults=True):
    id: uuid.UUID
    seq: int
    status: Status
    code: str | None = None
    message: str | None = None
    retryable: bool = False
    current: dict[str, Any] | None = None
    """The order as it is now (``OrderNow``), when the answer is ``conflict``."""
    missing: list[str] | None = None
    """The blob hashes to upload first, when the answer is ``waiting`` / ``blob_missing``."""
    original_status: Status | None = None
    """With ``duplicate``: what the first delivery answered."""
    disagreeing: list[str] | None = None
    """With ``rejected`` / ``content_disagrees``: the document's fields that disagree with the
    server's records (``technician_name``, ``staff_number``, ``arrived_at``, ``completed_at``)."""


class PushResponse(msgspec.Struct):
    last_applied_seq: int
    server_time: datetime
    server_epoch: str
    results: list[ActionResult]


class Change(msgspec.Struct):
    entity: str
    id: str
    op: Literal["upsert", "remove"]
    version: int
    data: dict[str, Any] | None = None


class PullResponse(msgspec.Struct):
    cursor: str
    """Opaque; send it back as is."""
    has_more: bool
    reset: bool
    """True: drop the local store and take ``changes`` as the full snapshot."""
    changes: list[Change]


class HeadEvent(msgspec.Struct):
    """``GET /api/v1/sync/events``, event ``head``: where your feed is. Never data: pull for that."""

    position: int
    """The highest position of a change in your scope; also the event's ``id`` (``Last-Event-ID``)."""
    pull: bool
    """Pull now: your cursor (or ``Last-Event-ID``) is behind this position."""


class EndEvent(msgspec.Struct):
    """``GET /api/v1/sync/events``, event ``end``: the last one; the server closes the stream."""

    code: str
    """What your next request will be told: ``token_expired`` (refresh, reconnect) or
    ``device_revoked``, ``user_disabled``, ``session_revoked``, ``invalid_token``."""


class RefusedAction(msgspec.Struct):
    """An action the server refused for good, kept so the phone can always say why."""

    id: uuid.UUID
    seq: int
    type: str
    v: int
    status: Status
    """``rejected`` or ``conflict``."""
    code: str | None
    message: str | None
    current: dict[str, Any] | None
    """``OrderNow`` for a conflict."""
    occurred_at: str
    """The phone's time of the action, as the server stored it (UTC, ISO 8601)."""


class SyncStatus(msgspec.Struct):
    device_id: str
    last_applied_seq: int
    """The device's counter: every seq up to this one is settled (applied or refused)."""
    refused: list[RefusedAction]
    """The latest 100 refused actions, newest first."""
