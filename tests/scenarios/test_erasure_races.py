"""A resident's erasure racing a push about their household, on PostgreSQL (where the two run at
once): a push that read the household just before the erasure committed, and waited for its
orders until after, still ends blanked."""

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from backend.audit.service import AUDIT_LOCK
from backend.clock import ManualClock
from backend.context import AppContext
from tests.api.test_database_trouble import blocked_backend
from tests.api.test_pipl import RESIDENT, admin, erase, personal_data, visited  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("demo")


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """PostgreSQL only: on SQLite one writer at a time leaves nothing to race."""
    return postgres_url


def test_a_push_waiting_on_the_erasures_locks_is_blanked_after_it(
    client: TestClient,
    ctx: AppContext,
    clock: ManualClock,
    visited: dict[str, Any],  # noqa: F811
) -> None:
    phone, order_id = visited["phone"], visited["order_id"]
    phone.enqueue("work_order.note", {"work_order_id": order_id, "text": f"{RESIDENT}家门口有狗"})
    clock.advance(minutes=5)
    headers = admin(client)
    company = str(ctx.db.engine.connect().execute(sa.text("SELECT id FROM company")).scalar_one())
    monitor = ctx.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    database = ctx.db.engine.url.database
    # The audit chain's lock is the erasure's last step before its commit: held here, the erasure
    # stops there with the household's orders locked and ``erased_at`` written, not committed.
    holder = ctx.db.engine.connect()
    holder.begin()
    holder.execute(sa.text("SELECT pg_advisory_xact_lock(:c, hashtext(:k))"), {"c": AUDIT_LOCK, "k": company})
    with ThreadPoolExecutor(2) as pool:
        erasing = pool.submit(erase, client, visited["household_id"], headers)
        blocked_backend(monitor, database, events=("advisory",))
        # The push reads the household now (not yet erased) and waits for the orders.
        pushing = pool.submit(phone.push)
        blocked_backend(monitor, database, events=("transactionid", "tuple"))
        holder.rollback()  # the erasure commits; the push goes on with what it read before
        assert erasing.result(timeout=30).status_code == 200
        report = pushing.result(timeout=30)
    holder.close()
    monitor.close()
    assert report.applied == 1 and report.rejected == 0, phone.pending()
    (order,) = [o for o in personal_data(client, visited["household_id"], headers).json()["orders"]]
    assert [e["data"]["text"] for e in order["timeline"] if e["type"] == "note"] == ["[erased]", "[erased]"]
    with ctx.db.engine.connect() as conn:
        payloads = conn.execute(sa.text("SELECT payload FROM sync_action")).scalars().all()
    assert not any(RESIDENT in p for p in payloads)
