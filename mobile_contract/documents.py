"""Signed documents: what a resident, technician or inspector signs, and how its hash is made.

A signature binds to the SHA-256 of the document's *canonical content*, so the phone and the server
must serialise a document identically. The rule is RFC 8785 (JSON Canonicalization Scheme), which
any language can follow with the JSON and number formatting it already has:

- JSON, UTF-8, no insignificant whitespace, non-ASCII kept as is;
- object keys sorted by their **UTF-16 code units**, as JavaScript's ``Array.prototype.sort``
  does, not by code point: a key with an emoji (a surrogate pair, ``D83D…``) comes before a key
  with a character from ``U+E000`` to ``U+FFFF``;
- every number is an IEEE 754 double written as ECMAScript's ``Number.prototype.toString``
  writes it: ``18.0`` → ``18``, ``-0.0`` → ``0``, ``1e16`` → ``10000000000000000``, ``1e-7`` →
  ``1e-7``, ``1e21`` → ``1e+21`` (Python's ``repr`` says ``1e-07`` and ``1e+16``: it is not
  used). An integer beyond 2^53 - 1 is rounded to the nearest double, exactly as ``JSON.parse``
  reads it, so ``9007199254740993`` is signed as ``9007199254740992``: send such values as strings;
- strings as sent, escaped as ``JSON.stringify`` does (``"``, ``\\``, and control characters
  below ``U+0020``; ``U+2028`` and ``U+007F`` stay literal); times are RFC 3339 strings and are
  *not* reinterpreted;
- NaN, infinities and lone surrogates cannot be signed (``ValueError``).

``mobile_contract/vectors/canonical_json.json`` holds worked cases (raw input, canonical text,
SHA-256) that every implementation must reproduce; ``mobile_contract/ts/src/canonical.ts`` is the
TypeScript one.

The content of a ``measurement`` document is the ``measurement.record`` payload as the phone sent
it. Every other document travels in a ``document.issue`` action with its content, one of the
structs below; a document is frozen from the moment it is issued, and a correction is a new
document that ``supersedes`` the old one with a reason.
"""

import hashlib
import math
import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec
import rfc8785

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


#: The largest integer a double holds exactly; past it, JavaScript sees only the nearest double.
_SAFE_INTEGER = 2**53 - 1


def _normalise(value: Any) -> Any:
    """Plain JSON values, with every number as the double a JavaScript phone would hold."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if abs(value) <= _SAFE_INTEGER:
            return value
        try:
            return float(value)
        except OverflowError:
            raise ValueError("a number beyond the range of a double cannot be signed") from None
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("NaN and infinities cannot be signed")
        return value
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, (datetime, date, uuid.UUID, msgspec.Struct)):
        return _normalise(msgspec.to_builtins(value))
    raise TypeError(f"cannot sign a {type(value).__name__}")


def canonical(content: Any) -> bytes:
    """The exact bytes a signature covers: RFC 8785 canonical JSON of ``content``."""
    try:
        return rfc8785.dumps(_normalise(content))
    except rfc8785.CanonicalizationError as exc:  # a lone surrogate, which UTF-8 cannot carry
        raise ValueError(f"cannot sign this content: {exc}") from None


def content_sha256(content: Any) -> str:
    """Lower-case hex SHA-256 of :func:`canonical`: what ``evidence.signature`` names."""
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
