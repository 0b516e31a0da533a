"""A supervisor's decision and a push on the same order, at the same moment (PostgreSQL, row locks).

A push locks its orders when the batch starts and updates their review items at its commit. A
decision used to lock the item first and then the order: the two could each hold what the other
waited for, and PostgreSQL then aborted one of them (deadlock). Decisions now take the locks in the
push's order, so the second one waits for the first and both go through.
"""

import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from backend.context import AppContext
from backend.review.models import ReviewItem
from backend.work_orders import locking
from tests.api.test_review_api import completed, headers, item_of, set_policy

__all__ = ()

pytestmark = pytest.mark.usefixtures("demo")

ITEMS = ReviewItem.__table__


@pytest.fixture
def database_url(postgres_url: str) -> str:
    return postgres_url


def _lock_waits(ctx: AppContext) -> int:
    with ctx.db.engine.connect() as connection:
        return connection.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )
        ).scalar_one()


@pytest.mark.parametrize("decision", ["approve", "reject", "redo"])
def test_a_decision_waits_for_a_push_holding_the_order_and_neither_fails(
    client: TestClient, ctx: AppContext, decision: str
) -> None:
    set_policy(client, always_kinds=["repair"])
    order = completed(ctx)
    item = item_of(ctx, order.id)
    assert item is not None and item.status == "pending"
    h = headers(client)
    holding, failures = threading.Event(), []

    def push_like_writer() -> None:
        # What a push batch does to an order under review: its lock first, the item's row at the commit.
        try:
            with ctx.db.session() as session:
                locking.get_order_for_update(session, order_id=order.id, company_id=order.company_id)
                holding.set()
                deadline = time.monotonic() + 5
                while _lock_waits(ctx) == 0 and time.monotonic() < deadline:
                    time.sleep(0.02)  # until the decision waits on a lock
                session.execute(sa.update(ITEMS).where(ITEMS.c.id == item.id).values(flags=["clock_skew"]))
        except Exception as exc:  # the test reports it
            failures.append(exc)

    writer = threading.Thread(target=push_like_writer)
    writer.start()
    assert holding.wait(5)
    url = f"/api/v1/review/items/{item.id}/{'redo' if decision == 'redo' else decision}"
    body = {
        "approve": None,
        "reject": {"reason": "照片不清楚"},
        "redo": {
            "items": [{"kind": "photo", "purpose": "after"}],
            "due_at": (ctx.clock.now() + timedelta(days=1)).isoformat(),
        },
    }[decision]
    answer = client.post(url, json=body, headers=h) if body is not None else client.post(url, headers=h)
    writer.join(10)
    assert not failures, f"the push's transaction failed: {failures}"
    assert answer.status_code == (201 if decision == "redo" else 200), answer.text
    after = item_of(ctx, order.id)
    assert after is not None
    assert after.flags == ["clock_skew"]  # the push's write stayed
    assert after.status == {"approve": "approved", "reject": "rejected", "redo": "redo_requested"}[decision]
