"""Limits that must hold when many requests arrive at once: login budgets, hash checks, addresses.

The password hasher is real Argon2id (a small cost) wrapped so that it counts the checks it runs
and, where a test needs it, takes its time; it is injected through ``create_app``.
"""

import dataclasses
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from litestar import Litestar
from litestar.testing import TestClient

from backend.app import create_app
from backend.auth.models import LoginAttempt
from backend.clock import ManualClock
from backend.context import AppContext
from backend.settings import Settings
from tests.api.helpers import assert_error, login

pytestmark = pytest.mark.usefixtures("demo")


class CountingHasher(PasswordHasher):
    """Argon2id that counts its password checks, the most that ran at once, and can be slow."""

    def __init__(self, delay: float) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.delay = delay
        self.checks = 0
        self.running = 0
        self.most_at_once = 0
        self.entered = threading.Event()
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        with self._lock:
            self.checks += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        self.entered.set()
        try:
            time.sleep(self.delay)
            return super().verify(hash, password)
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
def hash_delay() -> float:
    return 0.05


@pytest.fixture
def overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
def hasher(hash_delay: float) -> CountingHasher:
    return CountingHasher(hash_delay)


@pytest.fixture
def app(
    settings: Settings, clock: ManualClock, hasher: CountingHasher, overrides: dict[str, Any]
) -> Iterator[Litestar]:
    application = create_app(dataclasses.replace(settings, **overrides), clock=clock, password_hasher=hasher)
    yield application
    application.state.ctx.db.dispose()


def login_body(username: str, password: str, device: str = "phone-attacker") -> dict[str, Any]:
    return {
        "username": username,
        "password": password,
        "device": {"id": device, "platform": "android", "app_version": "1"},
    }


def post_at_once(client: TestClient, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    """Every login posted from its own thread, released together."""
    barrier = threading.Barrier(len(bodies))

    def send(body: dict[str, Any]) -> httpx.Response:
        barrier.wait()
        return client.post("/api/v1/auth/login", json=body)

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(send, bodies))


def codes(responses: list[httpx.Response]) -> Counter[tuple[int, str]]:
    return Counter((r.status_code, r.json().get("code")) for r in responses)


def test_thirty_concurrent_wrong_passwords_get_five_hash_checks(
    client: TestClient, hasher: CountingHasher
) -> None:
    responses = post_at_once(client, [login_body("tech1", f"guess-{i}") for i in range(30)])
    assert hasher.checks == 5
    assert codes(responses) == {(401, "invalid_credentials"): 5, (429, "rate_limited"): 25}
    for response in responses:
        if response.status_code == 429:
            assert response.json()["detail"]["scope"] == "user"
            assert response.headers["retry-after"] == "900"
    # The right password is refused too while the budget is spent, without a check.
    assert_error(
        client.post("/api/v1/auth/login", json=login_body("tech1", "demo-password")), 429, "rate_limited"
    )
    assert hasher.checks == 5


def test_forty_concurrent_logins_from_one_address_get_thirty_hash_checks(
    client: TestClient, hasher: CountingHasher
) -> None:
    responses = post_at_once(client, [login_body(f"spray{i}", "guess") for i in range(40)])
    assert hasher.checks == 30
    assert codes(responses) == {(401, "invalid_credentials"): 30, (429, "rate_limited"): 10}
    assert {r.json()["detail"]["scope"] for r in responses if r.status_code == 429} == {"address"}


def test_a_worker_runs_at_most_two_password_checks_at_once(
    client: TestClient, hasher: CountingHasher
) -> None:
    users = ["tech1", "tech2", "supervisor1", "dispatcher1", "inspector1", "admin"]
    bodies = [login_body(name, "demo-password", device=f"phone-{name}") for name in users]
    bodies += [login_body(f"nobody{i}", "guess", device=f"phone-nobody{i}") for i in range(6)]
    responses = post_at_once(client, bodies)
    assert codes(responses) == {(200, None): 6, (401, "invalid_credentials"): 6}
    assert hasher.checks == 12
    assert hasher.most_at_once == 2


@pytest.mark.parametrize("overrides", [{"login_hash_concurrency": 1, "login_queue_wait": 0.2}])
@pytest.mark.parametrize("hash_delay", [1.5])
def test_a_login_that_waits_too_long_for_a_password_check_is_told_to_retry(
    client: TestClient, ctx: AppContext, hasher: CountingHasher
) -> None:
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(
            client.post, "/api/v1/auth/login", json=login_body("tech1", "demo-password", "phone-one")
        )
        assert hasher.entered.wait(10)
        busy = client.post("/api/v1/auth/login", json=login_body("tech2", "demo-password", "phone-two"))
        error = assert_error(busy, 503, "login_busy")
        assert error["detail"]["retryable"] is True
        assert busy.headers["retry-after"] == "1"
        assert first.result().status_code == 200
    assert hasher.checks == 1  # the refused login never reached Argon2
    # Nor does it count against the account: tech2 logs in at once, and one attempt is recorded.
    assert login(client, "tech2")["user"]["username"] == "tech2"
    with ctx.db.session(readonly=True) as session:
        recorded = (
            session.execute(sa.select(LoginAttempt.succeeded).where(LoginAttempt.username == "tech2"))
            .scalars()
            .all()
        )
    assert recorded == [True]


def bogus_refresh(client: TestClient, headers: dict[str, str] | None = None) -> httpx.Response:
    return client.post("/api/v1/auth/refresh", json={"refresh_token": uuid.uuid4().hex}, headers=headers)


@pytest.mark.parametrize("overrides", [{"trust_forwarded_for": True}])
def test_refresh_is_limited_per_address(client: TestClient, clock: ManualClock) -> None:
    tokens = login(client, "tech1")
    # The default: 60 refreshes per address per minute, wrong tokens included.
    for _ in range(59):
        assert_error(bogus_refresh(client), 401, "refresh_token_invalid")
    fresh = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert fresh.status_code == 200, fresh.text
    limited = client.post("/api/v1/auth/refresh", json={"refresh_token": fresh.json()["refresh_token"]})
    error = assert_error(limited, 429, "rate_limited")
    assert error["detail"] == {"limit": 60, "window_s": 60, "scope": "address"}
    assert limited.headers["retry-after"] == "60"
    # Another address is not affected.
    assert_error(bogus_refresh(client, {"X-Forwarded-For": "203.0.113.9"}), 401, "refresh_token_invalid")
    # The refused refresh did not spend the token: the next minute it works.
    clock.advance(seconds=30)
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": "x"}).headers["retry-after"] == "30"
    clock.advance(seconds=30)
    again = client.post("/api/v1/auth/refresh", json={"refresh_token": fresh.json()["refresh_token"]})
    assert again.status_code == 200, again.text


@pytest.mark.parametrize("overrides", [{"trust_forwarded_for": True}])
def test_public_documents_are_limited_per_address(client: TestClient, clock: ManualClock) -> None:
    reference = f"{uuid.uuid4()}.{'0' * 24}"
    # The default: 30 look-ups per address per minute, the PDF included.
    for _ in range(29):
        assert_error(client.get(f"/api/v1/public/documents/{reference}"), 404, "not_found")
    assert_error(client.get(f"/api/v1/public/documents/{reference}/pdf"), 404, "not_found")
    for path in (reference, f"{reference}/pdf"):
        limited = client.get(f"/api/v1/public/documents/{path}")
        error = assert_error(limited, 429, "rate_limited")
        assert error["detail"] == {"limit": 30, "window_s": 60, "scope": "address"}
        assert limited.headers["retry-after"] == "60"
    other = client.get(f"/api/v1/public/documents/{reference}", headers={"X-Forwarded-For": "198.51.100.7"})
    assert_error(other, 404, "not_found")
    clock.advance(seconds=60)
    assert_error(client.get(f"/api/v1/public/documents/{reference}"), 404, "not_found")


@pytest.mark.parametrize("overrides", [{"trust_forwarded_for": True}])
def test_a_forged_forwarded_for_hop_does_not_escape_the_per_address_limit(client: TestClient) -> None:
    """A trusted proxy appends the address it saw; what the client wrote before it is the client's
    own words. The first hop was taken: a new forged hop per request escaped every address limit."""
    reference = f"{uuid.uuid4()}.{'0' * 24}"
    for i in range(30):
        forged = {"X-Forwarded-For": f"198.51.100.{i}, 203.0.113.50"}
        assert_error(client.get(f"/api/v1/public/documents/{reference}", headers=forged), 404, "not_found")
    forged = {"X-Forwarded-For": "198.51.100.200, 203.0.113.50"}
    limited = client.get(f"/api/v1/public/documents/{reference}", headers=forged)
    assert assert_error(limited, 429, "rate_limited")["detail"]["scope"] == "address"
    # The proxy's own view of another client is another address.
    other = {"X-Forwarded-For": "198.51.100.200, 203.0.113.51"}
    assert_error(client.get(f"/api/v1/public/documents/{reference}", headers=other), 404, "not_found")
