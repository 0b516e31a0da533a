"""What the browser tests share, started once per run: a demo server per database, one headless
Chromium (Debian's, driven by Playwright), axe-core from npm, and screenshots for CI.

- ``console_server`` (session scope, parametrised ``sqlite``/``postgresql``): ``heatcrew demo``
  in its own process on that database; yields a :class:`Server` (its base URL, API helpers);
- ``browser`` (session scope): one Chromium for every test; ``page_at`` opens a fresh context
  (own cookies) at a viewport;
- ``check_axe(page, name)``: runs axe-core in the page and fails on any serious or critical
  violation; ``shot(page, name)`` saves a screenshot under ``HEATCREW_TEST_ARTIFACTS``
  (default ``var/test-artifacts``).

Chromium missing: the tests skip, unless ``HEATCREW_TEST_REQUIRE_BROWSER=1`` (CI), then they fail.
"""

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from backend.demo import DEMO_PASSWORD
from tests.browser.test_fresh_machine import CHROMIUM, CHROMIUM_ARGS, REQUIRE_BROWSER
from tests.fixtures.databases import ADMIN_URL, REQUIRE_POSTGRES, postgres_reachable
from tests.fixtures.live_server import start_server, stop_server

HERE = Path(__file__).parent
ARTIFACTS = Path(os.environ.get("HEATCREW_TEST_ARTIFACTS") or "var/test-artifacts")
DESKTOP = {"width": 1366, "height": 768}
TABLET = {"width": 1024, "height": 768}
SERIOUS = ("serious", "critical")


def _need_browser() -> None:
    if not Path(CHROMIUM).exists():
        if REQUIRE_BROWSER:
            pytest.fail(f"Chromium is required (HEATCREW_TEST_REQUIRE_BROWSER=1) but {CHROMIUM} is missing")
        pytest.skip("Chromium is not installed (apt-get install chromium)")


@dataclass
class Server:
    base: str
    database: str

    def api_login(self, username: str, device: str | None = None) -> dict[str, str]:
        response = httpx.post(
            f"{self.base}/api/v1/auth/login",
            json={
                "username": username,
                "password": DEMO_PASSWORD,
                "device": {
                    "id": device or f"browser-test-{uuid.uuid4().hex[:12]}",
                    "platform": "android",
                    "app_version": "1.0.0",
                },
            },
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def api(self, method: str, path: str, username: str = "admin", **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.base}{path}", headers=self.api_login(username), **kwargs)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def console_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    _need_browser()
    env = {
        "HEATCREW_CONSOLE_BOARD_REFRESH": "1",
        "HEATCREW_LOGIN_MAX_ATTEMPTS_PER_ADDRESS": "10000",
    }
    dropper: Callable[[], None] | None = None
    if request.param == "postgresql":
        if not postgres_reachable():
            if REQUIRE_POSTGRES:
                pytest.fail(f"PostgreSQL is required but {ADMIN_URL} is unreachable")
            pytest.skip(f"no PostgreSQL server at {ADMIN_URL}")
        name = f"heatcrew_console_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        env["HEATCREW_DATABASE_URL"] = (
            make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        )

        def dropper() -> None:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

    workdir = tmp_path_factory.mktemp(f"console-{request.param}")
    process, base = start_server(workdir, ["demo"], env_extra=env)
    try:
        yield Server(base=base, database=request.param)
    finally:
        stop_server(process)
        if dropper is not None:
            dropper()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Per module, not per session: Playwright's sync API runs an event loop on this thread while
    # it lives, and the next test file in this process may need asyncio.run() or its own Playwright.
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def axe_script() -> Path:
    """axe-core from tests/browser/package-lock.json, installed once (``npm ci``)."""
    script = HERE / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is needed for the accessibility checks (axe-core)")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--silent"], cwd=HERE, check=True, timeout=300)
    return script


@pytest.fixture
def page_at(browser: Any, console_server: Server) -> Iterator[Callable[..., Any]]:
    """``page_at(viewport=DESKTOP)``: a page of a new browser context (its own cookies)."""
    contexts: list[Any] = []

    def open_page(viewport: dict[str, int] = DESKTOP) -> Any:
        context = browser.new_context(viewport=viewport, base_url=console_server.base, locale="zh-CN")
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"console-{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture
def check_axe(axe_script: Path) -> Callable[[Any, str], None]:
    def run(page: Any, name: str) -> None:
        page.add_script_tag(path=str(axe_script))
        result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        bad = [v for v in result["violations"] if v.get("impact") in SERIOUS]
        shot(page, name)
        assert not bad, f"{name}: " + "; ".join(
            f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}" for v in bad
        )

    return run


def sign_in(page: Any, username: str, password: str = DEMO_PASSWORD) -> None:
    page.goto("/console/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("form.stack button[type=submit]")
    page.wait_for_load_state("domcontentloaded")
