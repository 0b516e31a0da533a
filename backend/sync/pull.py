"""Pull: what changed in the user's scope since their cursor, read in one snapshot with the cursor.

A pull reads on a plain connection in a read-only transaction (``Database.reading``), not in an
ORM session: it builds no ORM objects, and a session's begin and commit cost a sixth of a small
pull's CPU.

The cursor is opaque to the phone: the company's epoch, the user it was issued to, and a position
``(version, row)`` in the change log. An unknown, foreign, pruned or future cursor, or one from
another epoch (a restore), answers ``reset`` with a full snapshot of the scope.

Scope of a field user: their open orders with the current appointment and SLA clocks, those
orders' households (minimal, phone masked unless an order there is active) with the last visits
at the address, revisits assigned to them, their open redo requests (``redo_request``: answered or
cancelled ones are removed), and the company's reference data.
"""

import base64
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

import msgspec
import sqlalchemy as sa
from sqlmodel import col

from backend.auth import service as auth
from backend.auth.models import User
from backend.auth.principal import Principal
from backend.auth.tokens import AccessClaims
from backend.clock import ensure_utc
from backend.context import AppContext
from backend.db import direct
from backend.db.lists import one_of
from backend.errors import AuthError
from backend.evidence import instruments
from backend.evidence.models import Instrument
from backend.org.models import Building, Company, Household
from backend.review import redo
from backend.sync import changes
from backend.sync.models import ChangeLog, SyncCounter
from backend.work_orders.models import Appointment, Revisit, SlaClock, WorkOrder
from backend.work_orders.sla import load_policy
from backend.work_orders.states import ACTIVE_STATES, TERMINAL_STATES, State, allowed_moves
from backend.work_orders.views import mask_phone, order_ref
from mobile_contract.reference import Source, WorkOrderKind
from mobile_contract.sync import Change, PullResponse
from mobile_contract.views import (
    AppointmentView,
    CatalogueView,
    ClockView,
    HouseholdView,
    InstrumentsView,
    PastVisit,
    RevisitView,
    WorkOrderView,
)

__all__ = ("DEFAULT_LIMIT", "MAX_LIMIT", "Learned", "pull", "pull_and_learn")

DEFAULT_LIMIT = 200
MAX_LIMIT = 1000
PAST_VISITS = 3
# Position "after every row of this version".
WHOLE_VERSION = 2**62


# A crafted cursor's position is bounded like the columns it is compared with: out of range, it is
# an unknown cursor (reset), never a value the database cannot take.
Position = Annotated[int, msgspec.Meta(ge=0, le=WHOLE_VERSION)]


class Cursor(msgspec.Struct, array_like=True, frozen=True):
    epoch: Annotated[str, msgspec.Meta(max_length=32)]
    user: uuid.UUID
    version: Position
    row: Position


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Cursor)


def encode_cursor(cursor: Cursor) -> str:
    return base64.urlsafe_b64encode(_encoder.encode(cursor)).decode().rstrip("=")


def decode_cursor(text: str | None) -> Cursor | None:
    if not text:
        return None
    try:
        return _decoder.decode(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, msgspec.DecodeError, msgspec.ValidationError):
        return None


class Learned(msgspec.Struct, frozen=True):
    """What a delta pull found out for the worker's hub (``backend.sync.live``): the feed's epoch
    and pruning, and ``bound``, at or above every committed change for the user in its snapshot."""

    epoch: str
    pruned_below: int
    bound: int


def pull(
    ctx: AppContext, *, principal: Principal, cursor: str | None, limit: int = DEFAULT_LIMIT
) -> PullResponse:
    return pull_and_learn(ctx, principal=principal, cursor=cursor, limit=limit)[0]


def pull_and_learn(
    ctx: AppContext,
    *,
    cursor: str | None,
    limit: int = DEFAULT_LIMIT,
    principal: Principal | None = None,
    claims: AccessClaims | None = None,
) -> tuple[PullResponse, Learned | None, Principal]:
    """:func:`pull`, what it learned (``None`` after a snapshot or a cut page), and for whom.

    The caller is ``principal``, admitted already (tools and tests), or ``claims``, a checked
    access token (HTTP): the pull's first statement admits its session, device and user as it
    reads the feed's reach, so a pull costs no statement of its own for that."""
    now = ctx.clock.now()
    seen_due = False
    with ctx.db.reading() as conn:
        if claims is not None:
            principal, seen_due, counter = _admit_and_count(conn, claims, now)
        elif principal is not None:
            counter = _counter(conn, principal.company_id)
        else:
            raise TypeError("pull needs the caller's claims or principal")
        if counter is None:  # a company that never changed anything yet
            conn.rollback()  # the next statement starts a snapshot that sees the new counter
            with ctx.db.session() as writer:
                changes.ensure_counter(writer, principal.company_id)
            counter = _counter(conn, principal.company_id)
        assert counter is not None
        response, learned = _answer(conn, principal, counter, decode_cursor(cursor), limit, now)
    if seen_due and claims is not None:
        auth.record_seen_later(ctx, claims.device_id)
    return response, learned, principal


def _answer(
    conn: sa.Connection, principal: Principal, counter: Any, parsed: Cursor | None, limit: int, now: datetime
) -> tuple[PullResponse, Learned | None]:
    if (
        parsed is None
        or parsed.epoch != counter.epoch
        or parsed.user != principal.user_id
        # it needs rows that were pruned (everything below ``pruned_below`` is gone)
        or (parsed.version, parsed.row) < (counter.pruned_below - 1, WHOLE_VERSION)
        or parsed.version > counter.upto
    ):
        return _snapshot(conn, principal, counter, now), None
    return _delta(conn, principal, counter, parsed, limit, now)


# The statements of a pull are built once, with parameters: building a select and its cache key
# on every call costs more than running it.
_COUNTER = sa.select(SyncCounter.version.label("upto"), SyncCounter.epoch, SyncCounter.pruned_below).where(
    SyncCounter.company_id == sa.bindparam("company_id")
)
# On PostgreSQL the feed reaches up to, not including, the oldest write transaction still in flight
# in this snapshot (see backend.sync.changes); read in the statement that starts the snapshot.
# Transactions of other databases of the cluster cannot write this feed and do not hold it back;
# one whose database cannot be told (it ended meanwhile, a prepared one) counts as in flight.
_COUNTER_POSTGRES = sa.select(
    sa.literal_column(changes.HORIZON_POSTGRES).label("upto"),
    SyncCounter.epoch,
    SyncCounter.pruned_below,
).where(SyncCounter.company_id == sa.bindparam("company_id"))
_FEED = (
    sa.select(ChangeLog.version, ChangeLog.id, ChangeLog.entity, ChangeLog.entity_id)
    .where(
        ChangeLog.company_id == sa.bindparam("company_id"),
        sa.or_(ChangeLog.user_id == sa.bindparam("user_id"), col(ChangeLog.user_id).is_(None)),
        sa.or_(
            col(ChangeLog.version) > sa.bindparam("version"),
            sa.and_(
                col(ChangeLog.version) == sa.bindparam("version"), col(ChangeLog.id) > sa.bindparam("row")
            ),
        ),
    )
    .order_by(col(ChangeLog.version), col(ChangeLog.id))
    .limit(sa.bindparam("limit"))
)


# A caller known by its token only: admitted in the statement that starts the snapshot and reads
# the feed's reach (no counter yet: NULLs).
_COUNTERS = SyncCounter.__table__


def _admission_and_counter(upto: Any) -> Any:
    return auth.admission(upto.label("upto"), _COUNTERS.c.epoch, _COUNTERS.c.pruned_below).outerjoin(
        _COUNTERS, _COUNTERS.c.company_id == User.__table__.c.company_id
    )


_ADMIT_AND_COUNT = _admission_and_counter(_COUNTERS.c.version)
_ADMIT_AND_COUNT_POSTGRES = _admission_and_counter(sa.literal_column(changes.HORIZON_POSTGRES))


class _Reach(msgspec.Struct, frozen=True):
    upto: int
    epoch: str
    pruned_below: int


def _admit_and_count(conn: sa.Connection, claims: AccessClaims, now: datetime) -> tuple[Principal, bool, Any]:
    """The caller, whether its last-seen time is due a write, and the feed's reach (or None)."""
    query = _ADMIT_AND_COUNT_POSTGRES if conn.dialect.name == "postgresql" else _ADMIT_AND_COUNT
    params = {"session_id": claims.session_id, "user_id": claims.user_id, "device_id": claims.device_id}
    row = direct.first(conn, query, params)
    if row is None:
        raise AuthError("The access token is not valid.", code="invalid_token")
    principal, seen_due = auth.admitted(now, claims, tuple(row))
    upto, epoch, pruned_below = row[auth.ADMIT_COLUMNS :]
    return principal, seen_due, None if epoch is None else _Reach(upto, epoch, pruned_below)


def _counter(conn: sa.Connection, company_id: uuid.UUID) -> Any:
    """The feed's reach as a plain row: ``upto`` (the highest position a pull may hand out now),
    ``epoch`` and ``pruned_below``."""
    query = _COUNTER_POSTGRES if conn.dialect.name == "postgresql" else _COUNTER
    return conn.execute(query, {"company_id": company_id}).first()


def _snapshot(conn: sa.Connection, principal: Principal, counter: Any, now: datetime) -> PullResponse:
    orders = _scope_orders(conn, principal)
    version = counter.upto
    changes_out = _order_changes(conn, principal, orders, version)
    changes_out += _household_changes(conn, principal, {o.household_id for o in orders}, orders, version)
    changes_out += _revisit_changes(conn, principal, version)
    changes_out += _redo_changes(conn, principal, version)
    changes_out += _reference_changes(conn, principal, version)
    cursor = Cursor(epoch=counter.epoch, user=principal.user_id, version=version, row=WHOLE_VERSION)
    return PullResponse(cursor=encode_cursor(cursor), has_more=False, reset=True, changes=changes_out)


def _delta(
    conn: sa.Connection, principal: Principal, counter: Any, cursor: Cursor, limit: int, now: datetime
) -> tuple[PullResponse, Learned | None]:
    params = {
        "company_id": principal.company_id,
        "user_id": principal.user_id,
        "version": cursor.version,
        "row": cursor.row,
        "limit": limit + 1,
    }
    rows = direct.rows(conn, _FEED, params)
    # Every committed row past the cursor was read (the page was not cut): none is above this.
    learned = (
        Learned(
            epoch=counter.epoch,
            pruned_below=counter.pruned_below,
            bound=max([cursor.version, *(row[0] for row in rows)]),
        )
        if len(rows) <= limit
        else None
    )
    # Rows above the horizon are committed but may have in-flight writers below them: they are sent
    # now (you see your own push at once) and again later, for the cursor stops at the horizon.
    settled = [row for row in rows if row[0] <= counter.upto]
    has_more = len(settled) > limit
    rows = settled[:limit] if has_more else rows[:limit]
    if has_more:
        last_version, last_row = rows[-1][0], rows[-1][1]
        next_cursor = Cursor(epoch=counter.epoch, user=principal.user_id, version=last_version, row=last_row)
    else:
        next_cursor = Cursor(
            epoch=counter.epoch, user=principal.user_id, version=counter.upto, row=WHOLE_VERSION
        )
    if not rows:
        return PullResponse(
            cursor=encode_cursor(next_cursor), has_more=False, reset=False, changes=[]
        ), learned

    latest: dict[tuple[str, str], int] = {}
    for version, _, entity, entity_id in rows:
        latest[(entity, entity_id)] = version
    changed_orders = [uuid.UUID(i) for (e, i) in latest if e == "work_order"]
    # A household is sent again when it was touched: by a move or an assignment of an order there
    # (its presence, its phone mask, its last visits may have changed) or by a change of its own.
    # A note, a photo, a measurement touch the order only.
    touched_households = {uuid.UUID(i) for (e, i) in latest if e == "household"}
    # Of the user's open orders only those this page needs (one statement): the changed ones, and
    # every one at a touched household (whether it is still visible, whether its phone shows in
    # full).
    scope = []
    if changed_orders or touched_households:
        params = {
            "user_id": principal.user_id,
            "ids": changed_orders,
            "households": sorted(touched_households),
        }
        scope = [row for row in direct.rows(conn, _TOUCHED, params, named=True) if row.mine]
    in_scope = {o.id: o for o in scope}
    out: list[Change] = []
    upserts = [in_scope[i] for i in changed_orders if i in in_scope]
    out += _order_changes(conn, principal, upserts, None, versions=latest)
    out += [
        Change(entity="work_order", id=str(i), op="remove", version=latest[("work_order", str(i))])
        for i in changed_orders
        if i not in in_scope
    ]
    if touched_households:
        version = max(latest.values())
        visible = touched_households & {o.household_id for o in scope}
        out += _household_changes(conn, principal, visible, scope, version)
        out += [
            Change(entity="household", id=str(h), op="remove", version=version)
            for h in touched_households - visible
        ]
    revisits = [uuid.UUID(i) for (e, i) in latest if e == "revisit"]
    if revisits:
        current = _revisit_changes(conn, principal, max(latest.values()))
        out += current
        out += [
            Change(entity="revisit", id=str(r), op="remove", version=latest[("revisit", str(r))])
            for r in revisits
            if str(r) not in {c.id for c in current}
        ]
    redos = [i for (e, i) in latest if e == "redo_request"]
    if redos:
        current = {c.id: c for c in _redo_changes(conn, principal, max(latest.values()))}
        out += [
            current.get(r)
            or Change(entity="redo_request", id=r, op="remove", version=latest[("redo_request", r)])
            for r in redos
        ]
    if any(e == "reference" for e, _ in latest):
        out += _reference_changes(conn, principal, max(latest.values()))
    return PullResponse(
        cursor=encode_cursor(next_cursor), has_more=has_more, reset=False, changes=out
    ), learned


# What a phone may do from each state, worked out once.
_FIELD_MOVES = {state.value: allowed_moves(state, field_only=True) for state in State}

_ORDER_COLUMNS = (
    WorkOrder.id,
    WorkOrder.kind,
    WorkOrder.source,
    WorkOrder.state,
    WorkOrder.urgent,
    WorkOrder.household_id,
    WorkOrder.description,
    WorkOrder.received_at,
    WorkOrder.version,
)


def _scope_orders(conn: sa.Connection, principal: Principal) -> list[Any]:
    """The user's open orders, as plain rows: a day pack must not pay for ORM objects."""
    return direct.rows(conn, _SCOPE, {"user_id": principal.user_id}, named=True)


# The assignee alone picks the index (assignee_id, state); it implies the company. The terminal
# states are written into the text (they are fixed names): no parameter list to expand per run.
_TERMINAL = sorted(s.value for s in TERMINAL_STATES)
assert all(name.isidentifier() for name in _TERMINAL)
_MINE = sa.and_(
    WorkOrder.assignee_id == sa.bindparam("user_id"),
    col(WorkOrder.state).not_in([sa.literal_column(f"'{name}'") for name in _TERMINAL]),
)
_SCOPE = sa.select(*_ORDER_COLUMNS).where(_MINE)
# A delta's orders: the changed ones (whoever has them now), and the user's open ones at the
# touched households; ``mine``: in the user's scope.
_TOUCHED = sa.select(*_ORDER_COLUMNS, _MINE.label("mine")).where(
    sa.or_(
        one_of(WorkOrder.id, "ids"),
        sa.and_(_MINE, one_of(WorkOrder.household_id, "households")),
    )
)
# The orders' clocks and current appointments in one statement; ``part`` tells them apart (their
# columns line up: a name, two times). Two clocks may be due at once (accept and arrive): the name
# breaks the tie, so every pull of an unchanged order hands out the same view (PostgreSQL's row
# order is not).
_CLOCKS_AND_APPOINTMENTS = sa.union_all(
    sa.select(
        sa.literal_column("'c'").label("part"),
        SlaClock.order_id,
        col(SlaClock.clock).label("name"),
        col(SlaClock.due_at).label("at"),
        col(SlaClock.met_at).label("until"),
    ).where(one_of(SlaClock.order_id, "ids")),
    sa.select(
        sa.literal_column("'a'"),
        Appointment.order_id,
        Appointment.reason,
        Appointment.window_start,
        Appointment.window_end,
    ).where(
        one_of(Appointment.order_id, "ids"),
        col(Appointment.replaced_at).is_(None),
    ),
).order_by(sa.literal_column("part"), sa.literal_column("at"), sa.literal_column("name"))


def _order_changes(
    conn: sa.Connection,
    principal: Principal,
    orders: list[Any],
    version: int | None,
    *,
    versions: dict[tuple[str, str], int] | None = None,
) -> list[Change]:
    if not orders:
        return []
    ids = [o.id for o in orders]
    clocks: dict[uuid.UUID, list[ClockView]] = defaultdict(list)
    appointments: dict[uuid.UUID, AppointmentView] = {}
    parts = direct.rows(conn, _CLOCKS_AND_APPOINTMENTS, {"ids": ids})
    for part, order_id, name, at, until in parts:
        if part == "c":
            clocks[order_id].append(ClockView(clock=name, due_at=at, met_at=until))
        else:
            appointments[order_id] = AppointmentView(window_start=at, window_end=until, reason=name)
    out = []
    for order in orders:
        view = WorkOrderView(
            id=order.id,
            ref=order_ref(order.id),
            kind=order.kind,
            source=order.source,
            state=order.state,
            urgent=order.urgent,
            household_id=order.household_id,
            description=order.description,
            received_at=order.received_at,
            allowed_moves=_FIELD_MOVES[order.state],
            clocks=clocks[order.id],
            appointment=appointments.get(order.id),
            version=order.version,
        )
        change_version = versions[("work_order", str(order.id))] if versions else version
        out.append(
            Change(
                entity="work_order",
                id=str(order.id),
                op="upsert",
                version=change_version or 0,
                data=msgspec.to_builtins(view),
            )
        )
    return out


_HOUSEHOLDS = (
    sa.select(
        Household.id,
        Household.account_number,
        Household.unit,
        Household.resident_name,
        Household.resident_phone,
        Household.is_key_customer,
        sa.func.coalesce(Household.lat, Building.lat),
        sa.func.coalesce(Household.lon, Building.lon),
        Building.address,
    )
    .join(Building, col(Building.id) == Household.building_id)
    .where(one_of(Household.id, "ids"))
)
# The last few completed visits per household, ranked in the database, not in Python.
_RANKED = (
    sa.select(
        WorkOrder.household_id,
        WorkOrder.id,
        WorkOrder.kind,
        WorkOrder.completed_at,
        WorkOrder.result,
        sa.func.row_number()
        .over(partition_by=WorkOrder.household_id, order_by=col(WorkOrder.completed_at).desc())
        .label("n"),
    )
    .where(
        one_of(WorkOrder.household_id, "ids"),
        col(WorkOrder.completed_at).is_not(None),
    )
    .subquery()
)
_PAST_VISITS = (
    sa.select(_RANKED.c.household_id, _RANKED.c.id, _RANKED.c.kind, _RANKED.c.completed_at, _RANKED.c.result)
    .where(_RANKED.c.n <= PAST_VISITS)
    .order_by(_RANKED.c.household_id, _RANKED.c.n)
)


def _household_changes(
    conn: sa.Connection,
    principal: Principal,
    household_ids: Iterable[uuid.UUID],
    scope: list[Any],
    version: int,
) -> list[Change]:
    ids = sorted(set(household_ids))
    if not ids:
        return []
    active = {o.household_id for o in scope if State(o.state) in ACTIVE_STATES}
    rows = conn.execute(_HOUSEHOLDS, {"ids": ids}).all()
    visits: dict[uuid.UUID, list[PastVisit]] = defaultdict(list)
    for household_id, order_id, kind, completed_at, result in conn.execute(_PAST_VISITS, {"ids": ids}):
        visits[household_id].append(
            PastVisit(
                order_ref=order_ref(order_id), kind=kind, completed_at=_utc(completed_at), result=result
            )
        )
    out = []
    for household_id, account, unit, name, phone, key, lat, lon, address in rows:
        view = HouseholdView(
            id=household_id,
            account_number=account,
            address=address,
            unit=unit,
            resident_name=name,
            resident_phone=phone if household_id in active else mask_phone(phone),
            is_key_customer=key,
            lat=lat,
            lon=lon,
            last_visits=visits[household_id],
        )
        out.append(
            Change(
                entity="household",
                id=str(household_id),
                op="upsert",
                version=version,
                data=msgspec.to_builtins(view),
            )
        )
    return out


def _utc(moment: datetime) -> datetime:
    """Values read through a subquery lose their column type; SQLite returns them naive."""
    return (
        ensure_utc(moment)
        if isinstance(moment, datetime)
        else ensure_utc(datetime.fromisoformat(str(moment)))
    )


_REVISITS = sa.select(
    Revisit.id, Revisit.order_id, Revisit.household_id, Revisit.due_at, Revisit.state
).where(Revisit.assignee_id == sa.bindparam("user_id"), Revisit.state == "due")


def _revisit_changes(conn: sa.Connection, principal: Principal, version: int) -> list[Change]:
    rows = conn.execute(_REVISITS, {"user_id": principal.user_id})
    return [
        Change(
            entity="revisit",
            id=str(r.id),
            op="upsert",
            version=version,
            data=msgspec.to_builtins(
                RevisitView(
                    id=r.id, order_id=r.order_id, household_id=r.household_id, due_at=r.due_at, state=r.state
                )
            ),
        )
        for r in rows
    ]


def _redo_changes(conn: sa.Connection, principal: Principal, version: int) -> list[Change]:
    """Open redo requests assigned to the user; answered or cancelled ones are removed."""
    return [
        Change(entity="redo_request", id=str(v.id), op="upsert", version=version, data=msgspec.to_builtins(v))
        for v in redo.open_for(conn, principal.user_id)
    ]


_COMPANY = sa.select(Company.sla_policy, Company.timezone).where(Company.id == sa.bindparam("company_id"))
_INSTRUMENTS = (
    sa.select(Instrument.__table__)
    .where(Instrument.__table__.c.company_id == sa.bindparam("company_id"))
    .order_by(Instrument.__table__.c.id)
)


def _reference_changes(conn: sa.Connection, principal: Principal, version: int) -> list[Change]:
    company = conn.execute(_COMPANY, {"company_id": principal.company_id}).one()
    return [
        Change(
            entity="reference",
            id="sla_policy",
            op="upsert",
            version=version,
            data=msgspec.to_builtins(load_policy(company)),  # type: ignore[arg-type]
        ),
        Change(
            entity="reference",
            id="catalogue",
            op="upsert",
            version=version,
            data=msgspec.to_builtins(
                CatalogueView(
                    kinds=[k.value for k in WorkOrderKind],
                    sources=[s.value for s in Source],
                    timezone=company.timezone,
                )
            ),
        ),
        Change(
            entity="reference",
            id="instruments",
            op="upsert",
            version=version,
            data=msgspec.to_builtins(
                InstrumentsView(
                    instruments=[
                        instruments.view(row)
                        for row in conn.execute(_INSTRUMENTS, {"company_id": principal.company_id})
                    ]
                )
            ),
        ),
    ]
