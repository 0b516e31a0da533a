"""``db.direct``: the push path's statements run on the driver's cursor give the rows SQLAlchemy
gives, value and type; a refused write is SQLAlchemy's error with its values hidden; a lost
connection is invalidated and reads as the database being unavailable. Both databases."""

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from backend.context import AppContext
from backend.db import direct
from backend.db.failures import is_unavailable
from backend.sync import pull, push
from backend.work_orders import locking
from tests.api.helpers import login
from tests.scenarios.test_sync_scenarios import envelope, raw_push

pytestmark = pytest.mark.usefixtures("demo")


def _same(found: list, expected: list) -> None:
    assert len(found) == len(expected) > 0
    for got, want in zip(found, expected, strict=True):
        assert tuple(got) == tuple(want)
        for a, b in zip(got, want, strict=True):
            assert type(a) is type(b), (a, b)
            if isinstance(a, datetime):
                assert a.utcoffset() == b.utcoffset() == UTC.utcoffset(None)


def _probe_insert(ctx: AppContext) -> str:
    """A write of one rate counter row (scope, key) in the driver's own placeholders."""
    mark = "%s" if ctx.db.dialect == "postgresql" else "?"
    return f"INSERT INTO rate_counter (scope, key, window_start, hits) VALUES ({mark}, {mark}, 1, 1)"


def _probes(conn: sa.Connection) -> int:
    return conn.exec_driver_sql("SELECT count(*) FROM rate_counter WHERE scope = 'direct-probe'").scalar_one()


def test_the_push_statements_give_the_rows_sqlalchemy_gives(client: TestClient, ctx: AppContext) -> None:
    tokens = login(client, "tech1")
    device_id = "phone-of-tech1"
    with ctx.db.engine.connect() as conn:
        order_ids = list(conn.execute(sa.select(locking.ORDERS.c.id)).scalars())
        session_id = conn.execute(
            sa.text("SELECT id FROM auth_session WHERE device_id = :d"), {"d": device_id}
        ).scalar_one()
    note = envelope(1, "work_order.note", {"work_order_id": str(order_ids[0]), "text": "一"})
    assert raw_push(client, tokens, device_id, [note], datetime.now(UTC))["results"][0]["status"] == "applied"
    admission = {
        "session_id": uuid.UUID(str(session_id)),
        "user_id": uuid.UUID(tokens["user"]["id"]),
        "device_id": device_id,
    }
    with ctx.db.engine.connect() as conn:
        user_id, company_id = admission["user_id"], uuid.UUID(tokens["user"]["company_id"])
        mine = conn.execute(pull._SCOPE, {"user_id": user_id}).all()
        assert mine, "tech1 has open orders"
        admit_and_count = (
            pull._ADMIT_AND_COUNT_POSTGRES if ctx.db.dialect == "postgresql" else pull._ADMIT_AND_COUNT
        )
        feed = {"company_id": company_id, "user_id": user_id, "version": 0, "row": 0, "limit": 500}
        touched = {"user_id": user_id, "ids": order_ids[:3], "households": [row.household_id for row in mine]}
        for statement, params in (
            (push._ADMIT_LOCK_DEVICE_AND_EPOCH, admission),
            (locking._LOCK_ORDERS, {"ids": order_ids}),
            (admit_and_count, admission),
            (pull._FEED, feed),
            (pull._CLOCKS_AND_APPOINTMENTS, {"ids": order_ids}),
        ):
            _same(direct.rows(conn, statement, params), conn.execute(statement, params).all())
        for statement, params in ((pull._TOUCHED, touched), (pull._SCOPE, {"user_id": user_id})):
            found, expected = (
                direct.rows(conn, statement, params, named=True),
                conn.execute(statement, params).all(),
            )
            _same(found, expected)
            assert [row._fields for row in found] == [tuple(row._fields) for row in expected]
        assert direct.first(conn, locking._LOCK_ORDERS, {"ids": [uuid.uuid4()]}) is None
        conn.rollback()
        if ctx.db.dialect == "postgresql":
            assert conn.exec_driver_sql("SHOW TimeZone").scalar_one() == "UTC"


def test_a_refused_write_is_sqlalchemys_error_with_its_values_hidden(ctx: AppContext) -> None:
    secret = "13800138000-not-in-any-log"
    sql = _probe_insert(ctx)
    with ctx.db.engine.connect() as conn:
        direct.execute(conn, sql, ("direct-probe", secret))
        with pytest.raises(sa.exc.IntegrityError) as refused:
            direct.execute(conn, sql, ("direct-probe", secret))
        conn.rollback()
    # The values sent stay out of the error (and so of any log quoting it); the server's own
    # detail names the key it refused, as it does through SQLAlchemy.
    assert "[SQL parameters hidden due to hide_parameters=True]" in str(refused.value)
    assert not is_unavailable(refused.value)
    with ctx.db.engine.connect() as conn:  # the first insert went with the rollback
        assert _probes(conn) == 0


def test_a_lost_connection_is_invalidated_and_reads_as_unavailable(ctx: AppContext) -> None:
    if ctx.db.dialect != "postgresql":
        pytest.skip("SQLite: a file, no connection to lose")
    engine = ctx.db.engine
    with engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with engine.connect() as watch:
            assert watch.execute(sa.text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid}).scalar()
        with pytest.raises(sa.exc.DBAPIError) as lost:
            direct.rows(conn, locking._LOCK_ORDERS, {"ids": [uuid.uuid4()]})
        assert lost.value.connection_invalidated and is_unavailable(lost.value)
        assert conn.invalidated
    # As SQLAlchemy does for its own statements: the pool's older connections go too (a failover
    # leaves them all dead), not one failed request each.
    assert engine.pool._invalidate_time > 0
    with engine.connect() as conn:  # the pool hands out a live one
        assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1


def test_a_write_on_a_fresh_connection_is_committed_with_it(ctx: AppContext) -> None:
    """The transaction the driver opens is SQLAlchemy's: its commit keeps the write."""
    sql = _probe_insert(ctx)
    with ctx.db.engine.connect() as conn:
        direct.execute(conn, sql, ("direct-probe", "fresh"))
        conn.commit()
    with ctx.db.engine.connect() as conn:
        assert _probes(conn) == 1


def test_a_session_not_in_utc_gets_sqlalchemys_conversion(ctx: AppContext) -> None:
    """A pooler that drops the startup option, or a SET TIME ZONE: the rows still come out in UTC."""
    if ctx.db.dialect != "postgresql":
        pytest.skip("SQLite keeps no zone")
    with ctx.db.engine.connect() as conn:
        conn.exec_driver_sql("SET TIME ZONE 'Asia/Shanghai'")
        found = direct.rows(
            conn, locking._LOCK_ORDERS, {"ids": list(conn.execute(sa.select(locking.ORDERS.c.id)).scalars())}
        )
        times = [value for row in found for value in row if isinstance(value, datetime)]
        assert times and all(value.utcoffset() == UTC.utcoffset(None) for value in times)
        conn.rollback()
        conn.exec_driver_sql("RESET TIME ZONE")
