"""Every bad request answers a 4xx with a stable code, and leaves nothing written."""

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
