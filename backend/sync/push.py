"""Push: apply a device's queued actions in ``seq`` order, each exactly once.

The device's ``last_applied_seq`` and every effect of the batch commit in one transaction, so a
crash anywhere leaves either all of it or none of it, and a resend after a lost answer finds each
action already recorded and answers ``duplicate`` with the first answer. Actions past a gap are not
applied (``out_of_order``); an action whose photo is not uploaded yet stops the batch without
advancing the counter (``waiting``); a permanent refusal is recorded and the queue moves on.
"""

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col

from backend.audit import service as audit
from backend.auth import service as auth
from backend.auth.models import AuthSession, Role, User
from backend.auth.principal import Principal
from backend.auth.tokens import AccessClaims
from backend.context import AppContext
from backend.db import buffer, direct
from backend.db.failures import RETRYABLE_SQLSTATES, is_unavailable
from backend.errors import AuthError, Conflict, HeatCrewError, NotFound
from backend.evidence.agreement import ContentDisagrees
from backend.evidence.models import Blob, BlobUploader
from backend.nul_guard import has_nul
from backend.org.models import Household
from backend.org.pipl import ERASED_PAYLOAD
from backend.review import entry as review_entry
from backend.sync import changes, retirement
from backend.sync.handlers import CATALOGUE, Applying, Handler, blobs_of, known_versions, order_id_of
from backend.sync.models import SyncAction, SyncCounter, SyncDevice
from backend.work_orders import locking, service
from backend.work_orders.models import WorkOrder
from backend.work_orders.service import FieldTime
from backend.work_orders.states import State, allowed_moves
from mobile_contract.sync import ActionEnvelope, ActionResult, OrderNow, PushRequest, PushResponse, Status

__all__ = ("MAX_BATCH", "SKEW_FLAG", "push")

log = logging.getLogger("heatcrew.sync")

MAX_BATCH = 500
# Applied actions whose rows go to the database while the batch goes on (PostgreSQL).
SEND_EVERY = 50
SKEW_FLAG = timedelta(minutes=5)
MESSAGE_LIMIT = 500
# Who may attach a file another user uploaded (a supervisor completing the evidence).
ATTACH_ANY = frozenset({Role.supervisor})
# sync_action.skew_s is a 32-bit column: a phone clock more than 68 years off is stored at the limit.
SKEW_STORED_LIMIT = 2**31 - 1
# A database that says "try again" (deadlock, serialisation failure) gets this many tries.
DB_RETRIES = 3
# Refusals in a batch that each cost a run, before every action from the first one gets a scope.
MAX_CAREFUL_RUNS = 3
ANSWERS = SyncAction.__table__
COUNTERS = SyncCounter.__table__
DEVICES = SyncDevice.__table__


class BatchTooLarge(HeatCrewError):
    status = 413
    code = "batch_too_large"


class _Careful(Exception):
    """An action was refused, or failed unexpectedly, outside an action scope: whatever it changed
    before it raised may be in the transaction. The batch runs again, with this action in a scope."""

    def __init__(self, seq: int) -> None:
        super().__init__(seq)
        self.seq = seq


@dataclass(slots=True)
class _Decoded:
    envelope: ActionEnvelope
    raw: bytes  # the payload as JSON, kept with the answer
    handler: Handler | None = None
    payload: Any = None
    error: ActionResult | None = None
    erased: bool = False
    """Queued offline across its resident's erasure: the action log keeps ``ERASED_PAYLOAD``."""


@dataclass(slots=True)
class _Batch:
    device_id: str
    actor: Principal
    """Who pushes: given, or admitted by the batch's first statement (``claims``)."""
    claims: AccessClaims | None
    received_at: datetime
    skew: timedelta
    envelopes: list[ActionEnvelope]
    outdated_app: bool = False
    """The app is older than the minimum: its intents are refused, its facts applied."""
    receipt_tolerance: timedelta = timedelta(minutes=10)
    results: list[ActionResult] = field(default_factory=list)
    answers_pruned_below: int = 0
    """Answers below this seq were removed by retention (``backend.maintenance``)."""
    seen_due: bool = False
    """The admitted device's last-seen time is due a write (after the batch, see :func:`push`)."""


def push(
    ctx: AppContext,
    *,
    request: PushRequest,
    claims: AccessClaims | None = None,
    principal: Principal | None = None,
    outdated_app: bool = False,
) -> PushResponse:
    """Apply a batch for the caller: ``claims``, a checked access token (HTTP), whose session,
    device and user the batch's first statement admits as it locks the device's counter; or a
    ``principal`` admitted already (tools and tests)."""
    if principal is not None:
        device_id = principal.device_id
    elif claims is not None:
        device_id = claims.device_id
    else:
        raise TypeError("push needs the caller's claims or principal")
    # Neither refusal reveals or changes anything: they come before the caller is admitted.
    if request.device_id != device_id:
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
        actor=principal,  # type: ignore[arg-type]  # None until admitted (claims)
        claims=None if principal is not None else claims,
        received_at=received_at,
        # Cursors and ordering never use phone clocks; this only corrects the times the phone reports.
        skew=received_at - request.sent_at,
        envelopes=sorted(request.actions, key=lambda e: e.seq),
        outdated_app=outdated_app,
        receipt_tolerance=timedelta(seconds=ctx.settings.receipt_time_tolerance),
    )
    # Which actions run in an action scope. A batch with no refusal, the common case, needs none.
    scopes = _Scopes()
    db_tries = 0
    while True:
        try:
            last, epoch = _apply(ctx, batch, scopes=scopes)
            if batch.seen_due:
                auth.record_seen_later(ctx, batch.device_id)
            return PushResponse(
                last_applied_seq=last, server_time=received_at, server_epoch=epoch, results=batch.results
            )
        except _Careful as refused:
            # Nothing of that run was committed. The next run gives the refused action a scope, and
            # the others run as before: a batch with one refusal costs two runs. Each new refusal
            # costs a run more (another writer may also change things in between); after a few,
            # every action from the first refusal on gets a scope.
            scopes = scopes.adding(refused.seq)
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) not in RETRYABLE_SQLSTATES:
                if scopes.from_seq == 0 or is_unavailable(exc):
                    # The database is gone or too slow: 503, the phone sends the batch again.
                    raise
                # A write the database refused (rows are sent in bulk, after their handlers ran):
                # again with a savepoint around each action, so only the one that wrote it fails.
                log.warning("push for %s retried action by action after %s", batch.device_id, exc.orig)
                scopes = _Scopes(from_seq=0)
                continue
            db_tries += 1
            if db_tries >= DB_RETRIES:
                raise
            log.info("push for %s retried after %s", batch.device_id, type(exc.orig).__name__)


class _Scopes(msgspec.Struct, frozen=True):
    """The actions of a run that get an action scope: these seqs, and every one from ``from_seq``."""

    seqs: frozenset[int] = frozenset()
    from_seq: int | None = None

    @property
    def any(self) -> bool:
        """Some action of the run has a scope: it is not the batch's first run."""
        return bool(self.seqs) or self.from_seq is not None

    def covers(self, seq: int) -> bool:
        return seq in self.seqs or (self.from_seq is not None and seq >= self.from_seq)

    def adding(self, seq: int) -> "_Scopes":
        seqs = self.seqs | {seq}
        if len(seqs) >= MAX_CAREFUL_RUNS:
            return _Scopes(seqs, min(seqs))
        return _Scopes(seqs, self.from_seq)


def _apply(ctx: AppContext, batch: _Batch, *, scopes: _Scopes) -> tuple[int, str]:
    """One run of the batch in one transaction: the pipeline, step by step."""
    batch.results = []
    with ctx.db.session() as session:
        last, epoch = _lock_device_and_epoch(session, batch, ctx.clock.now())
        if batch.envelopes and batch.envelopes[-1].seq <= last:
            # Only actions applied before (their answer was lost): every answer is stored and final,
            # so nothing is written.
            batch.results = _replayed(session, batch, batch.envelopes)
            return last, epoch
        run = _Run.start(session, batch, last=last, scopes=scopes)
        for envelope in batch.envelopes:
            batch.results.append(run.answer(envelope))
        # The counter goes with the batch's other writes, in their round trip at the commit (it is
        # tracked only now: an action scope's rollback before this drops what the buffer tracks).
        device = _DeviceRow(batch.device_id, last, None, batch.answers_pruned_below)  # unread: None
        buffer.track(session, DEVICES, [device])
        device.last_applied_seq = run.expected - 1
        device.updated_at = batch.received_at
        device.waiting_actions = _waiting(batch.results)
    return run.expected - 1, epoch


class _DeviceRow:
    """The device's counter row (locked by the batch's first statement), written back at the commit."""

    __slots__ = ("answers_pruned_below", "device_id", "last_applied_seq", "updated_at", "waiting_actions")

    def __init__(self, device_id: str, last: int, updated_at: datetime | None, pruned_below: int) -> None:
        self.device_id = device_id
        self.last_applied_seq = last
        self.updated_at = updated_at
        self.answers_pruned_below = pruned_below
        self.waiting_actions: int | None = None


def _waiting(results: list[ActionResult]) -> int:
    """The action waiting for its upload and those behind it (0 when none waits)."""
    statuses = [result.status for result in results]
    if Status.waiting not in statuses:
        return 0
    return statuses.count(Status.waiting) + statuses.count(Status.out_of_order)


@dataclass(slots=True)
class _Run:
    """A batch's actions taken in seq order, each through the same steps:

    1. *sequence* — already applied (its first answer), past a gap or a wait (``out_of_order``);
    2. *decode* — the payload by its ``(type, v)`` (done for the whole batch up front);
    3. *authorise* — an action id sent before, an intent from an outdated app
       (``app_upgrade_required``), files refused or uploaded by someone else, files still missing
       (``waiting``: the batch stops there);
    4. *check and apply* — the handler, inside an action scope once a refusal was met;
    5. *write rows* — what the handlers buffered goes to the database every ``SEND_EVERY``
       actions, and with the commit;
    6. *answer* — stored with the effects, for resends.
    """

    session: Session
    batch: _Batch
    last: int
    scopes: _Scopes
    replayed: Iterator[ActionResult]
    fresh: dict[int, _Decoded]
    firsts: dict[uuid.UUID, "_First"]
    uploaded: dict[str, str | None]
    expected: int
    stopped: str | None = None

    @classmethod
    def start(cls, session: Session, batch: _Batch, *, last: int, scopes: _Scopes) -> "_Run":
        replayed = _replayed(session, batch, [e for e in batch.envelopes if e.seq <= last])
        decoded = [_decode(e, batch.received_at) for e in batch.envelopes if e.seq > last]
        fresh: dict[int, _Decoded] = {}
        for d in decoded:
            fresh.setdefault(d.envelope.seq, d)
        # What the steps read is read once for the batch: first deliveries of these action ids,
        # the orders (locked, in id order: no deadlocks between writers), the uploads. The first
        # run does not look for earlier deliveries: an index keeps one answer per action id and
        # device (ux_sync_action_action_id), and a phone reuses an id only by mistake. Such a run's
        # answer collides at the commit, none of it is kept, and the run that follows, action by
        # action, reads them and answers the reused id with its first delivery.
        firsts = (
            _answers_by_id(session, batch.device_id, [d.envelope.id for d in decoded]) if scopes.any else {}
        )
        _lock_orders(session, [d for d in decoded if d.payload is not None], batch.actor.company_id)
        uploaded = _uploaded(session, batch.actor, decoded)
        return cls(session, batch, last, scopes, iter(replayed), fresh, firsts, uploaded, last + 1)

    def answer(self, envelope: ActionEnvelope) -> ActionResult:
        # 1. sequence
        if envelope.seq <= self.last:
            return next(self.replayed)
        decoded = self.fresh[envelope.seq]
        if decoded.envelope is not envelope:  # the same seq twice in one batch
            return _result(envelope, Status.rejected, "seq_repeated", "This seq appears twice in the batch.")
        if self.stopped is not None or envelope.seq != self.expected:
            self.stopped = self.stopped or "gap"
            return _out_of_order(envelope, self.expected - 1, self.stopped)
        # 3. authorise
        first = self.firsts.get(envelope.id)
        if first is not None:
            # The action id is the phone's idempotency key: its seq is used up, and nothing else.
            self.expected += 1
            return _sent_again(envelope, decoded.raw, first)
        refs = blobs_of(decoded.payload) if decoded.payload else []
        when = _field_time(self.batch, envelope.occurred_at)
        result = _outdated_refusal(self.batch, decoded) or _blob_refusal(envelope, refs, self.uploaded)
        if result is None:
            missing = [h for h in refs if h not in self.uploaded]
            if missing:
                if not self.scopes.any:
                    # A waiting action writes no answer for the index to find: whether its id was
                    # sent before is read here (the batch stops at it: once per run at most).
                    first = _answers_by_id(self.session, self.batch.device_id, [envelope.id]).get(envelope.id)
                    if first is not None:
                        self.expected += 1
                        return _sent_again(envelope, decoded.raw, first)
                self.stopped = "waiting"
                return _result(
                    envelope,
                    Status.waiting,
                    "blob_missing",
                    "Upload these files first, then push again from this action.",
                    retryable=True,
                    missing=missing,
                )
            # 4. check and apply
            careful = self.scopes.covers(envelope.seq)
            result = _apply_one(self.session, self.batch, decoded, when, careful=careful)
        # 6. answer
        if result.status is Status.rejected and not decoded.erased:
            # Refused before its handler looked at the order: its resident's erasure still counts.
            decoded.erased = _erased_after(self.session, self.batch.actor.company_id, decoded, when)
        _remember(self.session, self.batch, decoded, result, when)
        self.firsts[envelope.id] = _First.of(envelope, decoded.raw, result)
        self.expected += 1
        # 5. write rows
        if self.scopes.from_seq is None and (self.expected - self.last - 1) % SEND_EVERY == 0:
            # The database writes these while the next ones are worked out.
            buffer.send_rows(self.session)
        return result


# The statements every push runs are built once, with parameters: building a select and its
# cache key on every call costs more than running it.
_DEVICE_AND_EPOCH = (
    sa.select(COUNTERS.c.epoch, DEVICES.c.last_applied_seq, DEVICES.c.answers_pruned_below)
    .outerjoin(DEVICES, DEVICES.c.device_id == sa.bindparam("device_id"))
    .where(COUNTERS.c.company_id == sa.bindparam("company_id"))
)
# A known device of a company with a feed (every push but a device's first): its row locked and
# the epoch read in one statement. Two pushes from one device take turns: each sees the other's seq.
_LOCK_DEVICE_AND_EPOCH = (
    sa.select(COUNTERS.c.epoch, DEVICES.c.last_applied_seq, DEVICES.c.answers_pruned_below)
    .select_from(DEVICES)
    .join(COUNTERS, COUNTERS.c.company_id == sa.bindparam("company_id"))
    .where(DEVICES.c.device_id == sa.bindparam("device_id"))
    .with_for_update(of=DEVICES)
)
# The same for a caller known by its token only: session, device and user admitted in it too.
_ADMIT_LOCK_DEVICE_AND_EPOCH = (
    auth.admission(COUNTERS.c.epoch, DEVICES.c.last_applied_seq, DEVICES.c.answers_pruned_below)
    .join(DEVICES, DEVICES.c.device_id == AuthSession.__table__.c.device_id)
    .join(COUNTERS, COUNTERS.c.company_id == User.__table__.c.company_id)
    .with_for_update(of=DEVICES)
)
_LOCK_DEVICE = (
    sa.select(DEVICES.c.last_applied_seq)
    .where(DEVICES.c.device_id == sa.bindparam("device_id"))
    .with_for_update()
)
# The latest erasure of the household a refused action names, by its order or by itself.
_ERASED_AT = sa.select(sa.func.max(Household.erased_at)).where(
    Household.company_id == sa.bindparam("company_id"),
    sa.or_(
        Household.id == sa.bindparam("household_id"),
        Household.id.in_(sa.select(WorkOrder.household_id).where(WorkOrder.id == sa.bindparam("order_id"))),
    ),
)
# ``current`` is JSON null for all but conflicts: left unparsed, a replay costs half as much.
_CURRENT = sa.case((sa.cast(ANSWERS.c.current, sa.Text) == "null", sa.null()), else_=ANSWERS.c.current).label(
    "current"
)
_ANSWERS = sa.select(
    ANSWERS.c.seq, ANSWERS.c.action_id, ANSWERS.c.status, ANSWERS.c.code, ANSWERS.c.message, _CURRENT
).where(ANSWERS.c.device_id == sa.bindparam("device_id"))
_FIRST_COLUMNS = (
    ANSWERS.c.action_id,
    ANSWERS.c.seq,
    ANSWERS.c.type,
    ANSWERS.c.v,
    ANSWERS.c.occurred_at,
    ANSWERS.c.payload,
    ANSWERS.c.status,
    ANSWERS.c.code,
    ANSWERS.c.message,
    _CURRENT,
)
_FIRSTS = sa.select(*_FIRST_COLUMNS).where(
    ANSWERS.c.device_id == sa.bindparam("device_id"),
    ANSWERS.c.action_id.in_(sa.bindparam("ids", expanding=True)),
)
# PostgreSQL: the ids as one array parameter, not one bind each (a batch has hundreds).
_FIRSTS_ANY = sa.select(*_FIRST_COLUMNS).where(
    ANSWERS.c.device_id == sa.bindparam("device_id"),
    ANSWERS.c.action_id == sa.any_(sa.bindparam("ids", type_=postgresql.ARRAY(sa.Uuid()))),
)
_ANSWERS_IN = _ANSWERS.where(ANSWERS.c.seq.in_(sa.bindparam("seqs", expanding=True)))
# A batch's seqs are consecutive: one index range, not hundreds of parameters.
_ANSWERS_BETWEEN = _ANSWERS.where(ANSWERS.c.seq.between(sa.bindparam("low"), sa.bindparam("high")))
_UPLOADS = BlobUploader.__table__
# The caller's own uploads of these files, and whether the company holds them.
_MY_UPLOADS = (
    sa.select(_UPLOADS.c.sha256, sa.func.coalesce(_UPLOADS.c.refused, Blob.refused))
    .outerjoin(Blob, sa.and_(Blob.company_id == _UPLOADS.c.company_id, Blob.sha256 == _UPLOADS.c.sha256))
    .where(
        _UPLOADS.c.company_id == sa.bindparam("company_id"),
        _UPLOADS.c.user_id == sa.bindparam("user_id"),
        _UPLOADS.c.sha256.in_(sa.bindparam("hashes", expanding=True)),
        # Refused for this user, or held by the company: an upload that did not finish is neither.
        sa.or_(_UPLOADS.c.refused.is_not(None), Blob.sha256.is_not(None)),
    )
)
_ANY_UPLOAD = sa.select(Blob.sha256, Blob.refused).where(
    Blob.company_id == sa.bindparam("company_id"),
    col(Blob.sha256).in_(sa.bindparam("hashes", expanding=True)),
)
_PRUNED_BELOW = sa.select(DEVICES.c.answers_pruned_below).where(
    DEVICES.c.device_id == sa.bindparam("device_id")
)


def _lock_device_and_epoch(session: Session, batch: _Batch, now: datetime) -> tuple[int, str]:
    """The device's last applied seq, its row locked, and the company's feed epoch; a caller known
    by its token only is admitted first (``batch.actor``), in the same statement when it can be."""
    if batch.claims is not None:
        claims = batch.claims
        params = {"session_id": claims.session_id, "user_id": claims.user_id, "device_id": claims.device_id}
        row = direct.first(session.connection(), _ADMIT_LOCK_DEVICE_AND_EPOCH, params)
        if row is None:  # the device's first push, the company's first change, or not admitted
            row = session.execute(auth.ADMIT, params).first()
            if row is None:
                raise AuthError("The access token is not valid.", code="invalid_token")
        batch.actor, batch.seen_due = auth.admitted(now, claims, tuple(row))
        if len(row) > auth.ADMIT_COLUMNS:
            epoch, last, pruned_below = row[auth.ADMIT_COLUMNS :]
            batch.answers_pruned_below = pruned_below or 0
            return last, epoch
    company_id = batch.actor.company_id
    params = {"device_id": batch.device_id, "company_id": company_id}
    row = session.execute(_LOCK_DEVICE_AND_EPOCH, params).first()
    if row is None:  # the device's first push, or the company's first change
        row = session.execute(_DEVICE_AND_EPOCH, params).first()
        if row is None:
            changes.ensure_counter(session, company_id)
            row = session.execute(_DEVICE_AND_EPOCH, params).one()
        batch.answers_pruned_below = row.answers_pruned_below or 0
        return _lock_device(session, batch), row.epoch
    batch.answers_pruned_below = row.answers_pruned_below or 0
    return row.last_applied_seq, row.epoch


def _lock_device(session: Session, batch: _Batch) -> int:
    """Two pushes from one device take turns: each sees the other's counter."""
    params = {"device_id": batch.device_id}
    last = session.execute(_LOCK_DEVICE, params).scalar_one_or_none()
    if last is None:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        session.execute(
            dialect.insert(DEVICES)
            .on_conflict_do_nothing()
            .values(device_id=batch.device_id, last_applied_seq=0, updated_at=batch.received_at)
        )
        last = session.execute(_LOCK_DEVICE, params).scalar_one()
    return last


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
    low, high = min(seqs), max(seqs)
    if high - low < 2 * len(seqs):
        query = session.execute(_ANSWERS_BETWEEN, {"device_id": device_id, "low": low, "high": high})
    else:  # scattered seqs (a confused client): never a range over the device's whole history
        query = session.execute(_ANSWERS_IN, {"device_id": device_id, "seqs": seqs})
    wanted = set(seqs)
    return {
        seq: _Answer(action_id, status, code, message, current)
        for seq, action_id, status, code, message, current in query.all()
        if seq in wanted
    }


class _First(msgspec.Struct, frozen=True):
    """The first delivery of an action id: what was sent and what it was answered."""

    seq: int
    type: str
    v: int
    occurred_at: datetime
    payload: str
    status: str
    code: str | None
    message: str | None
    current: dict[str, Any] | None

    @classmethod
    def of(cls, envelope: ActionEnvelope, raw: bytes, result: ActionResult) -> "_First":
        return cls(
            envelope.seq,
            envelope.type,
            envelope.v,
            envelope.occurred_at,
            raw.decode(),
            result.status.value,
            result.code,
            result.message,
            result.current,
        )


def _answers_by_id(session: Session, device_id: str, ids: list[uuid.UUID]) -> dict[uuid.UUID, _First]:
    """The stored first deliveries of these action ids from this device (an index lookup each)."""
    if not ids:
        return {}
    statement = _FIRSTS_ANY if session.get_bind().dialect.name == "postgresql" else _FIRSTS
    rows = session.execute(statement, {"device_id": device_id, "ids": ids})
    return {action_id: _First(*rest) for action_id, *rest in rows.all()}


def _replayed(session: Session, batch: _Batch, envelopes: list[ActionEnvelope]) -> list[ActionResult]:
    """The answers to actions at or below the counter: each one's first answer, by seq or by id.

    None of them is applied, whatever is stored: being at or below ``last_applied_seq`` is what
    makes an action done. Retention may have removed the oldest answers (below
    ``answers_pruned_below``, which never exceeds the counter); those are ``duplicate`` with
    ``answer_expired`` and no first answer."""
    if not envelopes:
        return []
    device_id = batch.device_id
    seen = _answers_for(session, device_id, [e.seq for e in envelopes])
    # A seq that holds no answer of its own was an action id sent again: its first delivery answers.
    firsts = _answers_by_id(session, device_id, [e.id for e in envelopes if e.seq not in seen])
    if any(e.seq not in seen and e.id not in firsts for e in envelopes):
        # Retention may have removed them since the floor was read (it moves the floor and deletes
        # in one transaction): read it again, after the answers.
        floor = session.execute(_PRUNED_BELOW, {"device_id": device_id}).scalar_one_or_none()
        batch.answers_pruned_below = max(batch.answers_pruned_below, floor or 0)
    return [
        _sent_again(e, msgspec.json.encode(e.payload), firsts[e.id])
        if e.seq not in seen and e.id in firsts
        else _duplicate(e, seen.get(e.seq), batch.answers_pruned_below)
        for e in envelopes
    ]


def _sent_again(envelope: ActionEnvelope, raw: bytes, first: _First) -> ActionResult:
    """An action id seen before: the same action is a duplicate; anything else under it is refused."""
    same = (
        first.type == envelope.type
        and first.v == envelope.v
        and first.occurred_at == envelope.occurred_at
        # An erasure blanked what the first delivery carried: the rest has to do.
        and (
            first.payload == ERASED_PAYLOAD or msgspec.json.decode(first.payload) == msgspec.json.decode(raw)
        )
    )
    if not same:
        return _result(
            envelope,
            Status.rejected,
            "action_id_reused",
            f"Action id {envelope.id} was sent before (seq {first.seq}) with other content; "
            "a new action needs a new id.",
        )
    return _first_answer_again(envelope, first)


def _decode(envelope: ActionEnvelope, now: datetime) -> _Decoded:
    raw = msgspec.json.encode(envelope.payload)
    handler = CATALOGUE.get((envelope.type, envelope.v))
    if handler is None or retirement.is_retired(envelope.type, envelope.v, now):
        versions = retirement.accepted_versions(known_versions(envelope.type), envelope.type, now)
        if versions:
            accepted = ", ".join(f"v{v}" for v in versions)
            message = f"{envelope.type} v{envelope.v} is not supported; this server accepts {accepted}."
            error = _result(envelope, Status.rejected, "unsupported_action_version", message)
        else:
            error = _result(
                envelope, Status.rejected, "unknown_action_type", f"Unknown action type {envelope.type!r}."
            )
        return _Decoded(envelope, raw, error=error)
    if has_nul(raw):  # PostgreSQL text cannot hold it; refused on SQLite too
        message = "Text may not contain the NUL character (U+0000)."
        return _Decoded(
            envelope, raw, handler, error=_result(envelope, Status.rejected, "invalid_payload", message)
        )
    try:
        payload = handler.decode(envelope.payload)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return _Decoded(
            envelope,
            raw,
            handler,
            error=_result(envelope, Status.rejected, "invalid_payload", str(exc)),
        )
    return _Decoded(envelope, raw, handler, payload)


def _lock_orders(session: Session, decoded: list[_Decoded], company_id: uuid.UUID) -> None:
    """Lock every order the batch touches up front, so two writers never deadlock on them."""
    ids = [oid for d in decoded if (oid := order_id_of(d.payload)) is not None]
    service.lock_orders(session, order_ids=ids, company_id=company_id)


def _uploaded(session: Session, actor: Principal, decoded: list[_Decoded]) -> dict[str, str | None]:
    """The referenced files this caller may attach, by hash: None, or the code it was refused with.

    A file is attached by whoever sent its bytes (or a supervisor). For anyone else it is not there
    yet, exactly like a file nobody uploaded: the action waits for their upload, which proves they
    have the photo. So the answer never tells whether somebody else holds it.
    """
    wanted = sorted({h for d in decoded if d.payload is not None for h in blobs_of(d.payload)})
    if not wanted:
        return {}
    params = {"company_id": actor.company_id, "user_id": actor.user_id, "hashes": wanted}
    rows = session.execute(_ANY_UPLOAD if actor.role in ATTACH_ANY else _MY_UPLOADS, params)
    return dict(rows.all())  # type: ignore[arg-type]


def _outdated_refusal(batch: _Batch, decoded: _Decoded) -> ActionResult | None:
    """An intent from an app older than the minimum: refused, so that the queue moves on.

    An intent is a request the server may always refuse; a fact is what happened and is kept
    whatever the app. Refused rather than kept waiting: the answer is final, and the person does
    it again, as a new action, from the updated app.
    """
    if not batch.outdated_app or decoded.handler is None or decoded.handler.kind != "intent":
        return None
    return _result(
        decoded.envelope,
        Status.rejected,
        "app_upgrade_required",
        "This app is too old for this action: update the app, then do it again.",
    )


def _blob_refusal(
    envelope: ActionEnvelope, refs: list[str], uploaded: dict[str, str | None]
) -> ActionResult | None:
    """A permanent refusal for the files an action attaches, if any: it will never be applied."""
    refused = [uploaded[h] for h in refs if uploaded.get(h)]
    if not refused:
        return None
    # The file will never arrive: refuse the action now rather than wait for ever.
    message = f"The attached file was refused: {refused[0]}."
    return _result(envelope, Status.rejected, "blob_refused", message)


def _field_time(batch: _Batch, occurred_at: datetime) -> FieldTime:
    try:
        corrected = min(occurred_at + batch.skew, batch.received_at)
    except OverflowError:  # not for times in the contract's range (2000-2100); never a 500 anyway
        corrected = batch.received_at
    return FieldTime(
        occurred_at=occurred_at,
        received_at=batch.received_at,
        corrected_at=corrected,
        skew_flagged=abs(batch.skew) > SKEW_FLAG,
    )


@dataclass(slots=True)
class _ActionScope:
    """One action's changes, kept or undone as a whole: a database savepoint, plus what the batch
    holds in memory for the database (bulk rows, locked orders, the change-feed, review and audit notes)."""

    session: Session
    savepoint: Any
    feed: changes.Mark
    review: review_entry.Mark
    audited: int
    company_id: uuid.UUID
    orders: list[uuid.UUID]

    @classmethod
    def open(cls, session: Session, company_id: uuid.UUID) -> "_ActionScope":
        # Everything before this action goes to the database first: a rollback undoes this one only.
        session.flush()
        buffer.write_rows(session)
        orders = locking.locked_ids(session)
        return cls(
            session,
            session.begin_nested(),
            changes.mark(session),
            review_entry.mark(session),
            audit.mark(session),
            company_id,
            orders,
        )

    def keep(self) -> None:
        buffer.write_rows(self.session)
        self.savepoint.commit()

    def undo(self) -> None:
        self.savepoint.rollback()
        buffer.discard_rows(self.session)
        service.forget_locked(self.session)
        changes.restore(self.session, self.feed)
        review_entry.restore(self.session, self.review)
        audit.restore(self.session, self.audited)
        # The rows are as the savepoint found them: read the batch's orders again, in one go.
        service.lock_orders(self.session, order_ids=self.orders, company_id=self.company_id)


def _stored_skew(skew: timedelta) -> int:
    return max(-SKEW_STORED_LIMIT, min(SKEW_STORED_LIMIT, int(skew.total_seconds())))


def _apply_one(
    session: Session, batch: _Batch, decoded: _Decoded, when: FieldTime, *, careful: bool
) -> ActionResult:
    if decoded.error is not None:
        return decoded.error
    applying = Applying(
        session=session,
        actor=batch.actor,
        when=when,
        action_id=decoded.envelope.id,
        raw=decoded.envelope.payload,
        receipt_tolerance=batch.receipt_tolerance,
    )
    try:
        return _run_handler(session, batch, decoded, applying, careful=careful)
    finally:
        # Queued offline across the resident's erasure: the action log keeps no more of it than
        # the erasure left of the actions it found there.
        decoded.erased = applying.before_erasure


def _run_handler(
    session: Session, batch: _Batch, decoded: _Decoded, applying: Applying, *, careful: bool
) -> ActionResult:
    envelope = decoded.envelope
    assert decoded.handler is not None
    if not careful:
        try:
            decoded.handler.apply(applying, decoded.payload)
        except Exception as exc:
            if is_unavailable(exc):  # not this action's fault: nothing is recorded, the batch fails (503)
                raise
            # Refused (or failed) with nothing to undo what it may have changed first: the batch
            # runs again, with this action in a savepoint. Nothing of this run is committed.
            raise _Careful(envelope.seq) from exc
        return _result(envelope, Status.applied)
    scope = _ActionScope.open(session, batch.actor.company_id)
    try:
        decoded.handler.apply(applying, decoded.payload)
        scope.keep()
    except HeatCrewError as exc:
        scope.undo()
        if isinstance(exc, Conflict) and order_id_of(decoded.payload) is not None:
            return _result(
                envelope, Status.conflict, exc.code, exc.message, current=_current(session, decoded, batch)
            )
        disagreeing = exc.fields if isinstance(exc, ContentDisagrees) else None
        return _result(envelope, Status.rejected, exc.code, exc.message, disagreeing=disagreeing)
    except Exception as exc:
        if is_unavailable(exc):  # the database, not the action: nothing is recorded, the batch fails
            raise
        scope.undo()
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
    if order_id is None:
        return None
    try:  # the batch's own copy: it has what the actions before this one did
        order = service.get_order_for_update(session, order_id=order_id, company_id=batch.actor.company_id)
    except NotFound:
        return None
    yours = order.assignee_id == batch.actor.user_id
    now = OrderNow(
        work_order_id=order.id,
        state=order.state,
        assigned_to_you=yours,
        version=order.version,
        allowed_moves=allowed_moves(State(order.state), field_only=True) if yours else [],
    )
    return msgspec.to_builtins(now)


def _erased_after(session: Session, company_id: uuid.UUID, decoded: _Decoded, when: FieldTime) -> bool:
    """Whether the order or household a refused action names (as decoded, or as sent when it did
    not decode) had its resident erased after the action took place."""
    sent = decoded.envelope.payload if isinstance(decoded.envelope.payload, dict) else {}
    order_id = (
        order_id_of(decoded.payload) if decoded.payload is not None else _uuid(sent.get("work_order_id"))
    )
    household_id = getattr(decoded.payload, "household_id", None) or _uuid(sent.get("household_id"))
    if order_id is None and household_id is None:
        return False
    params = {"company_id": company_id, "order_id": order_id, "household_id": household_id}
    erased_at = session.execute(_ERASED_AT, params).scalar()
    return erased_at is not None and when.corrected_at <= erased_at


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _remember(
    session: Session, batch: _Batch, decoded: _Decoded, result: ActionResult, when: FieldTime
) -> None:
    envelope = decoded.envelope
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
            "payload": ERASED_PAYLOAD if decoded.erased else decoded.raw.decode(),
            "occurred_at": envelope.occurred_at,
            "received_at": batch.received_at,
            "corrected_at": when.corrected_at,
            "skew_s": _stored_skew(batch.skew),
        },
    )


def _duplicate(envelope: ActionEnvelope, first: _Answer | None, pruned_below: int = 0) -> ActionResult:
    if first is None and envelope.seq < pruned_below:
        # Applied long ago (at or below the counter); its answer is past the action log's retention.
        return _result(
            envelope,
            Status.duplicate,
            "answer_expired",
            f"seq {envelope.seq} was done long ago; its first answer is no longer kept.",
        )
    if first is None or first.action_id != envelope.id:
        # No answer of its own: the seq was used up by an action id sent again; this one was never
        # applied, and must not be taken for done.
        return _result(
            envelope,
            Status.rejected,
            "seq_reused",
            f"seq {envelope.seq} was used by another action; this device's queue is out of step.",
        )
    return _first_answer_again(envelope, first)


def _first_answer_again(envelope: ActionEnvelope, first: "_Answer | _First") -> ActionResult:
    """``duplicate``, carrying what the first delivery was answered."""
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
    disagreeing: list[str] | None = None,
) -> ActionResult:
    return ActionResult(
        id=envelope.id,
        seq=envelope.seq,
        status=status,
        code=code,
        # The answer is stored (sync_action.message holds 500): a refusal quoting what it refused
        # can be longer, and must not turn the whole push into a failure.
        message=message[:MESSAGE_LIMIT] if message else message,
        retryable=retryable,
        current=current,
        missing=missing,
        disagreeing=disagreeing,
    )
