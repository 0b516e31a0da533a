"""The dispatcher's and supervisor's work-order API, and who may see what."""

from datetime import timedelta

import pytest
from litestar.testing import TestClient

from backend.auth import service as auth_service
from backend.auth.models import Role
from backend.clock import ManualClock
from backend.context import AppContext
from backend.ids import new_id
from backend.org.models import Building, Company, Household
from tests.api.helpers import assert_error, auth, login
from tests.fixtures.field import act, household_id, new_order, principal

pytestmark = pytest.mark.usefixtures("demo")

ALL_ROLES = ["admin", "dispatcher1", "supervisor1", "tech1", "tech2", "inspector1"]


def create_body(ctx: AppContext, **extra: object) -> dict:
    return {
        "kind": "leak",
        "household_id": str(household_id(ctx, "100101")),
        "source": "hotline",
        "description": "暖气片漏水",
        **extra,
    }


@pytest.fixture
def north(ctx: AppContext) -> dict[str, object]:
    """Another heating company with its own admin and household."""
    with ctx.db.session() as session:
        company = Company(id=new_id(), code="north", name="North Heat", created_at=ctx.clock.now())
        session.add(company)
        session.flush()
        building = Building(id=new_id(), company_id=company.id, address="北站路 1 号")
        session.add(building)
        session.flush()
        household = Household(
            id=new_id(),
            company_id=company.id,
            building_id=building.id,
            account_number="N-1",
            unit="1-1-101",
            heated_area_m2=50,
            resident_name="北方住户",
            created_at=ctx.clock.now(),
        )
        session.add(household)
        auth_service.create_user(
            ctx,
            session,
            company_id=company.id,
            username="north-admin",
            full_name="North Admin",
            role=Role.admin,
            password="north-password-1",
        )
    return {"household_id": household.id}


def test_dispatcher_creates_an_order_with_running_clocks(client: TestClient, ctx: AppContext) -> None:
    response = client.post(
        "/api/v1/work-orders", json=create_body(ctx), headers=auth(login(client, "dispatcher1"))
    )
    assert response.status_code == 201, response.text
    order = response.json()["order"]
    assert order["state"] == "new"
    assert len(order["ref"]) == 8
    clocks = {c["clock"]: c for c in order["clocks"]}
    assert set(clocks) == {"arrive", "resolve"}
    assert clocks["arrive"]["target"] == "30 min" and clocks["arrive"]["status"] == "running"
    assert clocks["resolve"]["target"] == "1 d"
    assert response.json()["household"]["resident_phone"] == "13912340001"


def test_create_and_assign_in_one_call_and_forwarded_urgent_clocks(
    client: TestClient, ctx: AppContext
) -> None:
    tech2 = principal(ctx, "tech2")
    body = create_body(
        ctx,
        kind="repair",
        source="mayor_hotline",
        forwarded=True,
        urgent=True,
        assignee_id=str(tech2.user_id),
    )
    response = client.post("/api/v1/work-orders", json=body, headers=auth(login(client, "dispatcher1")))
    order = response.json()["order"]
    assert order["state"] == "assigned" and order["assignee_id"] == str(tech2.user_id)
    clocks = {c["clock"]: c["target"] for c in order["clocks"]}
    assert clocks == {"accept": "30 min", "contact": "30 min", "arrive": "2 h", "resolve": "12 h"}


def test_a_complaint_is_answered_in_working_days(
    client: TestClient, ctx: AppContext, clock: ManualClock
) -> None:
    clock.set(clock.now().replace(year=2026, month=12, day=4, hour=2))  # Friday 10:00 in Shanghai
    response = client.post(
        "/api/v1/work-orders",
        json=create_body(ctx, kind="complaint", source="complaint"),
        headers=auth(login(client, "dispatcher1")),
    )
    answer = next(c for c in response.json()["order"]["clocks"] if c["clock"] == "answer")
    assert answer["target"] == "3 working days"
    assert answer["due_at"].startswith("2026-12-09T16:00")  # end of Wed 9 Dec, Shanghai
    assert answer["calendar_estimated"] is False


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"kind": "volcano"}, 400, "invalid_body"),
        ({"source": "rumour"}, 400, "invalid_body"),
        ({"description": ""}, 400, "invalid_body"),
        ({"household_id": "01a20000-0000-7000-8000-000000000000"}, 400, "unknown_household"),
        ({"received_at": "2030-01-01T00:00:00Z"}, 400, "received_in_future"),
        ({"team_id": "01a20000-0000-7000-8000-000000000000"}, 400, "unknown_team"),
        ({"assignee_id": "01a20000-0000-7000-8000-000000000000"}, 400, "unknown_user"),
        ({"priority": "high"}, 400, "invalid_body"),
    ],
)
def test_bad_orders_are_refused_and_nothing_is_written(
    client: TestClient, ctx: AppContext, body: dict, status: int, code: str
) -> None:
    headers = auth(login(client, "dispatcher1"))
    before = len(client.get("/api/v1/work-orders", params={"limit": 200}, headers=headers).json())
    assert_error(
        client.post("/api/v1/work-orders", json={**create_body(ctx), **body}, headers=headers), status, code
    )
    assert len(client.get("/api/v1/work-orders", params={"limit": 200}, headers=headers).json()) == before


def test_assigning_to_a_supervisor_is_refused(client: TestClient, ctx: AppContext) -> None:
    order = new_order(ctx, assignee=None)
    response = client.post(
        f"/api/v1/work-orders/{order.id}/assign",
        json={"user_id": str(principal(ctx, "supervisor1").user_id)},
        headers=auth(login(client, "dispatcher1")),
    )
    assert_error(response, 400, "not_assignable")


def test_technicians_see_only_their_own_orders(client: TestClient, ctx: AppContext) -> None:
    tech1 = principal(ctx, "tech1")
    mine = client.get("/api/v1/work-orders", headers=auth(login(client, "tech1"))).json()
    assert len(mine) >= 3
    assert {o["assignee_id"] for o in mine} == {str(tech1.user_id)}
    assert any(o["kind"] == "leak" for o in mine)
    everything = client.get("/api/v1/work-orders", headers=auth(login(client, "dispatcher1"))).json()
    assert len(everything) > len(mine)


def test_list_filters(client: TestClient, ctx: AppContext, clock: ManualClock) -> None:
    headers = auth(login(client, "supervisor1"))
    leaks = client.get("/api/v1/work-orders", params={"kind": "leak"}, headers=headers).json()
    assert leaks and {o["kind"] for o in leaks} == {"leak"}
    states = client.get("/api/v1/work-orders", params={"state": ["new", "assigned"]}, headers=headers).json()
    assert states and {o["state"] for o in states} <= {"new", "assigned"}
    tech2 = principal(ctx, "tech2")
    theirs = client.get(
        "/api/v1/work-orders", params={"assignee_id": str(tech2.user_id)}, headers=headers
    ).json()
    assert {o["assignee_id"] for o in theirs} == {str(tech2.user_id)}
    # The demo's leak was called in 10 minutes ago: 20 minutes left on its arrival clock.
    assert not any(
        o["kind"] == "leak"
        for o in client.get("/api/v1/work-orders", params={"overdue": True}, headers=headers).json()
    )
    clock.advance(minutes=21)
    headers = auth(login(client, "supervisor1"))  # the 15-minute token expired meanwhile
    overdue = client.get("/api/v1/work-orders", params={"overdue": True}, headers=headers).json()
    assert any(o["kind"] == "leak" for o in overdue)
    team = overdue[0]["team_id"]
    by_team = client.get(
        "/api/v1/work-orders", params={"overdue": True, "team_id": team}, headers=headers
    ).json()
    assert by_team and {o["team_id"] for o in by_team} == {team}


def test_sla_board_lists_overdue_and_soon_due_per_team(
    client: TestClient, ctx: AppContext, clock: ManualClock
) -> None:
    headers = auth(login(client, "supervisor1"))
    board = client.get("/api/v1/sla/board", params={"soon_minutes": 30}, headers=headers).json()
    assert board == sorted(board, key=lambda e: e["due_at"])
    leak = next(e for e in board if e["kind"] == "leak" and e["clock"] == "arrive")
    assert 0 < leak["minutes_left"] <= 30
    clock.advance(hours=1)
    headers = auth(login(client, "supervisor1"))
    later = client.get("/api/v1/sla/board", params={"soon_minutes": 0}, headers=headers).json()
    assert all(e["minutes_left"] < 0 for e in later)
    assert_error(client.get("/api/v1/sla/board", headers=auth(login(client, "tech1"))), 403, "forbidden")


def test_phone_numbers_are_masked_for_technicians_once_the_order_is_done(
    client: TestClient, ctx: AppContext
) -> None:
    tech = principal(ctx, "tech1")
    order = new_order(ctx, account="100203", assignee="tech1")
    headers = auth(login(client, "tech1"))
    household = client.get(f"/api/v1/work-orders/{order.id}", headers=headers).json()["household"]
    assert household["resident_phone"] == "13912340006"  # active: the technician must be able to call
    act(ctx, order.id, "request_return", tech, reason="not ours")
    client.post(f"/api/v1/work-orders/{order.id}/return/approve", headers=auth(login(client, "dispatcher1")))
    # The order left the technician: neither it nor the household is theirs any more.
    assert_error(client.get(f"/api/v1/work-orders/{order.id}", headers=headers), 404, "not_found")
    assert_error(client.get(f"/api/v1/households/{household['id']}", headers=headers), 404, "not_found")


def test_a_completed_order_shows_a_masked_phone(client: TestClient, ctx: AppContext) -> None:
    tech = principal(ctx, "tech1")
    order = new_order(ctx, account="100203", kind="complaint", source="complaint")
    act(ctx, order.id, "accept", tech)
    act(
        ctx,
        order.id,
        "record_arrival",
        tech,
        lat=None,
        lon=None,
        accuracy_m=None,
        attempts=[],
        outcome="admitted",
        badge_shown=True,
    )
    act(ctx, order.id, "start_work", tech)
    act(ctx, order.id, "complete", tech, result="answered", satisfaction=4)
    headers = auth(login(client, "tech1"))
    household = client.get(f"/api/v1/work-orders/{order.id}", headers=headers).json()["household"]
    assert household["resident_phone"] == "139****0006"
    office = client.get(
        f"/api/v1/households/{household['id']}", headers=auth(login(client, "supervisor1"))
    ).json()
    assert office["resident_phone"] == "13912340006"


def test_technicians_do_not_get_gps_of_events_or_arrivals(client: TestClient, ctx: AppContext) -> None:
    tech = principal(ctx, "tech1")
    order = new_order(ctx)
    act(ctx, order.id, "accept", tech)
    act(
        ctx,
        order.id,
        "record_arrival",
        tech,
        lat=41.79683,
        lon=123.42452,
        accuracy_m=10.0,
        attempts=[],
        outcome="admitted",
        badge_shown=True,
    )
    own = client.get(f"/api/v1/work-orders/{order.id}", headers=auth(login(client, "tech1"))).json()
    assert all(e["lat"] is None for e in own["timeline"])
    assert [(a["lat"], a["lon"]) for a in own["arrivals"]] == [(None, None)]
    assert own["arrivals"][0]["outcome"] == "admitted"
    supervisor = client.get(
        f"/api/v1/work-orders/{order.id}", headers=auth(login(client, "supervisor1"))
    ).json()
    assert any(e["lat"] == 41.79683 for e in supervisor["timeline"])
    assert [(a["lat"], a["lon"]) for a in supervisor["arrivals"]] == [(41.79683, 123.42452)]


# ---------------------------------------------------------------- the authorisation matrix

ENDPOINTS = {
    # name: (method, path template, body, roles allowed)
    "create": ("POST", "/api/v1/work-orders", "create", {"admin", "dispatcher1"}),
    "list": ("GET", "/api/v1/work-orders", None, set(ALL_ROLES)),
    "detail-own": ("GET", "/api/v1/work-orders/{own}", None, set(ALL_ROLES) - {"tech2", "inspector1"}),
    "detail-other": (
        "GET",
        "/api/v1/work-orders/{other}",
        None,
        {"admin", "dispatcher1", "supervisor1", "tech2"},
    ),
    "assign": ("POST", "/api/v1/work-orders/{own}/assign", "assign", {"admin", "dispatcher1"}),
    "cancel": ("POST", "/api/v1/work-orders/{own}/cancel", {"reason": "x"}, {"admin", "dispatcher1"}),
    "close": ("POST", "/api/v1/work-orders/{own}/close", None, {"admin", "supervisor1"}),
    "household-own": (
        "GET",
        "/api/v1/households/{household}",
        None,
        set(ALL_ROLES) - {"tech2", "inspector1"},
    ),
    "household-search": ("GET", "/api/v1/households", None, {"admin", "dispatcher1", "supervisor1"}),
    "board": ("GET", "/api/v1/sla/board", None, {"admin", "dispatcher1", "supervisor1"}),
    "policy-read": ("GET", "/api/v1/sla/policy", None, set(ALL_ROLES)),
    "policy-write": ("PUT", "/api/v1/sla/policy", "policy", {"admin"}),
    "revisits": ("GET", "/api/v1/revisits", None, {"admin", "dispatcher1", "supervisor1"}),
    "teams": ("GET", "/api/v1/reference/teams", None, set(ALL_ROLES)),
}


SUCCESS = {"create": 201}
OBJECT_LEVEL = {"detail-own", "detail-other", "household-own"}
NO_FIX = {"lat": None, "lon": None, "accuracy_m": None, "attempts": []}


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
@pytest.mark.parametrize("username", ALL_ROLES)
def test_authorisation_matrix(client: TestClient, ctx: AppContext, endpoint: str, username: str) -> None:
    method, template, body, allowed = ENDPOINTS[endpoint]
    own = new_order(ctx, assignee="tech1", account="100102")
    other = new_order(ctx, assignee="tech2", account="200102")
    path = template.format(own=own.id, other=other.id, household=own.household_id)
    payload = (
        {
            "create": create_body(ctx),
            "assign": {"user_id": str(principal(ctx, "tech2").user_id)},
            "policy": {},
        }.get(body, body)
        if isinstance(body, str)
        else body
    )
    if endpoint == "close":  # a supervisor closes what was completed
        tech1 = principal(ctx, "tech1")
        for step in ("accept", "depart"):
            act(ctx, own.id, step, tech1)
        act(ctx, own.id, "record_arrival", tech1, outcome="admitted", badge_shown=True, **NO_FIX)
        act(ctx, own.id, "start_work", tech1)
        act(ctx, own.id, "complete", tech1, result="not_fixed", satisfaction=3)
    response = client.request(method, path, json=payload, headers=auth(login(client, username)))
    if username in allowed:
        assert response.status_code == SUCCESS.get(endpoint, 200), (endpoint, username, response.text)
    elif endpoint in OBJECT_LEVEL:
        # Someone else's order or household does not exist for the caller.
        assert_error(response, 404, "not_found")
    else:
        assert_error(response, 403, "forbidden")


def test_another_company_sees_nothing_of_ours(client: TestClient, ctx: AppContext, north: dict) -> None:
    ours = new_order(ctx)
    headers = auth(login(client, "north-admin", password="north-password-1"))
    assert client.get("/api/v1/work-orders", headers=headers).json() == []
    assert_error(client.get(f"/api/v1/work-orders/{ours.id}", headers=headers), 404, "not_found")
    assert_error(
        client.post(f"/api/v1/work-orders/{ours.id}/cancel", json={"reason": "x"}, headers=headers),
        404,
        "not_found",
    )
    assert_error(client.get(f"/api/v1/households/{ours.household_id}", headers=headers), 404, "not_found")
    ours_dispatcher = auth(login(client, "dispatcher1"))
    foreign = client.post(
        "/api/v1/work-orders",
        json=create_body(ctx, household_id=str(north["household_id"])),
        headers=ours_dispatcher,
    )
    assert_error(foreign, 400, "unknown_household")


def test_a_company_sets_its_own_sla_policy(client: TestClient, ctx: AppContext) -> None:
    admin = auth(login(client, "admin"))
    policy = client.get("/api/v1/sla/policy", headers=admin).json()
    assert policy["kinds"]["leak"]["arrive"] == {"minutes": 30}
    assert policy["kinds"]["complaint"]["answer"] == {"working_days": 3}
    policy["kinds"]["complaint"]["answer"] = {"working_days": 5}
    policy["kinds"]["leak"]["arrive"] = {"minutes": 20}
    assert client.put("/api/v1/sla/policy", json=policy, headers=admin).status_code == 200
    created = client.post(
        "/api/v1/work-orders", json=create_body(ctx), headers=auth(login(client, "dispatcher1"))
    )
    arrive = next(c for c in created.json()["order"]["clocks"] if c["clock"] == "arrive")
    assert arrive["target"] == "20 min"
    bad = client.put("/api/v1/sla/policy", json={"kinds": {"leak": {"arrive": {}}}}, headers=admin)
    assert_error(bad, 400, "invalid_body")
    assert client.get("/api/v1/sla/policy", headers=admin).json()["kinds"]["leak"]["arrive"] == {
        "minutes": 20
    }


def test_received_at_drives_the_clocks(client: TestClient, ctx: AppContext, clock: ManualClock) -> None:
    received = clock.now() - timedelta(minutes=25)
    response = client.post(
        "/api/v1/work-orders",
        json=create_body(ctx, received_at=received.isoformat()),
        headers=auth(login(client, "dispatcher1")),
    )
    arrive = next(c for c in response.json()["order"]["clocks"] if c["clock"] == "arrive")
    assert arrive["due_at"].startswith((received + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M"))
