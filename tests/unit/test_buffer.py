"""Rows written in bulk land exactly as a Core insert or update would have written them.

On PostgreSQL the rows travel as one JSON array the server unpacks; on SQLite as an executemany.
Each test runs on both and reads the rows back through SQLAlchemy.
"""

import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from backend.clock import ManualClock
from backend.db import buffer
from backend.db.engine import Database
from backend.db.types import UTCDateTime

SHANGHAI = timezone(timedelta(hours=8))
AT = datetime(2026, 12, 7, 9, 30, 15, 123456, tzinfo=SHANGHAI)

probe_metadata = sa.MetaData()
PROBE = sa.Table(
    "buffer_probe",
    probe_metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("at", UTCDateTime, nullable=True),
    sa.Column("data", sa.JSON, nullable=True),
    sa.Column("flags", sa.JSON, nullable=False),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("done", sa.Boolean, nullable=False),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False, default="visit"),
)
# A row of this table refers to one of buffer_probe: the probe's row must be written first.
CHILD = sa.Table(
    "buffer_probe_child",
    probe_metadata,
    sa.Column("probe_id", sa.Uuid, sa.ForeignKey("buffer_probe.id"), primary_key=True),
    sa.Column("flag", sa.String(16), primary_key=True),
)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url, ManualClock(AT))
    probe_metadata.drop_all(database.engine)
    probe_metadata.create_all(database.engine)
    yield database
    probe_metadata.drop_all(database.engine)
    database.dispose()


def read_all(db: Database) -> list[sa.Row]:
    with db.engine.connect() as conn:
        return list(conn.execute(sa.select(PROBE).order_by(PROBE.c.count)))


def row(n: int, **values: object) -> dict[str, object]:
    return {
        "id": uuid.uuid4(),
        "at": AT,
        "data": {"rooms": [{"name": "卧室", "c": 18.5}], "by": 'a "quoted" \\ name'},
        "flags": ["skew"],
        "note": "更换阀门\n试压正常",
        "done": n % 2 == 0,
        "count": n,
        **values,
    }


def test_added_rows_read_back_as_written(db: Database) -> None:
    rows = [row(n) for n in range(3)] + [row(3, data=None, note=None, at=None, flags=[])]
    with db.session() as session:
        for r in rows:
            buffer.add_row(session, PROBE, r)
        # A query in the same transaction sees them: they are written before it runs.
        assert session.execute(sa.select(sa.func.count()).select_from(PROBE)).scalar_one() == 4
    stored = read_all(db)
    assert [s.id for s in stored] == [r["id"] for r in rows]
    first = stored[0]
    assert first.at == AT.astimezone(UTC)  # the same instant, read back in UTC
    assert first.data == {"rooms": [{"name": "卧室", "c": 18.5}], "by": 'a "quoted" \\ name'}
    assert first.flags == ["skew"]
    assert first.note == "更换阀门\n试压正常"
    assert [s.done for s in stored] == [True, False, True, False]
    assert first.kind == "visit"  # the column's default, as a Core insert would give it
    last = stored[-1]
    assert (last.data, last.note, last.at, last.flags) == (None, None, None, [])


def test_a_naive_datetime_is_refused_and_nothing_is_written(db: Database) -> None:
    with pytest.raises(ValueError, match="naive"), db.session() as session:
        buffer.add_row(session, PROBE, row(1))
        buffer.add_row(session, PROBE, row(2, at=datetime(2026, 12, 7, 9, 30)))
        session.flush()
    assert read_all(db) == []


def test_tracked_rows_write_back_only_what_changed(db: Database) -> None:
    with db.session() as session:
        buffer.insert_now(session, PROBE, [row(n) for n in range(2)])
    first, second = read_all(db)
    with db.session() as session:
        copies = [SimpleNamespace(**r._asdict()) for r in (first, second)]
        buffer.track(session, PROBE, copies)
        copies[0].note = "复查"
        copies[0].flags = [*copies[0].flags, "late"]
        copies[1].at = AT + timedelta(hours=1)
        # Someone else's change to another column of the same row, in this transaction, stays.
        session.execute(sa.update(PROBE).where(PROBE.c.id == first.id).values(count=10))
    after = {r.id: r for r in read_all(db)}
    assert (after[first.id].note, after[first.id].flags, after[first.id].count) == (
        "复查",
        ["skew", "late"],
        10,
    )
    assert after[first.id].at == first.at
    assert after[second.id].at == (AT + timedelta(hours=1)).astimezone(UTC)
    assert after[second.id].note == second.note


def test_a_rollback_drops_what_was_pending(db: Database) -> None:
    with pytest.raises(RuntimeError), db.session() as session:
        buffer.add_row(session, PROBE, row(1))
        raise RuntimeError("the batch failed before anything was sent")
    with db.session() as session:
        buffer.add_row(session, PROBE, row(2))
    assert [r.count for r in read_all(db)] == [2]


def test_rows_go_out_parents_first_whatever_order_they_were_added_in(db: Database) -> None:
    """A child's row may be added before its parent's (another parent's child opened the pending
    rows of its table first): the parent's table is still written first, so the key holds."""
    parent = row(1)
    with db.session() as session:
        buffer.add_row(session, CHILD, {"probe_id": parent["id"], "flag": "late"})
        buffer.add_row(session, PROBE, parent)
    with db.engine.connect() as conn:
        assert conn.execute(sa.select(CHILD.c.probe_id, CHILD.c.flag)).all() == [(parent["id"], "late")]
    assert [r.id for r in read_all(db)] == [parent["id"]]


def writes_of(db: Database) -> Iterator[list[str]]:
    sent: list[str] = []

    def note(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if not statement.lstrip().upper().startswith(("SELECT", "BEGIN", "COMMIT")):
            sent.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", note)
    try:
        yield sent
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", note)


def test_a_sends_writes_to_several_tables_go_as_one_statement(db: Database) -> None:
    """On PostgreSQL every write of one send is one statement (what a push pays per statement is
    paid once); elsewhere one statement per table."""
    with db.session() as session:
        buffer.insert_now(session, PROBE, [row(1)])
    (first,) = read_all(db)
    with db.session() as session:
        copy = SimpleNamespace(**first._asdict())
        buffer.track(session, PROBE, [copy])
        copy.note = "复查"
        buffer.add_row(session, CHILD, {"probe_id": first.id, "flag": "late"})
        writes = contextlib.contextmanager(writes_of)(db)
        with writes as sent:
            buffer.write_rows(session)
    assert [(r.count, r.note) for r in read_all(db)] == [(1, "复查")]
    with db.engine.connect() as conn:
        assert conn.execute(sa.select(CHILD.c.probe_id, CHILD.c.flag)).all() == [(first.id, "late")]
    if db.engine.dialect.name == "postgresql":
        assert len(sent) == 1 and sent[0].startswith("WITH w0 AS"), sent
    else:
        assert len(sent) == 2, sent


def test_a_row_added_and_changed_in_one_send_is_written_as_changed(db: Database) -> None:
    """One statement sees one snapshot: an update in it would not find a row the same statement
    inserts, so a send that inserts into a table and updates it writes them one after the other."""
    added = row(1)
    with db.session() as session:
        buffer.add_row(session, PROBE, added)
        copy = SimpleNamespace(**added, kind="visit")
        buffer.track(session, PROBE, [copy])
        copy.note = "改过"
        buffer.add_row(session, CHILD, {"probe_id": added["id"], "flag": "late"})
    assert [(r.id, r.note) for r in read_all(db)] == [(added["id"], "改过")]
