"""Wire types of the audit endpoints (supervisors and admins)."""

import uuid
from datetime import datetime
from typing import Any, Literal

import msgspec

__all__ = ("AuditBreak", "AuditEventRead", "AuditPage", "AuditVerification")


class AuditEventRead(msgspec.Struct):
    seq: int
    """The event's place in the company's chain: 1, 2, 3… without gaps."""
    at: datetime
    event: str
    """One of ``backend.audit.Event``: ``auth.login``, ``access.denied``, ``document.superseded``…"""
    actor_user_id: uuid.UUID | None
    actor_device_id: str | None
    target_type: str | None
    target_id: str | None
    request_id: str | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(msgspec.Struct):
    events: list[AuditEventRead]
    """Newest first."""
    next_cursor: int | None
    """Pass as ``cursor`` for the next (older) page; null at the end."""


class AuditBreak(msgspec.Struct):
    seq: int
    kind: Literal["deleted", "reordered", "edited", "relinked"]
    message: str


class AuditVerification(msgspec.Struct):
    company_id: uuid.UUID
    ok: bool
    events: int
    """Rows checked, from the anchor up to the head (or the break)."""
    anchor_seq: int
    """The last pruned sequence number; 0 when nothing was pruned."""
    head_seq: int
    head_hash: str
    """Keep it elsewhere: cutting the newest rows is seen only against a head noted before."""
    broken: AuditBreak | None
