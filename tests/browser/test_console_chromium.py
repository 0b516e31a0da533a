"""The web console in a real headless Chromium against the demo server, on both databases.

Idle expiry needs the server's clock moved: tests/api/test_console.py drives it in process.
"""

import re
from typing import Any

import pytest

from tests.browser.conftest import DESKTOP, TABLET, Server, shot, sign_in

pytestmark = pytest.mark.browser


def _orders(server: Server, **params: Any) -> list[dict[str, Any]]:
    response = server.api("GET", "/api/v1/work-orders", username="dispatcher1", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _user_id(server: Server, username: str) -> str:
    users = server.api("GET", "/api/v1/users").json()
    return next(u["id"] for u in users if u["username"] == username)


@pytest.mark.parametrize("username", ["supervisor1", "dispatcher1"])
def test_chromium_office_roles_sign_in_to_the_board(page_at, console_server: Server, username: str) -> None:
    page = page_at()
    sign_in(page, username)
    assert page.url.endswith("/console/board")
    assert page.locator("h1").inner_text() == "时限看板"
    assert page.locator("html").get_attribute("lang") == "zh-Hans"
    assert page.locator("table.board tbody tr").count() >= 1
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["heatcrew_console"]
    assert session["httpOnly"] and session["sameSite"] == "Lax" and session["path"] == "/console"
    shot(page, f"board-{username}-{console_server.database}")


def test_chromium_technician_is_refused_with_a_message(page_at, console_server: Server) -> None:
    page = page_at()
    page.goto("/console/login")
    page.fill("#username", "tech1")
    page.fill("#password", "demo-password")
    with page.expect_response(
        lambda r: r.url.endswith("/console/login") and r.request.method == "POST"
    ) as answer:
        page.click("form.stack button[type=submit]")
    assert answer.value.status == 403
    assert page.locator('[data-code="console_role_refused"]').is_visible()
    assert "heatcrew_console" not in {c["name"] for c in page.context.cookies()}


def test_chromium_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    page_at, console_server: Server
) -> None:
    page = page_at()
    sign_in(page, "dispatcher1")
    order = _orders(console_server, state="assigned")[0]
    # The browser's own cookies, no token: as a forged cross-site form would send.
    answer = page.context.request.post(f"/console/orders/{order['id']}/cancel", form={"reason": "forged"})
    assert answer.status == 403
    assert 'data-code="csrf_token_invalid"' in answer.text()
    after = console_server.api("GET", f"/api/v1/work-orders/{order['id']}", username="dispatcher1").json()
    assert after["order"]["state"] == "assigned"


def test_chromium_sign_out(page_at, console_server: Server) -> None:
    page = page_at()
    sign_in(page, "supervisor1")
    page.click("#sign-out")
    page.wait_for_url(re.compile(r"/console/login\?why=signed_out"))
    page.goto("/console/board")
    assert "/console/login" in page.url


def test_chromium_revoking_the_console_device_ends_the_session_on_the_next_request(
    page_at, console_server: Server
) -> None:
    page = page_at()
    sign_in(page, "supervisor1")
    page.goto("/console/orders")  # a page that does not poll (the board would notice by itself)
    devices = console_server.api("GET", "/api/v1/devices").json()
    mine = [d for d in devices if d["platform"] == "console" and not d.get("revoked_at")]
    assert mine
    for device in mine:  # every open console sign-in of supervisor1: one is this page's
        if device["username"] == "supervisor1":
            revoked = console_server.api(
                "POST", f"/api/v1/devices/{device['id']}/revoke", json={"reason": "test"}
            )
            assert revoked.status_code == 200, revoked.text
    page.reload()
    assert "/console/login" in page.url
    assert "why=device_revoked" in page.url


def test_chromium_the_polling_board_goes_to_sign_in_when_its_device_is_revoked(
    page_at, console_server: Server
) -> None:
    page = page_at()
    sign_in(page, "dispatcher1")
    assert page.url.endswith("/console/board")
    for device in console_server.api("GET", "/api/v1/devices").json():
        if (
            device["platform"] == "console"
            and device["username"] == "dispatcher1"
            and not device["revoked_at"]
        ):
            assert console_server.api("POST", f"/api/v1/devices/{device['id']}/revoke").status_code == 200
    # The next refresh answers 401 with HX-Redirect: htmx leaves for the sign-in page by itself.
    page.wait_for_url(re.compile(r"/console/login"), timeout=10_000)
    assert "heatcrew_console" not in {c["name"] for c in page.context.cookies()}


def test_chromium_the_board_refreshes_a_changed_clock_without_a_reload(
    page_at, console_server: Server
) -> None:
    page = page_at()
    sign_in(page, "dispatcher1")
    page.evaluate("() => { window.__sameDocument = true; }")
    households = console_server.api("GET", "/api/v1/households", username="dispatcher1").json()
    created = console_server.api(
        "POST",
        "/api/v1/work-orders",
        username="dispatcher1",
        json={
            "kind": "pipe_burst",
            "household_id": households[0]["id"],
            "source": "hotline",
            "description": "爆管：看板测试",
            "urgent": True,
        },
    )
    assert created.status_code == 201, created.text
    ref = created.json()["order"]["ref"]
    page.wait_for_selector(f'table.board tr[data-ref="{ref}"]', timeout=10_000)
    assert page.evaluate("() => window.__sameDocument") is True
    shot(page, f"board-refreshed-{console_server.database}")


def test_chromium_dispatcher_creates_a_12345_order_assigns_and_reassigns_it_and_cancels_another(
    page_at, console_server: Server
) -> None:
    page = page_at()
    sign_in(page, "dispatcher1")
    page.goto("/console/orders/new")
    page.fill("#q", "文化路")
    page.wait_for_selector("#household-results input[type=radio]")
    page.locator("#household-results input[type=radio]").first.check()
    page.select_option("#kind", "leak")
    page.select_option("#source", "mayor_hotline")
    page.check("#urgent")
    page.fill("#description", "12345 转办：楼道暖气管漏水")
    page.select_option("#assignee_id", _user_id(console_server, "tech1"))
    page.click("#create-order")
    page.wait_for_url(re.compile(r"/console/orders/[0-9a-f-]+\?done=created"))
    assert page.locator("#order-state").get_attribute("data-state") == "assigned"
    assert "12345" in page.locator("#order-source").inner_text()
    first = page.locator("#order-assignee").inner_text()

    page.select_option("#assign-to", _user_id(console_server, "tech2"))
    page.fill("#assign-reason", "离得更近")
    page.click("#assign-form button[type=submit]")
    page.wait_for_url(re.compile(r"\?done=assigned"))
    assert page.locator("#order-assignee").inner_text() != first
    shot(page, f"order-reassigned-{console_server.database}")

    other = _orders(console_server, state="assigned")[-1]
    page.goto(f"/console/orders/{other['id']}")
    page.fill("#cancel-reason", "重复来电")
    page.click("#cancel-form button[type=submit]")
    page.wait_for_url(re.compile(r"\?done=cancelled"))
    assert page.locator("#order-state").get_attribute("data-state") == "cancelled"


def test_chromium_language_switch_to_english(page_at, console_server: Server) -> None:
    page = page_at()
    sign_in(page, "supervisor1")
    page.select_option("#locale-select", "en")
    page.click("#locale-apply")
    page.wait_for_load_state("domcontentloaded")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text() == "SLA board"
    page.select_option("#locale-select", "zh")
    page.click("#locale-apply")
    page.wait_for_load_state("domcontentloaded")
    assert page.locator("h1").inner_text() == "时限看板"


@pytest.mark.parametrize("viewport", [DESKTOP, TABLET], ids=["1366x768", "1024x768"])
def test_chromium_every_page_passes_axe(page_at, console_server: Server, check_axe, viewport) -> None:
    page = page_at(viewport)
    size = f"{viewport['width']}x{viewport['height']}"
    page.goto("/console/login")
    check_axe(page, f"login-{size}-{console_server.database}")
    sign_in(page, "dispatcher1")
    order = _orders(console_server)[0]
    for path, name in (
        ("/console/board", "board"),
        ("/console/orders", "orders"),
        ("/console/orders/new", "order-new"),
        (f"/console/orders/{order['id']}", "order"),
        ("/console/review", "review"),
        ("/console/kpis", "kpis"),
    ):
        page.goto(path)
        check_axe(page, f"{name}-{size}-{console_server.database}")
    page.goto("/console/orders/new")
    page.fill("#q", "南京")
    page.wait_for_selector("#household-results input[type=radio]")
    check_axe(page, f"order-new-search-{size}-{console_server.database}")
    # Nothing wider than the window: no sideways scrolling at this size.
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= viewport["width"], width
