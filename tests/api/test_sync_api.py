"""The sync endpoints' edges: scope of the feed, paging, cursors, limits and bad input."""

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from backend.auth.service import read_token
from backend.context import AppContext
from backend.org import importer
from backend.sync import changes
from backend.sync.pull import decode_cursor
from backend.sync.push import MAX_BATCH
from backend.work_orders import timeline
from tests.api.helpers import assert_error, auth, counting, login
from tests.api.test_review_api import completed
from tests.fixtures.field import act, appoint, new_order, principal

pytestmark = pytest.mark.usefixtures("demo")


def pull(client: TestClient, tokens: dict, cursor: str | None = None, limit: int | None = None) -> dict:
    params: dict = {}
    if cursor:
        params["cursor"] = cursor
    if limit:
        params["limit"] = limit
    response = client.get("/api/v1/sync/pull", params=params, headers=auth(tokens))
    assert response.status_code == 200, response.text
    return response.json()


def settled(client: TestClient, tokens: dict, ctx: AppContext) -> str:
    """A cursor past everything committed so far. A pull's cursor may stay below a transaction of
    the cluster still in flight, and the next pull then sends the rows above it again; an empty
    answer alone does not show it is past them (a row may commit after it, above the cursor)."""
    cursor = pull(client, tokens)["cursor"]
    for _ in range(100):
        page = pull(client, tokens, cursor)
        with ctx.db.engine.connect() as conn:
            last = conn.execute(sa.text("SELECT coalesce(max(version), 0) FROM change_log")).scalar_one()
        if not page["changes"] and decode_cursor(cursor).version >= last:
            return cursor
        cursor = page["cursor"]
        time.sleep(0.02)
    raise AssertionError("the feed never settled")


def by_entity(page: dict, entity: str) -> dict[str, dict]:
    return {c["id"]: c for c in page["changes"] if c["entity"] == entity}


def test_the_day_pack_holds_the_users_scope_and_nothing_else(client: TestClient, ctx: AppContext) -> None:
    tokens = login(client, "tech1")
    page = pull(client, tokens)
    assert page["reset"] is True and page["has_more"] is False
    orders = by_entity(page, "work_order")
    tech1 = str(principal(ctx, "tech1").user_id)
    mine = client.get("/api/v1/work-orders", headers=auth(tokens)).json()
    assert set(orders) == {o["id"] for o in mine}
    assert all(o["assignee_id"] == tech1 for o in mine)
    households = by_entity(page, "household")
    assert set(households) == {o["data"]["household_id"] for o in orders.values()}
    sample = next(iter(households.values()))["data"]
    assert set(sample) == {
        "id",
        "account_number",
        "address",
        "unit",
        "resident_name",
        "resident_phone",
        "is_key_customer",
        "lat",
        "lon",
        "last_visits",
    }
    leak = next(o["data"] for o in orders.values() if o["data"]["kind"] == "leak")
    assert {c["clock"] for c in leak["clocks"]} == {"arrive", "resolve"}
    assert leak["allowed_moves"] == ["accept", "request_return"]
    reference = {c["id"]: c["data"] for c in page["changes"] if c["entity"] == "reference"}
    assert set(reference) == {"sla_policy", "catalogue", "instruments"}
    # The phone checks an instrument's certificate before the inspector starts measuring.
    expiry = {i["id"]: i["calibration_expires"] for i in reference["instruments"]["instruments"]}
    assert set(expiry) == {"TH-0042", "TH-0043", "TH-0007"}
    assert expiry["TH-0007"] < ctx.clock.now().date().isoformat() < expiry["TH-0042"]


def test_an_empty_delta_and_the_own_writes_in_the_next_pull(client: TestClient, ctx: AppContext) -> None:
    tokens = login(client, "tech1", device_id="feed-phone-1")
    first = pull(client, tokens)
    empty = pull(client, tokens, first["cursor"])
    assert empty == {"cursor": empty["cursor"], "has_more": False, "reset": False, "changes": []}
    order_id = next(iter(by_entity(first, "work_order")))
    push = client.post(
        "/api/v1/sync/push",
        json={
            "device_id": "feed-phone-1",
            "sent_at": datetime(2026, 12, 7, 0, 30, tzinfo=UTC).isoformat(),
            "actions": [
                {
                    "id": str(uuid.uuid4()),
                    "seq": 1,
                    "type": "work_order.accept",
                    "v": 1,
                    "occurred_at": "2026-12-07T00:29:00Z",
                    "payload": {"work_order_id": order_id},
                }
            ],
        },
        headers=auth(tokens),
    )
    assert push.json()["results"][0]["status"] == "applied"
    delta = pull(client, tokens, empty["cursor"])
    assert delta["reset"] is False
    assert by_entity(delta, "work_order")[order_id]["data"]["state"] == "accepted"
    assert pull(client, tokens, delta["cursor"])["changes"] == []


def test_reassignment_moves_the_order_between_phones(client: TestClient, ctx: AppContext) -> None:
    tech1, tech2 = login(client, "tech1"), login(client, "tech2")
    c1, c2 = pull(client, tech1)["cursor"], pull(client, tech2)["cursor"]
    order = new_order(ctx, assignee="tech1", account="100203")
    after_create = pull(client, tech1, c1)
    assert after_create["changes"][0]["op"] == "upsert"
    household = str(order.household_id)
    assert by_entity(after_create, "household")[household]["data"]["resident_phone"] == "13912340006"
    client.post(
        f"/api/v1/work-orders/{order.id}/assign",
        json={"user_id": str(principal(ctx, "tech2").user_id)},
        headers=auth(login(client, "dispatcher1")),
    )
    old = pull(client, tech1, after_create["cursor"])
    assert by_entity(old, "work_order")[str(order.id)]["op"] == "remove"
    assert by_entity(old, "household")[household]["op"] == "remove"
    new = pull(client, tech2, c2)
    assert by_entity(new, "work_order")[str(order.id)]["op"] == "upsert"
    assert by_entity(new, "household")[household]["op"] == "upsert"
    # Other technicians hear nothing of it.
    inspector = login(client, "inspector1")
    c3 = pull(client, inspector)["cursor"]
    new_order(ctx, assignee="tech2", account="200202")
    assert pull(client, inspector, c3)["changes"] == []


def test_paging_with_has_more(client: TestClient, ctx: AppContext) -> None:
    tokens = login(client, "tech2")
    cursor = pull(client, tokens)["cursor"]
    created = {str(new_order(ctx, assignee="tech2", account="200203").id) for _ in range(7)}
    seen: set[str] = set()
    pages = 0
    while True:
        page = pull(client, tokens, cursor, limit=3)
        pages += 1
        seen |= set(by_entity(page, "work_order"))
        cursor = page["cursor"]
        if not page["has_more"]:
            break
    assert created <= seen
    assert pages >= 3


def test_a_policy_change_reaches_every_phone(client: TestClient) -> None:
    tokens = login(client, "tech1")
    cursor = pull(client, tokens)["cursor"]
    admin = auth(login(client, "admin"))
    policy = client.get("/api/v1/sla/policy", headers=admin).json()
    policy["kinds"]["leak"]["arrive"] = {"minutes": 25}
    client.put("/api/v1/sla/policy", json=policy, headers=admin)
    page = pull(client, tokens, cursor)
    assert by_entity(page, "reference")["sla_policy"]["data"]["kinds"]["leak"]["arrive"] == {"minutes": 25}


@pytest.mark.parametrize("cursor", ["garbage", "AAAA", "x" * 300])
def test_an_unknown_cursor_resets(client: TestClient, cursor: str) -> None:
    page = pull(client, login(client, "tech1"), cursor)
    assert page["reset"] is True
    assert by_entity(page, "work_order")


def test_a_foreign_cursor_resets(client: TestClient) -> None:
    theirs = pull(client, login(client, "tech2"))["cursor"]
    mine = pull(client, login(client, "tech1"), theirs)
    assert mine["reset"] is True
    assert mine["cursor"] != theirs


# ---------------------------------------------------------------- push input


def test_a_batch_over_the_limit_is_413_with_the_limit(client: TestClient) -> None:
    tokens = login(client, "tech1", device_id="big-batch-01")
    actions = [
        {
            "id": str(uuid.uuid4()),
            "seq": i + 1,
            "type": "work_order.note",
            "v": 1,
            "occurred_at": "2026-12-07T00:00:00Z",
            "payload": {"work_order_id": str(uuid.uuid4()), "text": "x"},
        }
        for i in range(MAX_BATCH + 1)
    ]
    response = client.post(
        "/api/v1/sync/push",
        json={"device_id": "big-batch-01", "sent_at": "2026-12-07T00:00:00Z", "actions": actions},
        headers=auth(tokens),
    )
    assert assert_error(response, 413, "batch_too_large")["detail"] == {"limit": MAX_BATCH}


def test_a_body_over_the_limit_is_413(client: TestClient, ctx: AppContext) -> None:
    tokens = login(client, "tech1", device_id="big-body-01")
    body = b'{"device_id": "big-body-01", "sent_at": "2026-12-07T00:00:00Z", "actions": [], "pad": "'
    body += b"x" * ctx.settings.max_body_bytes + b'"}'
    response = client.post(
        "/api/v1/sync/push", content=body, headers={**auth(tokens), "Content-Type": "application/json"}
    )
    assert assert_error(response, 413, "body_too_large")["detail"] == {"limit": ctx.settings.max_body_bytes}


def test_pushing_for_another_device_is_refused(client: TestClient) -> None:
    tokens = login(client, "tech1", device_id="own-phone-01")
    response = client.post(
        "/api/v1/sync/push",
        json={"device_id": "someone-elses-phone", "sent_at": "2026-12-07T00:00:00Z", "actions": []},
        headers=auth(tokens),
    )
    assert_error(response, 403, "device_mismatch")


@pytest.mark.parametrize(
    "body",
    [
        {"device_id": "own-phone-01", "sent_at": "yesterday", "actions": []},
        {"device_id": "own-phone-01", "sent_at": "2026-12-07T00:00:00Z", "actions": [{"seq": 0}]},
        {"device_id": "own-phone-01", "actions": []},
    ],
)
def test_a_malformed_envelope_is_400(client: TestClient, body: dict) -> None:
    tokens = login(client, "tech1", device_id="own-phone-01")
    assert_error(client.post("/api/v1/sync/push", json=body, headers=auth(tokens)), 400, "invalid_body")


def test_a_technician_cannot_act_on_anothers_order(client: TestClient, ctx: AppContext) -> None:
    theirs = new_order(ctx, assignee="tech2")
    tokens = login(client, "tech1", device_id="nosy-phone-01")
    response = client.post(
        "/api/v1/sync/push",
        json={
            "device_id": "nosy-phone-01",
            "sent_at": "2026-12-07T00:30:00Z",
            "actions": [
                {
                    "id": str(uuid.uuid4()),
                    "seq": 1,
                    "type": "work_order.note",
                    "v": 1,
                    "occurred_at": "2026-12-07T00:30:00Z",
                    "payload": {"work_order_id": str(theirs.id), "text": "peek"},
                },
                {
                    "id": str(uuid.uuid4()),
                    "seq": 2,
                    "type": "work_order.accept",
                    "v": 1,
                    "occurred_at": "2026-12-07T00:30:00Z",
                    "payload": {"work_order_id": str(theirs.id)},
                },
            ],
        },
        headers=auth(tokens),
    ).json()
    note, accept = response["results"]
    # Another technician's order does not exist for this phone: nothing about it is told.
    assert (note["status"], note["code"]) == ("rejected", "not_found")
    assert (accept["status"], accept["code"]) == ("rejected", "not_found")
    assert "current" not in accept


def test_a_delta_shows_a_households_phone_while_another_of_its_orders_is_active(
    client: TestClient, ctx: AppContext
) -> None:
    """Only a finished order at the address changed; the user's other, active, order there still
    shows the resident's phone in full (the delta reads the orders at the touched households)."""
    tokens = login(client, "tech1", device_id="mask-phone-1")
    active = new_order(ctx, account="100203")
    tech = principal(ctx, "tech1")
    act(ctx, active.id, "accept", tech)
    cursor = pull(client, tokens)["cursor"]
    finished = completed(ctx, account="100203")
    delta = pull(client, tokens, cursor)
    assert set(by_entity(delta, "work_order")) == {str(finished.id)}
    household = by_entity(delta, "household")[str(active.household_id)]
    assert household["op"] == "upsert" and household["data"]["resident_phone"] == "13912340006"
    # The visit just finished is the first of the address's last visits.
    assert (
        household["data"]["last_visits"][0]["order_ref"]
        == by_entity(delta, "work_order")[str(finished.id)]["data"]["ref"]
    )


def test_a_note_sends_the_order_again_and_not_its_household(client: TestClient, ctx: AppContext) -> None:
    """A note (like a photo or a measurement) changes nothing the phone holds of the household:
    the next pull carries the order only, half the bytes over a basement's weak signal."""
    tokens = login(client, "tech1", device_id="note-echo-1")
    order = new_order(ctx, account="100203")
    cursor = settled(client, tokens, ctx)
    act(ctx, order.id, "note", principal(ctx, "tech1"), text="阀门已检查")
    delta = pull(client, tokens, cursor)
    assert [(c["entity"], c["id"]) for c in delta["changes"]] == [("work_order", str(order.id))]
    # A move of the order changes what the household shows (its phone in full once arrived).
    act(ctx, order.id, "accept", principal(ctx, "tech1"))
    moved = pull(client, tokens, delta["cursor"])
    assert set(by_entity(moved, "household")) == {str(order.household_id)}


def test_a_delta_pull_admits_its_caller_in_the_statement_that_reads_the_feed(
    client: TestClient, ctx: AppContext
) -> None:
    tokens = login(client, "tech1", device_id="admit-pull-1")
    cursor = pull(client, tokens)["cursor"]
    order = new_order(ctx)
    with counting(ctx) as seen:
        delta = pull(client, tokens, cursor)
    assert str(order.id) in by_entity(delta, "work_order")
    admissions = [s for s in seen if "auth_session" in s]
    assert len(admissions) == 1 and "sync_counter" in admissions[0]
    work = [s for s in seen if not s.startswith("BEGIN")]
    assert work[0] is admissions[0]


def test_a_revoked_device_is_refused_a_delta_pull(client: TestClient, ctx: AppContext) -> None:
    tokens = login(client, "tech1", device_id="revoked-pull-1")
    cursor = pull(client, tokens)["cursor"]
    new_order(ctx)  # the delta is not empty: it comes from the database
    admin = auth(login(client, "admin"))
    assert client.post("/api/v1/devices/revoked-pull-1/revoke", headers=admin).status_code == 200
    answer = client.get("/api/v1/sync/pull", params={"cursor": cursor}, headers=auth(tokens))
    assert_error(answer, 401, "device_revoked")


def test_an_imported_change_of_a_household_reaches_the_phone_that_holds_it(
    client: TestClient, ctx: AppContext, tmp_path: Path
) -> None:
    tokens = login(client, "tech1", device_id="import-phone-1")
    order = new_order(ctx, account="100203")
    cursor = pull(client, tokens)["cursor"]
    other = login(client, "tech2", device_id="import-phone-2")
    other_cursor = settled(client, other, ctx)
    rows = [
        "account_number,station_code,station_name,address,unit,heated_area_m2,resident_name,resident_phone,"
        "is_key_customer,lat,lon",
        "100203,S01,,和平区南京北街 12 号,3-6-602,120,吴春梅,13912349999,否,,",
    ]
    path = tmp_path / "households.csv"
    path.write_text("\n".join(rows), encoding="utf-8")
    tech = principal(ctx, "tech1")
    with ctx.db.session() as session:
        report = importer.import_households(ctx, session, company_id=tech.company_id, path=path)
    assert report.ok and report.updated == 1
    delta = pull(client, tokens, cursor)
    household = by_entity(delta, "household")[str(order.household_id)]
    assert household["op"] == "upsert" and household["data"]["unit"] == "3-6-602"
    # Nobody else holds it: another technician's feed stays quiet.
    assert pull(client, other, other_cursor)["changes"] == []


def test_households_held_by_many_are_found_a_statement_at_a_time(
    client: TestClient, ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import may update more households than one statement may bind: the holders are found in
    several, and every holder still hears of its household."""
    monkeypatch.setattr(changes, "HOLDERS_PER_STATEMENT", 1)
    tokens = login(client, "tech1", device_id="many-holders-1")
    orders = [new_order(ctx, account=account) for account in ("100201", "100202", "100203")]
    cursor = pull(client, tokens)["cursor"]
    tech = principal(ctx, "tech1")
    with counting(ctx) as seen, ctx.db.session() as session:
        timeline.touch_households(
            session, company_id=tech.company_id, household_ids=[o.household_id for o in orders]
        )
    assert len([s for s in seen if "DISTINCT" in s and "work_order.assignee_id" in s]) == 3
    delta = pull(client, tokens, cursor)
    assert set(by_entity(delta, "household")) == {str(o.household_id) for o in orders}


def test_a_pulled_order_carries_its_clocks_and_its_current_appointment(
    client: TestClient, ctx: AppContext
) -> None:
    tokens = login(client, "tech1", device_id="appointment-phone-1")
    tech = principal(ctx, "tech1")
    order = new_order(ctx)
    act(ctx, order.id, "accept", tech)
    cursor = pull(client, tokens)["cursor"]
    first = ctx.clock.now() + timedelta(hours=2)
    appoint(ctx, order.id, tech, first)
    second = first + timedelta(days=1)
    appoint(ctx, order.id, tech, second, reason="住户要求改期")
    for page in (pull(client, tokens, cursor), pull(client, tokens)):  # a delta and a snapshot
        view = by_entity(page, "work_order")[str(order.id)]["data"]
        appointment = view["appointment"]
        assert datetime.fromisoformat(appointment["window_start"]) == second
        assert appointment["reason"] == "住户要求改期"
        due = [(c["due_at"], c["clock"]) for c in view["clocks"]]
        assert due == sorted(due) and {c for _, c in due} >= {"arrive", "resolve"}


def test_a_write_is_never_answered_empty_by_the_worker_that_committed_it(
    client: TestClient, ctx: AppContext
) -> None:
    """On PostgreSQL the worker's hub hears of a change by NOTIFY, a moment after the commit; the
    phone's next pull may come sooner. The committing worker forgets what it knew of the users the
    change is for, so that pull reads the database and the phone sees its own write at once."""
    hub = ctx.live
    deadline = time.monotonic() + 10
    while not hub.known:
        assert time.monotonic() < deadline, "the worker's hub never connected"
        time.sleep(0.02)
    tokens = login(client, "tech1", device_id="own-write-1")
    order = new_order(ctx, account="100203")
    cursor = pull(client, tokens)["cursor"]
    assert pull(client, tokens, cursor)["changes"] == []  # a database delta: the user's head is learned
    claims = read_token(ctx, authorization=f"Bearer {tokens['access_token']}", device_header=None)
    parsed = decode_cursor(cursor)
    assert hub.answers_empty(session_id=claims.session_id, user_id=claims.user_id, cursor=parsed)
    act(ctx, order.id, "note", principal(ctx, "tech1"), text="阀门已检查")
    # Right after the commit, before any NOTIFY could be handled: not empty from memory.
    assert not hub.answers_empty(session_id=claims.session_id, user_id=claims.user_id, cursor=parsed)
    assert str(order.id) in by_entity(pull(client, tokens, cursor), "work_order")
