"""A receipt the resident signs must agree with the order's records: technician, arrival, completion."""

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from litestar.testing import TestClient

from backend.context import AppContext
from tests.api.helpers import auth
from tests.fixtures.field import act, principal, receipt, take_photos
from tests.fixtures.pushing import Phone
from tests.scenarios.test_action_catalogue import BOOKKEEPING, arrived, order, snapshot, step

pytestmark = pytest.mark.usefixtures("demo")


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def issue(phone: Phone, order_id: str, **changes: Any) -> dict[str, Any]:
    document = {"type": "receipt", "id": str(uuid.uuid4())}
    return phone.push("document.issue", 1, {"document": document, "content": receipt(order_id, **changes)})


def test_a_receipt_whose_arrival_is_half_an_hour_off_is_refused_without_a_trace(
    client: TestClient, ctx: AppContext
) -> None:
    """It used to be issued, and verified ``valid`` once signed."""
    order_id = arrived(ctx)  # the door check-in is recorded now
    now = ctx.clock.now()
    phone = Phone(client, ctx, "tech1")
    before = snapshot(ctx)
    result = issue(phone, order_id, arrived_at=iso(now - timedelta(minutes=30)), completed_at=iso(now))
    assert (result["status"], result["code"]) == ("rejected", "content_disagrees"), result
    assert result["disagreeing"] == ["arrived_at"]
    assert "arrived_at" in result["message"]
    after = snapshot(ctx)
    assert {name for name in after if after[name] != before[name]} <= BOOKKEEPING
    # Sent again, the same answer; the fields are named in its message.
    again = phone.resend()
    assert (again["status"], again["original_status"], again["code"]) == (
        "duplicate",
        "rejected",
        "content_disagrees",
    )
    assert "arrived_at" in again["message"]


def test_a_receipt_that_agrees_is_issued(client: TestClient, ctx: AppContext) -> None:
    order_id = arrived(ctx)
    now = ctx.clock.now()
    ctx.clock.advance(minutes=50)  # the work takes a while; the receipt is written as it ends
    phone = Phone(client, ctx, "tech1")
    result = issue(
        phone, order_id, arrived_at=iso(now + timedelta(minutes=4)), completed_at=iso(ctx.clock.now())
    )
    assert result["status"] == "applied", result
    # Without an arrival time (work done without a visit) only the rest is compared.
    assert issue(phone, order_id, arrived_at=None, completed_at=iso(ctx.clock.now()))["status"] == "applied"


def test_a_receipt_naming_another_technician_is_refused(client: TestClient, ctx: AppContext) -> None:
    order_id = arrived(ctx)
    now = iso(ctx.clock.now())
    phone = Phone(client, ctx, "tech1")
    colleague = issue(
        phone, order_id, technician_name="李强", staff_number="T0302", arrived_at=now, completed_at=now
    )
    assert (colleague["code"], colleague["disagreeing"]) == (
        "content_disagrees",
        ["technician_name", "staff_number"],
    )
    misspelt = issue(phone, order_id, technician_name="维修工 张 伟", arrived_at=now, completed_at=now)
    assert misspelt["disagreeing"] == ["technician_name"]


def test_the_completion_is_compared_with_the_issue_time_then_with_the_recorded_completion(
    client: TestClient, ctx: AppContext
) -> None:
    order_id = arrived(ctx)
    arrival = ctx.clock.now()
    phone = Phone(client, ctx, "tech1")
    # Issued now, the receipt says the work ends in an hour: it is written ahead of the facts.
    ahead = issue(phone, order_id, arrived_at=iso(arrival), completed_at=iso(arrival + timedelta(hours=1)))
    assert (ahead["code"], ahead["disagreeing"]) == ("content_disagrees", ["completed_at"])
    # Completed 20 minutes later; a receipt issued two hours on (a correction) names that completion.
    ctx.clock.advance(minutes=20)
    actor = principal(ctx, "tech1")
    act(ctx, uuid.UUID(order_id), "start_work", actor)
    take_photos(ctx, uuid.UUID(order_id), actor, "before", "after")
    act(ctx, uuid.UUID(order_id), "complete", actor, result="fixed", satisfaction=5, note=None)
    completed = ctx.clock.now()
    ctx.clock.advance(hours=2)
    phone = Phone(client, ctx, "tech1")  # logged in again: the old token has expired
    late = issue(phone, order_id, arrived_at=iso(arrival), completed_at=iso(completed))
    assert late["status"] == "applied", late
    wrong = issue(phone, order_id, arrived_at=iso(arrival), completed_at=iso(ctx.clock.now()))
    assert wrong["disagreeing"] == ["completed_at"]


def test_an_arrival_named_but_never_recorded_disagrees(client: TestClient, ctx: AppContext) -> None:
    on_the_way = order(ctx)
    step(ctx, on_the_way, "accept", "depart")  # no door check-in yet
    phone = Phone(client, ctx, "tech1")
    now = iso(ctx.clock.now())
    result = issue(phone, on_the_way, arrived_at=now, completed_at=now)
    assert (result["code"], result["disagreeing"]) == ("content_disagrees", ["arrived_at"])
    assert issue(phone, on_the_way, arrived_at=None, completed_at=now)["status"] == "applied"


def test_the_phones_clock_is_corrected_before_comparing(client: TestClient, ctx: AppContext) -> None:
    """A phone whose clock is an hour behind writes its receipt by that clock; it still agrees."""
    order_id = arrived(ctx)
    server_now = ctx.clock.now()
    phone = Phone(client, ctx, "tech1")
    behind = server_now - timedelta(hours=1)
    content = receipt(order_id, arrived_at=iso(behind), completed_at=iso(behind))
    body = {
        "device_id": phone.device,
        "sent_at": iso(behind),
        "actions": [
            {
                "id": str(uuid.uuid4()),
                "seq": 1,
                "type": "document.issue",
                "v": 1,
                "occurred_at": iso(behind),
                "payload": {"document": {"type": "receipt", "id": str(uuid.uuid4())}, "content": content},
            }
        ],
    }
    answer = client.post("/api/v1/sync/push", json=body, headers=auth(phone.tokens)).json()
    assert answer["results"][0]["status"] == "applied", answer


def test_the_tolerance_is_a_setting(make_client: Callable[..., TestClient], ctx: AppContext) -> None:
    loose = make_client(receipt_time_tolerance=3600)
    order_id = arrived(ctx)
    now = ctx.clock.now()
    phone = Phone(loose, ctx, "tech1")
    result = issue(phone, order_id, arrived_at=iso(now - timedelta(minutes=30)), completed_at=iso(now))
    assert result["status"] == "applied", result
    strict = Phone(make_client(receipt_time_tolerance=0), ctx, "tech1")
    late = issue(strict, order_id, arrived_at=iso(now + timedelta(seconds=1)), completed_at=iso(now))
    assert late["disagreeing"] == ["arrived_at", "completed_at"]  # the action itself is 30 s earlier
