"""The change feed's write side: every transaction that changes what phones see records it here.

Services call :func:`touch` as they change things; just before the transaction commits, the
buffered touches land in ``change_log`` at one *position* for the whole transaction. A pull reads
the rows between its cursor and a *horizon* below which no transaction is still in flight, so a
cursor never skips a change that commits later with a lower position:

- PostgreSQL: the position is the writing transaction's own id (``pg_current_xact_id()``), and a
  pull's horizon is the oldest transaction id still running in its snapshot
  (``pg_snapshot_xip(pg_current_snapshot())``, less those of other databases): every row below it
  was committed before the snapshot, and every transaction not yet committed has an id at or above
  it. No lock is shared
  by a company's writers, so pushes of one company commit in parallel. A change becomes visible
  once every write transaction that started before it has ended: a few milliseconds. A transaction
  left open delays it (never loses it); the service's own sessions end one idle for 60 s
  (``backend.db.engine``), and a database shared with other clients should set
  ``idle_in_transaction_session_timeout`` for them too.
- SQLite: one writer at a time. The position is the company's counter, bumped in the committing
  transaction; everything committed is below the horizon.
"""

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col

from backend.db import buffer
from backend.db.lists import one_of
from backend.ids import new_hex
from backend.sync import live
from backend.sync.models import ChangeLog, SyncCounter
from backend.work_orders.models import WorkOrder
from backend.work_orders.states import TERMINAL_STATES

__all__ = (
    "HOLDERS",
    "HORIZON_POSTGRES",
    "Mark",
    "bump_epoch",
    "ensure_counter",
    "head",
    "horizon",
    "mark",
    "restore",
    "touch",
    "write_log",
)

_PENDING = "heatcrew.changes"
CHANGES = ChangeLog.__table__
HOLDERS = uuid.UUID(int=0)
"""A user of :func:`touch` for a household: whoever holds it (an open order there), found once, at
the commit, for every household of the transaction so touched."""


def touch(
    session: Session,
    *,
    company_id: uuid.UUID,
    entity: str,
    entity_id: object,
    users: Iterable[uuid.UUID | None],
) -> None:
    """Note that ``entity`` changed for ``users`` (``None``: everyone in the company)."""
    pending: set[tuple[uuid.UUID, uuid.UUID | None, str, str]] = session.info.setdefault(_PENDING, set())
    for user in users:
        pending.add((company_id, user, entity, str(entity_id)))


Mark = frozenset[tuple[uuid.UUID, uuid.UUID | None, str, str]]


def mark(session: Session) -> Mark:
    """What is noted so far: :func:`restore` goes back to it when the work since is undone."""
    return frozenset(session.info.get(_PENDING, ()))


def restore(session: Session, noted: Mark) -> None:
    session.info[_PENDING] = set(noted)


def ensure_counter(session: Session, company_id: uuid.UUID) -> SyncCounter:
    counter = session.get(SyncCounter, company_id)
    if counter is None:
        # Two workers may get here at once for a new company: the second insert quietly yields.
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        session.execute(
            dialect.insert(SyncCounter.__table__)
            .values(company_id=company_id, version=0, epoch=new_hex(8), pruned_below=0)
            .on_conflict_do_nothing()
        )
        counter = session.get(SyncCounter, company_id, populate_existing=True)
        assert counter is not None
    return counter


def bump_epoch(session: Session, company_id: uuid.UUID) -> str:
    """After a restore from backup: every phone's cursor is reset to a full snapshot.

    The history is cut with it: every cursor of the old epoch resets anyway, and positions written
    before a restore into another PostgreSQL cluster are that cluster's transaction ids, which the
    new one's may never reach."""
    counter = ensure_counter(session, company_id)
    counter.epoch = new_hex(8)
    counter.pruned_below = 0
    session.add(counter)
    live.notify_after_commit(session, ("c", company_id))
    session.execute(sa.delete(ChangeLog).where(col(ChangeLog.company_id) == company_id))
    return counter.epoch


def write_log(session: OrmSession) -> None:
    """Just before the commit: the notes become one new version per company, in ``change_log``."""
    pending: set[tuple[uuid.UUID, uuid.UUID | None, str, str]] | None = session.info.pop(_PENDING, None)
    if not pending:
        return
    held = sorted({(company_id, entity_id) for company_id, user, _, entity_id in pending if user == HOLDERS})
    if held:
        pending = {p for p in pending if p[1] != HOLDERS} | _holders(session, held)
        if not pending:
            return
    by_company: dict[uuid.UUID, list[tuple[uuid.UUID | None, str, str]]] = {}
    for company_id, user, entity, entity_id in pending:
        by_company.setdefault(company_id, []).append((user, entity, entity_id))
    # Bookkeeping for pruning by age only; the order of changes comes from their positions.
    at = session.info["clock"].now() if "clock" in session.info else datetime.now(UTC)
    # PostgreSQL: a trigger gives every row its transaction's id (migration 0010), whoever writes it.
    postgres = session.get_bind().dialect.name == "postgresql"
    for company_id in sorted(by_company):  # one lock order for every writer: no deadlocks
        version = 0 if postgres else _bump(session, company_id)
        users = {user for user, _, _ in by_company[company_id]}
        # SQLite: the worker's hub hears of it after the commit (PostgreSQL: a trigger, 0015, and
        # this worker's own hub forgets the users' heads at once).
        live.notify_after_commit(
            session, ("f", company_id, version, None if None in users else sorted(users, key=str))
        )
        rows = [
            {
                "company_id": company_id,
                "version": version,
                "user_id": user,
                "entity": entity,
                "entity_id": entity_id,
                "at": at,
            }
            for user, entity, entity_id in sorted(by_company[company_id], key=str)
        ]
        if postgres:
            # With the transaction's other bulk rows, in their round trip (the unit of work writes
            # them next); the trigger gives the rows their position wherever they go.
            for row in rows:
                buffer.add_row(session, CHANGES, row)
        else:
            # Plain rows in one statement: the ORM's bulk path costs more than the insert.
            buffer.insert_now(session, CHANGES, rows)


_ORDERS = WorkOrder.__table__
# Well below the bind limits (PostgreSQL 65,535, SQLite 32,766).
HOLDERS_PER_STATEMENT = 10_000
_HOLDERS = (
    sa.select(_ORDERS.c.company_id, _ORDERS.c.assignee_id, _ORDERS.c.household_id)
    .where(
        one_of(_ORDERS.c.household_id, "ids"),
        _ORDERS.c.assignee_id.is_not(None),
        _ORDERS.c.state.not_in(sorted(s.value for s in TERMINAL_STATES)),
    )
    .distinct()
)


def _holders(
    session: OrmSession, held: list[tuple[uuid.UUID, str]]
) -> set[tuple[uuid.UUID, uuid.UUID | None, str, str]]:
    """The touches of these households for each user holding one: one statement, or one per
    ``HOLDERS_PER_STATEMENT`` (an import may update more households than a statement may bind)."""
    wanted = set(held)
    ids = sorted({uuid.UUID(h) for _, h in held})
    found = set()
    for start in range(0, len(ids), HOLDERS_PER_STATEMENT):
        rows = session.execute(_HOLDERS, {"ids": ids[start : start + HOLDERS_PER_STATEMENT]})
        found.update(
            (company_id, user, "household", str(household_id))
            for company_id, user, household_id in rows
            if (company_id, str(household_id)) in wanted
        )
    return found


def _bump(session: OrmSession, company_id: uuid.UUID) -> int:
    table = SyncCounter.__table__
    version = session.execute(
        sa.update(table)
        .where(table.c.company_id == company_id)
        .values(version=table.c.version + 1)
        .returning(table.c.version)
    ).scalar_one_or_none()
    if version is None:
        ensure_counter(session, company_id)  # type: ignore[arg-type]
        return _bump(session, company_id)
    return version


HORIZON_POSTGRES = """(
    coalesce(
        (
            SELECT min(x::text::bigint) FROM pg_snapshot_xip(pg_current_snapshot()) AS x
            WHERE NOT EXISTS (
                SELECT 1 FROM pg_stat_activity AS a
                WHERE a.backend_xid = xid(x) AND a.datname IS DISTINCT FROM current_database()
            )
        ),
        pg_snapshot_xmax(pg_current_snapshot())::text::bigint
    ) - 1
)"""
"""The highest position a pull may hand out now on PostgreSQL: below the oldest transaction still
in flight in the snapshot, less those ``pg_stat_activity`` shows belong to another database of the
cluster (they cannot write this feed); one whose database cannot be told counts as in flight."""


def horizon(session: Session, company_id: uuid.UUID) -> int:
    """The highest position a pull may hand out now (see the module's docstring)."""
    if session.get_bind().dialect.name == "postgresql":
        return session.execute(sa.text(f"SELECT {HORIZON_POSTGRES}")).scalar_one()
    return ensure_counter(session, company_id).version


def head(session: Session, company_id: uuid.UUID) -> int:
    """The highest position written to the company's feed so far (0: none)."""
    newest = session.execute(
        sa.select(sa.func.max(ChangeLog.version)).where(col(ChangeLog.company_id) == company_id)
    ).scalar_one_or_none()
    return newest or 0


def prune(session: Session, *, company_id: uuid.UUID, below_version: int) -> int:
    """Drop change-log rows below a version; cursors older than that get a full snapshot.

    Never above the feed's horizon: a cursor handed out now must stay valid."""
    counter = ensure_counter(session, company_id)
    below_version = min(below_version, horizon(session, company_id) + 1)
    result = session.execute(
        sa.delete(ChangeLog).where(
            col(ChangeLog.company_id) == company_id, col(ChangeLog.version) < below_version
        )
    )
    counter.pruned_below = max(counter.pruned_below, below_version)
    session.add(counter)
    live.notify_after_commit(session, ("c", company_id))
    return result.rowcount or 0


def prune_before(session: Session, *, company_id: uuid.UUID, before: datetime) -> int:
    """Drop whole versions committed before ``before``."""
    newest_old = session.execute(
        sa.select(sa.func.max(ChangeLog.version)).where(
            col(ChangeLog.company_id) == company_id, col(ChangeLog.at) < before
        )
    ).scalar_one_or_none()
    if newest_old is None:
        return 0
    return prune(session, company_id=company_id, below_version=newest_old + 1)
