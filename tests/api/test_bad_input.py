"""Every bad request answers a 4xx with a stable code, and leaves nothing written."""

import uuid

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from backend.context import AppContext
from tests.api.helpers import assert_error, auth, login

pytestmark = pytest.mark.usefixtures("demo")


def count_rows(ctx: AppContext, table: str) -> int:
    with ctx.db.engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    return auth(login(client, "admin"))


@pytest.mark.parametrize(
    "raw",
    [b'{"username": "tech1", "password": ', b"not json at all", b'{"username": "tech1",}', b"\xff\xfe\x00"],
)
def test_malformed_json_is_a_400_and_records_nothing(client: TestClient, ctx: AppContext, raw: bytes) -> None:
    before = count_rows(ctx, "login_attempt")
    response = client.post("/api/v1/auth/login", content=raw, headers={"Content-Type": "application/json"})
    assert_error(response, 400, "malformed_json")
    assert count_rows(ctx, "login_attempt") == before


@pytest.mark.parametrize(
    "body",
    [
        {
            "username": 42,
            "password": "x",
            "device": {"id": "phone-0001", "platform": "android", "app_version": "1"},
        },
        {"username": "tech1", "password": "x"},
        {
            "username": "tech1",
            "password": "x",
            "device": {"id": "short", "platform": "android", "app_version": "1"},
        },
        {
            "username": "tech1",
            "password": "x",
            "device": {"id": "bad id with spaces", "platform": "a", "app_version": "1"},
        },
        {
            "username": "",
            "password": "x",
            "device": {"id": "phone-0001", "platform": "android", "app_version": "1"},
        },
        [1, 2, 3],
    ],
)
def test_wrong_types_and_missing_fields_are_400_invalid_body(
    client: TestClient, ctx: AppContext, body: object
) -> None:
    response = client.post("/api/v1/auth/login", json=body)
    error = assert_error(response, 400, "invalid_body")
    assert error["detail"], "the client is told which field failed"
    assert count_rows(ctx, "login_attempt") == 0
    assert count_rows(ctx, "device") == 0


def test_unknown_fields_are_refused_where_strict(
    client: TestClient, ctx: AppContext, admin: dict[str, str]
) -> None:
    users_before = count_rows(ctx, "app_user")
    response = client.post(
        "/api/v1/users",
        json={
            "username": "newtech",
            "full_name": "New Tech",
            "role": "technician",
            "password": "long-enough-password",
            "is_admin": True,
        },
        headers=admin,
    )
    error = assert_error(response, 400, "invalid_body")
    assert "is_admin" in str(error["detail"])
    assert count_rows(ctx, "app_user") == users_before


def test_oversized_body_is_413_with_the_limit(
    client: TestClient, ctx: AppContext, admin: dict[str, str]
) -> None:
    users_before = count_rows(ctx, "app_user")
    limit = ctx.settings.max_body_bytes
    big = b'{"username": "x", "full_name": "' + b"a" * (limit + 10) + b'"}'
    response = client.post(
        "/api/v1/users", content=big, headers={**admin, "Content-Type": "application/json"}
    )
    error = assert_error(response, 413, "body_too_large")
    assert error["detail"] == {"limit": limit}
    assert count_rows(ctx, "app_user") == users_before


def test_unknown_route_and_method(client: TestClient, admin: dict[str, str]) -> None:
    assert_error(client.get("/api/v1/no-such-thing", headers=admin), 404, "not_found")
    assert_error(client.get("/definitely/not/here"), 404, "not_found")
    assert_error(client.delete("/api/v1/auth/login"), 405, "method_not_allowed")
    assert_error(client.put("/health"), 405, "method_not_allowed")


def test_bad_path_parameter_is_a_4xx(client: TestClient, admin: dict[str, str]) -> None:
    response = client.post("/api/v1/users/not-a-uuid/disable", headers=admin)
    assert 400 <= response.status_code < 500
    assert set(response.json()) == {"code", "message", "detail"}


def test_bad_query_parameter_is_400(client: TestClient, admin: dict[str, str]) -> None:
    assert_error(client.get("/api/v1/users", params={"role": "wizard"}, headers=admin), 400, "invalid_body")


def test_short_password_and_taken_username_write_nothing(
    client: TestClient, ctx: AppContext, admin: dict[str, str]
) -> None:
    users_before = count_rows(ctx, "app_user")
    short = client.post(
        "/api/v1/users",
        json={"username": "newtech", "full_name": "New", "role": "technician", "password": "short"},
        headers=admin,
    )
    assert assert_error(short, 400, "password_too_short")["detail"] == {"min_length": 10}
    taken = client.post(
        "/api/v1/users",
        json={
            "username": "tech1",
            "full_name": "Dup",
            "role": "technician",
            "password": "long-enough-password",
        },
        headers=admin,
    )
    assert_error(taken, 409, "username_taken")
    assert count_rows(ctx, "app_user") == users_before


def test_admin_creates_a_user_who_can_log_in(client: TestClient, admin: dict[str, str]) -> None:
    created = client.post(
        "/api/v1/users",
        json={
            "username": "Tech3",
            "full_name": "维修工 赵磊",
            "role": "technician",
            "password": "long-enough-password",
            "staff_number": "T0303",
        },
        headers=admin,
    )
    assert created.status_code == 201, created.text
    assert created.json()["username"] == "tech3"
    assert "password" not in created.text and "hash" not in created.text
    tokens = login(client, "tech3", password="long-enough-password")
    assert tokens["user"]["staff_number"] == "T0303"


def test_a_nul_character_is_refused_before_anything_is_stored(
    client: TestClient, ctx: AppContext, admin: dict[str, str]
) -> None:
    # PostgreSQL text cannot hold U+0000: without the check this was a 500 there, and kept on SQLite.
    users_before = count_rows(ctx, "app_user")
    body = {
        "username": "nul\x00tech",
        "full_name": "Nul",
        "role": "technician",
        "password": "long-enough-password",
    }
    error = assert_error(client.post("/api/v1/users", json=body, headers=admin), 400, "text_with_nul")
    assert "U+0000" in error["message"]
    assert count_rows(ctx, "app_user") == users_before
    assert_error(
        client.get("/api/v1/work-orders", params={"state": "new\x00"}, headers=admin), 400, "text_with_nul"
    )
    # A backslash followed by "u0000" is ordinary text.
    body["username"], body["full_name"] = "slashtech", "C:\\u0000 \\\\u0000"
    created = client.post("/api/v1/users", json=body, headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["full_name"] == "C:\\u0000 \\\\u0000"


def test_a_nul_in_one_pushed_action_rejects_that_action_only(client: TestClient, ctx: AppContext) -> None:
    tokens = login(client, "tech1", device_id="nul-phone")
    order_id = client.get("/api/v1/work-orders", headers=auth(tokens)).json()[0]["id"]

    def action(seq: int, kind: str, **payload: object) -> dict[str, object]:
        return {
            "id": str(uuid.uuid4()),
            "seq": seq,
            "type": kind,
            "v": 1,
            "occurred_at": "2026-12-07T00:29:00Z",
            "payload": {"work_order_id": order_id, **payload},
        }

    batch = [
        action(1, "work_order.accept"),
        action(2, "work_order.note", text="阀门\x00坏了"),
        action(3, "work_order.note", text="阀门已换"),
    ]
    response = client.post(
        "/api/v1/sync/push",
        json={"device_id": "nul-phone", "sent_at": "2026-12-07T00:30:00Z", "actions": batch},
        headers=auth(tokens),
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert [r["status"] for r in answer["results"]] == ["applied", "rejected", "applied"]
    assert answer["results"][1]["code"] == "invalid_payload"
    assert answer["last_applied_seq"] == 3
    notes = [
        e["data"].get("text")
        for e in client.get(f"/api/v1/work-orders/{order_id}", headers=auth(tokens)).json()["timeline"]
        if e["type"] == "note"
    ]
    assert notes == ["阀门已换"]
    # The refused action is kept, readable by the phone later.
    refused = client.get("/api/v1/sync/status", headers=auth(tokens)).json()["refused"]
    assert [(r["seq"], r["code"]) for r in refused] == [(2, "invalid_payload")]
