"""A worker's threads for database work are bounded: a rush of phones does not start one per phone."""

import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import anyio.to_thread
import pytest
from litestar.testing import TestClient

from backend.app import WORKER_THREADS
from backend.auth.passwords import HashGate
from tests.api.helpers import auth, login

__all__ = ()

pytestmark = pytest.mark.usefixtures("demo")

PHONES = 3 * WORKER_THREADS


def _anyio_threads() -> set[int | None]:
    return {t.ident for t in threading.enumerate() if t.name == "AnyIO worker thread"}


def test_many_full_pulls_at_once_run_on_at_most_the_workers_threads(client: TestClient) -> None:
    headers = auth(login(client, "tech1"))
    before = _anyio_threads()

    def pull(_: int) -> int:
        return client.get("/api/v1/sync/pull", headers=headers).status_code  # no cursor: from the database

    with ThreadPoolExecutor(PHONES) as phones:
        answers = list(phones.map(pull, range(PHONES)))
    assert answers == [200] * PHONES
    assert len(_anyio_threads() - before) <= WORKER_THREADS  # unbounded, about one per phone


def _hold_every_thread() -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    holders = [object() for _ in range(WORKER_THREADS)]

    async def hold() -> None:
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = WORKER_THREADS
        for holder in holders:
            await limiter.acquire_on_behalf_of(holder)
        assert limiter.available_tokens == 0

    async def release() -> None:
        limiter = anyio.to_thread.current_default_thread_limiter()
        for holder in holders:
            limiter.release_on_behalf_of(holder)

    return hold, release


def test_with_every_worker_thread_busy_the_worker_is_still_ready(client: TestClient) -> None:
    """A rush holding all the worker's threads makes it slow, not broken: the readiness probe runs
    on threads of its own, or a load balancer would take a busy worker out of service."""
    hold, release = _hold_every_thread()
    client.get("/health")  # the app is up on its loop
    client.blocking_portal.call(hold)
    try:
        ready = client.get("/ready")
        assert ready.status_code == 200, ready.text
    finally:
        client.blocking_portal.call(release)


def test_a_password_check_does_not_wait_for_the_workers_threads() -> None:
    """Its queue time (HEATCREW_LOGIN_QUEUE_WAIT) is the wait for a check slot, not for a thread
    that pulls hold."""
    hold, release = _hold_every_thread()

    async def check_while_busy() -> int:
        await hold()
        try:
            with anyio.fail_after(5):  # waiting for a worker thread would wait for ever
                return await HashGate(slots=1, wait_s=1.0).run(lambda: 42)
        finally:
            await release()

    assert anyio.run(check_while_busy) == 42
