"""A supervisor's decision and a push on the same order, at the same moment (PostgreSQL, row locks).

A push locks its orders when the batch starts and updates their review items at its commit. A
decision used to lock the item first and then the order: the two could each hold what the other
waited for, and PostgreSQL then aborted one of them (deadlock). Decisions now take the locks in the
push's order, so the second one waits for the first and both go through.
"""

import logging
import threading
import time
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from backend.context import AppContext
from backend.review.models import ReviewItem
from backend.sync import push
from backend.work_orders import locking
from mobile_contract.sync import ActionEnvelope, PushRequest
from tests.api.helpers import login
from tests.api.test_review_api import completed, headers, item_of, set_policy
from tests.fixtures.field import principal

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


def test_an_approve_and_a_redo_answer_on_one_order_both_go_through(
    client: TestClient, ctx: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by review: the phone's ``redo.response`` locked the redo request, then the order; a
    decision on an item awaiting that answer locks the order, the item, then writes the request
    (cancelled). With a third writer on the order (another push) holding them both up, the two
    deadlocked: PostgreSQL aborted one of them (the push, which ran again; the decision, had it
    waited first, and the supervisor got a 503)."""
    set_policy(client, always_kinds=["repair"])
    order = completed(ctx)
    item = item_of(ctx, order.id)
    assert item is not None
    h = headers(client)
    due = (ctx.clock.now() + timedelta(days=1)).isoformat()
    redo = client.post(
        f"/api/v1/review/items/{item.id}/redo",
        json={"items": [{"kind": "photo", "purpose": "after"}], "due_at": due},
        headers=h,
    )
    assert redo.status_code == 201, redo.text
    login(client, "tech1", device_id="redo-answering-phone")
    tech = principal(ctx, "tech1", device_id="redo-answering-phone")
    now = ctx.clock.now()
    request = PushRequest(
        device_id=tech.device_id,
        sent_at=now,
        actions=[
            ActionEnvelope(
                id=uuid.uuid4(),
                seq=1,
                type="redo.response",
                v=1,
                occurred_at=now,
                payload={"redo_request_id": redo.json()["id"], "note": "已重拍"},
            )
        ],
    )
    holding, release, failures, answers = threading.Event(), threading.Event(), [], []

    def other_writer() -> None:  # another push on the order, holding it for a while
        try:
            with ctx.db.session() as session:
                locking.get_order_for_update(session, order_id=order.id, company_id=order.company_id)
                holding.set()
                release.wait(15)
        except Exception as exc:  # the test reports it
            failures.append(exc)

    def phone() -> None:
        try:
            answers.append(push.push(ctx, request=request, principal=tech))
        except Exception as exc:  # the test reports it
            failures.append(exc)

    def conductor() -> None:
        deadline = time.monotonic() + 10
        while _lock_waits(ctx) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)  # the decision waits for the order
        pushing.start()
        while _lock_waits(ctx) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)  # the push waits for it too
        time.sleep(1.5)  # past deadlock_timeout: the push's own check found no cycle
        release.set()

    caplog.set_level(logging.INFO, logger="heatcrew.sync")
    writer, pushing, conducting = (threading.Thread(target=f) for f in (other_writer, phone, conductor))
    writer.start()
    assert holding.wait(5)
    conducting.start()
    answer = client.post(f"/api/v1/review/items/{item.id}/approve", headers=h)
    for thread in (conducting, writer, pushing):
        thread.join(15)
    assert not failures, failures
    assert answer.status_code == 200, answer.text
    # Neither was aborted for a deadlock (PostgreSQL picked the push, which ran again).
    retried = [r.getMessage() for r in caplog.records if "retried" in r.getMessage()]
    assert not retried, retried
    (result,) = answers[0].results
    assert result.status == "applied", result
    after = item_of(ctx, order.id)
    assert after is not None and after.status == "approved"
