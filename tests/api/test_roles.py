"""Who may do what: each role against each account endpoint, in and out of their company."""

import pytest
from litestar.testing import TestClient

from backend.auth import service as auth_service
from backend.auth.models import Role
from backend.context import AppContext
from backend.ids import new_id
from backend.org.models import Company
from tests.api.helpers import assert_error, auth, login

pytestmark = pytest.mark.usefixtures("demo")

ROLES = ["admin", "dispatcher1", "supervisor1", "tech1", "inspector1"]


@pytest.fixture
def other_company_device(client: TestClient, ctx: AppContext) -> str:
    """A phone of a user of another heating company."""
    with ctx.db.session() as session:
        company = Company(id=new_id(), code="north", name="North Heat", created_at=ctx.clock.now())
        session.add(company)
        session.flush()
        auth_service.create_user(
            ctx,
            session,
            company_id=company.id,
            username="north-tech",
            full_name="North Tech",
            role=Role.technician,
            password="north-password-1",
        )
    login(client, "north-tech", device_id="north-phone-01", password="north-password-1")
    return "north-phone-01"


@pytest.mark.parametrize(
    ("username", "allowed"),
    [("admin", True), ("dispatcher1", True), ("supervisor1", True), ("tech1", False), ("inspector1", False)],
)
def test_listing_users(client: TestClient, username: str, allowed: bool) -> None:
    response = client.get("/api/v1/users", headers=auth(login(client, username)))
    if allowed:
        assert response.status_code == 200
        assert {u["username"] for u in response.json()} >= {"tech1", "tech2", "admin"}
    else:
        assert_error(response, 403, "forbidden")


@pytest.mark.parametrize("username", ROLES)
def test_only_admin_creates_users(client: TestClient, username: str) -> None:
    response = client.post(
        "/api/v1/users",
        json={
            "username": f"new-{username}",
            "full_name": "N",
            "role": "technician",
            "password": "long-enough-pw",
        },
        headers=auth(login(client, username)),
    )
    if username == "admin":
        assert response.status_code == 201
    else:
        assert_error(response, 403, "forbidden")


@pytest.mark.parametrize(
    ("username", "allowed"),
    [("admin", True), ("supervisor1", True), ("dispatcher1", False), ("tech1", False), ("inspector1", False)],
)
def test_revoking_a_device(client: TestClient, username: str, allowed: bool) -> None:
    victim = login(client, "tech2", device_id="tech2-phone-01")
    response = client.post("/api/v1/devices/tech2-phone-01/revoke", headers=auth(login(client, username)))
    if allowed:
        assert response.status_code == 200
        assert_error(client.get("/api/v1/me", headers=auth(victim)), 401, "device_revoked")
    else:
        assert_error(response, 403, "forbidden")
        assert client.get("/api/v1/me", headers=auth(victim)).status_code == 200


@pytest.mark.parametrize("username", ["admin", "supervisor1"])
def test_devices_of_another_company_are_invisible(
    client: TestClient, username: str, other_company_device: str
) -> None:
    headers = auth(login(client, username))
    assert other_company_device not in {
        d["id"] for d in client.get("/api/v1/devices", headers=headers).json()
    }
    assert_error(
        client.post(f"/api/v1/devices/{other_company_device}/revoke", headers=headers), 404, "not_found"
    )


def test_users_of_another_company_are_invisible(
    client: TestClient, ctx: AppContext, other_company_device: str
) -> None:
    headers = auth(login(client, "admin"))
    assert "north-tech" not in {u["username"] for u in client.get("/api/v1/users", headers=headers).json()}
    north_users = client.get(
        "/api/v1/users", headers=auth(login(client, "north-tech", password="north-password-1"))
    )
    assert_error(north_users, 403, "forbidden")
    with ctx.db.session(readonly=True) as session:
        from sqlmodel import select

        from backend.auth.models import User

        north = session.exec(select(User).where(User.username == "north-tech")).one()
    assert_error(client.post(f"/api/v1/users/{north.id}/disable", headers=headers), 404, "not_found")


PUBLIC = ("/health", "/ready", "/schema", "/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/public/")
DUMMY = {"uuid": "0190f0c4-0000-7000-8000-000000000000", "str": "x" * 64, "int": "1", "path": "x"}


def private_routes(client: TestClient) -> list[tuple[str, str]]:
    """Every route the app serves, with its path parameters filled in, except the public ones."""
    out = []
    for route in client.app.routes:
        # The web console has its own session (a cookie): tests/api/test_console.py covers it.
        if route.path.startswith(PUBLIC) or route.path.startswith("/console"):
            continue
        path = route.path
        for param in route.path_parameters.values():
            kind = getattr(param, "type", str).__name__.lower()
            value = DUMMY["uuid"] if "uuid" in kind else DUMMY["int"] if kind == "int" else DUMMY["str"]
            path = path.replace("{" + param.full + "}", value)
        out += [(method, path) for method in sorted(route.methods) if method not in ("HEAD", "OPTIONS")]
    return out


def test_every_private_endpoint_needs_a_token(client: TestClient) -> None:
    routes = private_routes(client)
    assert len(routes) > 30 and ("GET", "/api/v1/me") in routes
    for method, path in routes:
        response = client.request(method, path, json={})
        assert (response.status_code, response.json()["code"]) == (401, "not_authenticated"), (method, path)


def test_public_routes_are_the_listed_few(client: TestClient) -> None:
    public = sorted({r.path for r in client.app.routes if r.path.startswith(PUBLIC)} - {"/schema"})
    assert [p for p in public if not p.startswith("/schema")] == [
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/public/documents/{reference:str}",
        "/api/v1/public/documents/{reference:str}/pdf",
        "/health",
        "/ready",
    ]
