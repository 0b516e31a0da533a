"""The supervisor's review: which orders enter, the queue, an item's evidence, decisions, who may act."""

import uuid
from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlmodel import select

from backend.auth import service as auth_service
from backend.auth.models import Role, User
from backend.clock import ManualClock
from backend.context import AppContext
from backend.ids import new_id
from backend.org.models import Building, Company, Household, Team
from backend.review import flags as review_flags
from backend.review.models import ReviewItem
from backend.review.rules import in_sample, sample_bucket
from backend.sync.handlers import CATALOGUE, Applying
from backend.work_orders import service
from backend.work_orders.models import WorkOrder
from mobile_contract.documents import content_sha256
from tests.api.helpers import assert_error, auth, login
from tests.fixtures.field import act, new_order, principal, take_photos, when

pytestmark = pytest.mark.usefixtures("demo")

ADMITTED = [{"method": "knock", "at": "2026-12-07T00:40:00Z"}]
AT_DOOR = {"lat": 41.79683, "lon": 123.42452, "accuracy_m": 12.0}  # household 100101's building
FAR_AWAY = {"lat": 41.9, "lon": 123.6, "accuracy_m": 10.0}
QUIET = {"always_kinds": [], "flags": [], "sample_percent": 0, "own_team_only": False}


def headers(client: TestClient, user: str = "supervisor1") -> dict[str, str]:
    return auth(login(client, user))


def set_policy(client: TestClient, **changes: Any) -> dict[str, Any]:
    response = client.put("/api/v1/review/policy", json={**QUIET, **changes}, headers=headers(client))
    assert response.status_code == 200, response.text
    return response.json()


def team_id(ctx: AppContext, code: str) -> uuid.UUID:
    with ctx.db.session(readonly=True) as session:
        return session.exec(select(Team.id).where(Team.code == code)).one()


def apply_action(ctx: AppContext, actor: Any, type_: str, payload: dict[str, Any]) -> None:
    handler = CATALOGUE[(type_, 1)]
    with ctx.db.session() as session:
        handler.apply(
            Applying(session, actor, when(ctx.clock.now()), uuid.uuid4(), raw=payload),
            handler.decode(payload),
        )


def visit(ctx: AppContext, order_id: Any, tech: Any, *, at_door: dict | None = None) -> None:
    act(ctx, order_id, "accept", tech)
    act(
        ctx,
        order_id,
        "record_arrival",
        tech,
        attempts=ADMITTED,
        outcome="admitted",
        badge_shown=True,
        **(at_door or AT_DOOR),
    )
    act(ctx, order_id, "start_work", tech)


def completed(
    ctx: AppContext,
    *,
    kind: str = "repair",
    result: str = "fixed",
    photos: tuple[str, ...] = ("before", "after"),
    at_door: dict | None = None,
    team: str | None = "T1",
    account: str = "100101",
    skewed: bool = False,
    tech_name: str = "tech1",
) -> WorkOrder:
    tech = principal(ctx, tech_name)
    order = new_order(
        ctx, kind=kind, account=account, assignee=tech_name, team_id=team_id(ctx, team) if team else None
    )
    visit(ctx, order.id, tech, at_door=at_door)
    take_photos(ctx, order.id, tech, *photos)
    now = ctx.clock.now()
    moment = service.FieldTime(occurred_at=now, received_at=now, corrected_at=now, skew_flagged=skewed)
    act(ctx, order.id, "complete", tech, result=result, satisfaction=5, when=moment)
    return order


def item_of(ctx: AppContext, order_id: Any) -> ReviewItem | None:
    with ctx.db.session(readonly=True) as session:
        return session.exec(select(ReviewItem).where(ReviewItem.order_id == order_id)).first()


# ---------------------------------------------------------------- policy


def test_the_policy_has_defaults_and_only_supervisors_and_admins_change_it(client: TestClient) -> None:
    body = client.get("/api/v1/review/policy", headers=headers(client, "dispatcher1")).json()
    assert body["sample_percent"] == 10 and body["always_kinds"] == [] and len(body["flags"]) == 8
    assert set_policy(client, always_kinds=["leak"], sample_percent=25)["always_kinds"] == ["leak"]
    assert (
        client.get("/api/v1/review/policy", headers=headers(client, "admin")).json()["sample_percent"] == 25
    )
    for user in ("dispatcher1", "tech1", "inspector1"):
        response = client.put("/api/v1/review/policy", json=QUIET, headers=headers(client, user))
        assert_error(response, 403, "forbidden")
    assert_error(client.get("/api/v1/review/policy", headers=headers(client, "tech1")), 403, "forbidden")
    bad = client.put("/api/v1/review/policy", json={**QUIET, "sample_percent": 101}, headers=headers(client))
    assert bad.status_code == 400
    unknown_flag = client.put(
        "/api/v1/review/policy", json={**QUIET, "flags": ["nope"]}, headers=headers(client)
    )
    assert unknown_flag.status_code == 400


# ---------------------------------------------------------------- rules


def test_a_kind_in_always_kinds_always_enters_and_others_do_not(client: TestClient, ctx: AppContext) -> None:
    set_policy(client, always_kinds=["leak"])
    leak = completed(ctx, kind="leak", photos=("before", "after"))
    repair = completed(ctx, kind="repair")
    item = item_of(ctx, leak.id)
    assert item is not None and item.reasons == ["kind:leak"] and item.status == "pending"
    assert item_of(ctx, repair.id) is None


def test_the_sample_is_deterministic(client: TestClient, ctx: AppContext) -> None:
    ids = [uuid.UUID(int=n * 7919) for n in range(1, 400)]
    buckets = [sample_bucket(i) for i in ids]
    assert buckets == [sample_bucket(i) for i in ids]  # the same every time
    assert all(0 <= b < 100 for b in buckets)
    share = sum(in_sample(i, 30) for i in ids) / len(ids)
    assert 0.2 < share < 0.4
    assert not any(in_sample(i, 0) for i in ids) and all(in_sample(i, 100) for i in ids)
    set_policy(client, sample_percent=100)
    order = completed(ctx)
    assert item_of(ctx, order.id).reasons == ["sample"]  # type: ignore[union-attr]
    set_policy(client, sample_percent=0)
    assert item_of(ctx, completed(ctx).id) is None


def test_photo_missing_clock_skew_and_location_not_verified(client: TestClient, ctx: AppContext) -> None:
    set_policy(client, flags=["photo_missing", "clock_skew", "location_not_verified"])
    plain = completed(ctx)
    assert item_of(ctx, plain.id) is None
    missing = completed(ctx, result="not_fixed", photos=("before",))
    # The reasons are the policy's flags; ``flags`` lists every flag found (here also repeat_fault).
    assert item_of(ctx, missing.id).reasons == ["flag:photo_missing"]  # type: ignore[union-attr]
    assert "photo_missing" in item_of(ctx, missing.id).flags  # type: ignore[union-attr]
    skewed = completed(ctx, skewed=True)
    assert item_of(ctx, skewed.id).reasons == ["flag:clock_skew"]  # type: ignore[union-attr]
    far = completed(ctx, at_door=FAR_AWAY)
    assert item_of(ctx, far.id).reasons == ["flag:location_not_verified"]  # type: ignore[union-attr]


def test_a_flag_the_policy_does_not_name_does_not_send_to_review(client: TestClient, ctx: AppContext) -> None:
    set_policy(client, flags=["clock_skew"])
    assert item_of(ctx, completed(ctx, at_door=FAR_AWAY).id) is None


def test_repeat_fault_within_30_days(client: TestClient, ctx: AppContext, clock: ManualClock) -> None:
    set_policy(client, flags=["repeat_fault"])
    first = completed(ctx)
    assert item_of(ctx, first.id) is None
    clock.advance(days=10)
    second = completed(ctx)
    assert item_of(ctx, second.id).reasons == ["flag:repeat_fault"]  # type: ignore[union-attr]
    clock.advance(days=40)
    assert item_of(ctx, completed(ctx).id) is None


def test_a_push_batch_settles_its_orders_together_and_a_refusal_in_it_leaves_no_item(
    client: TestClient, ctx: AppContext
) -> None:
    # Two orders done without their photos while the policy asked nothing; then it asks.
    set_policy(client)
    first = completed(ctx, result="not_fixed", photos=("before",))
    second = completed(ctx, result="not_fixed", photos=("before",))
    assert item_of(ctx, first.id) is None and item_of(ctx, second.id) is None
    set_policy(client, flags=["photo_missing"])
    tokens = login(client, "tech1", device_id="review-batch")
    now = ctx.clock.now()

    def note(seq: int, order_id: Any) -> dict[str, Any]:
        return {
            "id": str(uuid.uuid4()),
            "seq": seq,
            "type": "work_order.note",
            "v": 1,
            "occurred_at": (now - timedelta(seconds=10 - seq)).isoformat(),
            "payload": {"work_order_id": str(order_id), "text": "补拍照片"},
        }

    # The middle note names an order that does not exist: refused, and the batch runs again with
    # it in a savepoint; the late facts on both real orders still bring each in once.
    body = {
        "device_id": "review-batch",
        "sent_at": now.isoformat(),
        "actions": [note(1, first.id), note(2, new_id()), note(3, second.id), note(4, first.id)],
    }
    response = client.post("/api/v1/sync/push", json=body, headers=auth(tokens))
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["results"]] == ["applied", "rejected", "applied", "applied"]
    with ctx.db.session(readonly=True) as session:
        items = session.exec(select(ReviewItem).where(ReviewItem.order_id.in_([first.id, second.id]))).all()
    assert sorted((i.order_id == first.id, i.reasons) for i in items) == [
        (False, ["flag:photo_missing"]),
        (True, ["flag:photo_missing"]),
    ]
    # The same batch again (its answer lost): replayed, nothing enters twice.
    again = client.post("/api/v1/sync/push", json=body, headers=auth(tokens))
    assert [r["status"] for r in again.json()["results"]] == ["duplicate"] * 4
    with ctx.db.session(readonly=True) as session:
        count = len(
            session.exec(select(ReviewItem).where(ReviewItem.order_id.in_([first.id, second.id]))).all()
        )
    assert count == 2


def test_measurement_failed(client: TestClient, ctx: AppContext) -> None:
    set_policy(client, flags=["measurement_failed"])
    tech = principal(ctx, "tech1")
    order = new_order(ctx, kind="temperature_complaint", account="100101")
    visit(ctx, order.id, tech)
    with ctx.db.session(readonly=True) as session:
        household = session.get(WorkOrder, order.id).household_id  # type: ignore[union-attr]
    apply_action(
        ctx,
        tech,
        "measurement.record",
        {
            "measurement_id": str(uuid.uuid4()),
            "household_id": str(household),
            "work_order_id": str(order.id),
            "instrument_id": "TH-0042",
            "rooms": [
                {"name": "客厅", "kind": "living_room", "readings_c": [12.1, 12.0, 12.2], "height_m": 1.4}
            ],
            "outdoor_c": -8.0,
            "closed_minutes": 45,
        },
    )
    with ctx.db.session(readonly=True) as session:
        row = session.get(WorkOrder, order.id)
        assert review_flags.measurement_failed(session, row)  # type: ignore[arg-type]
    act(ctx, order.id, "complete", tech, result="answered", satisfaction=3)
    assert item_of(ctx, order.id).reasons == ["flag:measurement_failed"]  # type: ignore[union-attr]


def test_a_late_fact_on_a_cancelled_order_enters_review(client: TestClient, ctx: AppContext) -> None:
    set_policy(client, flags=["after_cancelled"])
    tech = principal(ctx, "tech1")
    order = new_order(ctx)
    act(ctx, order.id, "accept", tech)
    with ctx.db.session() as session:
        row = service.get_order_for_update(session, order_id=order.id, company_id=tech.company_id)
        service.cancel(
            session, actor=principal(ctx, "dispatcher1"), order=row, reason="住户取消", now=ctx.clock.now()
        )
    assert item_of(ctx, order.id) is None
    act(ctx, order.id, "note", tech, text="已到门口")
    item = item_of(ctx, order.id)
    assert item is not None and item.reasons == ["flag:after_cancelled"] and item.status == "pending"


def test_signature_refused(client: TestClient, ctx: AppContext) -> None:
    set_policy(client, flags=["signature_refused"])
    order = completed(ctx)
    assert item_of(ctx, order.id) is None
    tech = principal(ctx, "tech1")
    document_id = uuid.uuid4()
    content = {
        "work_order_id": str(order.id),
        "resident_name": "住户",
        "address": "南京街 1 号",
        "cause": "自行改管",
        "damage": "墙面水渍",
    }
    apply_action(
        ctx,
        tech,
        "document.issue",
        {"document": {"type": "damage_slip", "id": str(document_id)}, "content": content},
    )
    sha = content_sha256(content)
    apply_action(
        ctx,
        tech,
        "evidence.signature",
        {
            "document": {"type": "damage_slip", "id": str(document_id)},
            "signer_name": "住户",
            "signer_role": "resident",
            "content_sha256": sha,
            "refused_reason": "不同意赔偿金额",
        },
    )
    item = item_of(ctx, order.id)
    assert item is not None and item.reasons == ["flag:signature_refused"]


# ---------------------------------------------------------------- the queue


def test_the_queue_is_oldest_first_with_filters_pages_and_counts(
    client: TestClient, ctx: AppContext, clock: ManualClock
) -> None:
    set_policy(client, always_kinds=["repair", "leak"], flags=["location_not_verified"])
    first = completed(ctx)
    clock.advance(minutes=5)
    second = completed(
        ctx,
        kind="leak",
        photos=("before", "after"),
        team="T2",
        at_door=FAR_AWAY,
        tech_name="tech2",
        account="200101",
    )
    clock.advance(minutes=5)
    third = completed(ctx)
    h = headers(client, "dispatcher1")
    body = client.get("/api/v1/review/items", headers=h).json()
    ours = [
        i["order_id"]
        for i in body["items"]
        if i["order_id"] in {str(first.id), str(second.id), str(third.id)}
    ]
    assert ours == [str(first.id), str(second.id), str(third.id)]
    leak = client.get("/api/v1/review/items", params={"kind": "leak"}, headers=h).json()["items"]
    assert [i["order_id"] for i in leak] == [str(second.id)]
    flagged = client.get("/api/v1/review/items", params={"flag": "location_not_verified"}, headers=h).json()
    assert [i["order_id"] for i in flagged["items"]] == [str(second.id)]
    assert flagged["items"][0]["reasons"] == ["kind:leak", "flag:location_not_verified"]
    team = client.get("/api/v1/review/items", params={"team": str(team_id(ctx, "T2"))}, headers=h).json()
    assert [i["order_id"] for i in team["items"]] == [str(second.id)]
    since = client.get(
        "/api/v1/review/items", params={"since": (clock.now() - timedelta(minutes=1)).isoformat()}, headers=h
    ).json()
    assert [i["order_id"] for i in since["items"]] == [str(third.id)]
    # keyset pages
    seen, after = [], None
    while True:
        params: dict[str, Any] = {"limit": 1}
        if after:
            params["after"] = after
        page = client.get("/api/v1/review/items", params=params, headers=h).json()
        seen += [i["order_id"] for i in page["items"]]
        after = page["next_after"]
        if after is None:
            break
    assert [s for s in seen if s in ours] == ours and len(seen) == len(set(seen))
    assert_error(
        client.get("/api/v1/review/items", params={"after": "nonsense"}, headers=h), 400, "invalid_input"
    )
    counts = client.get("/api/v1/review/counts", headers=h).json()
    assert counts["by_status"]["pending"] >= 3
    assert counts["by_kind"]["leak"] == 1 and counts["by_flag"]["location_not_verified"] == 1
    assert counts["by_team"][str(team_id(ctx, "T2"))] == 1
    leak_counts = client.get("/api/v1/review/counts", params={"kind": "leak"}, headers=h).json()
    assert (
        leak_counts["total"] == 1 and leak_counts["by_kind"]["repair"] >= 2
    )  # kind counted without its filter


def test_counts_under_a_flag_follow_the_items_status(client: TestClient, ctx: AppContext) -> None:
    """Counts under a flag read the flag rows' copies of the item: a decision moves them too."""
    set_policy(client, always_kinds=["repair"], flags=["location_not_verified"])
    flagged = item_of(ctx, completed(ctx, at_door=FAR_AWAY).id)
    assert flagged is not None
    h = headers(client)
    params = {"flag": "location_not_verified"}

    def counted(**extra: str) -> dict[str, Any]:
        return client.get("/api/v1/review/counts", params={**params, **extra}, headers=h).json()

    assert counted()["total"] == 1 and counted()["by_status"]["pending"] == 1
    assert client.post(f"/api/v1/review/items/{flagged.id}/approve", headers=h).status_code == 200
    assert counted()["total"] == 0
    decided = counted(status="approved")
    assert decided["total"] == 1 and decided["by_status"] == {"approved": 1}
    assert decided["by_kind"] == {"repair": 1} and decided["by_flag"]["location_not_verified"] == 1


# ---------------------------------------------------------------- one item


def test_an_item_shows_everything_a_reviewer_needs(client: TestClient, ctx: AppContext) -> None:
    set_policy(client, always_kinds=["repair"])
    order = completed(ctx, at_door=FAR_AWAY, skewed=True)
    item = item_of(ctx, order.id)
    assert item is not None
    body = client.get(f"/api/v1/review/items/{item.id}", headers=headers(client)).json()
    assert body["item"]["status"] == "pending" and body["order"]["result"] == "fixed"
    completion = next(e for e in body["timeline"] if e["type"] == "completed")
    assert {"occurred_at", "corrected_at", "received_at"} <= set(completion)
    assert "clock_skew" in completion["flags"]
    (arrival,) = body["arrivals"]
    assert arrival["validation"] == "not_verified" and arrival["distance_m"] > 1000
    assert arrival["attempts"] == ADMITTED and arrival["accuracy_m"] == 10.0
    assert set(body["photos"]) == {"before", "after"}
    assert body["photos"]["before"][0]["blob_sha256"]
    assert body["documents"] == [] and body["measurements"] == [] and body["redo"] == []


# ---------------------------------------------------------------- decisions


def test_decisions_and_their_refusals(client: TestClient, ctx: AppContext, clock: ManualClock) -> None:
    set_policy(client, always_kinds=["repair"])
    h = headers(client)
    approved = item_of(ctx, completed(ctx).id)
    response = client.post(f"/api/v1/review/items/{approved.id}/approve", headers=h)  # type: ignore[union-attr]
    assert response.status_code == 200 and response.json()["status"] == "approved"
    again = client.post(f"/api/v1/review/items/{approved.id}/approve", headers=h)  # type: ignore[union-attr]
    assert_error(again, 409, "review_decided")
    assert_error(
        client.post(f"/api/v1/review/items/{approved.id}/reject", json={"reason": "x"}, headers=h),  # type: ignore[union-attr]
        409,
        "review_decided",
    )
    events = client.get(f"/api/v1/work-orders/{approved.order_id}", headers=h).json()["timeline"]  # type: ignore[union-attr]
    assert events[-1]["type"] == "review_approved"

    rejected = item_of(ctx, completed(ctx).id)
    no_reason = client.post(f"/api/v1/review/items/{rejected.id}/reject", json={}, headers=h)  # type: ignore[union-attr]
    assert no_reason.status_code == 400
    response = client.post(
        f"/api/v1/review/items/{rejected.id}/reject",
        json={"reason": "照片不清楚"},
        headers=h,  # type: ignore[union-attr]
    )
    assert response.json()["status"] == "rejected" and response.json()["decision_reason"] == "照片不清楚"

    redo = item_of(ctx, completed(ctx).id)
    due = (clock.now() + timedelta(days=1)).isoformat()
    body = {"items": [{"kind": "photo", "purpose": "after"}], "due_at": due}
    past = {**body, "due_at": (clock.now() - timedelta(hours=1)).isoformat()}
    assert_error(
        client.post(f"/api/v1/review/items/{redo.id}/redo", json=past, headers=h), 400, "invalid_due"
    )  # type: ignore[union-attr]
    bad_item = {**body, "items": [{"kind": "photo"}]}
    assert client.post(f"/api/v1/review/items/{redo.id}/redo", json=bad_item, headers=h).status_code == 400  # type: ignore[union-attr]
    response = client.post(f"/api/v1/review/items/{redo.id}/redo", json=body, headers=h)  # type: ignore[union-attr]
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "open" and response.json()["before"]["photos"]
    assert item_of(ctx, redo.order_id).status == "redo_requested"  # type: ignore[union-attr]
    assert_error(client.post(f"/api/v1/review/items/{redo.id}/redo", json=body, headers=h), 409, "redo_open")  # type: ignore[union-attr]

    # an item of a cancelled order: it can be approved or rejected, not redone
    set_policy(client, flags=["after_cancelled"])
    tech = principal(ctx, "tech1")
    order = new_order(ctx)
    act(ctx, order.id, "accept", tech)
    with ctx.db.session() as session:
        row = service.get_order_for_update(session, order_id=order.id, company_id=tech.company_id)
        service.cancel(
            session, actor=principal(ctx, "dispatcher1"), order=row, reason="取消", now=clock.now()
        )
    act(ctx, order.id, "note", tech, text="已到")
    cancelled = item_of(ctx, order.id)
    assert_error(
        client.post(f"/api/v1/review/items/{cancelled.id}/redo", json=body, headers=h),  # type: ignore[union-attr]
        409,
        "order_cancelled",
    )


# ---------------------------------------------------------------- who may act


@pytest.fixture
def north_supervisor(ctx: AppContext) -> str:
    with ctx.db.session() as session:
        company = Company(id=new_id(), code="north", name="North Heat", created_at=ctx.clock.now())
        session.add(company)
        session.flush()
        building = Building(id=new_id(), company_id=company.id, address="北站路 1 号")
        session.add(building)
        session.flush()
        session.add(
            Household(
                id=new_id(),
                company_id=company.id,
                building_id=building.id,
                account_number="N-1",
                unit="1-1-101",
                heated_area_m2=50,
                resident_name="北方住户",
                created_at=ctx.clock.now(),
            )
        )
        auth_service.create_user(
            ctx,
            session,
            company_id=company.id,
            username="north-supervisor",
            full_name="North Supervisor",
            role=Role.supervisor,
            password="north-password-1",
        )
    return "north-supervisor"


def test_who_may_see_and_decide(client: TestClient, ctx: AppContext, north_supervisor: str) -> None:
    set_policy(client, always_kinds=["repair"])
    item = item_of(ctx, completed(ctx, team="T1").id)
    assert item is not None
    north = auth(login(client, north_supervisor, password="north-password-1"))
    assert_error(client.get(f"/api/v1/review/items/{item.id}", headers=north), 404, "not_found")
    assert_error(client.post(f"/api/v1/review/items/{item.id}/approve", headers=north), 404, "not_found")
    assert north_supervisor and all(
        i["id"] != str(item.id) for i in client.get("/api/v1/review/items", headers=north).json()["items"]
    )
    tech = headers(client, "tech1")
    assert_error(client.get("/api/v1/review/items", headers=tech), 403, "forbidden")
    assert_error(client.get(f"/api/v1/review/items/{item.id}", headers=tech), 403, "forbidden")
    assert_error(client.post(f"/api/v1/review/items/{item.id}/approve", headers=tech), 403, "forbidden")
    dispatcher = headers(client, "dispatcher1")
    assert client.get(f"/api/v1/review/items/{item.id}", headers=dispatcher).status_code == 200
    assert_error(client.post(f"/api/v1/review/items/{item.id}/approve", headers=dispatcher), 403, "forbidden")

    # own team only: another team's supervisor is refused (403: the item is not hidden from them)
    set_policy(client, always_kinds=["repair"], own_team_only=True)
    with ctx.db.session() as session:
        supervisor = session.exec(select(User).where(User.username == "supervisor1")).one()
        supervisor.team_id = team_id(ctx, "T2")
        session.add(supervisor)
    assert_error(
        client.post(f"/api/v1/review/items/{item.id}/approve", headers=headers(client)), 403, "not_your_team"
    )
    assert item_of(ctx, item.order_id).status == "pending"  # type: ignore[union-attr]
    with ctx.db.session() as session:
        supervisor = session.exec(select(User).where(User.username == "supervisor1")).one()
        supervisor.team_id = team_id(ctx, "T1")
        session.add(supervisor)
    assert client.post(f"/api/v1/review/items/{item.id}/approve", headers=headers(client)).status_code == 200
    # an admin always may
    other = item_of(ctx, completed(ctx, team="T2", tech_name="tech2", account="200101").id)
    assert (
        client.post(f"/api/v1/review/items/{other.id}/approve", headers=headers(client, "admin")).status_code
        == 200
    )  # type: ignore[union-attr]


def test_a_queue_period_without_a_zone_is_a_400(client: TestClient) -> None:
    """Found by review: a naive time in the query was compared with aware ones, a 500."""
    for path in ("/api/v1/review/items", "/api/v1/review/counts"):
        for name in ("since", "until"):
            response = client.get(f"{path}?{name}=2026-01-01T00:00:00", headers=headers(client))
            body = assert_error(response, 400, "invalid_input")
            assert name in body["message"]
        zoned = client.get(f"{path}?since=2026-01-01T00:00:00%2B08:00", headers=headers(client))
        assert zoned.status_code == 200, zoned.text
