"""Push: apply a device's queued actions in ``seq`` order, each exactly once.

The device's ``last_applied_seq`` and every effect of the batch commit in one transaction, so a
crash anywhere leaves either all of it or none of it, and a resend after a lost answer finds each
action already recorded and answers ``duplicate`` with the first answer. Actions past a gap are not
applied (``out_of_order``); an action whose photo is not uploaded yet stops the batch without
advancing the counter (``waiting``); a permanent refusal is recorded and the queue moves on.
"""

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col

from backend.auth.principal import Principal
from backend.context import AppContext
from backend.db import buffer
from backend.errors import Conflict, HeatCrewError
from backend.evidence.models import Blob
from backend.sync import changes
from backend.sync.handlers import CATALOGUE, Applying, Handler, blobs_of, known_versions, order_id_of
from backend.sync.models import SyncAction, SyncDevice
from backend.work_orders import service
from backend.work_orders.models import WorkOrder
from backend.work_orders.service import FieldTime
from backend.work_orders.states import State, allowed_moves
from mobile_contract.sync import ActionEnvelope, ActionResult, PushRequest, PushResponse, Status

__all__ = ("MAX_BATCH", "SKEW_FLAG", "push")

log = logging.getLogger("heatcrew.sync")

MAX_BATCH = 500
SKEW_FLAG = timedelta(minutes=5)
# A database that says "try again" (deadlock, serialisation failure) gets this many tries.
DB_RETRIES = 3
RETRYABLE_SQLSTATES = {"40001", "40P01"}
ANSWERS = SyncAction.__table__


class BatchTooLarge(HeatCrewError):
    status = 413
    code = "batch_too_large"


class _Careful(Exception):
    """A handler failed unexpectedly: run the batch again with a savepoint around each action."""


@dataclass(slots=True)
class _Decoded:
    envelope: ActionEnvelope
    handler: Handler | None = None
    payload: Any = None
    error: ActionResult | None = None


@dataclass(slots=True)
class _Batch:
    device_id: str
    actor: Principal
    received_at: datetime
    skew: timedelta
    envelopes: list[ActionEnvelope]
    results: list[ActionResult] = field(default_factory=list)


def push(ctx: AppContext, *, principal: Principal, request: PushRequest) -> PushResponse:
    if request.device_id != principal.device_id:
        raise Conflict(
            "This batch names another device than the one logged in.",
            code="device_mismatch",
            status=403,
        )
    if len(request.actions) > MAX_BATCH:
        raise BatchTooLarge(
            f"At most {MAX_BATCH} actions per push; send the rest in the next one.",
            detail={"limit": MAX_BATCH},
        )
    received_at = ctx.clock.now()
    batch = _Batch(
        device_id=request.device_id,
        actor=principal,
        received_at=received_at,
        # Cursors and ordering never use phone clocks; this only corrects the times the phone reports.
        skew=received_at - request.sent_at,
        envelopes=sorted(request.actions, key=lambda e: e.seq),
    )
    careful = False
    for attempt in range(DB_RETRIES):
        try:
            last, epoch = _apply(ctx, batch, careful=careful)
            return PushResponse(
                last_applied_seq=last, server_time=received_at, server_epoch=epoch, results=batch.results
            )
        except _Careful:
            careful = True
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) not in RETRYABLE_SQLSTATES or attempt == DB_RETRIES - 1:
                raise
            log.info("push for %s retried after %s", batch.device_id, type(exc.orig).__name__)
    last, epoch = _apply(ctx, batch, careful=True)
    return PushResponse(
        last_applied_seq=last, server_time=received_at, server_epoch=epoch, results=batch.results
    )


def _apply(ctx: AppContext, batch: _Batch, *, careful: bool) -> tuple[int, str]:
    batch.results = []
    with ctx.db.session() as session:
        device = _lock_device(session, batch)
        counter = changes.ensure_counter(session, batch.actor.company_id)
        last = device.last_applied_seq
        seen = _answers_for(session, batch.device_id, [e.seq for e in batch.envelopes if e.seq <= last])
        fresh = [_decode(e) for e in batch.envelopes if e.seq > last]
        _lock_orders(session, [d for d in fresh if d.payload is not None], batch.actor.company_id)
        uploaded = _uploaded(session, batch.actor.company_id, fresh)
        stopped: str | None = None
        expected = last + 1
        fresh_by_seq: dict[int, _Decoded] = {}
        for d in fresh:
            fresh_by_seq.setdefault(d.envelope.seq, d)
        for envelope in batch.envelopes:
            if envelope.seq <= last:
                batch.results.append(_duplicate(envelope, seen.get(envelope.seq)))
                continue
            decoded = fresh_by_seq[envelope.seq]
            if decoded.envelope is not envelope:  # the same seq twice in one batch
                batch.results.append(
                    _result(envelope, Status.rejected, "seq_repeated", "This seq appears twice in the batch.")
                )
                continue
            if stopped is not None or envelope.seq != expected:
                stopped = stopped or "gap"
                batch.results.append(_out_of_order(envelope, expected - 1, stopped))
                continue
            refs = blobs_of(decoded.payload) if decoded.payload else []
            refused = [uploaded[h] for h in refs if uploaded.get(h)]
            if refused:
                # The file will never arrive: refuse the action now rather than wait for ever.
                result = _result(
                    envelope, Status.rejected, "blob_refused", f"The attached file was refused: {refused[0]}."
                )
                _remember(session, batch, envelope, result, _field_time(batch, envelope.occurred_at))
                batch.results.append(result)
                expected += 1
                continue
            missing = [h for h in refs if h not in uploaded]
            if missing:
                batch.results.append(
                    _result(
                        envelope,
                        Status.waiting,
                        "blob_missing",
                        "Upload these files first, then push again from this action.",
                        retryable=True,
                        missing=missing,
                    )
                )
                stopped = "waiting"
                continue
            when = _field_time(batch, envelope.occurred_at)
            result = _apply_one(session, batch, decoded, when, careful=careful)
            _remember(session, batch, envelope, result, when)
            batch.results.append(result)
            expected += 1
        device.last_applied_seq = expected - 1
        device.updated_at = batch.received_at
        session.add(device)
        epoch = counter.epoch
    return expected - 1, epoch


def _lock_device(session: Session, batch: _Batch) -> SyncDevice:
    """Two pushes from one device take turns: each sees the other's counter."""
    device = session.get(SyncDevice, batch.device_id, with_for_update=True)
    if device is None:
        table = SyncDevice.__table__
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        insert = dialect.insert(table).on_conflict_do_nothing()
        session.execute(
            insert.values(device_id=batch.device_id, last_applied_seq=0, updated_at=batch.received_at)
        )
        device = session.get(SyncDevice, batch.device_id, with_for_update=True, populate_existing=True)
        assert device is not None
    return device


class _Answer(msgspec.Struct, frozen=True):
    action_id: uuid.UUID
    status: str
    code: str | None
    message: str | None
    current: dict[str, Any] | None


def _answers_for(session: Session, device_id: str, seqs: list[int]) -> dict[int, _Answer]:
    """The first answers to a resent batch, read as plain rows (a replay must be cheap)."""
    if not seqs:
        return {}
    table = ANSWERS
    rows = session.execute(
        sa.select(
            table.c.seq, table.c.action_id, table.c.status, table.c.code, table.c.message, table.c.current
        ).where(table.c.device_id == device_id, table.c.seq.in_(seqs))
    )
    return {
        seq: _Answer(action_id, status, code, message, current)
        for seq, action_id, status, code, message, current in rows
    }


def _decode(envelope: ActionEnvelope) -> _Decoded:
    handler = CATALOGUE.get((envelope.type, envelope.v))
    if handler is None:
        versions = ", ".join(f"v{v}" for v in known_versions(envelope.type))
        message = (
            f"{envelope.type} v{envelope.v} is not supported; this server accepts {versions}."
            if versions
            else f"Unknown action type {envelope.type!r}."
        )
        return _Decoded(
            envelope,
            error=_result(envelope, Status.rejected, "unsupported_action_version", message),
        )
    try:
        payload = handler.decode(envelope.payload)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return _Decoded(
            envelope, handler, error=_result(envelope, Status.rejected, "invalid_payload", str(exc)[:500])
        )
    return _Decoded(envelope, handler, payload)


def _lock_orders(session: Session, decoded: list[_Decoded], company_id: uuid.UUID) -> None:
    """Lock every order the batch touches up front, so two writers never deadlock on them."""
    ids = [oid for d in decoded if (oid := order_id_of(d.payload)) is not None]
    service.lock_orders(session, order_ids=ids, company_id=company_id)


def _uploaded(session: Session, company_id: uuid.UUID, decoded: list[_Decoded]) -> dict[str, str | None]:
    """The referenced uploads the server holds: hash -> None, or the code it was refused with."""
    wanted = sorted({h for d in decoded if d.payload is not None for h in blobs_of(d.payload)})
    if not wanted:
        return {}
    rows = session.execute(
        sa.select(Blob.sha256, Blob.refused).where(
            Blob.company_id == company_id, col(Blob.sha256).in_(wanted)
        )
    )
    return dict(rows.all())


def _field_time(batch: _Batch, occurred_at: datetime) -> FieldTime:
    corrected = min(occurred_at + batch.skew, batch.received_at)
    return FieldTime(
        occurred_at=occurred_at,
        received_at=batch.received_at,
        corrected_at=corrected,
        skew_flagged=abs(batch.skew) > SKEW_FLAG,
    )


def _apply_one(
    session: Session, batch: _Batch, decoded: _Decoded, when: FieldTime, *, careful: bool
) -> ActionResult:
    envelope = decoded.envelope
    if decoded.error is not None:
        return decoded.error
    assert decoded.handler is not None
    applying = Applying(
        session=session,
        actor=batch.actor,
        when=when,
        action_id=envelope.id,
    )
    savepoint = session.begin_nested() if careful else None
    try:
        decoded.handler.apply(applying, decoded.payload)
        if savepoint is not None:
            savepoint.commit()
    except HeatCrewError as exc:
        if savepoint is not None:
            savepoint.rollback()
            buffer.discard_rows(session)
            service.forget_locked(session)
        if isinstance(exc, Conflict) and order_id_of(decoded.payload) is not None:
            return _result(
                envelope, Status.conflict, exc.code, exc.message, current=_current(session, decoded, batch)
            )
        return _result(envelope, Status.rejected, exc.code, exc.message)
    except Exception as exc:
        if savepoint is None:
            raise _Careful from exc
        savepoint.rollback()
        buffer.discard_rows(session)
        service.forget_locked(session)
        log.exception("action %s (%s v%s) failed", envelope.id, envelope.type, envelope.v)
        # Kept with its payload in sync_action: an operator can replay it once the fault is fixed.
        return _result(
            envelope,
            Status.rejected,
            "server_error",
            "The server could not apply this action; it is kept for review.",
        )
    return _result(envelope, Status.applied)


def _current(session: Session, decoded: _Decoded, batch: _Batch) -> dict[str, Any] | None:
    order_id = order_id_of(decoded.payload)
    order = session.get(WorkOrder, order_id) if order_id else None
    if order is None:
        return None
    return {
        "work_order_id": str(order.id),
        "state": order.state,
        "assigned_to_you": order.assignee_id == batch.actor.user_id,
        "version": order.version,
        "allowed_moves": allowed_moves(State(order.state), field_only=True)
        if order.assignee_id == batch.actor.user_id
        else [],
    }


def _remember(
    session: Session, batch: _Batch, envelope: ActionEnvelope, result: ActionResult, when: FieldTime
) -> None:
    buffer.add_row(
        session,
        ANSWERS,
        {
            "device_id": batch.device_id,
            "seq": envelope.seq,
            "action_id": envelope.id,
            "user_id": batch.actor.user_id,
            "type": envelope.type,
            "v": envelope.v,
            "status": result.status.value,
            "code": result.code,
            "message": result.message,
            "current": result.current,
            "payload": msgspec.json.encode(envelope.payload).decode(),
            "occurred_at": envelope.occurred_at,
            "received_at": batch.received_at,
            "corrected_at": when.corrected_at,
            "skew_s": int(batch.skew.total_seconds()),
        },
    )


def _duplicate(envelope: ActionEnvelope, first: _Answer | None) -> ActionResult:
    if first is None:  # applied before this server kept answers (cannot happen after a clean start)
        return _result(envelope, Status.duplicate, "already_applied", "Already applied.")
    if first.action_id != envelope.id:
        return _result(
            envelope,
            Status.rejected,
            "seq_reused",
            f"seq {envelope.seq} was used by another action; this device's queue is out of step.",
        )
    return ActionResult(
        id=envelope.id,
        seq=envelope.seq,
        status=Status.duplicate,
        code=first.code,
        message=first.message,
        current=first.current,
        original_status=Status(first.status),
    )


def _out_of_order(envelope: ActionEnvelope, last: int, reason: str) -> ActionResult:
    message = (
        f"Not applied: an earlier action is waiting. Resend from seq {last + 1}."
        if reason == "waiting"
        else f"Not applied: seq {last + 1} has not arrived. Resend from seq {last + 1}."
    )
    return _result(
        envelope, Status.out_of_order, "gap" if reason == "gap" else "after_waiting", message, retryable=True
    )


def _result(
    envelope: ActionEnvelope,
    status: Status,
    code: str | None = None,
    message: str | None = None,
    *,
    retryable: bool = False,
    current: dict[str, Any] | None = None,
    missing: list[str] | None = None,
) -> ActionResult:
    return ActionResult(
        id=envelope.id,
        seq=envelope.seq,
        status=status,
        code=code,
        message=message,
        retryable=retryable,
        current=current,
        missing=missing,
    )
