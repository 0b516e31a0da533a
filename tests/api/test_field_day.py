"""A day in the field, through the work-order services, on both databases."""

from datetime import timedelta

import pytest
from litestar.testing import TestClient

from backend.clock import ManualClock
from backend.context import AppContext
from backend.errors import Conflict, Forbidden
from backend.work_orders.states import IllegalTransition
from tests.api.helpers import auth, login
from tests.fixtures.field import act, appoint, new_order, principal, take_photos, when

pytestmark = pytest.mark.usefixtures("demo")

ADMITTED = [{"method": "knock", "at": "2026-12-07T00:40:00Z"}]
NO_ANSWER = [
    {"method": "knock", "at": "2026-12-07T00:40:00Z"},
    {"method": "ring", "at": "2026-12-07T00:40:40Z"},
    {"method": "knock", "at": "2026-12-07T00:41:20Z"},
]
AT_DOOR = {"lat": 41.79683, "lon": 123.42452, "accuracy_m": 12.0}  # household 100101's building


def work_to_completion(
    ctx: AppContext, order_id: object, tech: object, *, result: str, satisfaction: int
) -> None:
    """Accept, knock and get in, work, complete: the plain visit several tests need done first."""
    act(ctx, order_id, "accept", tech)
    act(
        ctx,
        order_id,
        "record_arrival",
        tech,
        attempts=ADMITTED,
        outcome="admitted",
        badge_shown=True,
        **AT_DOOR,
    )
    act(ctx, order_id, "start_work", tech)
    take_photos(ctx, order_id, tech, "before", "after", "site_cleared")
    act(ctx, order_id, "complete", tech, result=result, satisfaction=satisfaction)


def detail(client: TestClient, order_id: object, user: str = "supervisor1") -> dict:
    response = client.get(f"/api/v1/work-orders/{order_id}", headers=auth(login(client, user)))
    assert response.status_code == 200, response.text
    return response.json()


def clocks(body: dict) -> dict[str, dict]:
    return {c["clock"]: c for c in body["order"]["clocks"]}


def test_a_repair_from_call_to_closed(client: TestClient, ctx: AppContext, clock: ManualClock) -> None:
    tech = principal(ctx, "tech1")
    order = new_order(ctx, kind="repair", account="100101")
    clock.advance(minutes=5)
    act(ctx, order.id, "accept", tech)
    clock.advance(minutes=10)
    act(ctx, order.id, "record_contact", tech, outcome="reached", note="住户在家")
    start = clock.now() + timedelta(minutes=30)
    act(
        ctx,
        order.id,
        "set_appointment",
        tech,
        window_start=start,
        window_end=start + timedelta(hours=1),
        reason=None,
    )
    clock.advance(minutes=25)
    act(ctx, order.id, "depart", tech)
    clock.advance(minutes=15)
    act(
        ctx,
        order.id,
        "record_arrival",
        tech,
        attempts=ADMITTED,
        outcome="admitted",
        badge_shown=True,
        **AT_DOOR,
    )
    act(ctx, order.id, "start_work", tech)
    clock.advance(minutes=40)
    # Done means shown: a repair needs its before and after photos (the company's policy).
    with pytest.raises(Conflict) as refused:
        act(ctx, order.id, "complete", tech, result="fixed", satisfaction=5, note="更换阀门")
    assert (refused.value.code, refused.value.detail) == ("photos_missing", {"missing": ["before", "after"]})
    take_photos(ctx, order.id, tech, "before")
    with pytest.raises(Conflict) as refused:
        act(ctx, order.id, "complete", tech, result="fixed", satisfaction=5, note="更换阀门")
    assert refused.value.detail == {"missing": ["after"]}
    assert detail(client, order.id)["evidence"]["photos_missing"] == ["after"]
    take_photos(ctx, order.id, tech, "after")
    act(ctx, order.id, "complete", tech, result="fixed", satisfaction=5, note="更换阀门")
    evidence = detail(client, order.id)["evidence"]
    assert [p["purpose"] for p in evidence["photos"]] == ["before", "after"]
    assert evidence["photos_missing"] == []

    body = detail(client, order.id)
    assert body["order"]["state"] == "revisit_due"
    assert [e["type"] for e in body["timeline"]] == [
        "created",
        "assigned",
        "accepted",
        "contact",
        "appointment_set",
        "departed",
        "arrived",
        "started",
        "completed",
        "revisit_created",
    ]
    c = clocks(body)
    assert {name: c[name]["status"] for name in ("contact", "arrive", "resolve")} == {
        "contact": "met",
        "arrive": "met",
        "resolve": "met",
    }
    assert c["revisit"]["status"] == "running"
    assert body["arrivals"][0]["location_verified"] is True
    assert body["arrivals"][0]["distance_m"] < 50
    assert body["revisit"]["state"] == "due"

    supervisor = auth(login(client, "supervisor1"))
    revisit_id = body["revisit"]["id"]
    done = client.post(
        f"/api/v1/revisits/{revisit_id}/outcome",
        json={"channel": "phone", "outcome": "satisfied", "satisfaction": 5},
        headers=supervisor,
    )
    assert done.status_code == 200, done.text
    final = detail(client, order.id)
    assert final["order"]["state"] == "closed"
    assert clocks(final)["revisit"]["status"] == "met"


@pytest.mark.parametrize(
    ("kind", "clock_name", "minutes", "step"),
    [
        ("leak", "arrive", 30, "arrive"),
        ("pipe_burst", "arrive", 40, "arrive"),
        ("routine_maintenance", "arrive", 60, "arrive"),
        ("repair", "arrive", 120, "arrive"),
        ("repair", "contact", 30, "contact"),
        ("repair", "resolve", 24 * 60, "complete"),
    ],
)
@pytest.mark.parametrize("late_by_seconds", [0, 1])
def test_sla_clock_boundaries(
    client: TestClient,
    ctx: AppContext,
    clock: ManualClock,
    kind: str,
    clock_name: str,
    minutes: int,
    step: str,
    late_by_seconds: int,
) -> None:
    tech = principal(ctx, "tech1")
    order = new_order(ctx, kind=kind)
    received = clock.now()
    act(ctx, order.id, "accept", tech)
    if step == "complete":
        act(
            ctx,
            order.id,
            "record_arrival",
            tech,
            attempts=ADMITTED,
            outcome="admitted",
            badge_shown=True,
            **AT_DOOR,
        )
        act(ctx, order.id, "start_work", tech)
        take_photos(ctx, order.id, tech, "before", "after")
    clock.set(received + timedelta(minutes=minutes, seconds=late_by_seconds))
    if step == "arrive":
        act(
            ctx,
            order.id,
            "record_arrival",
            tech,
            attempts=ADMITTED,
            outcome="admitted",
            badge_shown=True,
            **AT_DOOR,
        )
    elif step == "contact":
        act(ctx, order.id, "record_contact", tech, outcome="reached", note=None)
    else:
        act(ctx, order.id, "complete", tech, result="fixed", satisfaction=4)
    c = clocks(detail(client, order.id))[clock_name]
    assert c["due_at"].startswith((received + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M"))
    assert c["status"] == ("met" if late_by_seconds == 0 else "missed")


def test_the_sla_clock_uses_the_corrected_field_time_not_the_sync_time(
    client: TestClient, ctx: AppContext, clock: ManualClock
) -> None:
    """Arrived in a basement at minute 20, synced at minute 90: the leak clock was met."""
    tech = principal(ctx, "tech1")
    order = new_order(ctx, kind="leak")
    received = clock.now()
    act(ctx, order.id, "accept", tech)
    clock.set(received + timedelta(minutes=90))
    field = when(clock.now())
    field = type(field)(
        occurred_at=received + timedelta(minutes=20),
        received_at=clock.now(),
        corrected_at=received + timedelta(minutes=20),
    )
    act(
        ctx,
        order.id,
        "record_arrival",
        tech,
        when=field,
        attempts=ADMITTED,
        outcome="admitted",
        badge_shown=True,
        **AT_DOOR,
    )
    body = detail(client, order.id)
    assert clocks(body)["arrive"]["status"] == "met"
    event = next(e for e in body["timeline"] if e["type"] == "arrived")
    assert event["corrected_at"] < event["received_at"]


def test_nobody_home_leads_to_a_reschedule_not_a_failure(
    client: TestClient, ctx: AppContext, clock: ManualClock
) -> None:
    tech = principal(ctx, "tech1")
    order = new_order(ctx, kind="repair")
    act(ctx, order.id, "accept", tech)
    act(ctx, order.id, "depart", tech)
    clock.advance(minutes=30)
    act(
        ctx,
        order.id,
        "record_arrival",
        tech,
        attempts=NO_ANSWER,
        outcome="no_answer",
        badge_shown=False,
        **AT_DOOR,
    )
    assert detail(client, order.id)["order"]["state"] == "no_access"
    tomorrow = clock.now() + timedelta(days=1)
    act(
        ctx,
        order.id,
        "set_appointment",
        tech,
        window_start=tomorrow,
        window_end=tomorrow + timedelta(hours=2),
        reason="住户上班",
    )
    body = detail(client, order.id)
    assert body["order"]["state"] == "rescheduled"
    assert body["timeline"][-1]["type"] == "rescheduled"
    assert body["arrivals"][0]["attempts"] == NO_ANSWER
    assert clocks(body)["arrive"]["status"] == "met"  # someone was at the door in time
    # The phone departs again for the new window.
    act(ctx, order.id, "depart", tech)
    assert detail(client, order.id)["order"]["state"] == "en_route"


def test_reschedules_keep_their_history(client: TestClient, ctx: AppContext, clock: ManualClock) -> None:
    tech = principal(ctx, "tech1")
    order = new_order(ctx)
    act(ctx, order.id, "accept", tech)
    first = clock.now() + timedelta(hours=2)
    appoint(ctx, order.id, tech, first)
    appoint(ctx, order.id, tech, first + timedelta(days=1), reason="住户要求改期", requested_by="resident")
    appointments = detail(client, order.id)["appointments"]
    assert len(appointments) == 2
    assert appointments[0]["replaced_at"] is not None
    assert appointments[1]["replaced_at"] is None
    assert appointments[1]["reason"] == "住户要求改期"


def test_a_check_in_far_from_the_house_is_kept_but_not_verified(client: TestClient, ctx: AppContext) -> None:
    tech = principal(ctx, "tech1")
    order = new_order(ctx)
    act(ctx, order.id, "accept", tech)
    act(
        ctx,
        order.id,
        "record_arrival",
        tech,
        lat=41.75,
        lon=123.40,
        accuracy_m=15.0,
        attempts=ADMITTED,
        outcome="admitted",
        badge_shown=True,
    )
    body = detail(client, order.id)
    arrival = body["arrivals"][0]
    assert arrival["location_verified"] is False
    assert arrival["distance_m"] > 4000
    assert "location_not_verified" in body["order"]["review_flags"]
    assert body["order"]["state"] == "arrived"  # a fact: recorded and applied, flagged for review


def test_a_check_in_without_a_fix_is_accepted_unverified(client: TestClient, ctx: AppContext) -> None:
    tech = principal(ctx, "tech1")
    order = new_order(ctx)
    act(ctx, order.id, "accept", tech)
    act(
        ctx,
        order.id,
        "record_arrival",
        tech,
        lat=None,
        lon=None,
        accuracy_m=None,
        attempts=ADMITTED,
        outcome="admitted",
        badge_shown=True,
    )
    assert detail(client, order.id)["arrivals"][0]["location_verified"] is None


def test_facts_after_reassignment_are_kept_and_flagged_intents_are_refused(
    client: TestClient, ctx: AppContext
) -> None:
    tech1, tech2 = principal(ctx, "tech1"), principal(ctx, "tech2")
    order = new_order(ctx, assignee="tech1")
    act(ctx, order.id, "accept", tech1)
    dispatcher = auth(login(client, "dispatcher1"))
    reassigned = client.post(
        f"/api/v1/work-orders/{order.id}/assign",
        json={"user_id": str(tech2.user_id), "reason": "张伟请假"},
        headers=dispatcher,
    )
    assert reassigned.status_code == 200
    # tech1 was offline in a basement and had already knocked on the door.
    act(
        ctx,
        order.id,
        "record_arrival",
        tech1,
        attempts=ADMITTED,
        outcome="admitted",
        badge_shown=True,
        **AT_DOOR,
    )
    with pytest.raises(IllegalTransition) as refused:
        act(ctx, order.id, "start_work", tech1)
    assert refused.value.code == "not_assignee"
    body = detail(client, order.id)
    assert body["order"]["state"] == "assigned"  # tech2 has not accepted yet: the fact did not move it
    assert body["order"]["assignee_id"] == str(tech2.user_id)
    arrived = next(e for e in body["timeline"] if e["type"] == "arrived")
    assert arrived["flags"] == ["after_reassignment"]
    assert "after_reassignment" in body["order"]["review_flags"]


def test_a_fact_on_a_cancelled_order_is_kept_and_flagged(client: TestClient, ctx: AppContext) -> None:
    tech = principal(ctx, "tech1")
    order = new_order(ctx)
    act(ctx, order.id, "accept", tech)
    client.post(
        f"/api/v1/work-orders/{order.id}/cancel",
        json={"reason": "住户自行修好"},
        headers=auth(login(client, "dispatcher1")),
    )
    act(ctx, order.id, "note", tech, text="到达时住户说已修好")
    act(
        ctx,
        order.id,
        "record_arrival",
        tech,
        attempts=ADMITTED,
        outcome="admitted",
        badge_shown=True,
        **AT_DOOR,
    )
    body = detail(client, order.id)
    assert body["order"]["state"] == "cancelled"
    assert [e["flags"] for e in body["timeline"][-2:]] == [["after_cancelled"], ["after_cancelled"]]


def test_a_stranger_cannot_add_facts(ctx: AppContext) -> None:
    order = new_order(ctx, assignee="tech1")
    with pytest.raises(Forbidden):
        act(ctx, order.id, "note", principal(ctx, "tech2"), text="not mine")


def test_returns_need_a_dispatcher(client: TestClient, ctx: AppContext) -> None:
    tech = principal(ctx, "tech1")
    order = new_order(ctx)
    act(ctx, order.id, "accept", tech)
    act(ctx, order.id, "depart", tech)
    act(ctx, order.id, "request_return", tech, reason="需要焊工，非本班组能力")
    assert detail(client, order.id)["order"]["state"] == "return_requested"
    dispatcher = auth(login(client, "dispatcher1"))
    refused = client.post(
        f"/api/v1/work-orders/{order.id}/return/refuse", json={"reason": "先查看现场"}, headers=dispatcher
    )
    assert refused.json()["state"] == "en_route"
    act(ctx, order.id, "request_return", tech, reason="确需焊工")
    approved = client.post(f"/api/v1/work-orders/{order.id}/return/approve", headers=dispatcher)
    assert approved.json()["state"] == "returned"
    assert approved.json()["assignee_id"] is None
    again = client.post(
        f"/api/v1/work-orders/{order.id}/assign",
        json={"user_id": str(principal(ctx, "tech2").user_id)},
        headers=dispatcher,
    )
    assert again.json()["state"] == "assigned"


def test_an_illegal_move_answers_409_with_the_allowed_ones(client: TestClient, ctx: AppContext) -> None:
    order = new_order(ctx)
    dispatcher = auth(login(client, "dispatcher1"))
    client.post(f"/api/v1/work-orders/{order.id}/cancel", json={"reason": "重复工单"}, headers=dispatcher)
    response = client.post(
        f"/api/v1/work-orders/{order.id}/cancel", json={"reason": "again"}, headers=dispatcher
    )
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "illegal_transition"
    assert body["detail"] == {"state": "cancelled", "move": "cancel", "allowed": []}
    approve = client.post(f"/api/v1/work-orders/{new_order(ctx).id}/return/approve", headers=dispatcher)
    assert approve.status_code == 409
    assert "assign" in approve.json()["detail"]["allowed"]


def test_key_customers_get_a_week_for_the_revisit(
    client: TestClient, ctx: AppContext, clock: ManualClock
) -> None:
    tech = principal(ctx, "tech1")
    order = new_order(ctx, account="100103")  # a key customer
    work_to_completion(ctx, order.id, tech, result="fixed", satisfaction=5)
    revisit = detail(client, order.id)["revisit"]
    assert revisit["due_at"].startswith((clock.now() + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M"))


def test_a_complaint_creates_no_revisit_and_waits_for_the_supervisor(
    client: TestClient, ctx: AppContext
) -> None:
    tech = principal(ctx, "tech1")
    order = new_order(ctx, kind="complaint", source="complaint")
    work_to_completion(ctx, order.id, tech, result="answered", satisfaction=3)
    body = detail(client, order.id)
    assert body["order"]["state"] == "completed" and body["revisit"] is None
    assert clocks(body)["answer"]["status"] == "met"
    closed = client.post(f"/api/v1/work-orders/{order.id}/close", headers=auth(login(client, "supervisor1")))
    assert closed.json()["state"] == "closed"


def _complete_repair(ctx: AppContext, account: str) -> object:
    tech = principal(ctx, "tech1")
    order = new_order(ctx, account=account)
    work_to_completion(ctx, order.id, tech, result="fixed", satisfaction=4)
    return order


@pytest.mark.parametrize(("days_later", "repeat"), [(10, True), (29, True), (31, False)])
def test_repeat_fault_within_30_days_is_linked(
    client: TestClient, ctx: AppContext, clock: ManualClock, days_later: int, repeat: bool
) -> None:
    first = _complete_repair(ctx, "100202")
    clock.advance(days=days_later)
    second = new_order(ctx, account="100202", kind="leak")
    order = detail(client, second.id)["order"]
    assert order["repeat_of_id"] == (str(first.id) if repeat else None)
    assert ("repeat_fault" in order["review_flags"]) is repeat


def test_a_complaint_about_the_same_house_is_not_a_repeat_fault(
    client: TestClient, ctx: AppContext, clock: ManualClock
) -> None:
    _complete_repair(ctx, "100202")
    clock.advance(days=3)
    complaint = new_order(ctx, account="100202", kind="complaint", source="complaint")
    assert detail(client, complaint.id)["order"]["repeat_of_id"] is None


def test_a_revisit_given_to_a_technician_reaches_their_phone(client: TestClient, ctx: AppContext) -> None:
    tech = principal(ctx, "tech1")
    order = new_order(ctx, account="100201")
    work_to_completion(ctx, order.id, tech, result="fixed", satisfaction=4)
    revisit_id = detail(client, order.id)["revisit"]["id"]
    tech2 = auth(login(client, "tech2", device_id="tech2-revisit-phone"))
    cursor = client.get("/api/v1/sync/pull", headers=tech2).json()["cursor"]
    dispatcher = auth(login(client, "dispatcher1"))
    assigned = client.post(
        f"/api/v1/revisits/{revisit_id}/assign",
        json={"user_id": str(principal(ctx, "tech2").user_id)},
        headers=dispatcher,
    )
    assert assigned.status_code == 200, assigned.text
    page = client.get("/api/v1/sync/pull", params={"cursor": cursor}, headers=tech2).json()
    assert [(c["entity"], c["id"], c["op"]) for c in page["changes"]] == [("revisit", revisit_id, "upsert")]
    done = client.post(
        f"/api/v1/revisits/{revisit_id}/outcome",
        json={"channel": "visit", "outcome": "satisfied", "satisfaction": 5},
        headers=dispatcher,
    )
    assert done.status_code == 200
    gone = client.get("/api/v1/sync/pull", params={"cursor": page["cursor"]}, headers=tech2).json()
    assert ("revisit", revisit_id, "remove") in [(c["entity"], c["id"], c["op"]) for c in gone["changes"]]


def test_repeat_faults_are_counted_against_the_team_that_did_the_first_repair(
    client: TestClient, ctx: AppContext, clock: ManualClock
) -> None:
    _complete_repair(ctx, "100202")
    clock.advance(days=5)
    new_order(ctx, account="100202", kind="repair", assignee="tech2")
    counts = client.get("/api/v1/sla/repeat-faults", headers=auth(login(client, "supervisor1"))).json()
    team_of_tech1 = detail(client, new_order(ctx, assignee="tech1").id)["order"]["team_id"]
    assert {"team_id": team_of_tech1, "repeat_faults": 1} in counts
