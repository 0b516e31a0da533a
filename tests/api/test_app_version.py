"""An app older than the minimum: 426 on reads and intents, but every queued fact still lands."""

import hashlib
import io
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from PIL import Image

from backend.context import AppContext
from mobile_contract.client import LockedOut, OutboxClient
from tests.api.helpers import assert_error, auth, login
from tests.fixtures.field import new_order
from tests.scenarios.test_action_catalogue import BOOKKEEPING, snapshot

pytestmark = pytest.mark.usefixtures("demo")

OLD = {"X-App-Version": "1.9.3"}
CURRENT = {"X-App-Version": "2.0.0"}


@pytest.fixture
def server(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(min_app_version="2.0.0")


def batch(
    ctx: AppContext, device: str, *actions: tuple[str, int, dict[str, Any]], first_seq: int = 1
) -> dict:
    now = ctx.clock.now()
    return {
        "device_id": device,
        "sent_at": now.isoformat(),
        "actions": [
            {
                "id": str(uuid.uuid4()),
                "seq": first_seq + i,
                "type": type_,
                "v": v,
                "occurred_at": (now - timedelta(minutes=5)).isoformat(),
                "payload": payload,
            }
            for i, (type_, v, payload) in enumerate(actions)
        ],
    }


def push(client: TestClient, tokens: dict, body: dict, version: dict[str, str]) -> dict:
    response = client.post("/api/v1/sync/push", json=body, headers={**auth(tokens), **version})
    assert response.status_code == 200, response.text
    return response.json()


def test_an_old_app_is_told_to_upgrade_on_reads(server: TestClient) -> None:
    tokens = login(server, "tech1")
    for path in ("/api/v1/work-orders", "/api/v1/sync/pull", "/api/v1/me"):
        body = assert_error(server.get(path, headers={**auth(tokens), **OLD}), 426, "app_upgrade_required")
        assert "2.0.0" in body["message"]
        assert body["detail"] == {"minimum": "2.0.0", "yours": "1.9.3"}
    # A pre-release of the minimum is older than it.
    early = server.get("/api/v1/work-orders", headers={**auth(tokens), "X-App-Version": "2.0.0-rc.1"})
    assert_error(early, 426, "app_upgrade_required")


def test_an_old_app_keeps_its_way_to_the_server(server: TestClient, ctx: AppContext) -> None:
    """Log in, refresh, upload, push, status and log out all still work for an old app."""
    login_body = {
        "username": "tech1",
        "password": "demo-password",
        "device": {"id": "old-phone-01", "platform": "android", "app_version": "1.9.3"},
    }
    response = server.post("/api/v1/auth/login", json=login_body, headers=OLD)
    assert response.status_code == 200, response.text
    tokens = response.json()
    refreshed = server.post(
        "/api/v1/auth/refresh",
        json={"refresh_token": tokens["refresh_token"], "device_id": "old-phone-01"},
        headers=OLD,
    )
    assert refreshed.status_code == 200, refreshed.text
    tokens = refreshed.json()
    data, sha = photo()
    assert server.head(f"/api/v1/blobs/{sha}", headers={**auth(tokens), **OLD}).status_code == 404
    assert (
        server.put(f"/api/v1/blobs/{sha}", content=data, headers={**auth(tokens), **OLD}).status_code == 201
    )
    assert server.head(f"/api/v1/blobs/{sha}", headers={**auth(tokens), **OLD}).status_code == 200
    order_id = str(new_order(ctx).id)
    answer = push(server, tokens, batch(ctx, "old-phone-01", ("work_order.note", 1, _note(order_id))), OLD)
    assert answer["results"][0]["status"] == "applied"
    status = server.get("/api/v1/sync/status", headers={**auth(tokens), **OLD})
    assert status.status_code == 200 and status.json()["last_applied_seq"] == 1
    assert server.post("/api/v1/auth/logout", headers={**auth(tokens), **OLD}).status_code == 200
    # Probes and the API documents are never checked.
    assert server.get("/health", headers=OLD).status_code == 200


def test_an_old_app_is_refused_the_online_api(server: TestClient, ctx: AppContext) -> None:
    tokens = login(server, "supervisor1")
    revisit = server.post(
        f"/api/v1/revisits/{uuid.uuid4()}/outcome",
        json={"channel": "phone", "outcome": "satisfied"},
        headers={**auth(tokens), **OLD},
    )
    assert_error(revisit, 426, "app_upgrade_required")
    photo = server.get(f"/api/v1/blobs/{'a' * 64}/thumb", headers={**auth(tokens), **OLD})
    assert_error(photo, 426, "app_upgrade_required")


def photo() -> tuple[bytes, str]:
    out = io.BytesIO()
    Image.effect_noise((64, 48), 40).convert("RGB").save(out, "JPEG")
    return out.getvalue(), hashlib.sha256(out.getvalue()).hexdigest()


def _note(order_id: str, text: str = "阀门已关") -> dict[str, Any]:
    return {"work_order_id": order_id, "text": text}


def test_an_old_apps_facts_are_applied_and_its_intents_refused(server: TestClient, ctx: AppContext) -> None:
    tokens = login(server, "tech1", device_id="old-phone-02")
    order_id = str(new_order(ctx).id)
    window_start = ctx.clock.now() + timedelta(hours=3)
    body = batch(
        ctx,
        "old-phone-02",
        ("work_order.accept", 1, {"work_order_id": order_id}),
        ("work_order.note", 1, _note(order_id)),
        (
            "work_order.appointment",
            1,
            {
                "work_order_id": order_id,
                "window_start": window_start.isoformat(),
                "window_end": (window_start + timedelta(hours=2)).isoformat(),
            },
        ),
        ("work_order.contact", 1, {"work_order_id": order_id, "outcome": "reached"}),
    )
    answer = push(server, tokens, body, OLD)
    assert answer["last_applied_seq"] == 4  # the queue moved past every action
    assert [(r["status"], r.get("code")) for r in answer["results"]] == [
        ("rejected", "app_upgrade_required"),
        ("applied", None),
        ("rejected", "app_upgrade_required"),
        ("applied", None),
    ]
    assert "update the app" in answer["results"][0]["message"]
    # The order has the facts on its timeline and nothing of the intents.
    detail = server.get(f"/api/v1/work-orders/{order_id}", headers={**auth(tokens), **CURRENT}).json()
    assert detail["order"]["state"] == "assigned"
    assert [e["type"] for e in detail["timeline"]][-2:] == ["note", "contact"]
    assert "accepted" not in [e["type"] for e in detail["timeline"]]
    # Sent again after a lost answer: the same answers, nothing applied twice.
    again = push(server, tokens, body, OLD)
    assert [(r["status"], r.get("original_status")) for r in again["results"]] == [
        ("duplicate", "rejected"),
        ("duplicate", "applied"),
        ("duplicate", "rejected"),
        ("duplicate", "applied"),
    ]
    # The device's own record says why.
    refused = server.get("/api/v1/sync/status", headers={**auth(tokens), **OLD}).json()["refused"]
    assert sorted((r["seq"], r["code"]) for r in refused) == [
        (1, "app_upgrade_required"),
        (3, "app_upgrade_required"),
    ]


def test_a_refused_intent_of_an_old_app_leaves_no_trace(server: TestClient, ctx: AppContext) -> None:
    tokens = login(server, "tech1", device_id="old-phone-03")
    order_id = str(new_order(ctx).id)
    before = snapshot(ctx)
    answer = push(
        server, tokens, batch(ctx, "old-phone-03", ("work_order.accept", 1, {"work_order_id": order_id})), OLD
    )
    assert (answer["results"][0]["status"], answer["results"][0]["code"]) == (
        "rejected",
        "app_upgrade_required",
    )
    after = snapshot(ctx)
    assert {name for name in after if after[name] != before[name]} <= BOOKKEEPING
    # Updated, the same phone does it again as a new action, and it is applied.
    later = batch(ctx, "old-phone-03", ("work_order.accept", 1, {"work_order_id": order_id}), first_seq=2)
    assert push(server, tokens, later, CURRENT)["results"][0]["status"] == "applied"


def test_a_current_app_and_a_request_without_the_header_are_served(
    server: TestClient, ctx: AppContext
) -> None:
    tokens = login(server, "tech1", device_id="new-phone-01")
    for version in (CURRENT, {"X-App-Version": "2.1.0+build.7"}, {}):
        assert server.get("/api/v1/work-orders", headers={**auth(tokens), **version}).status_code == 200
    order_id = str(new_order(ctx).id)
    body = batch(ctx, "new-phone-01", ("work_order.accept", 1, {"work_order_id": order_id}))
    assert push(server, tokens, body, CURRENT)["results"][0]["status"] == "applied"


def test_without_a_minimum_every_app_is_served(client: TestClient, ctx: AppContext) -> None:
    tokens = login(client, "tech1", device_id="any-phone-01")
    assert (
        client.get("/api/v1/work-orders", headers={**auth(tokens), "X-App-Version": "0.0.1"}).status_code
        == 200
    )
    order_id = str(new_order(ctx).id)
    body = batch(ctx, "any-phone-01", ("work_order.accept", 1, {"work_order_id": order_id}))
    assert push(client, tokens, body, {"X-App-Version": "0.0.1"})["results"][0]["status"] == "applied"


@pytest.mark.parametrize("bad", ["2.3", "v2.3.1", "latest", "2.3.1.4", "02.3.1", ""])
def test_a_malformed_app_version_is_a_400(server: TestClient, client: TestClient, bad: str) -> None:
    tokens = login(client, "tech1")
    for app in (server, client):  # with or without a minimum
        for method, path in (("GET", "/api/v1/work-orders"), ("POST", "/api/v1/sync/push")):
            response = app.request(method, path, headers={**auth(tokens), "X-App-Version": bad}, json={})
            body = assert_error(response, 400, "invalid_app_version")
            assert body["detail"] == {"header": "X-App-Version", "got": bad}


def test_the_reference_client_of_an_old_app_still_syncs_its_facts(
    server: TestClient, ctx: AppContext, tmp_path: Path
) -> None:
    """A phone a week behind on updates: its queue lands, its intents are refused, then it updates."""
    order_id = str(new_order(ctx).id)
    old = OutboxClient(server, tmp_path / "phone.sqlite", device_id="outbox-old-01", app_version="1.9.3")
    old.login("tech1", "demo-password")
    accept, _ = old.enqueue("work_order.accept", {"work_order_id": order_id})
    note, _ = old.enqueue("work_order.note", _note(order_id, "住户不在家，已留言"))
    old.push()
    assert (old.outcome(accept)["status"], old.outcome(accept)["code"]) == (
        "rejected",
        "app_upgrade_required",
    )
    assert old.outcome(note)["status"] == "applied"
    with pytest.raises(LockedOut) as refused:
        old.pull()  # a read: the app must be updated first
    assert refused.value.code == "app_upgrade_required"
    old.close()
    # Updated: the same phone (same queue, same device) pulls again and does the intent again.
    new = OutboxClient(server, tmp_path / "phone.sqlite", app_version="2.0.0")
    new.pull()
    again, _ = new.enqueue("work_order.accept", {"work_order_id": order_id})
    new.push()
    assert new.outcome(again)["status"] == "applied"
    new.close()
