"""Recording security events into each company's hash-chained, append-only audit log.

Callers name what happened with :func:`record`, visibly, in the transaction that does it: the
event is kept exactly when that transaction commits. The row is written just before the commit
(``backend.unit_of_work``), when its place in the chain is taken: on PostgreSQL under
``pg_advisory_xact_lock`` keyed by the company, so the lock is held only for the insert and the
commit, never across the work of a long transaction; on SQLite every writer already holds the
database's write lock (``BEGIN IMMEDIATE``). What must be kept although the request fails (a
refused login is kept by its own committed transaction; a permission denial) goes through
:func:`record_alone`, its own short transaction.

Nothing personal goes into a row: users are their ids, an unknown username is a keyed hash, and
``detail`` holds codes, ids and numbers (:func:`record` refuses keys that name personal data).
The push and pull paths record nothing of their own; a correction pushed by a phone
(``document.superseded``) is the one event noted there, and written at its commit like any other.
"""

import hashlib
import hmac
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import structlog
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session

from backend.audit.models import AuditAnchor, AuditEvent
from backend.errors import InvalidInput
from mobile_contract.documents import canonical

if TYPE_CHECKING:
    from backend.db import Database

__all__ = (
    "GENESIS",
    "INSTALLATION",
    "RETENTION_YEARS",
    "Event",
    "audit_key",
    "changed_settings",
    "forget_pending",
    "mark",
    "prune_before",
    "record",
    "record_alone",
    "record_export",
    "restore",
    "retention_cutoff",
    "row_hash",
    "username_digest",
    "write_pending",
)

GENESIS = "0" * 64
"""The ``prev_hash`` of a chain's first row (when nothing was pruned)."""
INSTALLATION = uuid.UUID(int=0)
"""The chain of events that belong to no company: login failures for a username nobody has."""
RETENTION_YEARS = 3
# Advisory-lock class of the audit chains (PostgreSQL's two-key form), beside the login's 7001/7002.
AUDIT_LOCK = 7_013
MAX_DETAIL_BYTES = 4096
# Keys a detail may never carry, at any depth: what would put personal data or secrets in the log.
PERSONAL_KEYS = frozenset(
    {
        "password",
        "token",
        "access_token",
        "refresh_token",
        "secret",
        "username",
        "name",
        "full_name",
        "signer_name",
        "phone",
        "address",
        "lat",
        "lon",
        "gps",
        "email",
    }
)

_PENDING = "heatcrew.audit"


class Event(StrEnum):
    """The events the log records. Never renamed; new ones may be added."""

    login = "auth.login"
    """A login succeeded: actor and target are the user, on the device."""
    login_failed = "auth.login_failed"
    """A login was refused (``detail.code``): target the user, or ``username`` (keyed hash)."""
    refresh_reused = "auth.refresh_reused"
    """A spent refresh token came back: its family (``session``) was revoked."""
    refresh_device_mismatch = "auth.refresh_device_mismatch"
    """A refresh token was presented for another device: its family was revoked."""
    device_revoked = "device.revoked"
    user_created = "user.created"
    """With ``detail.role``: there is no role change; a role is given when the account is made."""
    user_disabled = "user.disabled"
    user_enabled = "user.enabled"
    access_denied = "access.denied"
    """An authenticated caller was answered 403: ``detail`` has the route template and the role."""
    photo_original_viewed = "photo.original_viewed"
    """The ``original`` of a photo (with its GPS) was served: target the blob."""
    personal_data_exported = "export.personal_data"
    """An export containing personal data (:func:`record_export`)."""
    sla_policy_changed = "sla_policy.changed"
    """``detail.changed``: each top-level setting changed, before and after."""
    document_superseded = "document.superseded"
    """A correction voided a document: target the old one, ``detail.superseded_by`` the new."""
    review_decided = "review.decided"
    """A review decision (``detail.decision``); the review decision service records it."""
    household_erased = "household.erased"
    """A resident's personal data was erased (PIPL): target the household; ``detail.repeated``."""
    audit_pruned = "audit.pruned"
    """A prefix older than the retention was removed; the chain goes on from the anchor."""


@dataclass(frozen=True, slots=True)
class _Pending:
    company_id: uuid.UUID
    at: datetime
    event: str
    actor_user_id: uuid.UUID | None
    actor_device_id: str | None
    target_type: str | None
    target_id: str | None
    request_id: str | None
    detail: dict[str, Any]


def record(
    session: Session,
    *,
    company_id: uuid.UUID,
    event: Event | str,
    actor_user_id: uuid.UUID | None = None,
    actor_device_id: str | None = None,
    target_type: str | None = None,
    target_id: object = None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Note ``event`` in this session's transaction: it is chained and written just before the
    commit, and gone with a rollback. The time is the injected clock's, the request id the log
    context's (``backend.telemetry``)."""
    clean = _checked_detail(detail)
    at = _now(session)
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    pending: list[_Pending] = session.info.setdefault(_PENDING, [])
    pending.append(
        _Pending(
            company_id=company_id,
            at=at,
            event=str(event),
            actor_user_id=actor_user_id,
            actor_device_id=actor_device_id,
            target_type=target_type,
            target_id=None if target_id is None else str(target_id),
            request_id=request_id if isinstance(request_id, str) else None,
            detail=clean,
        )
    )


def record_alone(db: "Database", **event: Any) -> None:
    """:func:`record` in a transaction of its own, committed at once: for what must be kept
    although the request it belongs to fails (a permission denial)."""
    with db.session() as session:
        record(session, **event)


def record_export(
    session: Session,
    *,
    company_id: uuid.UUID,
    actor_user_id: uuid.UUID,
    actor_device_id: str | None,
    export: str,
    rows: int | None = None,
    filters: Mapping[str, Any] | None = None,
) -> None:
    """The hook for every export that contains personal data (the reports' endpoints call it in
    the transaction that reads the export): which export (``export``, e.g. ``"households.xlsx"``),
    how many rows (``None`` for a streamed export, recorded when it is asked for: its row count is
    in its ``export`` log line), and the filters used (ids, dates and codes only)."""
    record(
        session,
        company_id=company_id,
        event=Event.personal_data_exported,
        actor_user_id=actor_user_id,
        actor_device_id=actor_device_id,
        target_type="export",
        target_id=export,
        detail={"rows": rows, "filters": dict(filters or {})},
    )


def changed_settings(before: Mapping[str, Any], after: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """What a settings change changed, for an event's detail: ``{"kinds.leak.arrive": {"before": 240,
    "after": 180}}``, nested mappings by their dotted path, anything else compared whole."""
    changed: dict[str, Any] = {}
    for key in sorted(set(before) | set(after), key=str):
        old, new = before.get(key), after.get(key)
        path = f"{prefix}{key}"
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            changed.update(changed_settings(old, new, f"{path}."))
        elif old != new:
            changed[path] = {"before": old, "after": new}
    return changed


def audit_key(secret: str) -> bytes:
    """The key of the usernames' keyed hash, derived from the service's secret."""
    return hmac.new(secret.encode(), b"heatcrew/audit-username/v1", hashlib.sha256).digest()


def username_digest(session: Session, username: str) -> str:
    """An unknown username as the log keeps it: HMAC-SHA-256 under :func:`audit_key` (hex), so the
    same guess is recognisable across rows without the name being stored."""
    key = session.info.get("audit_key")
    if not isinstance(key, bytes):
        raise RuntimeError("the database was opened without an audit key")
    return hmac.new(key, username.encode(), hashlib.sha256).hexdigest()


def mark(session: Session) -> int:
    """How many events are noted so far: :func:`restore` goes back to it when work is undone."""
    return len(session.info.get(_PENDING, ()))


def restore(session: Session, noted: int) -> None:
    pending: list[_Pending] | None = session.info.get(_PENDING)
    if pending is not None:
        del pending[noted:]


def forget_pending(session: OrmSession) -> None:
    """The transaction ended without committing: what it noted is gone with it."""
    session.info.pop(_PENDING, None)


# ------------------------------------------------------------------ the chain


def row_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """``sha256(prev_hash || canonical(fields))``: the previous hash as its 32 bytes, then the RFC
    8785 canonical JSON of the row's fields (:func:`chained_fields`)."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical(dict(fields))).hexdigest()


def chained_fields(
    *,
    company_id: uuid.UUID,
    seq: int,
    at: datetime,
    event: str,
    actor_user_id: uuid.UUID | None,
    actor_device_id: str | None,
    target_type: str | None,
    target_id: str | None,
    request_id: str | None,
    detail: Mapping[str, Any],
) -> dict[str, Any]:
    """What a row's hash covers: every column but the two hashes, as JSON text and numbers."""
    return {
        "company_id": str(company_id),
        "seq": seq,
        "at": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "event": event,
        "actor_user_id": None if actor_user_id is None else str(actor_user_id),
        "actor_device_id": actor_device_id,
        "target_type": target_type,
        "target_id": target_id,
        "request_id": request_id,
        "detail": dict(detail),
    }


def write_pending(session: OrmSession) -> None:
    """Just before the commit: the noted events join their companies' chains.

    The session's own changes are flushed first, so that the chain's lock is the last one the
    transaction takes (nothing waits for a row lock while holding it: no deadlock)."""
    pending: list[_Pending] | None = session.info.pop(_PENDING, None)
    if not pending:
        return
    session.flush()
    by_company: dict[uuid.UUID, list[_Pending]] = {}
    for item in pending:
        by_company.setdefault(item.company_id, []).append(item)
    for company_id in sorted(by_company):  # one lock order for every writer
        _lock_chain(session, company_id)
        seq, prev = _head(session, company_id)
        rows = []
        for item in by_company[company_id]:
            seq += 1
            fields = chained_fields(
                company_id=company_id,
                seq=seq,
                at=item.at,
                event=item.event,
                actor_user_id=item.actor_user_id,
                actor_device_id=item.actor_device_id,
                target_type=item.target_type,
                target_id=item.target_id,
                request_id=item.request_id,
                detail=item.detail,
            )
            digest = row_hash(prev, fields)
            rows.append(
                {
                    "company_id": company_id,
                    "seq": seq,
                    "at": item.at,
                    "event": item.event,
                    "actor_user_id": item.actor_user_id,
                    "actor_device_id": item.actor_device_id,
                    "target_type": item.target_type,
                    "target_id": item.target_id,
                    "request_id": item.request_id,
                    "detail": item.detail,
                    "prev_hash": prev,
                    "hash": digest,
                }
            )
            prev = digest
        session.connection().execute(sa.insert(AuditEvent.__table__), rows)


def _lock_chain(session: OrmSession, company_id: uuid.UUID) -> None:
    """PostgreSQL: one writer of this company's chain at a time, until commit. SQLite: the
    writing transaction's ``BEGIN IMMEDIATE`` already made this the only writer."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection().execute(
            sa.text("SELECT pg_advisory_xact_lock(:class, hashtext(:key))"),
            {"class": AUDIT_LOCK, "key": str(company_id)},
        )


def _head(session: OrmSession, company_id: uuid.UUID) -> tuple[int, str]:
    """The chain's last sequence number and hash (the anchor's once everything was pruned).
    Core statements on the session's connection: the ORM's statement path costs more than the read."""
    conn = session.connection()
    events, anchors = AuditEvent.__table__, AuditAnchor.__table__
    last = conn.execute(
        sa.select(events.c.seq, events.c.hash)
        .where(events.c.company_id == company_id)
        .order_by(events.c.seq.desc())
        .limit(1)
    ).first()
    if last is not None:
        return int(last[0]), str(last[1])
    anchor = conn.execute(
        sa.select(anchors.c.seq, anchors.c.hash).where(anchors.c.company_id == company_id)
    ).first()
    if anchor is not None:
        return int(anchor[0]), str(anchor[1])
    return 0, GENESIS


def _checked_detail(detail: Mapping[str, Any] | None) -> dict[str, Any]:
    clean = dict(detail or {})
    _refuse_personal_keys(clean)
    if len(canonical(clean)) > MAX_DETAIL_BYTES:
        raise ValueError(f"an audit detail is kept small (at most {MAX_DETAIL_BYTES} bytes)")
    return clean


def _refuse_personal_keys(value: Any) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            if str(key).lower() in PERSONAL_KEYS:
                raise ValueError(f"an audit detail may not carry {key!r}: the log holds no personal data")
            _refuse_personal_keys(inner)
    elif isinstance(value, list | tuple):
        for inner in value:
            _refuse_personal_keys(inner)


# ------------------------------------------------------------------ retention


def retention_cutoff(now: datetime) -> datetime:
    """The newest moment a pruned row may be from: ``now`` less the retention (3 calendar years)."""
    try:
        return now.replace(year=now.year - RETENTION_YEARS)
    except ValueError:  # 29 February
        return now.replace(year=now.year - RETENTION_YEARS, day=28)


def prune_before(session: Session, *, company_id: uuid.UUID, before: datetime, dry_run: bool = False) -> int:
    """Remove the longest prefix of the company's chain whose rows are all older than ``before``,
    which must lie at least 3 years back (``invalid_input`` otherwise). The anchor keeps the last
    removed row's sequence and hash, so the rest still verifies; the trigger lets exactly such rows
    go (covered by the anchor and, by the database's own clock, older than the retention). The
    pruning itself is recorded (``audit.pruned``). Returns how many rows were removed, or with
    ``dry_run`` how many would be, changing nothing."""
    now = _now(session)
    limit = retention_cutoff(now)
    if before.tzinfo is None or before > limit:
        raise InvalidInput(
            f"The audit log is kept {RETENTION_YEARS} years: "
            f"only rows older than {limit:%Y-%m-%d} may be pruned.",
            detail={"retention_years": RETENTION_YEARS, "latest_allowed": limit.isoformat()},
        )
    table = AuditEvent.__table__
    if not dry_run:
        session.flush()
        _lock_chain(session, company_id)
    first_young = session.execute(
        sa.select(sa.func.min(table.c.seq)).where(table.c.company_id == company_id, table.c.at >= before)
    ).scalar()
    in_prefix = [table.c.company_id == company_id]
    if first_young is not None:
        in_prefix.append(table.c.seq < first_young)
    last = session.execute(
        sa.select(table.c.seq, table.c.hash).where(*in_prefix).order_by(table.c.seq.desc()).limit(1)
    ).first()
    if last is None:
        return 0
    anchor_seq, anchor_hash = int(last[0]), str(last[1])
    if dry_run:
        return int(
            session.execute(
                sa.select(sa.func.count()).where(table.c.company_id == company_id, table.c.seq <= anchor_seq)
            ).scalar_one()
        )
    anchor = AuditAnchor.__table__
    values = {
        "company_id": company_id,
        "seq": anchor_seq,
        "hash": anchor_hash,
        "before": before,
        "pruned_at": now,
    }
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(
        dialect.insert(anchor)
        .values(**values)
        .on_conflict_do_update(
            index_elements=[anchor.c.company_id],
            set_={"seq": anchor_seq, "hash": anchor_hash, "before": before, "pruned_at": now},
        )
    )
    removed = session.execute(
        sa.delete(table).where(table.c.company_id == company_id, table.c.seq <= anchor_seq)
    ).rowcount
    record(
        session,
        company_id=company_id,
        event=Event.audit_pruned,
        target_type="audit_chain",
        target_id=company_id,
        detail={
            "before": before.astimezone(UTC).isoformat(),
            "removed": removed,
            "anchor_seq": anchor_seq,
        },
    )
    return int(removed)


def _now(session: OrmSession) -> datetime:
    clock = session.info.get("clock")
    return (clock.now() if clock is not None else datetime.now(UTC)).astimezone(UTC)
