"""The web console in process (Litestar's test client), on SQLite and PostgreSQL: the session
cookie's attributes, sign-in refused to field roles, CSRF, revocation, idle and absolute expiry,
the language, and dispatch through the services' own errors."""

import re
from datetime import timedelta

import pytest
from litestar.testing import TestClient
from sqlmodel import select

from backend.auth.models import Device, User
from backend.clock import ManualClock
from backend.console.web import COOKIE, LOGIN_CSRF_COOKIE
from backend.context import AppContext
from backend.demo import DEMO_PASSWORD
from backend.work_orders.models import WorkOrder
from tests.api.helpers import assert_error, auth, login
from tests.fixtures.console import CSRF, console_login, signed_in

pytestmark = pytest.mark.usefixtures("demo")


def cookie_header(response, name: str) -> str:
    return next(h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}="))


def test_session_cookie_is_httponly_lax_on_the_console_path_and_not_secure_over_http(
    client: TestClient,
) -> None:
    response = console_login(client, "supervisor1")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/board"
    cookie = cookie_header(response, COOKIE).lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "path=/console" in cookie
    assert "secure" not in cookie
    assert "httponly" in cookie_header(client.get("/console/login"), LOGIN_CSRF_COOKIE).lower()


def test_forwarded_proto_is_believed_only_when_the_proxy_is_trusted(client: TestClient, app) -> None:
    untrusted = console_login(client, "supervisor1", **{"X-Forwarded-Proto": "https"})
    assert "secure" not in cookie_header(untrusted, COOKIE).lower()
    object.__setattr__(app.state.ctx.settings, "console_trust_forwarded_proto", True)
    client.cookies.clear()
    form = client.get("/console/login", headers={"X-Forwarded-Proto": "https"})
    assert "; secure" in cookie_header(form, LOGIN_CSRF_COOKIE).lower()
    token = CSRF.search(form.text).group(1)
    # A Secure cookie is not sent back over the test client's plain http: send it by hand.
    trusted = client.post(
        "/console/login",
        data={"username": "supervisor1", "password": DEMO_PASSWORD, "csrf_token": token},
        headers={"X-Forwarded-Proto": "https", "Cookie": f"{LOGIN_CSRF_COOKIE}={token}"},
        follow_redirects=False,
    )
    assert trusted.status_code == 303, trusted.text
    assert "; secure" in cookie_header(trusted, COOKIE).lower()


def test_a_console_sign_in_is_a_console_device_with_an_auth_session(
    client: TestClient, ctx: AppContext
) -> None:
    signed_in(client, "dispatcher1")
    with ctx.db.session(readonly=True) as session:
        user = session.exec(select(User).where(User.username == "dispatcher1")).one()
        devices = session.exec(select(Device).where(Device.user_id == user.id)).all()
    assert [d.platform for d in devices] == ["console"]


@pytest.mark.parametrize("username", ["tech1", "inspector1"])
def test_field_roles_are_refused_with_a_message_and_no_session(
    client: TestClient, ctx: AppContext, username: str
) -> None:
    response = console_login(client, username)
    assert response.status_code == 403
    assert 'data-code="console_role_refused"' in response.text
    assert COOKIE not in response.headers.get("set-cookie", "")
    with ctx.db.session(readonly=True) as session:
        user = session.exec(select(User).where(User.username == username)).one()
        assert session.exec(select(Device).where(Device.user_id == user.id)).all() == []
    assert client.get("/console/board", follow_redirects=False).status_code == 303


def test_wrong_password_is_refused_on_the_page(client: TestClient) -> None:
    response = console_login(client, "dispatcher1", password="not-the-password")
    assert response.status_code == 401
    assert 'data-code="invalid_credentials"' in response.text


def test_unauthenticated_pages_redirect_and_htmx_gets_401_with_hx_redirect(client: TestClient) -> None:
    page = client.get("/console/orders", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"].startswith("/console/login?next=/console/orders")
    fragment = client.get("/console/board/table", headers={"HX-Request": "true"}, follow_redirects=False)
    assert fragment.status_code == 401
    assert fragment.headers["hx-redirect"] == "/console/login"


def test_the_console_cookie_does_not_open_the_api(client: TestClient) -> None:
    signed_in(client)
    assert_error(client.get("/api/v1/me"), 401, "not_authenticated")


def _some_open_order(ctx: AppContext) -> WorkOrder:
    with ctx.db.session(readonly=True) as session:
        return session.exec(select(WorkOrder).where(WorkOrder.state == "assigned")).first()


def test_a_post_without_or_with_a_wrong_csrf_token_is_refused_and_changes_nothing(
    client: TestClient, ctx: AppContext
) -> None:
    token = signed_in(client)
    order = _some_open_order(ctx)
    url = f"/console/orders/{order.id}/cancel"
    for data, headers in (
        ({"reason": "duplicate"}, {}),
        ({"reason": "duplicate", "csrf_token": "forged"}, {}),
        ({"reason": "duplicate"}, {"X-CSRF-Token": "forged"}),
    ):
        response = client.post(url, data=data, headers=headers, follow_redirects=False)
        assert response.status_code == 403, response.text
        assert 'data-code="csrf_token_invalid"' in response.text
    with ctx.db.session(readonly=True) as session:
        assert session.get(WorkOrder, order.id).state == "assigned"
    # The right token, in the form or in htmx's header, is taken.
    ok = client.post(url, data={"reason": "duplicate", "csrf_token": token}, follow_redirects=False)
    assert ok.status_code == 303
    with ctx.db.session(readonly=True) as session:
        assert session.get(WorkOrder, order.id).state == "cancelled"


def test_the_sign_in_form_needs_its_own_token(client: TestClient) -> None:
    response = client.post(
        "/console/login",
        data={"username": "dispatcher1", "password": DEMO_PASSWORD},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert 'data-code="csrf_token_invalid"' in response.text


def test_logout_ends_the_session(client: TestClient) -> None:
    token = signed_in(client)
    cookie = client.cookies.get(COOKIE)
    response = client.post("/console/logout", data={"csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303
    client.cookies.set(COOKIE, cookie, path="/console")  # a copy of the old cookie is no good
    assert client.get("/console/board", follow_redirects=False).status_code == 303


def test_revoking_the_console_device_or_disabling_the_user_ends_the_session_at_once(
    client: TestClient, ctx: AppContext
) -> None:
    signed_in(client, "dispatcher1")
    admin = login(client, "admin")
    with ctx.db.session(readonly=True) as session:
        device = session.exec(select(Device).where(Device.platform == "console")).one()
    revoked = client.post(f"/api/v1/devices/{device.id}/revoke", json={"reason": "left"}, headers=auth(admin))
    assert revoked.status_code == 200, revoked.text
    gone = client.get("/console/board", follow_redirects=False)
    assert gone.status_code == 303
    assert "why=device_revoked" in gone.headers["location"]

    client.cookies.delete(COOKIE)
    signed_in(client, "supervisor1")
    with ctx.db.session(readonly=True) as session:
        supervisor = session.exec(select(User).where(User.username == "supervisor1")).one()
    disabled = client.post(f"/api/v1/users/{supervisor.id}/disable", headers=auth(admin))
    assert disabled.status_code == 200, disabled.text
    assert client.get("/console/board", follow_redirects=False).status_code == 303


def test_the_session_ends_after_the_idle_timeout_and_the_board_polling_does_not_keep_it(
    client: TestClient, clock: ManualClock, ctx: AppContext
) -> None:
    idle = ctx.settings.console_idle_timeout
    signed_in(client)
    clock.advance(seconds=idle - 60)
    assert client.get("/console/orders").status_code == 200  # use: the idle time starts again
    for _ in range(3):
        clock.advance(seconds=idle // 3)
        # the board's own refresh answers, but is not use
        assert client.get("/console/board/table", headers={"HX-Request": "true"}).status_code == 200
    clock.advance(seconds=120)
    expired = client.get("/console/board/table", headers={"HX-Request": "true"}, follow_redirects=False)
    assert expired.status_code == 401
    assert client.get("/console/board", follow_redirects=False).status_code == 303


def test_the_session_ends_after_its_absolute_lifetime_however_busy(
    client: TestClient, clock: ManualClock, ctx: AppContext
) -> None:
    signed_in(client)
    step = timedelta(seconds=ctx.settings.console_idle_timeout // 2)
    elapsed = timedelta()
    while elapsed + step < timedelta(seconds=ctx.settings.console_session_lifetime):
        clock.advance(step)
        elapsed += step
        assert client.get("/console/orders").status_code == 200
    clock.advance(step)
    assert client.get("/console/orders", follow_redirects=False).status_code == 303


def test_roles_on_the_dispatch_pages(client: TestClient, ctx: AppContext) -> None:
    token = signed_in(client, "supervisor1")
    assert client.get("/console/orders").status_code == 200
    assert client.get("/console/board").status_code == 200
    refused = client.get("/console/orders/new")
    assert refused.status_code == 403
    assert 'data-code="forbidden"' in refused.text
    order = _some_open_order(ctx)
    cancel = client.post(f"/console/orders/{order.id}/cancel", data={"reason": "x", "csrf_token": token})
    assert cancel.status_code == 403
    with ctx.db.session(readonly=True) as session:
        assert session.get(WorkOrder, order.id).state == "assigned"


def test_language_is_chinese_by_default_and_english_by_choice(client: TestClient) -> None:
    token = signed_in(client, "supervisor1")
    page = client.get("/console/board")
    assert '<html lang="zh-Hans">' in page.text
    assert "时限看板" in page.text
    switched = client.post(
        "/console/locale",
        data={"locale": "en", "next": "/console/board", "csrf_token": token},
        follow_redirects=False,
    )
    assert switched.status_code == 303
    page = client.get("/console/board")
    assert '<html lang="en">' in page.text
    assert "SLA board" in page.text
    bad = client.post("/console/locale", data={"locale": "xx", "csrf_token": token})
    assert bad.status_code == 400


def test_dispatcher_creates_a_12345_order_and_service_errors_show_their_code(
    client: TestClient, ctx: AppContext
) -> None:
    token = signed_in(client, "dispatcher1")
    found = client.get("/console/orders/households", params={"q": "文化路"})
    assert found.status_code == 200
    household_id = re.search(r'name="household_id" id="hh-[^"]+" value="([^"]+)"', found.text).group(1)
    with ctx.db.session(readonly=True) as session:
        tech = session.exec(select(User).where(User.username == "tech2")).one()
        supervisor = session.exec(select(User).where(User.username == "supervisor1")).one()
    created = client.post(
        "/console/orders",
        data={
            "csrf_token": token,
            "household_id": household_id,
            "kind": "leak",
            "source": "mayor_hotline",
            "description": "12345 转办：楼道漏水",
            "urgent": "on",
            "assignee_id": str(tech.id),
        },
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text
    page = client.get(created.headers["location"])
    assert page.status_code == 200
    assert 'data-state="assigned"' in page.text
    order_id = created.headers["location"].split("/")[-1].split("?")[0]
    with ctx.db.session(readonly=True) as session:
        order = session.get(WorkOrder, __import__("uuid").UUID(order_id))
        assert (order.source, order.urgent, order.assignee_id) == ("mayor_hotline", True, tech.id)
    wrong = client.post(
        f"/console/orders/{order_id}/assign", data={"csrf_token": token, "assignee_id": str(supervisor.id)}
    )
    assert wrong.status_code == 400
    assert 'data-code="not_assignable"' in wrong.text
    missing = client.post(
        "/console/orders", data={"csrf_token": token, "kind": "leak", "source": "media", "description": "x"}
    )
    assert missing.status_code == 400
    assert 'data-code="unknown_household"' in missing.text


def test_every_console_route_but_sign_in_and_static_files_needs_the_session(client: TestClient) -> None:
    routes = [
        (
            method,
            re.sub(
                r"\{\w+:str\}",
                "x",
                re.sub(r"\{\w+:uuid\}", "0190f0c4-0000-7000-8000-000000000000", route.path),
            ),
        )
        for route in client.app.routes
        if route.path.startswith("/console")
        and not route.path.startswith(("/console/login", "/console/static"))
        for method in sorted(route.methods)
        if method not in ("HEAD", "OPTIONS")
    ]
    assert len(routes) >= 14 and ("POST", "/console/logout") in routes
    for method, path in routes:
        response = client.request(method, path, data={"csrf_token": "x"}, follow_redirects=False)
        assert response.status_code == 303, (method, path, response.status_code)
        assert response.headers["location"].startswith("/console/login?next="), (method, path)


def test_static_files_are_served_with_long_cache_headers(client: TestClient) -> None:
    response = client.get("/console/static/htmx.min.js")
    assert response.status_code == 200
    assert "max-age=31536000" in response.headers["cache-control"]
    assert client.get("/console/static/console.css").status_code == 200


def test_a_console_request_is_logged_with_its_user_and_console_device(client: TestClient, caplog) -> None:
    signed_in(client, "supervisor1")
    with caplog.at_level("INFO", logger="heatcrew.http"):
        assert client.get("/console/orders").status_code == 200
    lines = [r for r in caplog.records if getattr(r, "route", None) == "/console/orders"]
    assert lines and lines[-1].status == 200
    assert lines[-1].device_id.startswith("console-")


def _request_return(ctx: AppContext, username: str) -> WorkOrder:
    """The technician asks to give an order back (the phone's action, through the same service)."""
    from backend.auth.models import Role
    from backend.auth.principal import Principal
    from backend.work_orders import service

    with ctx.db.session() as session:
        tech = session.exec(select(User).where(User.username == username)).one()
        order = session.exec(
            select(WorkOrder).where(WorkOrder.assignee_id == tech.id, WorkOrder.state == "assigned")
        ).first()
        actor = Principal(
            user_id=tech.id,
            company_id=tech.company_id,
            role=Role(tech.role),
            username=tech.username,
            full_name=tech.full_name,
            device_id="phone",
            session_id=tech.id,
        )
        service.request_return(
            session, actor=actor, order=order, when=service.online(ctx.clock.now()), reason="不在片区"
        )
        return order


def test_dispatcher_approves_or_refuses_a_pending_return(client: TestClient, ctx: AppContext) -> None:
    token = signed_in(client, "dispatcher1")
    first = _request_return(ctx, "tech1")
    page = client.get(f"/console/orders/{first.id}")
    assert 'id="approve-return"' in page.text and 'id="refuse-return"' in page.text
    approved = client.post(
        f"/console/orders/{first.id}/return/approve", data={"csrf_token": token}, follow_redirects=False
    )
    assert approved.status_code == 303, approved.text
    second = _request_return(ctx, "tech2")
    refused = client.post(
        f"/console/orders/{second.id}/return/refuse",
        data={"csrf_token": token, "reason": "请继续处理"},
        follow_redirects=False,
    )
    assert refused.status_code == 303, refused.text
    with ctx.db.session(readonly=True) as session:
        a, b = session.get(WorkOrder, first.id), session.get(WorkOrder, second.id)
        assert (a.state, a.assignee_id) == ("returned", None)
        assert b.state == "assigned" and b.assignee_id is not None
    # Deciding again is the service's illegal move, shown with its code.
    again = client.post(f"/console/orders/{first.id}/return/approve", data={"csrf_token": token})
    assert again.status_code == 409
    assert 'data-code="illegal_transition"' in again.text
    # Its message names the state, so no catalogue entry matches it: in Chinese (the default) the
    # page says what the code means; in English the service's own message stands.
    assert "工单当前状态不允许此操作" in again.text and "cannot approve return" not in again.text
    client.post("/console/locale", data={"locale": "en", "next": "/console/board", "csrf_token": token})
    in_english = client.post(f"/console/orders/{first.id}/return/approve", data={"csrf_token": token})
    assert in_english.status_code == 409
    assert "A work order that is returned cannot approve return." in in_english.text


def test_the_board_filters_by_team_and_its_fragment_refreshes_alone(
    client: TestClient, ctx: AppContext
) -> None:
    from backend.org.models import Team

    signed_in(client, "supervisor1")
    with ctx.db.session(readonly=True) as session:
        teams = session.exec(select(Team)).all()
        by_team = {
            t.id: {
                o.id.hex[-8:].upper()
                for o in session.exec(select(WorkOrder).where(WorkOrder.team_id == t.id))
            }
            for t in teams
        }
    team = next(t for t in teams if by_team[t.id])
    page = client.get("/console/board", params={"team": str(team.id)})
    refs = set(re.findall(r'data-ref="([0-9A-F]{8})"', page.text))
    assert refs and refs <= by_team[team.id]
    fragment = client.get(
        "/console/board/table", params={"team": str(team.id)}, headers={"HX-Request": "true"}
    )
    assert fragment.status_code == 200
    assert (
        "<html" not in fragment.text and set(re.findall(r'data-ref="([0-9A-F]{8})"', fragment.text)) == refs
    )
    assert 'hx-trigger="every 15s"' in page.text
    bad = client.get("/console/board/table", params={"team": "nope"}, headers={"HX-Request": "true"})
    assert bad.status_code == 400
    assert 'data-code="invalid_input"' in bad.text
