"""An action version being retired: announced in every answer that carries it, refused from its sunset."""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from litestar.testing import TestClient

from backend.clock import ManualClock
from backend.context import AppContext
from mobile_contract.actions import DEPRECATED
from tests.api.helpers import auth, login
from tests.scenarios.test_action_catalogue import started

pytestmark = pytest.mark.usefixtures("demo")

COMPLETE_V1 = DEPRECATED[("work_order.complete", 1)]
# 2026-12-01T00:00:00Z and 2027-10-01T00:00:00Z
DEPRECATION = "@1796083200"
SUNSET = "Fri, 01 Oct 2027 00:00:00 GMT"


def push_one(
    client: TestClient,
    ctx: AppContext,
    tokens: dict,
    device: str,
    type_: str,
    v: int,
    payload: dict,
    seq: int = 1,
):
    now = ctx.clock.now()
    body = {
        "device_id": device,
        "sent_at": now.isoformat(),
        "actions": [
            {
                "id": str(uuid.uuid4()),
                "seq": seq,
                "type": type_,
                "v": v,
                "occurred_at": now.isoformat(),
                "payload": payload,
            }
        ],
    }
    response = client.post("/api/v1/sync/push", json=body, headers=auth(tokens))
    assert response.status_code == 200, response.text
    return response


def test_the_schedule_retires_complete_v1_a_season_ahead() -> None:
    assert (COMPLETE_V1.deprecated_on.isoformat(), COMPLETE_V1.sunset_on.isoformat()) == (
        "2026-12-01",
        "2027-10-01",
    )
    assert int(COMPLETE_V1.deprecated_at.timestamp()) == int(DEPRECATION[1:])


def test_a_push_with_a_deprecated_version_is_answered_with_deprecation_and_sunset(
    client: TestClient, ctx: AppContext
) -> None:
    tokens = login(client, "tech1", device_id="phone-dep-01")
    order_id = started(ctx)
    response = push_one(
        client,
        ctx,
        tokens,
        "phone-dep-01",
        "work_order.complete",
        1,
        {"work_order_id": order_id, "result": "fixed"},
    )
    # Still applied until the sunset (here it wants its photos: the order is checked as usual).
    assert response.json()["results"][0]["code"] == "photos_missing"
    assert response.headers["Deprecation"] == DEPRECATION
    assert response.headers["Sunset"] == SUNSET
    assert "Link" not in response.headers  # no documentation address configured


def test_a_push_without_one_has_no_such_headers(client: TestClient, ctx: AppContext) -> None:
    tokens = login(client, "tech1", device_id="phone-dep-02")
    order_id = started(ctx)
    response = push_one(
        client,
        ctx,
        tokens,
        "phone-dep-02",
        "work_order.complete",
        2,
        {"work_order_id": order_id, "result": "fixed"},
    )
    assert "Deprecation" not in response.headers and "Sunset" not in response.headers


def test_the_link_names_the_configured_documentation(
    make_client: Callable[..., TestClient], ctx: AppContext
) -> None:
    server = make_client(deprecation_docs_url="https://docs.example.test/phone#versions")
    tokens = login(server, "tech1", device_id="phone-dep-03")
    response = push_one(
        server,
        ctx,
        tokens,
        "phone-dep-03",
        "work_order.complete",
        1,
        {"work_order_id": started(ctx), "result": "fixed"},
    )
    assert (
        response.headers["Link"]
        == '<https://docs.example.test/phone#versions>; rel="deprecation"; type="text/html"'
    )


def test_from_the_sunset_the_version_is_refused(
    client: TestClient, ctx: AppContext, clock: ManualClock
) -> None:
    order_id = started(ctx)
    clock.set(datetime(2027, 10, 1, tzinfo=UTC) - timedelta(seconds=1))
    tokens = login(client, "tech1", device_id="phone-dep-04")
    before = push_one(
        client,
        ctx,
        tokens,
        "phone-dep-04",
        "work_order.complete",
        1,
        {"work_order_id": order_id, "result": "fixed"},
    )
    assert before.json()["results"][0]["code"] == "photos_missing"  # taken and checked: not yet retired
    clock.advance(seconds=1)
    tokens = login(client, "tech1", device_id="phone-dep-05")
    after = push_one(
        client,
        ctx,
        tokens,
        "phone-dep-05",
        "work_order.complete",
        1,
        {"work_order_id": order_id, "result": "fixed"},
    )
    result = after.json()["results"][0]
    assert (result["status"], result["code"]) == ("rejected", "unsupported_action_version")
    assert result["message"] == "work_order.complete v1 is not supported; this server accepts v2."
    assert (after.headers["Deprecation"], after.headers["Sunset"]) == (DEPRECATION, SUNSET)
    # The queue moves on, and the current version is taken.
    note = {"work_order_id": order_id, "text": "完工"}
    current = push_one(client, ctx, tokens, "phone-dep-05", "work_order.note", 1, note, seq=2)
    assert current.json()["results"][0]["status"] == "applied"


def test_a_browser_app_may_send_its_version_and_read_the_announcement(
    make_client: Callable[..., TestClient], ctx: AppContext
) -> None:
    origin = "https://phone.heating.example"
    server = make_client(cors_allow_origins=origin)
    preflight = server.options(
        "/api/v1/sync/push",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-app-version",
        },
    )
    assert preflight.status_code == 204
    allowed = {h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")}
    assert "x-app-version" in allowed
    tokens = login(server, "tech1", device_id="phone-dep-07")
    now = ctx.clock.now()
    body = {
        "device_id": "phone-dep-07",
        "sent_at": now.isoformat(),
        "actions": [
            {
                "id": str(uuid.uuid4()),
                "seq": 1,
                "type": "work_order.complete",
                "v": 1,
                "occurred_at": now.isoformat(),
                "payload": {"work_order_id": started(ctx), "result": "fixed"},
            }
        ],
    }
    headers = {**auth(tokens), "Origin": origin, "X-App-Version": "2.3.1"}
    answer = server.post("/api/v1/sync/push", json=body, headers=headers)
    exposed = {h.strip().lower() for h in answer.headers["access-control-expose-headers"].split(",")}
    assert {"deprecation", "sunset", "link"} <= exposed
    assert answer.headers["Sunset"] == SUNSET
