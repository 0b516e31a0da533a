"""The audit chain against someone with the database in hand, against many writers at once, and
through the years: the triggers refuse edits, verification finds what was changed anyway (with the
triggers out of the way), concurrent writers make one chain, and pruning keeps it verifiable."""

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from backend import audit
from backend.audit.models import AuditAnchor, AuditEvent
from backend.audit.verify import verify_chain
from backend.cli import main
from backend.clock import ManualClock
from backend.context import AppContext
from backend.errors import InvalidInput

EVENTS = AuditEvent.__table__
ANCHORS = AuditAnchor.__table__


def sqlite_triggers() -> tuple[str, ...]:
    import importlib

    return importlib.import_module("backend.db.migrations.versions.0013_audit").SQLITE_TRIGGERS


@contextmanager
def tampering(ctx: AppContext) -> Iterator[sa.Connection]:
    """A connection on which the triggers do not fire: PostgreSQL's replica mode (the tests'
    superuser may set it); on SQLite the triggers are dropped and made again afterwards."""
    with ctx.db.engine.begin() as conn:
        if ctx.db.dialect == "postgresql":
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
            yield conn
            return
        names = conn.execute(
            sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name LIKE 'audit_%'")
        ).scalars()
        for name in list(names):
            conn.execute(sa.text(f"DROP TRIGGER {name}"))
        yield conn
        for statement in sqlite_triggers():
            conn.execute(sa.text(statement))


def chain(ctx: AppContext, events: int) -> uuid.UUID:
    company = uuid.uuid4()
    for n in range(events):
        audit.record_alone(
            ctx.db,
            company_id=company,
            event=audit.Event.user_enabled,
            target_type="user",
            target_id=f"user-{n}",
            detail={"n": n},
        )
    return company


def report(ctx: AppContext, company: uuid.UUID):
    with ctx.db.session(readonly=True) as session:
        return verify_chain(session, company_id=company)


def where(company: uuid.UUID, seq: int) -> sa.ColumnElement[bool]:
    return sa.and_(EVENTS.c.company_id == company, EVENTS.c.seq == seq)


def test_the_database_refuses_to_edit_or_remove_an_event(ctx: AppContext) -> None:
    company = chain(ctx, 3)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), ctx.db.engine.begin() as conn:
        conn.execute(EVENTS.update().where(where(company, 2)).values(detail={"n": 99}))
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), ctx.db.engine.begin() as conn:
        conn.execute(EVENTS.delete().where(where(company, 3)))
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), ctx.db.engine.begin() as conn:
        conn.execute(EVENTS.delete())
    if ctx.db.dialect == "postgresql":
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), ctx.db.engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE audit_event"))
    rep = report(ctx, company)
    assert rep.ok and rep.events == 3 and rep.head_seq == 3


def test_verify_finds_an_edited_a_deleted_a_reordered_and_a_relinked_row(
    ctx: AppContext, database_url: str, tmp_path: Path
) -> None:
    intact, edited, deleted, reordered, relinked = (chain(ctx, 5) for _ in range(5))
    with tampering(ctx) as conn:
        conn.execute(EVENTS.update().where(where(edited, 2)).values(detail={"n": 42}))
        conn.execute(EVENTS.delete().where(where(deleted, 3)))
        conn.execute(EVENTS.update().where(where(reordered, 3)).values(seq=-1))
        conn.execute(EVENTS.update().where(where(reordered, 4)).values(seq=3))
        conn.execute(EVENTS.update().where(where(reordered, -1)).values(seq=4))
        # A careful editor gives the row a fresh hash: the next row was chained to the old one.
        row = conn.execute(sa.select(EVENTS).where(where(relinked, 2))).one()
        fields = audit.service.chained_fields(
            company_id=relinked,
            seq=2,
            at=row.at,
            event=row.event,
            actor_user_id=row.actor_user_id,
            actor_device_id=row.actor_device_id,
            target_type=row.target_type,
            target_id="someone-else",
            request_id=row.request_id,
            detail=row.detail,
        )
        conn.execute(
            EVENTS.update()
            .where(where(relinked, 2))
            .values(target_id="someone-else", hash=audit.service.row_hash(row.prev_hash, fields))
        )
    assert report(ctx, intact).ok
    found = {
        name: (r.broken.seq, r.broken.kind) if r.broken else None
        for name, r in (
            ("edited", report(ctx, edited)),
            ("deleted", report(ctx, deleted)),
            ("reordered", report(ctx, reordered)),
            ("relinked", report(ctx, relinked)),
        )
    }
    assert found == {
        "edited": (2, "edited"),
        "deleted": (3, "deleted"),
        "reordered": (3, "reordered"),
        "relinked": (2, "relinked"),
    }

    runner = CliRunner()
    env = {"HEATCREW_DATABASE_URL": database_url, "HEATCREW_VAR_DIR": str(tmp_path / "var")}
    every = runner.invoke(main, ["audit", "verify"], env=env, catch_exceptions=False)
    assert every.exit_code == 1, every.output
    assert f"{deleted}: BROKEN at 3 (deleted)" in every.output
    assert f"{reordered}: BROKEN at 3 (reordered)" in every.output
    assert f"{intact}: ok, 5 events after anchor 0, head 5 " in every.output
    one = runner.invoke(main, ["audit", "verify", "--company", str(intact)], env=env, catch_exceptions=False)
    assert one.exit_code == 0, one.output
    broken = runner.invoke(
        main, ["audit", "verify", "--company", str(edited)], env=env, catch_exceptions=False
    )
    assert broken.exit_code == 1 and "BROKEN at 2 (edited)" in broken.output


def test_many_writers_at_once_make_one_unbroken_chain(ctx: AppContext) -> None:
    if ctx.db.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    company, threads, each = uuid.uuid4(), 8, 25
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            start.wait()
            for i in range(each):
                with ctx.db.session() as session:
                    # Some transactions take a while before they record: the lock waits for none.
                    session.execute(sa.text("SELECT pg_sleep(0.001)"))
                    audit.record(session, company_id=company, event=audit.Event.login, target_id=f"{n}-{i}")
                    if i % 5 == 0:
                        audit.record(
                            session, company_id=company, event=audit.Event.login, target_id=f"{n}-{i}b"
                        )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    total = threads * (each + each // 5)
    with ctx.db.session(readonly=True) as session:
        seqs = session.execute(
            sa.select(EVENTS.c.seq).where(EVENTS.c.company_id == company).order_by(EVENTS.c.seq)
        ).scalars()
        assert list(seqs) == list(range(1, total + 1))
    rep = report(ctx, company)
    assert rep.ok and rep.events == total


def test_pruning_removes_only_an_old_prefix_and_the_rest_still_verifies(
    ctx: AppContext, clock: ManualClock
) -> None:
    company = uuid.uuid4()

    def at(moment: datetime, n: int) -> None:
        clock.set(moment)
        for _ in range(n):
            audit.record_alone(ctx.db, company_id=company, event=audit.Event.login, target_type="user")

    now = clock.now()
    at(datetime(2020, 1, 10, tzinfo=UTC), 3)
    at(datetime(2020, 6, 10, tzinfo=UTC), 2)
    at(now, 2)
    with pytest.raises(InvalidInput, match="kept 3 years"), ctx.db.session() as session:
        audit.prune_before(session, company_id=company, before=datetime(2024, 1, 1, tzinfo=UTC))
    with ctx.db.session() as session:
        assert audit.prune_before(session, company_id=company, before=datetime(2020, 3, 1, tzinfo=UTC)) == 3
    rep = report(ctx, company)
    assert rep.ok and (rep.anchor_seq, rep.events, rep.head_seq) == (3, 5, 8)
    with ctx.db.session(readonly=True) as session:
        pruned = session.execute(
            sa.select(EVENTS).where(EVENTS.c.company_id == company, EVENTS.c.event == "audit.pruned")
        ).one()
        assert pruned.detail == {"before": "2020-03-01T00:00:00+00:00", "removed": 3, "anchor_seq": 3}

    # The trigger lets nothing else go: an old row the anchor does not cover, a young row even
    # under an anchor moved over it, nor the anchor itself, nor an anchor moved back.
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), ctx.db.engine.begin() as conn:
        conn.execute(EVENTS.delete().where(where(company, 4)))
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), ctx.db.engine.begin() as conn:
        conn.execute(ANCHORS.update().where(ANCHORS.c.company_id == company).values(seq=100))
        conn.execute(EVENTS.delete().where(where(company, 7)))
    with pytest.raises(sa.exc.DBAPIError, match="only moves forward"), ctx.db.engine.begin() as conn:
        conn.execute(ANCHORS.update().where(ANCHORS.c.company_id == company).values(seq=1))
    with pytest.raises(sa.exc.DBAPIError, match="only moves forward"), ctx.db.engine.begin() as conn:
        conn.execute(ANCHORS.delete())

    with ctx.db.session() as session:
        assert audit.prune_before(session, company_id=company, before=datetime(2021, 1, 1, tzinfo=UTC)) == 2
        assert audit.prune_before(session, company_id=company, before=datetime(2021, 1, 1, tzinfo=UTC)) == 0
    audit.record_alone(ctx.db, company_id=company, event=audit.Event.login)
    rep = report(ctx, company)
    assert rep.ok and (rep.anchor_seq, rep.head_seq) == (5, 10)

    # An edit after pruning is found as before, counted from the anchor.
    with tampering(ctx) as conn:
        conn.execute(EVENTS.delete().where(where(company, 6)))
    broken = report(ctx, company).broken
    assert broken is not None and (broken.seq, broken.kind) == (6, "deleted")
