"""Pushes while the database misbehaves: a 503 keeps the queue, and the statement timeout that
guards every statement leaves the push path's pipelined writes alone."""

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from backend.context import AppContext
from backend.settings import Settings
from mobile_contract.client import Offline
from tests.scenarios.conftest import count, first_order

pytestmark = pytest.mark.usefixtures("demo")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Short enough to bite if it applied to a whole pipeline rather than to each statement.
    return dataclasses.replace(settings, db_statement_timeout=1.0)


def test_a_long_batch_under_a_statement_timeout_applies_whole(make_phone, ctx: AppContext) -> None:
    phone = make_phone("tech1")
    phone.pull()
    order_id = first_order(phone)
    phone.enqueue("work_order.accept", {"work_order_id": order_id})
    for n in range(160):  # rows go to the database mid-batch, three times over
        phone.enqueue("work_order.note", {"work_order_id": order_id, "text": f"读数 {n}"})
    report = phone.push()
    assert report.applied == 161 and report.rejected == 0
    assert phone.pending() == []
    assert count(ctx, "SELECT count(*) FROM sync_action WHERE device_id = :d", d=phone.device_id) == 161


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_push_whose_connection_is_terminated_keeps_the_queue(
    make_phone, ctx: AppContext, database_url: str
) -> None:
    phone = make_phone("tech1")
    phone.pull()
    order_id = first_order(phone)
    phone.enqueue("work_order.accept", {"work_order_id": order_id})
    for n in range(3):
        phone.enqueue("work_order.note", {"work_order_id": order_id, "text": f"note {n}"})
    database = make_url(database_url).database
    holder_engine = sa.create_engine(database_url)
    monitor = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with holder_engine.connect() as holder, monitor.connect() as watch, ThreadPoolExecutor(1) as pool:
            holder.execute(sa.text("LOCK TABLE sync_device IN ACCESS EXCLUSIVE MODE"))
            pending = pool.submit(phone.push)
            deadline = time.monotonic() + 10
            pid = None
            while pid is None and time.monotonic() < deadline:
                pid = watch.execute(
                    sa.text(
                        "SELECT pid FROM pg_stat_activity WHERE datname = :db"
                        " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                    ),
                    {"db": database},
                ).scalar()
                time.sleep(0.05)
            assert pid is not None, "the push never reached the database"
            watch.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            try:
                with pytest.raises(Offline, match="503"):
                    pending.result(timeout=30)
            finally:
                holder.rollback()
    finally:
        holder_engine.dispose()
        monitor.dispose()
    assert len(phone.pending()) == 4  # nothing lost, nothing marked done
    report = phone.push()
    assert report.applied == 4 and report.rejected == 0
    assert count(ctx, "SELECT count(*) FROM sync_action WHERE device_id = :d", d=phone.device_id) == 4
