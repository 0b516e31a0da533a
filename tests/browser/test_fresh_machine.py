"""A new user follows the README: the demo starts on embedded defaults and the docs page lists the API.

The docs page is checked in a real headless Chromium (Debian's ``chromium``), driven by Playwright.
"""

import os
import shutil
from pathlib import Path

import httpx
import pytest

from tests.fixtures.live_server import demo_server  # noqa: F401

CHROMIUM = os.environ.get("HEATCREW_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
REQUIRE_BROWSER = os.environ.get("HEATCREW_TEST_REQUIRE_BROWSER") == "1"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_demo_answers_health_ready_and_logs_a_phone_in(demo_server: str) -> None:  # noqa: F811
    assert httpx.get(f"{demo_server}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{demo_server}/ready")
    assert ready.status_code == 200, ready.text
    login = httpx.post(
        f"{demo_server}/api/v1/auth/login",
        json={
            "username": "tech1",
            "password": "demo-password",
            "device": {"id": "readme-phone-01", "platform": "android", "app_version": "1.0.0"},
        },
    )
    assert login.status_code == 200, login.text
    me = httpx.get(
        f"{demo_server}/api/v1/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
    )
    assert me.json()["username"] == "tech1"


@pytest.mark.browser
def test_docs_page_lists_the_endpoints_in_chromium(demo_server: str, tmp_path: Path) -> None:  # noqa: F811
    if not Path(CHROMIUM).exists():
        if REQUIRE_BROWSER:
            pytest.fail(f"Chromium is required (HEATCREW_TEST_REQUIRE_BROWSER=1) but {CHROMIUM} is missing")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 2000})
            failed_requests: list[str] = []
            page.on("requestfailed", lambda request: failed_requests.append(request.url))
            page.goto(f"{demo_server}/schema/swagger")
            page.wait_for_selector(".opblock-summary-path", timeout=20_000)
            paths = {
                (element.get_attribute("data-path") or element.inner_text()).replace("\u200b", "").strip()
                for element in page.query_selector_all(".opblock-summary-path")
            }
            title = page.inner_text(".title")
            page.screenshot(path=str(tmp_path / "docs.png"), full_page=False)
        finally:
            browser.close()
    assert "HeatCrew API" in title
    for path in (
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/devices/{device_id}/revoke",
        "/ready",
    ):
        assert path in paths, sorted(paths)
    assert not failed_requests, failed_requests
