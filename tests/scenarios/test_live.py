"""The live channel: notices reach every worker's hub, empty delta pulls are answered from memory
without a database round trip, and the SSE stream tells phones when to pull.

The servers are real: uvicorn runs each app in a thread of this process (two apps on one
PostgreSQL database are two workers), so the tests can count every statement an app's engines
send (``before_cursor_execute``) and kill the listener's backend.
"""

import itertools
import json
import queue
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from litestar import Litestar

from backend.app import create_app
from backend.clock import ManualClock
from backend.context import AppContext
from backend.demo import DEMO_PASSWORD, seed_demo
from backend.settings import Settings
from backend.sync import changes
from tests.api.helpers import counting
from tests.conftest import FAST_HASHER
from tests.fixtures import answers
from tests.fixtures.field import principal

SHORT_BEAT = 0.3


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """One app served by uvicorn on its own thread and event loop: one worker."""

    def __init__(self, app: Litestar) -> None:
        self.app = app
        self.ctx: AppContext = app.state.ctx
        port = _free_port()
        self.base = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_config=None,
            lifespan="on",
            loop="asyncio",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        wait_until(lambda: self.ctx.live.known, "the hub knows")
        self.http = httpx.Client(base_url=self.base, timeout=10)

    def stop(self) -> None:
        self.http.close()
        self._server.should_exit = True
        self._thread.join(15)
        self.ctx.db.dispose()


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


@pytest.fixture
def live_settings(settings: Settings) -> Settings:
    return Settings(**{**_fields(settings), "events_heartbeat": SHORT_BEAT})


def _fields(settings: Settings) -> dict[str, Any]:
    return {
        name: getattr(settings, name) for name in settings.__dataclass_fields__ if not name.startswith("_")
    }


@pytest.fixture
def servers(live_settings: Settings, clock: ManualClock) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(**overrides: Any) -> Server:
        settings = Settings(**{**_fields(live_settings), **overrides})
        app = answers.record(create_app(settings, clock=clock, password_hasher=FAST_HASHER))
        if not started:
            with app.state.ctx.db.session() as session:
                seed_demo(app.state.ctx, session)
        server = Server(app)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def two(servers: Callable[..., Server], database_url: str) -> tuple[Server, Server]:
    """Two workers on one PostgreSQL database; on SQLite (one worker) the same server twice."""
    first = servers()
    return (first, servers()) if database_url.startswith("postgresql") else (first, first)


def login(server: Server, username: str, device: str) -> dict[str, Any]:
    response = server.http.post(
        "/api/v1/auth/login",
        json={
            "username": username,
            "password": DEMO_PASSWORD,
            "device": {"id": device, "platform": "android", "app_version": "1.0.0"},
        },
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def pull(server: Server, headers: dict[str, str], cursor: str | None = None) -> dict[str, Any]:
    response = server.http.get(
        "/api/v1/sync/pull", params={"cursor": cursor} if cursor else {}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


class Stream:
    """An SSE connection read on a thread: events and comments arrive in a queue."""

    def __init__(self, server: Server, headers: dict[str, str], **params: str) -> None:
        self.items: queue.Queue[dict[str, Any]] = queue.Queue()
        self.status: int | None = None
        self._opened = threading.Event()
        self._client = httpx.Client(base_url=server.base, timeout=httpx.Timeout(10, read=30))
        extra = {"Last-Event-ID": params.pop("last_event_id")} if "last_event_id" in params else {}
        self._thread = threading.Thread(target=self._read, args=({**headers, **extra}, params), daemon=True)
        self._thread.start()
        assert self._opened.wait(10)

    def _read(self, headers: dict[str, str], params: dict[str, str]) -> None:
        try:
            with self._client.stream(
                "GET", "/api/v1/sync/events", headers=headers, params=params
            ) as response:
                self.status = response.status_code
                self.headers = response.headers
                if response.status_code != 200:
                    self.body = response.read()
                    return
                self._opened.set()
                item: dict[str, Any] = {}
                for line in response.iter_lines():
                    if line.startswith(":"):
                        self.items.put({"comment": line[1:].strip(), "at": time.monotonic()})
                    elif line == "":
                        if item:
                            item["at"] = time.monotonic()
                            self.items.put(item)
                        item = {}
                    else:
                        name, _, value = line.partition(":")
                        item[name] = value.lstrip()
        except httpx.HTTPError:
            pass
        finally:
            self._opened.set()
            self.items.put({"closed": True, "at": time.monotonic()})

    def next_event(self, timeout: float = 5.0, *, kind: str | None = None) -> dict[str, Any]:
        """The next event (comments skipped), of ``kind`` if given."""
        deadline = time.monotonic() + timeout
        while True:
            item = self.items.get(timeout=max(0.01, deadline - time.monotonic()))
            if "comment" in item:
                continue
            if kind is None or item.get("event") == kind or "closed" in item:
                return item

    def close(self) -> None:
        self._client.close()


def head_of(event: dict[str, Any]) -> dict[str, Any]:
    assert event.get("event") == "head", event
    data = json.loads(event["data"])
    assert event["id"] == str(data["position"])
    return data


def note(server: Server, headers: dict[str, str], device: str, order_id: str, seq: int) -> float:
    """A push of one note; the time its answer arrived."""
    now = server.ctx.clock.now()
    batch = {
        "device_id": device,
        "sent_at": now.isoformat(),
        "actions": [
            {
                "id": str(uuid.uuid4()),
                "seq": seq,
                "type": "work_order.note",
                "v": 1,
                "occurred_at": (now - timedelta(seconds=5)).isoformat(),
                "payload": {"work_order_id": order_id, "text": "阀门已检查"},
            }
        ],
    }
    response = server.http.post("/api/v1/sync/push", json=batch, headers=headers)
    answered = time.monotonic()
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["status"] == "applied", response.text
    return answered


def first_order(snapshot: dict[str, Any]) -> str:
    return next(c["id"] for c in snapshot["changes"] if c["entity"] == "work_order")


# ---------------------------------------------------------------------- the cache


def test_an_empty_delta_pull_costs_no_database_round_trip(servers: Callable[..., Server]) -> None:
    server = servers()
    a = login(server, "tech1", "phone-aaa")
    b = login(server, "tech1", "phone-bbb")
    snapshot = pull(server, b)
    cursor = pull(server, b, snapshot["cursor"])["cursor"]  # a delta from the database: it learns
    with counting(server.ctx) as sent:
        page = pull(server, b, cursor)
    assert sent == []
    assert page == {"cursor": cursor, "has_more": False, "reset": False, "changes": []}

    note(server, a, "phone-aaa", first_order(snapshot), 1)
    deadline = time.monotonic() + 2
    while True:  # a late notice only delays; the cursor stays where it was meanwhile
        with counting(server.ctx) as sent:
            page = pull(server, b, cursor)
        if page["changes"] or time.monotonic() > deadline:
            break
        assert page["cursor"] == cursor
    assert sent, "a change is read from the database"
    assert [c["id"] for c in page["changes"] if c["entity"] == "work_order"] == [first_order(snapshot)]

    wait_until(lambda: not pull(server, b, page["cursor"])["changes"], "the feed is quiet")
    cursor = pull(server, b, page["cursor"])["cursor"]
    with counting(server.ctx) as sent:
        assert pull(server, b, cursor)["changes"] == []
    assert sent == []


def test_a_cached_answer_needs_the_users_own_current_cursor(servers: Callable[..., Server]) -> None:
    server = servers()
    tech1, tech2 = login(server, "tech1", "phone-111"), login(server, "tech2", "phone-222")
    cursor = pull(server, tech1, pull(server, tech1)["cursor"])["cursor"]
    pull(server, tech1, cursor)
    # Another user's cursor is not this user's: the database answers (a full snapshot).
    page = pull(server, tech2, cursor)
    assert page["reset"] is True
    # A token that is not valid never reaches the cache.
    response = server.http.get(
        "/api/v1/sync/pull", params={"cursor": cursor}, headers={"Authorization": "Bearer x"}
    )
    assert response.status_code == 401
    # A new epoch (a restore) reaches the hub: the old cursor is reset.
    with server.ctx.db.session() as session:
        changes.bump_epoch(session, principal(server.ctx, "tech1").company_id)
    wait_until(lambda: pull(server, tech1, cursor)["reset"], "the old epoch's cursor resets")


def test_writers_racing_a_cached_puller_never_lose_a_change(servers: Callable[..., Server]) -> None:
    server = servers()
    ctx = server.ctx
    headers = login(server, "tech1", "phone-race")
    company = principal(ctx, "tech1").company_id
    user = principal(ctx, "tech1").user_id
    cursor = pull(server, headers)["cursor"]
    written: list[str] = []
    seen: set[str] = set()
    stop = threading.Event()
    rng = random.Random(7)

    def write(hold: float) -> None:
        entity = str(uuid.uuid4())
        with ctx.db.session() as session:
            if ctx.db.dialect == "postgresql":
                session.execute(sa.text("SELECT pg_current_xact_id()"))  # the position is taken now
            changes.touch(session, company_id=company, entity="work_order", entity_id=entity, users=[user])
            changes.write_log(session)
            time.sleep(hold)  # commits after writers that started later: out of position order
        written.append(entity)

    def writers() -> None:
        threads = []
        for _ in range(30):
            thread = threading.Thread(target=write, args=(rng.choice([0, 0, 0.01, 0.05]),))
            thread.start()
            threads.append(thread)
            time.sleep(rng.random() * 0.04)
        for thread in threads:
            thread.join()
        stop.set()

    writer = threading.Thread(target=writers)
    writer.start()
    answered_from_memory = 0
    while not stop.is_set():
        with counting(ctx) as sent:
            page = pull(server, headers, cursor)
        answered_from_memory += not sent
        seen |= {c["id"] for c in page["changes"] if c["entity"] == "work_order"}
        cursor = page["cursor"]
    writer.join()

    def drained() -> bool:
        nonlocal cursor
        page = pull(server, headers, cursor)
        seen.update(c["id"] for c in page["changes"] if c["entity"] == "work_order")
        cursor = page["cursor"]
        return set(written) <= seen

    wait_until(drained, "every write is seen", timeout=5)
    assert len(written) == 30
    # The gaps between writers let the hub learn: some pulls came from memory (on SQLite most).
    assert answered_from_memory > 0


# ---------------------------------------------------------------------- the stream


def test_a_push_wakes_another_phones_stream_within_a_second(two: tuple[Server, Server]) -> None:
    first, second = two
    a = login(first, "tech1", "phone-aaa")
    b = login(second, "tech1", "phone-bbb")
    snapshot = pull(second, b)
    stream = Stream(second, b, cursor=snapshot["cursor"])
    try:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        told = head_of(stream.next_event())
        assert told["pull"] is False  # its cursor is at the head
        answered = note(first, a, "phone-aaa", first_order(snapshot), 1)
        event = stream.next_event(kind="head")
        assert event["at"] - answered < 1.0
        woke = head_of(event)
        assert woke["pull"] is True and woke["position"] > told["position"]
        page = pull(second, b, snapshot["cursor"])
        assert [c["id"] for c in page["changes"] if c["entity"] == "work_order"] == [first_order(snapshot)]
        # Another user's change does not wake it.
        tech2 = login(first, "tech2", "phone-t2")
        note(first, tech2, "phone-t2", first_order(pull(first, tech2)), 1)
        time.sleep(0.5)
        extra = [item for item in list(stream.items.queue) if "comment" not in item]
        assert not extra, extra
    finally:
        stream.close()


def test_a_reconnecting_phone_is_told_the_head_at_once(servers: Callable[..., Server]) -> None:
    server = servers()
    headers = login(server, "tech1", "phone-rrr")
    snapshot = pull(server, headers)
    old = snapshot["cursor"]
    note(server, headers, "phone-rrr", first_order(snapshot), 1)
    wait_until(lambda: pull(server, headers, old)["changes"], "the change is committed")
    behind = Stream(server, headers, cursor=old)
    told = head_of(behind.next_event(timeout=2))
    behind.close()
    assert told["pull"] is True
    current = pull(server, headers, old)["cursor"]
    at_head = Stream(server, headers, cursor=current)
    assert head_of(at_head.next_event(timeout=2))["pull"] is False
    at_head.close()
    by_id = Stream(server, headers, last_event_id=str(told["position"]))
    assert head_of(by_id.next_event(timeout=2)) == {"position": told["position"], "pull": False}
    by_id.close()
    fresh = Stream(server, headers)
    assert head_of(fresh.next_event(timeout=2))["pull"] is True
    fresh.close()


def test_heartbeats_keep_a_quiet_stream_open(servers: Callable[..., Server]) -> None:
    server = servers()
    headers = login(server, "tech1", "phone-hhh")
    stream = Stream(server, headers, cursor=pull(server, headers)["cursor"])
    try:
        head_of(stream.next_event())
        beats = []
        deadline = time.monotonic() + 3
        while len(beats) < 3 and time.monotonic() < deadline:
            item = stream.items.get(timeout=2)
            assert "closed" not in item
            if "comment" in item:
                beats.append(item["at"])
        assert len(beats) == 3
        assert all(0.1 < later - earlier < 1.0 for earlier, later in itertools.pairwise(beats))
    finally:
        stream.close()


def test_streams_are_bounded_per_worker(servers: Callable[..., Server]) -> None:
    server = servers(events_max_streams=1)
    headers = login(server, "tech1", "phone-mmm")
    held = Stream(server, headers)
    try:
        head_of(held.next_event())
        refused = Stream(server, headers)
        assert refused.status == 503
        assert refused.headers["retry-after"]
        assert json.loads(refused.body)["code"] == "events_busy"
    finally:
        held.close()
    wait_until(lambda: server.ctx.live.streams == 0, "the stream is gone")
    again = Stream(server, headers)
    assert again.status == 200
    again.close()


def test_a_stream_ends_when_its_token_expires(servers: Callable[..., Server], clock: ManualClock) -> None:
    server = servers()
    headers = login(server, "tech1", "phone-xxx")
    stream = Stream(server, headers)
    try:
        head_of(stream.next_event())
        clock.advance(timedelta(seconds=server.ctx.settings.access_token_ttl + 1))
        end = stream.next_event(timeout=3)
        assert end.get("event") == "end" and json.loads(end["data"]) == {"code": "token_expired"}
        assert "closed" in stream.next_event(timeout=3)
    finally:
        stream.close()


def test_a_revoked_device_is_refused_at_once_and_its_stream_ends(two: tuple[Server, Server]) -> None:
    first, second = two
    admin = login(first, "admin", "admin-desk")
    b = login(second, "tech1", "phone-lost")
    cursor = pull(second, b, pull(second, b)["cursor"])["cursor"]
    with counting(second.ctx) as sent:
        pull(second, b, cursor)
    assert sent == []  # cached before the revocation
    stream = Stream(second, b, cursor=cursor)
    try:
        head_of(stream.next_event())
        revoked = first.http.post("/api/v1/devices/phone-lost/revoke", json={"reason": "lost"}, headers=admin)
        assert revoked.status_code == 200, revoked.text
        end = stream.next_event(timeout=2, kind="end")
        assert json.loads(end["data"]) == {"code": "device_revoked"}
        assert "closed" in stream.next_event(timeout=2)
    finally:
        stream.close()
    # The next request is refused, even the one an empty page would answer from memory.
    response = second.http.get("/api/v1/sync/pull", params={"cursor": cursor}, headers=b)
    assert response.status_code == 401 and response.json()["code"] == "device_revoked"
    response = second.http.get("/api/v1/sync/pull", headers=b)
    assert response.status_code == 401 and response.json()["code"] == "device_revoked"
    assert Stream(second, b).status == 401


# ---------------------------------------------------------------------- losing the listener


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_lost_listener_makes_the_hub_unknown_until_it_is_back(servers: Callable[..., Server]) -> None:
    server = servers()
    ctx = server.ctx
    a = login(server, "tech1", "phone-aaa")
    b = login(server, "tech1", "phone-bbb")
    snapshot = pull(server, b)
    cursor = pull(server, b, snapshot["cursor"])["cursor"]
    stream = Stream(server, b, cursor=cursor)
    try:
        head_of(stream.next_event())
        pid = ctx.live.listener_pid
        assert pid is not None
        with ctx.db.engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        wait_until(lambda: not ctx.live.known or ctx.live.listener_pid != pid, "the listener is lost")
        # Unknown or reconnected: a change is never missed, the database answers until it learns.
        note(server, a, "phone-aaa", first_order(snapshot), 1)
        wait_until(lambda: pull(server, b, cursor)["changes"], "the change is pulled")
        assert head_of(stream.next_event(timeout=3, kind="head"))["pull"] is True  # reloaded or noticed
        wait_until(lambda: ctx.live.known and ctx.live.listener_pid not in (None, pid), "reconnected")
        cursor = pull(server, b, cursor)["cursor"]
        cursor = pull(server, b, cursor)["cursor"]
        with counting(ctx) as sent:
            assert pull(server, b, cursor)["changes"] == []
        assert sent == []
    finally:
        stream.close()


def test_logging_out_or_disabling_ends_the_stream(two: tuple[Server, Server]) -> None:
    first, second = two
    phone = login(first, "tech1", "phone-out")
    stream = Stream(second, phone)
    try:
        head_of(stream.next_event())
        assert first.http.post("/api/v1/auth/logout", headers=phone).status_code == 200
        end = stream.next_event(timeout=2, kind="end")
        assert json.loads(end["data"]) == {"code": "session_revoked"}
    finally:
        stream.close()
    other = login(first, "tech2", "phone-dis")
    stream = Stream(second, other)
    try:
        head_of(stream.next_event())
        admin = login(first, "admin", "admin-desk")
        user_id = principal(first.ctx, "tech2").user_id
        response = first.http.post(f"/api/v1/users/{user_id}/disable", headers=admin)
        assert response.status_code == 200, response.text
        end = stream.next_event(timeout=2, kind="end")
        assert json.loads(end["data"]) == {"code": "user_disabled"}
    finally:
        stream.close()


def test_a_stream_refused_answers_as_the_document_says(servers: Callable[..., Server]) -> None:
    server = servers()
    response = server.http.get("/api/v1/sync/events")
    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"
    headers = login(server, "tech1", "phone-bad")
    response = server.http.get("/api/v1/sync/events", headers={**headers, "Last-Event-ID": "9" * 41})
    assert response.status_code == 400, response.text
    response = server.http.get("/api/v1/sync/events", headers={**headers, "X-App-Version": "nope"})
    assert response.status_code == 400 and response.json()["code"] == "invalid_app_version"
