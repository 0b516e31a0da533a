"""A supervisor asks for a redo; the phone pulls it, uploads a new photo and answers through sync."""

from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import TestClient

from backend.context import AppContext
from tests.api.helpers import assert_error, auth, login
from tests.fixtures.pushing import Phone

pytestmark = pytest.mark.usefixtures("demo")

AT_DOOR = {"lat": 41.79683, "lon": 123.42452, "accuracy_m": 12.0}


def office(client: TestClient) -> dict[str, str]:
    return auth(login(client, "supervisor1", device_id="console-supervisor1"))


def new_order(client: TestClient, account: str, assignee: str) -> str:
    h = auth(login(client, "dispatcher1", device_id="console-dispatcher1"))
    households = client.get("/api/v1/households", params={"account_number": account}, headers=h)
    assert households.status_code == 200, households.text
    household_id = households.json()[0]["id"]
    users = client.get(
        "/api/v1/users", headers=auth(login(client, "admin", device_id="console-admin"))
    ).json()
    assignee_id = next(u["id"] for u in users if u["username"] == assignee)
    response = client.post(
        "/api/v1/work-orders/",
        json={
            "kind": "repair",
            "household_id": household_id,
            "source": "hotline",
            "description": "暖气不热",
            "received_at": "2026-12-07T00:20:00Z",
            "assignee_id": assignee_id,
        },
        headers=h,
    )
    assert response.status_code == 201, response.text
    return response.json()["order"]["id"]


def pull(phone: Phone, cursor: str | None) -> dict[str, Any]:
    params = {"cursor": cursor} if cursor else {}
    response = phone.client.get("/api/v1/sync/pull", params=params, headers=auth(phone.tokens))
    assert response.status_code == 200, response.text
    return response.json()


def applied(result: dict[str, Any]) -> None:
    assert result["status"] == "applied", result


def test_a_redo_request_goes_to_the_phone_and_comes_back_answered(
    client: TestClient, ctx: AppContext
) -> None:
    supervisor = office(client)
    policy = {"always_kinds": ["repair"], "flags": [], "sample_percent": 0, "own_team_only": False}
    assert client.put("/api/v1/review/policy", json=policy, headers=supervisor).status_code == 200
    order_id = new_order(client, "100101", "tech1")
    phone = Phone(client, ctx, "tech1")
    cursor = pull(phone, None)["cursor"]
    # The visit, completed through the push path (buffered rows, locked orders).
    applied(phone.push("work_order.accept", 1, {"work_order_id": order_id}))
    applied(
        phone.push(
            "work_order.arrive",
            1,
            {"work_order_id": order_id, "outcome": "admitted", "attempts": [], **AT_DOOR},
        )
    )
    applied(phone.push("work_order.start", 1, {"work_order_id": order_id}))
    before_sha = phone.upload_photo()
    for purpose in ("before", "after"):
        applied(
            phone.push(
                "evidence.photo", 1, {"work_order_id": order_id, "blob": before_sha, "purpose": purpose}
            )
        )
    applied(
        phone.push(
            "work_order.complete", 2, {"work_order_id": order_id, "result": "fixed", "satisfaction": 5}
        )
    )
    queue = client.get("/api/v1/review/items", headers=supervisor).json()["items"]
    (item,) = [i for i in queue if i["order_id"] == order_id]
    assert item["reasons"] == ["kind:repair"]

    due = (ctx.clock.now() + timedelta(days=1)).isoformat()
    response = client.post(
        f"/api/v1/review/items/{item['id']}/redo",
        json={
            "items": [{"kind": "photo", "purpose": "after"}, {"kind": "other", "text": "拍清楚阀门"}],
            "due_at": due,
        },
        headers=supervisor,
    )
    assert response.status_code == 201, response.text
    redo_id = response.json()["id"]

    # The phone pulls it as a redo_request entity.
    feed = pull(phone, cursor)
    cursor = feed["cursor"]
    (change,) = [c for c in feed["changes"] if c["entity"] == "redo_request"]
    assert change["op"] == "upsert" and change["id"] == redo_id
    assert change["data"]["order_id"] == order_id and change["data"]["status"] == "open"
    assert change["data"]["items"] == [
        {"kind": "photo", "purpose": "after"},
        {"kind": "other", "text": "拍清楚阀门"},
    ]
    # A full snapshot carries it too.
    assert any(c["entity"] == "redo_request" for c in pull(phone, None)["changes"])

    # Another technician's phone cannot answer it: as if it did not exist.
    other = Phone(client, ctx, "tech2")
    refused = other.push("redo.response", 1, {"redo_request_id": redo_id, "note": "不是我的"})
    assert (refused["status"], refused["code"]) == ("rejected", "unknown_redo_request")

    # Answered before the new photo is uploaded: it waits for the file.
    data, new_sha = phone.photo_bytes()
    payload = {
        "redo_request_id": redo_id,
        "photos": [{"purpose": "after", "blob": new_sha}],
        "note": "已重拍",
    }
    waiting = phone.push("redo.response", 1, payload)
    assert (waiting["status"], waiting["code"], waiting["missing"]) == ("waiting", "blob_missing", [new_sha])
    upload = client.put(f"/api/v1/blobs/{new_sha}", content=data, headers=auth(phone.tokens))
    assert upload.status_code in (200, 201), upload.text
    applied(phone.resend())
    again = phone.resend()
    assert again["status"] == "duplicate" and again["original_status"] == "applied"

    # The item is back in the queue with the before and after evidence.
    detail = client.get(f"/api/v1/review/items/{item['id']}", headers=supervisor).json()
    assert detail["item"]["status"] == "redo_answered"
    (redo,) = detail["redo"]
    assert redo["status"] == "answered"
    assert [p["blob"] for p in redo["before"]["photos"]] == [before_sha, before_sha]
    assert [p["blob"] for p in redo["after"]["photos"]] == [new_sha] and redo["after"]["note"] == "已重拍"
    assert [p["blob_sha256"] for p in detail["photos"]["after"]] == [before_sha, new_sha]
    assert "redo_answered" in [e["type"] for e in detail["timeline"]]
    queue = client.get("/api/v1/review/items", params={"status": "redo_answered"}, headers=supervisor).json()
    assert [i["id"] for i in queue["items"]] == [item["id"]]

    # The next pull drops the answered request.
    feed = pull(phone, cursor)
    (change,) = [c for c in feed["changes"] if c["entity"] == "redo_request"]
    assert (change["op"], change["id"]) == ("remove", redo_id)
    assert not any(c["entity"] == "redo_request" for c in pull(phone, None)["changes"])

    # A late second answer is a fact: kept (flagged), the first answer stands.
    late = phone.push("redo.response", 1, {"redo_request_id": redo_id, "note": "补充说明"})
    applied(late)
    detail = client.get(f"/api/v1/review/items/{item['id']}", headers=supervisor).json()
    assert detail["redo"][0]["after"]["note"] == "已重拍"
    assert any("redo_closed" in e["flags"] for e in detail["timeline"] if e["type"] == "redo_answered")

    # The supervisor decides now.
    approved = client.post(f"/api/v1/review/items/{item['id']}/approve", headers=supervisor)
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert_error(
        client.post(f"/api/v1/review/items/{item['id']}/approve", headers=supervisor), 409, "review_decided"
    )
