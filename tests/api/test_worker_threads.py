"""A worker's threads for database work are bounded: a rush of phones does not start one per phone."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from litestar.testing import TestClient

from backend.app import WORKER_THREADS
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
