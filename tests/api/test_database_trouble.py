"""The database in trouble: a retryable 503 database_unavailable, never a bare 500 or a hang.

Real PostgreSQL (a second connection terminates the app's backend, or holds a lock past the
statement timeout), a real socket that accepts and never answers, a real SQLite write lock.
"""

import logging
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.engine import make_url

from backend.app import create_app
from backend.context import AppContext
from backend.demo import DEMO_PASSWORD
from backend.settings import Settings
from tests.api.helpers import assert_error, login
from tests.conftest import FAST_HASHER

LOGIN = {
    "username": "tech1",
    "password": DEMO_PASSWORD,
    "device": {"id": "phone-of-tech1", "platform": "android", "app_version": "1.0.0"},
}


def assert_unavailable(response: Any) -> None:
    body = assert_error(response, 503, "database_unavailable")
    assert body["detail"]["retryable"] is True
    assert int(response.headers["retry-after"]) > 0


def blocked_backend(
    monitor: sa.Connection, database: str, *, events: tuple[str, ...] = (), timeout: float = 10.0
) -> int:
    """The pid of the app's backend that waits for a lock in ``database`` (of one of these kinds,
    ``pg_stat_activity.wait_event``: ``advisory``, ``transactionid``, ``tuple``, ...)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = monitor.execute(
            sa.text(
                "SELECT pid FROM pg_stat_activity WHERE datname = :db AND wait_event_type = 'Lock'"
                " AND (cardinality(CAST(:events AS text[])) = 0 OR wait_event = ANY(CAST(:events AS text[])))"
                " AND pid <> pg_backend_pid()"
            ),
            {"db": database, "events": list(events)},
        ).scalar()
        if pid is not None:
            return int(pid)
        time.sleep(0.05)
    raise AssertionError("the request never reached the database")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_backend_terminated_mid_request_answers_503_then_the_next_request_works(
    client: TestClient, demo: AppContext, database_url: str
) -> None:
    database = make_url(database_url).database
    assert database is not None
    admin = sa.create_engine(database_url)
    monitor = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as holder, monitor.connect() as watch, ThreadPoolExecutor(1) as pool:
            # The login waits on this lock, so its backend is busy with the request when it is killed.
            holder.execute(sa.text("LOCK TABLE login_attempt IN ACCESS EXCLUSIVE MODE"))
            pending = pool.submit(client.post, "/api/v1/auth/login", json=LOGIN)
            pid = blocked_backend(watch, database)
            assert watch.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
            response = pending.result(timeout=30)
            holder.rollback()
    finally:
        admin.dispose()
        monitor.dispose()
    assert_unavailable(response)
    assert login(client, "tech1")["access_token"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_every_pooled_connection_terminated_while_idle_costs_no_request(
    client: TestClient, demo: AppContext, database_url: str
) -> None:
    tokens = login(client, "tech1")
    monitor = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with monitor.connect() as watch:
            killed = watch.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar()
    finally:
        monitor.dispose()
    assert killed
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200, me.text


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_statement_past_the_statement_timeout_answers_503(
    make_client: Any, demo: AppContext, database_url: str
) -> None:
    client = make_client(db_statement_timeout=1)
    admin = sa.create_engine(database_url)
    try:
        with admin.connect() as holder, ThreadPoolExecutor(1) as pool:
            holder.execute(sa.text("LOCK TABLE login_attempt IN ACCESS EXCLUSIVE MODE"))
            started = time.monotonic()
            pending = pool.submit(client.post, "/api/v1/auth/login", json=LOGIN)
            try:
                response = pending.result(timeout=15)
            finally:
                holder.rollback()
            elapsed = time.monotonic() - started
    finally:
        admin.dispose()
    assert_unavailable(response)
    assert elapsed < 10
    assert login(client, "tech1")["access_token"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_still_locked_after_the_busy_timeout_answers_503(
    make_client: Any, demo: AppContext, database_url: str
) -> None:
    client = make_client(db_statement_timeout=1)
    writer = sqlite3.connect(make_url(database_url).database, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        started = time.monotonic()
        response = client.post("/api/v1/auth/login", json=LOGIN)
        elapsed = time.monotonic() - started
    finally:
        writer.rollback()
        writer.close()
    assert_unavailable(response)
    assert elapsed < 10
    assert login(client, "tech1")["access_token"]


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A TCP port on loopback that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.1)
    stop = threading.Event()
    accepted: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_a_database_that_never_answers_fails_fast(silent_listener: int, tmp_path: Path) -> None:
    settings = Settings(
        var_dir=tmp_path / "var",
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:{silent_listener}/heatcrew",
        secret_key="test-signing-key-not-for-production-0123456789",
        auto_migrate=False,
    )
    app = create_app(settings, password_hasher=FAST_HASHER)
    with TestClient(app) as client, ThreadPoolExecutor(2) as pool:
        started = time.monotonic()
        ready = pool.submit(client.get, "/ready").result(timeout=20)
        ready_took = time.monotonic() - started
        started = time.monotonic()
        logged_in = pool.submit(client.post, "/api/v1/auth/login", json=LOGIN).result(timeout=30)
        login_took = time.monotonic() - started
        # An authenticated request fails in the token check (its one query): the same 503.
        ctx: AppContext = app.state.ctx
        token = ctx.tokens.issue(
            user_id=uuid.uuid4(), session_id=uuid.uuid4(), device_id="phone-of-tech1", now=ctx.clock.now()
        )
        me = pool.submit(client.get, "/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        me_answer = me.result(timeout=30)
    app.state.ctx.db.dispose()
    assert_unavailable(me_answer)
    body = assert_error(ready, 503, "not_ready")
    assert body["detail"]["failed"] == ["database"]
    assert body["detail"]["checks"]["database"].startswith("unavailable")
    assert ready_took < 5  # the target is 2 s; generous for a shared machine
    assert_unavailable(logged_in)
    assert login_took < 10  # the connect timeout is 3 s


def test_not_ready_when_the_blob_disk_is_nearly_full(make_client: Any) -> None:
    client = make_client(ready_min_free_bytes=2**62)  # more than any disk has
    response = client.get("/ready")
    body = assert_error(response, 503, "not_ready")
    assert body["detail"]["failed"] == ["blob_store"]
    assert body["detail"]["checks"]["database"] == "ok"
    assert body["detail"]["checks"]["blob_store"].startswith("low_on_space")
    assert make_client(ready_min_free_bytes=0).get("/ready").status_code == 200


def test_a_client_that_disconnects_early_is_logged_at_info(
    app: Litestar, caplog: pytest.LogCaptureFixture
) -> None:
    # The phone lost its signal while sending: nobody reads the answer and nothing is wrong here.
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": b'{"username": "tech1", "pass', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/auth/login",
        "raw_path": b"/api/v1/auth/login",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"content-length", b"200"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    with caplog.at_level(logging.DEBUG):
        anyio.run(app, scope, receive, send)
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert loud == [], [r.getMessage() for r in loud]
    assert any(r.levelno == logging.INFO and "disconnected" in r.getMessage() for r in caplog.records)
    assert not any(r.exc_info for r in caplog.records)
