"""A delta pull, page by page, leaves the phone with exactly what a full snapshot gives.

Random dispatching and field work on a few households shared by two technicians and nobody;
after each step the phone may pull a page of any size. Whatever the history, the phone's copy
of orders and households (presence, content, the phone's mask, the last visits) equals a fresh
snapshot.
"""

import contextlib
import uuid
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from backend.auth.models import User
from backend.clock import ManualClock
from backend.context import AppContext
from backend.errors import HeatCrewError
from backend.sync import pull as pull_feed
from backend.work_orders import service
from backend.work_orders.models import WorkOrder
from tests.api.test_review_api import visit
from tests.fixtures.field import act, new_order, principal, take_photos, when

pytestmark = pytest.mark.usefixtures("demo")

ACCOUNTS = ("100202", "200102")
PEOPLE = ("tech1", "tech2", None)
ENTITIES = ("work_order", "household")

steps = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "create",
                "create",
                "complete",
                "assign",
                "cancel",
                "accept",
                "depart",
                "no_access",
                "ask_return",
                "approve_return",
                "refuse_return",
                "note",
                "pull",
                "pull",
            ]
        ),
        st.integers(min_value=0, max_value=20),
        st.sampled_from(PEOPLE),
        st.integers(min_value=1, max_value=4),
    ),
    min_size=4,
    max_size=25,
)


def apply(replica: dict[tuple[str, str], Any], response: Any) -> None:
    if response.reset:
        replica.clear()
    for change in response.changes:
        if change.entity not in ENTITIES:
            continue
        if change.op == "remove":
            replica.pop((change.entity, change.id), None)
        else:
            replica[(change.entity, change.id)] = change.data


def pull_page(ctx: AppContext, who: Any, replica: dict, cursor: str | None, limit: int) -> tuple[str, bool]:
    response = pull_feed.pull(ctx, principal=who, cursor=cursor, limit=limit)
    apply(replica, response)
    return response.cursor, response.has_more


def step(ctx: AppContext, name: str, order_id: uuid.UUID, who: str | None) -> None:
    dispatcher = principal(ctx, "dispatcher1")
    now = ctx.clock.now()
    with ctx.db.session() as session:
        order = service.get_order_for_update(session, order_id=order_id, company_id=dispatcher.company_id)
        tech = None
        if order.assignee_id is not None:
            tech = principal(ctx, session.get(User, order.assignee_id).username)
        if name == "assign" and who:
            service.assign(
                session, actor=dispatcher, order=order, assignee_id=principal(ctx, who).user_id, now=now
            )
        elif name == "cancel":
            service.cancel(session, actor=dispatcher, order=order, reason="dup", now=now)
        elif name == "approve_return":
            service.approve_return(session, actor=dispatcher, order=order, now=now, reason=None)
        elif name == "refuse_return":
            service.refuse_return(session, actor=dispatcher, order=order, now=now, reason=None)
        elif tech is not None and name == "accept":
            service.accept(session, actor=tech, order=order, when=when(now))
        elif tech is not None and name == "depart":
            service.depart(session, actor=tech, order=order, when=when(now))
        elif tech is not None and name == "no_access":  # as far as a failed visit, in one go
            if order.state == "assigned":
                service.accept(session, actor=tech, order=order, when=when(now))
            if order.state == "accepted":
                service.depart(session, actor=tech, order=order, when=when(now))
            service.record_no_access(session, actor=tech, order=order, when=when(now), attempts=[], note="x")
        elif tech is not None and name == "note":  # changes the order, not what the household shows
            service.note(session, actor=tech, order=order, when=when(now), text="补记")
        elif tech is not None and name == "ask_return":
            service.request_return(session, actor=tech, order=order, when=when(now), reason="parts")


def finish(ctx: AppContext, order_id: uuid.UUID) -> None:
    """Its assignee visits and completes an assigned order (no longer active: the phone masks)."""
    with ctx.db.session(readonly=True) as session:
        order = session.get(WorkOrder, order_id)
        state, assignee = order.state, order.assignee_id
    if state != "assigned" or assignee is None:
        return
    with ctx.db.session(readonly=True) as session:
        tech = principal(ctx, session.get(User, assignee).username)
    visit(ctx, order_id, tech)
    take_photos(ctx, order_id, tech, "before", "after")
    act(ctx, order_id, "complete", tech, result="fixed", satisfaction=5)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=steps)
# Two orders of the user at one household; the one that changes leaves the active states, the
# other is still active: the phone keeps the resident's number in full.
# Another technician completes a visit at a household the user holds: its last visits change.
@example(
    plan=[
        ("create", 0, "tech1", 1),
        ("create", 0, "tech2", 1),
        ("pull", 0, None, 4),
        ("complete", 1, None, 1),
        ("pull", 0, None, 4),
    ]
)
@example(
    plan=[
        ("create", 0, "tech1", 1),
        ("create", 0, "tech1", 1),
        ("pull", 0, None, 4),
        ("complete", 0, None, 1),
        ("pull", 0, None, 4),
    ]
)
def test_delta_pages_agree_with_a_snapshot(ctx: AppContext, clock: ManualClock, plan: list) -> None:
    tech1 = principal(ctx, "tech1")
    replica: dict[tuple[str, str], Any] = {}
    cursor, _ = pull_page(ctx, tech1, replica, None, 1000)
    orders: list[uuid.UUID] = []
    for name, pick, who, limit in plan:
        clock.advance(seconds=30)
        if name == "create":
            orders.append(new_order(ctx, account=ACCOUNTS[pick % len(ACCOUNTS)], assignee=who).id)
        elif name == "pull":
            cursor, _ = pull_page(ctx, tech1, replica, cursor, limit)
        elif name == "complete" and orders:
            finish(ctx, orders[pick % len(orders)])
        elif orders:
            with contextlib.suppress(HeatCrewError):
                step(ctx, name, orders[pick % len(orders)], who)
    for _ in range(200):
        cursor, more = pull_page(ctx, tech1, replica, cursor, 2)
        if not more:
            break
    snapshot: dict[tuple[str, str], Any] = {}
    pull_page(ctx, tech1, snapshot, None, 1000)
    assert replica.keys() == snapshot.keys()
    for key in snapshot:
        assert replica[key] == snapshot[key], key
    # Leave the next example a clean slate: these orders are cancelled.
    for order_id in orders:
        with contextlib.suppress(HeatCrewError):
            step(ctx, "cancel", order_id, None)
    clock.advance(timedelta(minutes=1))
