"""The KPI rollup: each KPI's ingredients per company, team and local day, kept as insert-only deltas.

Every KPI of ``reports.kpis`` is a sum over rows (clocks, revisits, measurements, orders) of a
numerator and a denominator, each row counted on one local day (its due, measured, completed or
received time, in the company's zone) for one team. What a row counts for depends on its order's
current state (cancelled, team, completed, closed, repeated by a later order...), so the rollup
is kept per *entity*: an order with its clocks, its revisit and its measurements, or a
measurement without an order. ``kpi_settled`` keeps what each entity counts for now (its
*parts*: team, ingredient, day, numerator, denominator); when it changes, the difference is
appended to ``kpi_delta``. Nobody updates a shared counter: two pushes of one company append
their own rows and commit in parallel; the only rows they lock are their own entities'.

When an entity is settled: writes to its tables are *noted* as they happen, whoever makes them
(:func:`observe_flush` for ORM objects at each flush, :func:`_watch_orders` and friends for the
rows ``db.buffer`` writes in bulk), so no caller has to remember. Just before the commit
(``backend.unit_of_work``) :func:`settle` locks the noted entities' ``kpi_settled`` rows (created
if new), reads their current state in four queries for the whole transaction, computes the parts,
and writes the differences as buffered rows: one row per (company, team, ingredient, day) that
changed in the transaction, however many orders and actions it had. Noting too much costs a
query, never a wrong figure: an entity that did not change gives no delta.

Why it stays right: a late fact, a cancellation, a reassignment, a reopen, a correction, a revisit
or a repeat report all change rows of an entity, which is then settled from the database as it is
after the change; the delta moves counts between days and teams (a reassigned order's counts
leave the old team and arrive at the new one in the same transaction). The lock on the entity's
settled row (``SELECT ... FOR UPDATE`` through the upsert) orders two transactions settling the
same entity (a repair and two repeats reported at once); the state is read after the lock.

What the rollup cannot know by itself is the time of the query: a clock or revisit counts once it
has run out. A local day that has ended (its end before ``now``) has every clock and revisit due
in it run out, so the rollup answers whole past days and ``reports.kpis`` reads today and later
days from the raw rows.

:func:`compact` (``heatcrew maintenance``) folds each key's rows into one; :func:`rebuild` computes
everything again from the raw rows (migration 0018's backfill, the benchmark after its bulk seed).
"""

import functools
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session as OrmSession

from backend.auth.models import User
from backend.db import buffer
from backend.db.lists import one_of
from backend.evidence.models import Document, Measurement
from backend.org.models import Company
from backend.reports.models import KpiDelta, KpiSettled
from backend.work_orders.models import Revisit, SlaClock, WorkOrder
from mobile_contract.reference import ClockName, Source, WorkOrderKind

__all__ = (
    "DELTAS",
    "SETTLED",
    "compact",
    "contributions",
    "forget",
    "observe_flush",
    "read",
    "rebuild",
    "settle",
)

DELTAS = KpiDelta.__table__
SETTLED = KpiSettled.__table__
O = WorkOrder.__table__  # noqa: E741
C = SlaClock.__table__
R = Revisit.__table__
M = Measurement.__table__
D = Document.__table__
U = User.__table__
CO = Company.__table__

_ORDERS = "heatcrew.kpi_orders"
_MEASUREMENTS = "heatcrew.kpi_measurements"
_USERS = "heatcrew.kpi_users"
CHUNK = 1000
SATISFIED = 4
_ANSWERING = frozenset({ClockName.contact.value, ClockName.answer.value, ClockName.arrive.value})
REPEAT_PREFIX = "repeat_repairs:"


# ---------------------------------------------------------------- noting what changed


def note_orders(session: OrmSession, order_ids: Iterable[uuid.UUID | None]) -> None:
    noted: set[uuid.UUID] = session.info.setdefault(_ORDERS, set())
    noted.update(i for i in order_ids if i is not None)


def note_measurements(session: OrmSession, ids: Iterable[uuid.UUID | None]) -> None:
    noted: set[uuid.UUID] = session.info.setdefault(_MEASUREMENTS, set())
    noted.update(i for i in ids if i is not None)


def forget(session: OrmSession) -> None:
    """The transaction ended: what it noted went with it."""
    for key in (_ORDERS, _MEASUREMENTS, _USERS):
        session.info.pop(key, None)


def _history(obj: Any, name: str) -> list[Any]:
    """An attribute's values before this flush (those replaced in it)."""
    return [v for v in sa.inspect(obj).attrs[name].history.deleted if v is not None]


# The columns the KPIs read: a change elsewhere (a note's version and updated_at) is not noted.
_COUNTED = {
    O: frozenset(
        {"company_id", "team_id", "kind", "source", "state", "received_at", "completed_at", "closed_at"}
        | {"satisfaction", "repeat_of_id"}
    ),
    C: frozenset({"order_id", "company_id", "clock", "due_at", "met_at", "order_kind"}),
    R: frozenset({"order_id", "company_id", "due_at", "state", "satisfaction"}),
    M: frozenset({"order_id", "company_id", "measured_at", "result", "user_id"}),
    D: frozenset({"superseded_by_id"}),
    U: frozenset({"team_id"}),
}
_CLASSES = {WorkOrder: O, SlaClock: C, Revisit: R, Measurement: M, Document: D, User: U}


def _changed(obj: Any, table: sa.Table) -> bool:
    attrs = sa.inspect(obj).attrs
    return any(attrs[name].history.has_changes() for name in _COUNTED[table])


def observe_flush(session: OrmSession) -> None:
    """Before a flush: note the entities of every ORM object of the KPI tables about to be written
    (new, deleted, or changed in a column a KPI reads)."""
    dirty = [(obj, False) for obj in session.dirty]
    for obj, fresh in (*((o, True) for o in session.new), *((o, True) for o in session.deleted), *dirty):
        table = _CLASSES.get(type(obj))
        if table is None or not (fresh or _changed(obj, table)):
            continue
        if table is O:
            # The order itself, and the orders it names (or named) as the repair it repeats.
            note_orders(session, (obj.id, obj.repeat_of_id, *_history(obj, "repeat_of_id")))
        elif table is C or table is R:
            note_orders(session, (obj.order_id, *_history(obj, "order_id")))
        elif table is M:
            note_measurements(session, (obj.id,))
            note_orders(session, (obj.order_id, *_history(obj, "order_id")))
        elif table is D:  # a correction supersedes a measurement (same id as its document)
            note_measurements(session, (obj.id,))
        elif not fresh:  # a user's team: their measurements count for it when their order has none
            session.info.setdefault(_USERS, set()).add(obj.id)


def _value(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, dict) else getattr(row, name)


def _counted_changes(table: sa.Table, rows: list[Any], old: list[dict[str, Any]]) -> list[Any]:
    """Inserted rows, or updated ones whose counted columns changed."""
    if not old:
        return rows
    names = _COUNTED[table]
    return [r for r, before in zip(rows, old, strict=True) if any(getattr(r, n) != before[n] for n in names)]


def _watch_orders(session: OrmSession, rows: list[Any], old: list[dict[str, Any]]) -> None:
    rows = _counted_changes(O, rows, old)
    note_orders(session, (_value(r, "id") for r in rows))
    note_orders(session, (_value(r, "repeat_of_id") for r in rows))
    note_orders(session, (o.get("repeat_of_id") for o in old))


def _watch_order_rows(table: sa.Table) -> buffer.Watcher:
    def watcher(session: OrmSession, rows: list[Any], old: list[dict[str, Any]]) -> None:
        rows = _counted_changes(table, rows, old)
        note_orders(session, (_value(r, "order_id") for r in rows))
        note_orders(session, (o.get("order_id") for o in old))

    return watcher


def _watch_measurements(table: sa.Table) -> buffer.Watcher:
    def watcher(session: OrmSession, rows: list[Any], old: list[dict[str, Any]]) -> None:
        rows = _counted_changes(table, rows, old)
        note_measurements(session, (_value(r, "id") for r in rows))
        note_orders(session, (o.get("order_id") for o in old))

    return watcher


buffer.watch(O, _watch_orders)
buffer.watch(C, _watch_order_rows(C))
buffer.watch(R, _watch_order_rows(R))
buffer.watch(M, _watch_measurements(M))
buffer.watch(D, _watch_measurements(D))


# ---------------------------------------------------------------- local days


@functools.cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@functools.lru_cache(maxsize=8192)
def _midnight(zone: str, day: date) -> datetime:
    """Local midnight starting ``day`` in UTC: the same instant ``Scope.instant`` gives."""
    return datetime.combine(day, time(0), tzinfo=_zone(zone)).astimezone(UTC)


def local_day(zone: str, moment: datetime) -> date:
    """The local day whose [midnight, next midnight) holds ``moment``, as the reports bucket it."""
    day = moment.astimezone(_zone(zone)).date()
    if moment < _midnight(zone, day):
        return day - timedelta(days=1)
    if moment >= _midnight(zone, day + timedelta(days=1)):
        return day + timedelta(days=1)
    return day


# ---------------------------------------------------------------- what an entity counts for

Key = tuple[str | None, str, int]  # (team id or None, ingredient, day ordinal)
Parts = dict[Key, list[int]]  # key -> [numerator, denominator]


def _in(column: Any, ids: list[Any], dialect: str) -> Any:
    if dialect == "postgresql":
        return column == sa.func.any(sa.literal(ids, postgresql.ARRAY(sa.Uuid())))
    return column.in_(ids)


def _add(parts: Parts, team: Any, ingredient: str, day: date, numerator: int, denominator: int) -> None:
    key = (None if team is None else str(team), ingredient, day.toordinal())
    got = parts.get(key)
    if got is None:
        parts[key] = [numerator, denominator]
    else:
        got[0] += numerator
        got[1] += denominator


def contributions(
    db: Any, dialect: str, order_ids: list[uuid.UUID], measurement_ids: list[uuid.UUID]
) -> dict[uuid.UUID, tuple[uuid.UUID, Parts]]:
    """Each entity's company and parts, from the rows as they are now (four queries per chunk).

    The rules are the KPI definitions of ``reports.kpis`` for a day that has ended (every clock and
    revisit due in it has run out): keep the two in step.
    """
    out: dict[uuid.UUID, tuple[uuid.UUID, Parts]] = {}
    for start in range(0, len(order_ids), CHUNK):
        out.update(_orders(db, order_ids[start : start + CHUNK]))
    for start in range(0, len(measurement_ids), CHUNK):
        chunk = measurement_ids[start : start + CHUNK]
        rows = db.execute(_measurements_query(_in(M.c.id, chunk, dialect) & M.c.order_id.is_(None)))
        for m in rows:
            parts: Parts = {}
            _measurement(parts, m, m.team_id)
            out[m.id] = (m.company_id, parts)
    return out


def _measurements_query(where: Any) -> Any:
    return (
        sa.select(
            M.c.id,
            M.c.order_id,
            M.c.company_id,
            M.c.measured_at,
            M.c.result,
            D.c.superseded_by_id,
            U.c.team_id,
            CO.c.timezone,
        )
        .select_from(
            M.join(D, D.c.id == M.c.id, isouter=True)
            .join(U, U.c.id == M.c.user_id, isouter=True)
            .join(CO, CO.c.id == M.c.company_id)
        )
        .where(where)
    )


def _measurement(parts: Parts, m: Any, team: Any) -> None:
    if m.measured_at is None or m.result not in ("pass", "fail") or m.superseded_by_id is not None:
        return
    _add(parts, team, "temperature_pass", local_day(m.timezone, m.measured_at), int(m.result == "pass"), 1)


@functools.cache
def _order_reads() -> tuple[Any, Any, Any, Any]:
    """The four reads of :func:`_orders`, built once: building them (an alias, a subquery, their
    cache keys) on every settle cost more than running them."""
    later = O.alias("later")
    repeated = (
        sa.select(sa.literal(1))
        .select_from(later)
        .where(later.c.company_id == O.c.company_id, later.c.repeat_of_id == O.c.id)
        .exists()
    )
    orders = (
        sa.select(
            O.c.id,
            O.c.company_id,
            O.c.team_id,
            O.c.kind,
            O.c.source,
            O.c.state,
            O.c.received_at,
            O.c.completed_at,
            O.c.closed_at,
            O.c.satisfaction,
            repeated.label("repeated"),
            CO.c.timezone,
        )
        .select_from(O.join(CO, CO.c.id == O.c.company_id))
        .where(one_of(O.c.id, "ids"))
    )
    clocks = sa.select(C.c.order_id, C.c.clock, C.c.due_at, C.c.met_at, C.c.order_kind).where(
        one_of(C.c.order_id, "ids")
    )
    revisits = sa.select(R.c.order_id, R.c.due_at, R.c.state, R.c.satisfaction).where(
        one_of(R.c.order_id, "ids")
    )
    return orders, clocks, revisits, _measurements_query(one_of(M.c.order_id, "ids"))


def _orders(db: Any, ids: list[uuid.UUID]) -> Iterator[tuple[uuid.UUID, tuple[uuid.UUID, Parts]]]:
    orders_read, clocks_read, revisits_read, measurements_read = _order_reads()
    params = {"ids": ids}
    orders = db.execute(orders_read, params).all()
    if not orders:
        return
    clocks: dict[uuid.UUID, list[Any]] = {}
    for c in db.execute(clocks_read, params):
        clocks.setdefault(c.order_id, []).append(c)
    revisits: dict[uuid.UUID, list[Any]] = {}
    for r in db.execute(revisits_read, params):
        revisits.setdefault(r.order_id, []).append(r)
    measurements: dict[uuid.UUID, list[Any]] = {}
    for m in db.execute(measurements_read, params):
        measurements.setdefault(m.order_id, []).append(m)
    for o in orders:
        zone = o.timezone
        team = o.team_id
        parts: Parts = {}
        own_clocks = clocks.get(o.id, ())
        cancelled = o.state == "cancelled"
        for c in own_clocks:
            # Unmet clocks of an order cancelled before they ran out do not count.
            if cancelled and c.met_at is None and o.closed_at is not None and o.closed_at <= c.due_at:
                continue
            day = local_day(zone, c.due_at)
            on_time = int(c.met_at is not None and c.met_at <= c.due_at)
            _add(parts, team, f"on_time_{c.clock}", day, on_time, 1)
            if c.order_kind == WorkOrderKind.complaint.value and c.clock == ClockName.answer.value:
                _add(parts, team, "complaints_answered", day, on_time, 1)
        own_revisits = revisits.get(o.id, [])
        for r in own_revisits:
            day = local_day(zone, r.due_at)
            done = r.state == "done"
            _add(parts, team, "revisit_completion", day, int(done), 1)
            if done and r.satisfaction is not None:
                _add(parts, team, "revisit_satisfaction", day, int(r.satisfaction), 1)
        for m in measurements.get(o.id, ()):
            _measurement(parts, m, team if team is not None else m.team_id)
        if o.completed_at is not None:
            day = local_day(zone, o.completed_at)
            _add(parts, team, REPEAT_PREFIX + o.kind, day, int(bool(o.repeated)), 1)
        if o.source == Source.mayor_hotline.value and not cancelled and o.received_at is not None:
            day = local_day(zone, o.received_at)
            answered = o.completed_at is not None or any(
                c.met_at is not None and c.clock in _ANSWERING for c in own_clocks
            )
            closed = int(o.state == "closed")
            for r in own_revisits or [None]:  # the reports join the order to its revisit
                score = r.satisfaction if r is not None and r.satisfaction is not None else o.satisfaction
                _add(parts, team, "hotline_feedback", day, int(answered), 1)
                _add(parts, team, "hotline_closure", day, closed, 1)
                if score is not None:
                    _add(parts, team, "hotline_satisfaction", day, int(score >= SATISFIED), 1)
        yield o.id, (o.company_id, parts)


def _encode(company_id: uuid.UUID, parts: Parts) -> dict[str, Any]:
    kept = sorted([t, i, d, n, m] for (t, i, d), (n, m) in parts.items() if n or m)
    return {"c": str(company_id), "p": kept}


def _decode(stored: Any) -> tuple[uuid.UUID | None, Parts]:
    if not stored or not isinstance(stored, dict) or "c" not in stored:
        return None, {}
    return uuid.UUID(stored["c"]), {(t, i, d): [n, m] for t, i, d, n, m in stored["p"]}


def _differences(
    deltas: dict[tuple[uuid.UUID, str | None, str, int], list[int]],
    company: uuid.UUID | None,
    old: Parts,
    new_company: uuid.UUID | None,
    new: Parts,
) -> None:
    for key, (n, m) in new.items():
        before = old.get(key, (0, 0))
        if (n, m) != tuple(before):
            got = deltas.setdefault((new_company, *key), [0, 0])  # type: ignore[arg-type]
            got[0] += n - before[0]
            got[1] += m - before[1]
    for key, (n, m) in old.items():
        if key not in new and (n or m):
            got = deltas.setdefault((company, *key), [0, 0])  # type: ignore[arg-type]
            got[0] -= n
            got[1] -= m


def _delta_rows(deltas: dict[tuple[uuid.UUID, str | None, str, int], list[int]]) -> list[dict[str, Any]]:
    return [
        {
            "company_id": company,
            "team_id": None if team is None else uuid.UUID(team),
            "ingredient": ingredient,
            "day": date.fromordinal(day),
            "numerator": n,
            "denominator": m,
        }
        for (company, team, ingredient, day), (n, m) in deltas.items()
        if (n or m) and company is not None
    ]


# ---------------------------------------------------------------- settling a transaction


def settle(session: OrmSession) -> None:
    """Just before the commit: every noted entity's change becomes delta rows (buffered)."""
    buffer.write_rows(session)  # their watchers note what the bulk rows touch
    if session.new or session.dirty or session.deleted:
        session.flush()  # and the ORM's (the commit's own flush comes after this)
    if not (session.info.get(_ORDERS) or session.info.get(_MEASUREMENTS) or session.info.get(_USERS)):
        return
    orders: set[uuid.UUID] = session.info.pop(_ORDERS, set())
    measurements: set[uuid.UUID] = session.info.pop(_MEASUREMENTS, set())
    users: set[uuid.UUID] = session.info.pop(_USERS, set())
    dialect = session.get_bind().dialect.name
    standalone: set[uuid.UUID] = set()
    if measurements or users:
        wanted = []
        ids = sorted(measurements)
        for start in range(0, len(ids), CHUNK):
            wanted.append(_in(M.c.id, ids[start : start + CHUNK], dialect))
        if users:
            wanted.append(_in(M.c.user_id, sorted(users), dialect))
        moved = []
        for row in session.execute(sa.select(M.c.id, M.c.order_id).where(sa.or_(*wanted))):
            if row.order_id is None:
                standalone.add(row.id)
            else:
                orders.add(row.order_id)
                moved.append(row.id)
        if moved:  # a measurement that once counted without an order: its own parts go
            standalone.update(
                session.execute(
                    sa.select(SETTLED.c.entity_id).where(_in(SETTLED.c.entity_id, moved, dialect))
                ).scalars()
            )
    entities = sorted(orders | standalone)
    if not entities:
        return
    before = _lock(session, dialect, entities)
    now = contributions(session, dialect, sorted(orders), sorted(standalone))
    deltas: dict[tuple[uuid.UUID, str | None, str, int], list[int]] = {}
    changed = []
    for entity in entities:
        company, old = before.get(entity, (None, {}))
        new_company, new = now.get(entity, (company, {}))
        if old == new:
            continue
        _differences(deltas, company, old, new_company, new)
        changed.append({"entity_id": entity, "parts": _encode(new_company, new) if new_company else None})
    if changed:
        session.execute(
            sa.update(SETTLED)
            .where(SETTLED.c.entity_id == sa.bindparam("e"))
            .values(parts=sa.bindparam("p")),
            [{"e": c["entity_id"], "p": c["parts"]} for c in changed],
        )
    for row in _delta_rows(deltas):
        buffer.add_row(session, DELTAS, row)


def _lock(
    session: OrmSession, dialect: str, entities: list[uuid.UUID]
) -> dict[uuid.UUID, tuple[uuid.UUID | None, Parts]]:
    """The entities' settled parts, their rows locked until the commit (created if missing)."""
    found: dict[uuid.UUID, tuple[uuid.UUID | None, Parts]] = {}
    for start in range(0, len(entities), CHUNK):
        chunk = entities[start : start + CHUNK]
        locked = (
            sa.select(SETTLED.c.entity_id, SETTLED.c.parts).order_by(SETTLED.c.entity_id).with_for_update()
        )
        for entity, parts in session.execute(locked.where(_in(SETTLED.c.entity_id, chunk, dialect))):
            found[entity] = _decode(parts)
        missing = [e for e in chunk if e not in found]
        if not missing:
            continue
        # New entities: their rows are made (one writer wins; the other waits for it), then locked.
        insert = postgresql.insert(SETTLED) if dialect == "postgresql" else sqlite.insert(SETTLED)
        session.execute(insert.on_conflict_do_nothing(), [{"entity_id": e, "parts": None} for e in missing])
        for entity, parts in session.execute(locked.where(_in(SETTLED.c.entity_id, missing, dialect))):
            found[entity] = _decode(parts)
    return found


# ---------------------------------------------------------------- reading, compacting, rebuilding


def read(
    session: Any, *, company_id: uuid.UUID, team_id: uuid.UUID | None, first: date, last: date
) -> list[tuple[str, date, int, int]]:
    """(ingredient, day, numerator, denominator) of each day in [first, last] (one row per pair)."""
    query = (
        sa.select(
            DELTAS.c.ingredient,
            DELTAS.c.day,
            sa.func.sum(DELTAS.c.numerator),
            sa.func.sum(DELTAS.c.denominator),
        )
        .where(DELTAS.c.company_id == company_id, DELTAS.c.day >= first, DELTAS.c.day <= last)
        .group_by(DELTAS.c.ingredient, DELTAS.c.day)
    )
    if team_id is not None:
        query = query.where(DELTAS.c.team_id == team_id)
    return [(i, d, int(n), int(m)) for i, d, n, m in session.execute(query)]


def compact(conn: sa.Connection) -> int:
    """Fold every (company, team, ingredient, day) into one row, dropping those summing to zero;
    rows written meanwhile are untouched. The number of rows removed."""
    keys = [DELTAS.c.company_id, DELTAS.c.team_id, DELTAS.c.ingredient, DELTAS.c.day]
    if conn.dialect.name == "postgresql":
        # One statement: the DELETE's snapshot is exactly the set folded.
        result = conn.execute(
            sa.text(
                "WITH gone AS (DELETE FROM kpi_delta RETURNING company_id, team_id, ingredient, day, "
                "numerator, denominator), folded AS (INSERT INTO kpi_delta (company_id, team_id, "
                "ingredient, day, numerator, denominator) SELECT company_id, team_id, ingredient, day, "
                "sum(numerator), sum(denominator) FROM gone GROUP BY company_id, team_id, ingredient, day "
                "HAVING sum(numerator) <> 0 OR sum(denominator) <> 0 RETURNING 1) "
                "SELECT (SELECT count(*) FROM gone) - (SELECT count(*) FROM folded)"
            )
        )
        return int(result.scalar_one())
    top = conn.execute(sa.select(sa.func.max(DELTAS.c.id))).scalar_one()
    if top is None:
        return 0
    before = conn.execute(sa.select(sa.func.count()).select_from(DELTAS)).scalar_one()
    folded = (
        sa.select(*keys, sa.func.sum(DELTAS.c.numerator), sa.func.sum(DELTAS.c.denominator))
        .where(DELTAS.c.id <= top)
        .group_by(*keys)
        .having(sa.or_(sa.func.sum(DELTAS.c.numerator) != 0, sa.func.sum(DELTAS.c.denominator) != 0))
    )
    names = ("company_id", "team_id", "ingredient", "day", "numerator", "denominator")
    rows = [dict(zip(names, r, strict=True)) for r in conn.execute(folded)]
    conn.execute(sa.delete(DELTAS).where(DELTAS.c.id <= top))
    if rows:
        conn.execute(sa.insert(DELTAS), rows)
    after = conn.execute(sa.select(sa.func.count()).select_from(DELTAS)).scalar_one()
    return int(before - after)


def rebuild(conn: Any, *, company_id: uuid.UUID | None = None, chunk: int = 5000) -> int:
    """Compute the rollup from the raw rows (all companies, or one): its deltas (one row per key)
    and every entity's settled parts. The number of entities with parts."""
    dialect = conn.dialect.name if hasattr(conn, "dialect") else conn.get_bind().dialect.name
    where_o = [] if company_id is None else [O.c.company_id == company_id]
    where_m = [M.c.order_id.is_(None)] + ([] if company_id is None else [M.c.company_id == company_id])
    order_ids = list(conn.execute(sa.select(O.c.id).where(*where_o).order_by(O.c.id)).scalars())
    measurement_ids = list(conn.execute(sa.select(M.c.id).where(*where_m).order_by(M.c.id)).scalars())
    if company_id is None:
        conn.execute(sa.delete(DELTAS))
        conn.execute(sa.delete(SETTLED))
    else:
        conn.execute(sa.delete(DELTAS).where(DELTAS.c.company_id == company_id))
        for start in range(0, len(order_ids + measurement_ids), CHUNK):
            ids = (order_ids + measurement_ids)[start : start + CHUNK]
            conn.execute(sa.delete(SETTLED).where(_in(SETTLED.c.entity_id, ids, dialect)))
    totals: dict[tuple[uuid.UUID, str | None, str, int], list[int]] = {}
    settled = 0
    for ids, standalone in [(order_ids, False), (measurement_ids, True)]:
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            found = contributions(conn, dialect, [] if standalone else part, part if standalone else [])
            rows = []
            for entity, (company, parts) in found.items():
                if not parts:
                    continue
                _differences(totals, None, {}, company, parts)
                rows.append({"entity_id": entity, "parts": _encode(company, parts)})
            if rows:
                conn.execute(sa.insert(SETTLED), rows)
                settled += len(rows)
    rows = _delta_rows(totals)
    for start in range(0, len(rows), 10_000):
        conn.execute(sa.insert(DELTAS), rows[start : start + 10_000])
    return settled
