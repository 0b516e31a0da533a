"""Prometheus metrics: scraped after real traffic, the counts match what was sent; ``/metrics`` is
reachable only with its token on the API port, or on its own port, and adds up several workers."""

import hashlib
import io
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from backend import metrics
from backend.demo import DEMO_COMPANY_CODE
from tests.api.helpers import assert_error, auth, login
from tests.fixtures.live_server import free_port, start_server, stop_server

TOKEN = "scrape-token-for-the-tests-0123456789"
SCRAPE = {"Authorization": f"Bearer {TOKEN}"}
Samples = dict[tuple[str, frozenset], float]
COMPANY = DEMO_COMPANY_CODE


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics", headers=SCRAPE)
    assert response.status_code == 200, response.text
    return parse(response.text)


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (20, 120, 200)).save(out, "JPEG")
    return out.getvalue()


def envelope(seq: int, action_type: str, payload: dict) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "seq": seq,
        "type": action_type,
        "v": 1,
        "occurred_at": datetime(2026, 12, 7, 0, 35, tzinfo=UTC).isoformat(),
        "payload": payload,
    }


@pytest.mark.usefixtures("demo")
def test_the_api_port_has_no_metrics_without_a_token(client: TestClient) -> None:
    assert_error(client.get("/metrics"), 404, "not_found")
    assert_error(client.get("/metrics", headers=SCRAPE), 404, "not_found")


@pytest.mark.usefixtures("demo")
def test_the_metrics_token_is_checked(make_client: Callable[..., TestClient]) -> None:
    client = make_client(metrics_token=TOKEN)
    assert_error(client.get("/metrics"), 401, "invalid_token")
    assert_error(client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"}), 401, "invalid_token")
    assert_error(client.get("/metrics", headers={"Authorization": TOKEN}), 401, "invalid_token")
    # A phone's access token is not the metrics token.
    assert_error(client.get("/metrics", headers=auth(login(client, "admin"))), 401, "invalid_token")
    answer = client.get("/metrics", headers=SCRAPE)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    assert "/metrics" not in client.get("/schema/openapi.json").json()["paths"]


@pytest.mark.usefixtures("demo")
def test_traffic_is_counted_exactly(make_client: Callable[..., TestClient]) -> None:
    client = make_client(metrics_token=TOKEN)
    before = scrape(client)
    for _ in range(2):
        wrong = client.post(
            "/api/v1/auth/login",
            json={
                "username": "tech1",
                "password": "not-the-password",
                "device": {"id": "metrics-phone", "platform": "android", "app_version": "1.0.0"},
            },
        )
        assert_error(wrong, 401, "invalid_credentials")
    tokens = login(client, "tech1", device_id="metrics-phone")
    pulled = client.get("/api/v1/sync/pull", headers=auth(tokens)).json()
    order_id = next(change["id"] for change in pulled["changes"] if change["entity"] == "work_order")
    photo = jpeg()
    sha = hashlib.sha256(photo).hexdigest()
    batch = [
        envelope(1, "work_order.accept", {"work_order_id": order_id}),
        envelope(2, "work_order.note", {"work_order_id": order_id, "text": "阀门漏水"}),
        envelope(3, "evidence.photo", {"work_order_id": order_id, "blob": sha, "purpose": "before"}),
        envelope(4, "work_order.note", {"work_order_id": order_id, "text": "after the photo"}),
    ]
    body = {"device_id": "metrics-phone", "sent_at": "2026-12-07T00:36:00+00:00", "actions": batch}
    first = client.post("/api/v1/sync/push", json=body, headers=auth(tokens)).json()
    assert [r["status"] for r in first["results"]] == ["applied", "applied", "waiting", "out_of_order"]
    waiting = scrape(client)

    stored = client.put(f"/api/v1/blobs/{sha}", content=photo, headers=auth(tokens))
    assert stored.status_code == 201, stored.text
    display = client.get(f"/api/v1/blobs/{sha}/display", headers=auth(tokens))
    assert display.status_code == 200
    body["actions"] = batch[2:]
    second = client.post("/api/v1/sync/push", json=body, headers=auth(tokens)).json()
    assert [r["status"] for r in second["results"]] == ["applied", "applied"]
    again = client.post("/api/v1/sync/push", json=body, headers=auth(tokens)).json()
    assert [r["status"] for r in again["results"]] == ["duplicate", "duplicate"]
    after = scrape(client)

    def added(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert added("heatcrew_login_failures_total", code="invalid_credentials") == 2
    actions = "heatcrew_sync_actions_total"
    assert added(actions, type="work_order.accept", status="applied") == 1
    assert added(actions, type="work_order.note", status="applied") == 2
    assert added(actions, type="work_order.note", status="out_of_order") == 1
    assert added(actions, type="evidence.photo", status="waiting") == 1
    assert added(actions, type="evidence.photo", status="applied") == 1
    assert added(actions, type="evidence.photo", status="duplicate") == 1
    assert added(actions, type="work_order.note", status="duplicate") == 1
    # The waiting photo and the note behind it, until the next push moves the queue: by company,
    # read from the devices' rows, and never labelled with a device id.
    assert value(waiting, "heatcrew_sync_waiting_actions", company=COMPANY) == 2
    assert value(waiting, "heatcrew_sync_waiting_devices", company=COMPANY) == 1
    assert value(waiting, "heatcrew_sync_waiting_scrape_ok") == 1
    assert value(after, "heatcrew_sync_waiting_actions", company=COMPANY) == 0
    assert value(after, "heatcrew_sync_waiting_devices", company=COMPANY) == 0
    assert not any("device_id" in dict(labels) or "metrics-phone" in str(labels) for _, labels in waiting)
    assert added("heatcrew_sync_push_batch_actions_count") == 3
    assert added("heatcrew_sync_push_batch_actions_sum") == 4 + 2 + 2
    assert added("heatcrew_sync_push_batch_actions_bucket", le="2.0") == 2
    assert added("heatcrew_sync_pull_changes_count") == 1
    assert added("heatcrew_sync_pull_changes_sum") == len(pulled["changes"])
    assert added("heatcrew_blob_bytes_total", direction="in") == len(photo)
    assert added("heatcrew_blob_bytes_total", direction="out") == len(display.content)

    duration = "http_server_request_duration_seconds"
    push = {
        "http_request_method": "POST",
        "http_route": "/api/v1/sync/push",
        "http_response_status_code": "200",
    }
    assert added(f"{duration}_count", **push) == 3
    login_refused = {**push, "http_route": "/api/v1/auth/login", "http_response_status_code": "401"}
    assert added(f"{duration}_count", **login_refused) == 2
    upload = {
        "http_request_method": "PUT",
        "http_route": "/api/v1/blobs/{sha256}",
        "http_response_status_code": "201",
    }
    assert added(f"{duration}_count", **upload) == 1
    # OpenTelemetry's buckets, in seconds; paths never become labels.
    buckets = sorted(
        float(dict(labels)["le"])
        for name, labels in after
        if name == f"{duration}_bucket"
        and {k: v for k, v in dict(labels).items() if k != "le"} == push  # one series: other tests count too
    )
    assert buckets == [*metrics.HTTP_DURATION_BUCKETS, float("inf")]
    assert not any(sha in str(labels) or order_id in str(labels) for _, labels in after)
    assert value(after, "heatcrew_db_pool_connections_max") > 0
    assert value(after, "heatcrew_db_pool_connections_in_use") >= 0


@pytest.mark.usefixtures("demo")
def test_a_revoked_phone_no_longer_counts_as_waiting(make_client: Callable[..., TestClient]) -> None:
    """Its queue will never move again: the office sees the phones that can still catch up."""
    client = make_client(metrics_token=TOKEN)
    tokens = login(client, "tech1", device_id="lost-phone")
    pulled = client.get("/api/v1/sync/pull", headers=auth(tokens)).json()
    order_id = next(change["id"] for change in pulled["changes"] if change["entity"] == "work_order")
    sha = hashlib.sha256(b"never uploaded").hexdigest()
    batch = [envelope(1, "evidence.photo", {"work_order_id": order_id, "blob": sha, "purpose": "before"})]
    body = {"device_id": "lost-phone", "sent_at": "2026-12-07T00:36:00+00:00", "actions": batch}
    pushed = client.post("/api/v1/sync/push", json=body, headers=auth(tokens)).json()
    assert [r["status"] for r in pushed["results"]] == ["waiting"]
    assert value(scrape(client), "heatcrew_sync_waiting_devices", company=COMPANY) == 1
    revoked = client.post(
        "/api/v1/devices/lost-phone/revoke", json={"reason": "lost"}, headers=auth(login(client, "admin"))
    )
    assert revoked.status_code == 200, revoked.text
    samples = scrape(client)
    assert value(samples, "heatcrew_sync_waiting_devices", company=COMPANY) == 0
    assert value(samples, "heatcrew_sync_waiting_actions", company=COMPANY) == 0


@pytest.mark.usefixtures("demo")
def test_the_metrics_port_serves_the_metrics(client: TestClient) -> None:
    client.get("/health")
    port = free_port()
    server = metrics.serve_on_port("127.0.0.1", port)
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    finally:
        server.shutdown()
        server.server_close()
    assert answer.status_code == 200
    health = {"http_request_method": "GET", "http_route": "/health", "http_response_status_code": "200"}
    assert value(parse(answer.text), "http_server_request_duration_seconds_count", **health) >= 1


def test_several_workers_are_added_up(tmp_path: Path) -> None:
    """``heatcrew serve --workers 2``: whichever worker answered, the scrape counts every request."""
    metrics_port = free_port()
    process, base = start_server(
        tmp_path,
        ["demo"],
        env_extra={
            "HEATCREW_VAR_DIR": str(tmp_path / "var"),
            "HEATCREW_WORKERS": "2",
            "HEATCREW_METRICS_PORT": str(metrics_port),
        },
    )
    try:
        assert httpx.get(f"{base}/metrics").status_code == 404
        for _ in range(12):
            # A new connection each time, so the kernel hands them to either worker.
            answer = httpx.post(
                f"{base}/api/v1/auth/login",
                json={
                    "username": "nobody",
                    "password": "not-the-password",
                    "device": {"id": "probe-phone", "platform": "android", "app_version": "1.0.0"},
                },
            )
            assert answer.status_code in (401, 429)
        samples = parse(httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text)
    finally:
        stop_server(process)
    failures = sum(v for (name, _), v in samples.items() if name == "heatcrew_login_failures_total")
    assert failures == 12
    logins = sum(
        v
        for (name, labels), v in samples.items()
        if name == "http_server_request_duration_seconds_count"
        and dict(labels)["http_route"] == "/api/v1/auth/login"
    )
    assert logins == 12
    # The workers wrote their samples to files (multiprocess mode), one set per process.
    assert list((tmp_path / "var" / "prometheus").glob("counter_*.db"))
    # The process serving the port builds no app: it reads the devices' waiting actions itself.
    assert value(samples, "heatcrew_sync_waiting_scrape_ok") == 1


@pytest.mark.usefixtures("demo")
def test_a_scrape_while_the_database_is_gone_still_answers(make_client: Callable[..., TestClient]) -> None:
    client = make_client(metrics_token=TOKEN)
    ctx = client.app.state.ctx
    metrics.watch_devices("postgresql+psycopg://postgres@127.0.0.1:1/nothing-listens-here", ctx.clock)
    try:
        samples = scrape(client)
    finally:
        metrics.watch_devices(ctx.db.engine.url.render_as_string(hide_password=False), ctx.clock)
    assert value(samples, "heatcrew_sync_waiting_scrape_ok") == 0
    assert not any(name.startswith("heatcrew_sync_waiting_actions") for name, _ in samples)
    assert value(samples, "heatcrew_db_pool_connections_max") > 0  # the rest is there
    assert value(scrape(client), "heatcrew_sync_waiting_scrape_ok") == 1


@pytest.mark.usefixtures("demo")
def test_a_scrape_does_not_wait_for_the_pushes(make_client: Callable[..., TestClient]) -> None:
    """A writer holding the database: on SQLite the scrape reads beside it (it takes no write lock,
    so it never holds a push up either); on PostgreSQL a table locked for good costs the scrape
    its waiting figures after the read's budget, not the scrape itself, and one read at a time."""
    client = make_client(metrics_token=TOKEN)
    engine = client.app.state.ctx.db.engine
    with engine.connect() as writer:
        if engine.dialect.name == "sqlite":
            writer.execute(sa.text("UPDATE sync_device SET waiting_actions = waiting_actions"))
            started = time.monotonic()
            samples = scrape(client)
            assert time.monotonic() - started < 1
            assert value(samples, "heatcrew_sync_waiting_scrape_ok") == 1
            assert value(samples, "heatcrew_sync_waiting_devices", company=COMPANY) == 0
            return
        writer.execute(sa.text("LOCK TABLE sync_device IN ACCESS EXCLUSIVE MODE"))
        started = time.monotonic()
        first = scrape(client)
        waited = time.monotonic() - started
        second = scrape(client)  # the first read still waits: no second one starts
        writer.rollback()
    assert metrics.WaitingCollector.READ_BUDGET_SECONDS <= waited < 4
    assert value(first, "heatcrew_sync_waiting_scrape_ok") == 0
    assert value(second, "heatcrew_sync_waiting_scrape_ok") == 0
    assert value(first, "heatcrew_db_pool_connections_max") > 0  # the rest of the scrape is there
    deadline = time.monotonic() + 10
    while value(scrape(client), "heatcrew_sync_waiting_scrape_ok") != 1:
        assert time.monotonic() < deadline, "the scrape never read the devices again"
    assert value(scrape(client), "heatcrew_sync_waiting_devices", company=COMPANY) == 0


@pytest.mark.usefixtures("demo")
def test_database_connections_in_use_are_counted(make_client: Callable[..., TestClient]) -> None:
    client = make_client(metrics_token=TOKEN)
    engine = client.app.state.ctx.db.engine
    idle = value(scrape(client), "heatcrew_db_pool_connections_in_use")
    with engine.connect(), engine.connect():
        held = value(scrape(client), "heatcrew_db_pool_connections_in_use")
    assert held - idle == 2
    assert value(scrape(client), "heatcrew_db_pool_connections_in_use") == idle
    assert value(scrape(client), "heatcrew_db_pool_connections_max") >= engine.pool.size()
