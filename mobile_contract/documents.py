"""Signed documents: what a resident, technician or inspector signs, and how its hash is made.

A signature binds to the SHA-256 of the document's *canonical content*, so the phone and the server
must serialise a document identically. The rule (RFC 8785-like, enough for our documents):

- JSON, UTF-8, no insignificant whitespace, object keys sorted by code point, non-ASCII kept as is;
- a number with an integral value is written as an integer (``18.0`` → ``18``), others in the
  shortest form that reads back to the same double (what ``JSON.stringify`` and Python's ``repr``
  both do);
- strings exactly as sent (times are RFC 3339 strings and are *not* reinterpreted).

The content of a ``measurement`` document is the ``measurement.record`` payload as the phone sent
it. Every other document travels in a ``document.issue`` action with its content, one of the
structs below; a document is frozen from the moment it is issued, and a correction is a new
document that ``supersedes`` the old one with a reason.
"""

import hashlib
import json
import math
import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec

from mobile_contract.types import AwareDateTime, TimeChecked

__all__ = (
    "DOCUMENT_CONTENT",
    "DamageSlipV1",
    "DocumentType",
    "MeterRecordV1",
    "ReceiptV1",
    "StopResumeV1",
    "canonical",
    "content_sha256",
)

DocumentType = Literal["receipt", "damage_slip", "measurement", "meter", "stop_resume"]

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Text = Annotated[str, msgspec.Meta(max_length=2000)]


def _normalise(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("NaN and infinities cannot be signed")
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, (datetime, date, uuid.UUID, msgspec.Struct)):
        return _normalise(msgspec.to_builtins(value))
    raise TypeError(f"cannot sign a {type(value).__name__}")


def canonical(content: Any) -> bytes:
    """The exact bytes a signature covers."""
    return json.dumps(
        _normalise(content), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def content_sha256(content: Any) -> str:
    return hashlib.sha256(canonical(content)).hexdigest()


class _Content(TimeChecked, forbid_unknown_fields=True, kw_only=True):
    """Unknown fields are refused: everything a person signs must be something we can show."""

    work_order_id: uuid.UUID


class ReceiptV1(_Content, kw_only=True):
    """Service receipt (回执): what was found and done, signed by the resident."""

    order_ref: Annotated[str, msgspec.Meta(max_length=32)]
    technician_name: Name
    staff_number: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    resident_name: Name
    address: Annotated[str, msgspec.Meta(max_length=200)]
    arrived_at: AwareDateTime | None = None
    completed_at: AwareDateTime
    found: Text
    done: Text
    result: Literal["fixed", "temporary_fix", "not_fixed", "answered", "no_fault_found"]
    satisfaction: Annotated[int, msgspec.Meta(ge=1, le=5)] | None = None
    parts_used: list[Annotated[str, msgspec.Meta(max_length=100)]] = msgspec.field(default_factory=list)


class DamageSlipV1(_Content, kw_only=True):
    """Damage-responsibility slip (确认单): the resident confirms they caused the damage."""

    resident_name: Name
    address: Annotated[str, msgspec.Meta(max_length=200)]
    cause: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    damage: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class MeterRecordV1(_Content, kw_only=True):
    """Meter swap or verification (换表/校表): readings before and after."""

    operation: Literal["swap", "verification"]
    meter_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    new_meter_id: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    reading_before: Annotated[float, msgspec.Meta(ge=0, le=1e12)]
    reading_after: Annotated[float, msgspec.Meta(ge=0, le=1e12)] | None = None
    resident_name: Name


class StopResumeV1(_Content, kw_only=True):
    """Heating stop or resume (报停/复热): the on-site check and the valve seal."""

    operation: Literal["stop", "resume"]
    checked: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    seal_number: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    resident_name: Name


#: The content struct of each document type that travels in ``document.issue``.
DOCUMENT_CONTENT: dict[str, type[_Content]] = {
    "receipt": ReceiptV1,
    "damage_slip": DamageSlipV1,
    "meter": MeterRecordV1,
    "stop_resume": StopResumeV1,
}
