"""The change feed under racing writers: pushes of one company commit side by side, and a pull
never skips a change that commits later with a lower position.

On PostgreSQL a change's position is its transaction's id, taken when the transaction first
writes, so transactions commit out of position order all the time. A pull hands out positions
only below the oldest writer still in flight; these tests hold writers open on purpose to make
the out-of-order commits happen. On SQLite (one writer at a time) the same checks run with the
writers one after another.
"""

import random
import threading
import time
import uuid

import pytest
import sqlalchemy as sa

from backend.context import AppContext
from backend.sync import changes
from backend.sync.pull import pull
from tests.fixtures.field import principal

pytestmark = pytest.mark.usefixtures("demo")


def _removed_ids(page) -> set[str]:
    return {c.id for c in page.changes if c.entity == "work_order" and c.op == "remove"}


def _drain(ctx: AppContext, who, cursor: str | None, seen: set[str]) -> str:
    """Pull until ``has_more`` is false, noting every removed order id."""
    while True:
        page = pull(ctx, principal=who, cursor=cursor, limit=3)
        seen |= _removed_ids(page)
        cursor = page.cursor
        if not page.has_more:
            return cursor


def _write(
    ctx: AppContext,
    company_id: uuid.UUID,
    entity_id: str,
    *,
    hold: threading.Event | None = None,
    held: threading.Event | None = None,
    early_xid: bool = True,
) -> None:
    with ctx.db.session() as session:
        if early_xid and ctx.db.dialect == "postgresql":
            session.execute(sa.text("SELECT pg_current_xact_id()"))  # the position is taken now
        changes.touch(session, company_id=company_id, entity="work_order", entity_id=entity_id, users=[None])
        if hold is not None:
            changes.write_log(session)  # the row is written, the transaction still open
            assert held is not None
            held.set()
            assert hold.wait(10)
        session.commit()


def test_a_later_commit_with_a_lower_position_is_not_skipped(ctx: AppContext) -> None:
    tech = principal(ctx, "tech1")
    company = tech.company_id
    seen: set[str] = set()
    cursor = _drain(ctx, tech, None, seen)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())

    if ctx.db.dialect != "postgresql":  # one writer at a time: in order, and nothing is skipped
        _write(ctx, company, first)
        _write(ctx, company, second)
        cursor = _drain(ctx, tech, cursor, seen)
        assert {first, second} <= seen
        return

    release, held = threading.Event(), threading.Event()
    slow = threading.Thread(target=_write, args=(ctx, company, first), kwargs={"hold": release, "held": held})
    slow.start()
    assert held.wait(10)
    # A second push of the same company commits while the first is still open: no shared lock.
    started = time.monotonic()
    _write(ctx, company, second)
    assert time.monotonic() - started < 2, "a push waited for another push of its company to commit"
    during = set()
    cursor = _drain(ctx, tech, cursor, during)
    assert first not in during  # not committed yet: invisible
    release.set()
    slow.join(10)
    after: set[str] = set()
    _drain(ctx, tech, cursor, after)
    # The first change has the lower position and committed last: the cursor did not pass it.
    assert first in after
    assert second in during | after


def test_racing_writers_and_pullers_miss_nothing(ctx: AppContext) -> None:
    tech = principal(ctx, "tech1")
    company = tech.company_id
    parallel = ctx.db.dialect == "postgresql"
    writers, per_writer, pullers = (6, 12, 3) if parallel else (1, 20, 2)
    written: list[str] = []
    lock = threading.Lock()
    done = threading.Event()
    start_cursors = [_drain(ctx, tech, None, set()) for _ in range(pullers)]
    seen: list[set[str]] = [set() for _ in range(pullers)]
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        rng = random.Random(n)
        try:
            for _ in range(per_writer):
                entity_id = str(uuid.uuid4())
                with ctx.db.session() as session:
                    if parallel:
                        session.execute(sa.text("SELECT pg_current_xact_id()"))
                    changes.touch(
                        session, company_id=company, entity="work_order", entity_id=entity_id, users=[None]
                    )
                    time.sleep(rng.random() * 0.015)  # positions taken, commits in any order
                    session.commit()
                with lock:
                    written.append(entity_id)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    def puller(k: int) -> None:
        cursor = start_cursors[k]
        try:
            while not done.is_set():
                cursor = _drain(ctx, tech, cursor, seen[k])
            _drain(ctx, tech, cursor, seen[k])  # once more after the last commit
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    readers = [threading.Thread(target=puller, args=(k,)) for k in range(pullers)]
    for t in readers + threads:
        t.start()
    for t in threads:
        t.join(60)
    done.set()
    for t in readers:
        t.join(60)
    assert not errors, errors
    assert len(written) == writers * per_writer
    for k in range(pullers):
        missing = set(written) - seen[k]
        assert not missing, f"puller {k} never saw {len(missing)} of {len(written)} changes"


def _hold_a_transaction_id(ctx: AppContext):
    """Another client's transaction that has written (it has an id) and stays open."""
    holder = ctx.db.engine.connect()
    transaction = holder.begin()
    if ctx.db.dialect == "postgresql":
        holder.execute(sa.text("SELECT pg_current_xact_id()"))
    return holder, transaction


def test_a_worker_of_the_previous_release_cannot_write_a_position_cursors_skip(ctx: AppContext) -> None:
    """During a rolling deploy an old worker still writes the company counter as the position."""
    tech = principal(ctx, "tech1")
    company = tech.company_id
    seen: set[str] = set()
    cursor = _drain(ctx, tech, None, seen)
    old = str(uuid.uuid4())
    with ctx.db.session() as session:  # what the previous release's write_log did
        version = changes._bump(session, company)
        session.execute(
            changes.CHANGES.insert().values(
                company_id=company,
                version=version,
                user_id=None,
                entity="work_order",
                entity_id=old,
                at=ctx.clock.now(),
            )
        )
    _drain(ctx, tech, cursor, seen)
    assert old in seen


def test_a_new_epoch_cuts_the_history_so_pulls_settle_after_a_restore(ctx: AppContext) -> None:
    """Restored into another cluster, old positions lie far above the new transaction ids."""
    tech = principal(ctx, "tech1")
    company = tech.company_id
    with ctx.db.session() as session:
        far = changes.head(session, company) + 50_000_000
        session.execute(
            changes.CHANGES.insert().values(
                company_id=company,
                version=far,
                user_id=None,
                entity="work_order",
                entity_id=str(uuid.uuid4()),
                at=ctx.clock.now(),
            )
        )
        counter = changes.ensure_counter(session, company)
        counter.pruned_below = far - 1000
        session.add(counter)
    with ctx.db.session() as session:
        changes.bump_epoch(session, company)  # heatcrew sync new-epoch, the documented step
    first = pull(ctx, principal=tech, cursor=None)
    second = pull(ctx, principal=tech, cursor=first.cursor)
    assert first.reset and not second.reset
    written = str(uuid.uuid4())
    _write(ctx, company, written)
    assert written in _removed_ids(pull(ctx, principal=tech, cursor=second.cursor))


def test_pruning_never_passes_the_horizon(ctx: AppContext) -> None:
    """A prune up to the newest row while an older writer is open would reset every pull."""
    tech = principal(ctx, "tech1")
    company = tech.company_id
    holder, transaction = _hold_a_transaction_id(ctx) if ctx.db.dialect == "postgresql" else (None, None)
    try:
        _write(ctx, company, str(uuid.uuid4()))
        with ctx.db.session() as session:
            changes.prune(session, company_id=company, below_version=changes.head(session, company) + 1)
        first = pull(ctx, principal=tech, cursor=None)
        second = pull(ctx, principal=tech, cursor=first.cursor)
        third = pull(ctx, principal=tech, cursor=second.cursor)
        assert not second.reset and not third.reset, "every pull is a full snapshot"
    finally:
        if holder is not None:
            transaction.rollback()
            holder.close()
