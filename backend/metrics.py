"""Prometheus metrics: what they are, how they are recorded, and how they are scraped.

With several workers (``heatcrew serve --workers N``) every worker writes its samples to files
in ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode, which ``heatcrew serve``
switches on before the workers start), and a scrape adds them up, whichever process answers it.
With one worker they live in the process.

``/metrics`` is never public: it answers on its own port (``HEATCREW_METRICS_PORT``), or on the
API port to a bearer token (``HEATCREW_METRICS_TOKEN``); without the token the API port has no
such route (``404``), a wrong or missing token answers ``401``.

Recording costs a few microseconds per request and per push (a dictionary update, or a write to
a memory-mapped file in multiprocess mode): ``bench/sync_bench.py`` shows it beside the push.
"""

import hmac
import logging
import os
import threading
from collections import Counter as Tally
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from litestar import Controller, Request, get
from litestar.response import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlmodel import col

from backend.auth.models import Device, User
from backend.clock import Clock, SystemClock
from backend.db.engine import make_engine
from backend.errors import AuthError
from backend.org.models import Company
from backend.sync.models import SyncDevice
from mobile_contract.sync import PullResponse, PushRequest, PushResponse

__all__ = (
    "HTTP_DURATION_BUCKETS",
    "MULTIPROC_ENV",
    "MetricsController",
    "instrument_pool",
    "mark_worker_gone",
    "observe_login_failure",
    "observe_pull",
    "observe_push",
    "observe_request",
    "prepare_multiprocess",
    "scrape",
    "serve_on_port",
    "watch_devices",
)

log = logging.getLogger("heatcrew.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# OpenTelemetry's advice for http.server.request.duration (seconds).
HTTP_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
PUSH_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500)
PULL_CHANGE_BUCKETS = (0, 1, 10, 50, 100, 250, 500, 1000, 2500, 5000)
UNMATCHED_ROUTE = "unmatched"
"""The route label of a request no route took (404s): paths never become label values."""

HTTP_DURATION = Histogram(
    "http_server_request_duration_seconds",
    "Duration of HTTP requests, by method, route template and status.",
    ["http_request_method", "http_route", "http_response_status_code"],
    buckets=HTTP_DURATION_BUCKETS,
)
SYNC_ACTIONS = Counter(
    "heatcrew_sync_actions",
    "Pushed actions by type and by the status answered (applied, duplicate, rejected, ...).",
    ["type", "status"],
)
PUSH_BATCH = Histogram("heatcrew_sync_push_batch_actions", "Actions per push.", buckets=PUSH_BATCH_BUCKETS)
PULL_CHANGES = Histogram(
    "heatcrew_sync_pull_changes", "Changes answered per pull.", buckets=PULL_CHANGE_BUCKETS
)
BLOB_BYTES = Counter(
    "heatcrew_blob_bytes", "Bytes of files received (uploads) and sent (downloads).", ["direction"]
)
LOGIN_FAILURES = Counter("heatcrew_login_failures", "Refused logins, by error code.", ["code"])
POOL_IN_USE = Gauge(
    "heatcrew_db_pool_connections_in_use",
    "Database connections checked out of the pools right now (all workers).",
    multiprocess_mode="livesum",
)
POOL_CAPACITY = Gauge(
    "heatcrew_db_pool_connections_max",
    "Connections the pools may open, overflow included (all workers).",
    multiprocess_mode="livesum",
)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_DURATION.labels(method, route, str(status)).observe(seconds)


def observe_push(request: PushRequest, response: PushResponse) -> None:
    """One push: its size and each answer by type and status. How much of the phones' queues waits
    for uploads is read from the database at each scrape (:class:`WaitingCollector`)."""
    PUSH_BATCH.observe(len(request.actions))
    types = {envelope.seq: envelope.type for envelope in request.actions}
    results = response.results
    # Comprehensions and C-level counting: this runs on every push, after the commit.
    # ``_value_`` (enum's documented member value) is the plain string, whose hash is C-level;
    # the member's own hash is Python code.
    statuses = [result.status._value_ for result in results]
    tally = Tally(zip(map(types.get, [result.seq for result in results]), statuses, strict=True))
    for (action_type, status), count in tally.items():
        SYNC_ACTIONS.labels(action_type or "unknown", status).inc(count)


def observe_pull(response: PullResponse) -> None:
    PULL_CHANGES.observe(len(response.changes))


def observe_login_failure(code: str) -> None:
    LOGIN_FAILURES.labels(code).inc()


def observe_blob_bytes(direction: str, count: int) -> None:
    if count:
        BLOB_BYTES.labels(direction).inc(count)


def instrument_pool(engine: sa.Engine) -> None:
    """Count the engine's connections in use as they are checked out and back in."""
    pool = engine.pool
    if isinstance(pool, sa.pool.QueuePool):
        # QueuePool has no public getter for its overflow limit.
        POOL_CAPACITY.inc(pool.size() + max(pool._max_overflow, 0))
    sa.event.listen(pool, "checkout", lambda *_: POOL_IN_USE.inc())
    sa.event.listen(pool, "checkin", lambda *_: POOL_IN_USE.dec())


# --- scraping -----------------------------------------------------------------------------------


class WaitingCollector:
    """Phones' queues held up by uploads, by company, read from the devices' counter rows
    (``sync_device.waiting_actions``, written by every push with its counter) when scraped.

    Right with any number of workers and of devices: one series per company, never one per device
    (a device id is the phone's own string, and there may be thousands). Every worker and replica
    reads the same rows, so aggregate with ``max by (company)``, never ``sum``.

    The read must not take the metrics down with the database: it runs on an engine of its own
    (one connection, short timeouts, a reader on SQLite), in a thread of its own, one read at a
    time; a scrape waits for it at most ``READ_BUDGET_SECONDS``. A read that failed or did not
    answer in time leaves the two gauges out and says so in ``heatcrew_sync_waiting_scrape_ok``."""

    READ_BUDGET_SECONDS = 2.0

    def __init__(self) -> None:
        self.engine: sa.Engine | None = None
        self.clock: Clock = SystemClock()
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="heatcrew-metrics")
        self._lock = threading.Lock()
        self._reading: Future[list[Any]] | None = None

    def watch(self, url: str, clock: Clock) -> None:
        engine = make_engine(
            url, connect_timeout=2, statement_timeout=2, pool_timeout=1, pool_size=1, max_overflow=0
        ).execution_options(readonly=True)
        old, self.engine, self.clock = self.engine, engine, clock
        if old is not None:
            old.dispose()

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        engine = self.engine
        if engine is None:
            return
        with self._lock:
            if self._reading is None or self._reading.done():
                since = self.clock.now() - QUIET_AFTER
                self._reading = self._reader.submit(_read_waiting, engine, since)
            reading = self._reading
        try:
            rows = reading.result(timeout=self.READ_BUDGET_SECONDS)
        except Exception as exc:  # the database's trouble, or no answer in time: never the scrape's
            log.warning("metrics: the devices' waiting actions could not be read (%s)", type(exc).__name__)
            yield GaugeMetricFamily("heatcrew_sync_waiting_scrape_ok", _SCRAPE_OK_HELP, value=0)
            return
        devices, actions, ok = self._families()
        for company, count, waiting in rows:
            devices.add_metric([company], count)
            actions.add_metric([company], waiting)
        ok.add_metric([], 1)
        yield from (devices, actions, ok)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "heatcrew_sync_waiting_devices",
                "Devices whose last push stopped at an action waiting for its upload (blob_missing).",
                labels=["company"],
            ),
            GaugeMetricFamily(
                "heatcrew_sync_waiting_actions",
                "Actions those pushes left waiting for an upload, with those queued behind them.",
                labels=["company"],
            ),
            GaugeMetricFamily("heatcrew_sync_waiting_scrape_ok", _SCRAPE_OK_HELP),
        )


QUIET_AFTER = timedelta(days=14)
"""A device that has not pushed for this long (as long as phones keep answered actions) no longer
counts: it was replaced or lost, and its queue will not move."""
_SCRAPE_OK_HELP = "1 when the devices' waiting actions were read at this scrape, 0 when that failed."
_DEVICES = SyncDevice.__table__
# Every company, 0 where nothing waits; a revoked device or a disabled user's never pushes again.
_WAITING = (
    sa.select(User.company_id, _DEVICES.c.waiting_actions)
    .select_from(_DEVICES)
    .join(Device, col(Device.id) == _DEVICES.c.device_id)
    .join(User, col(User.id) == Device.user_id)
    .where(
        _DEVICES.c.waiting_actions > 0,
        _DEVICES.c.updated_at >= sa.bindparam("since"),
        col(Device.revoked_at).is_(None),
        col(User.is_active),
    )
    .subquery()
)
_WAITING_BY_COMPANY = (
    sa.select(
        Company.code,
        sa.func.count(_WAITING.c.waiting_actions),
        sa.func.coalesce(sa.func.sum(_WAITING.c.waiting_actions), 0),
    )
    .select_from(Company)
    .outerjoin(_WAITING, _WAITING.c.company_id == Company.id)
    .group_by(Company.code)
    .order_by(Company.code)
)


def _read_waiting(engine: sa.Engine, since: datetime) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(_WAITING_BY_COMPANY, {"since": since}).all())


WAITING = WaitingCollector()
REGISTRY.register(WAITING)


def watch_devices(url: str, clock: Clock) -> None:
    """Scrapes read the devices' waiting actions from this database, by this clock."""
    WAITING.watch(url, clock)


def _registry() -> Any:
    """Every worker's samples in multiprocess mode; this process's otherwise. The waiting actions
    come from the database either way."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(WAITING)
        return registry
    return REGISTRY


def scrape() -> bytes:
    return generate_latest(_registry())


def prepare_multiprocess(var_dir: Path) -> Path:
    """Before several workers start: their shared metrics directory, emptied of a previous run's
    files (whose counters would otherwise be added to this run's)."""
    directory = Path(os.environ.get(MULTIPROC_ENV) or var_dir / "prometheus")
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory


def mark_worker_gone() -> None:
    """At a worker's shutdown: its live gauges (connections in use) stop counting."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(os.getpid())


def serve_on_port(host: str, port: int) -> Any:
    """The separate metrics listener (a thread): every path answers the metrics."""
    server, _thread = start_http_server(port, addr=host, registry=_registry())
    return server


class MetricsController(Controller):
    """``GET /metrics`` on the API port, registered only when a token is configured."""

    # In a thread: a scrape reads the database (``WaitingCollector``).
    @get("/metrics", opt={"exclude_from_auth": True}, include_in_schema=False, sync_to_thread=True)
    def metrics(self, request: Request) -> Response[bytes]:
        expected = request.app.state.ctx.settings.metrics_token
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
            raise AuthError("Send the metrics token: 'Authorization: Bearer <token>'.", code="invalid_token")
        return Response(scrape(), media_type=CONTENT_TYPE_LATEST)
