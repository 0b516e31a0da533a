"""HTTP benchmark: the 08:00 rush of small syncs over real HTTP, beside a bare Litestar app.

    python -m bench.http_bench                                       # SQLite, 1 worker
    python -m bench.http_bench --database-url postgresql+psycopg://postgres@127.0.0.1/bench_http --workers 2

The fleet is seeded as in ``bench/sync_bench.py`` (10,000 orders, 200 technicians with 40 open
orders each), and every phone gets an access token and a first full pull. HeatCrew is started
with ``heatcrew serve --workers N``; the floor, ``bench/bare_app.py``, under uvicorn with the same
workers, at the same time: each phase runs against HeatCrew and right after against the bare app,
so that a figure and its floor are minutes apart at most. A load generator in a separate process
(asyncio, raw HTTP/1.1 keep-alive, one request at a time per phone, as a phone's queue sends them)
then drives, against each server:

- one endpoint at a time in closed loop, for the worker CPU per request: ``/health``, an empty
  delta pull, a push of 5 notes, ``GET /me``;
- the mix, 80 % delta pulls with each phone's own cursor and 20 % pushes of 5 notes: in open
  loop at ``--rate`` requests per second (latency counted from the scheduled time, so queueing
  shows), and in closed loop with ``--concurrency`` phones for saturation;
- on PostgreSQL, the mix at 200 req/s while ``pg_stat_activity`` is sampled for backends waiting
  on a lock.

It prints req/s, p50/p95/p99, worker CPU per request (from ``/proc``), worker RSS, and the ratio
to the bare app. It asserts nothing about time; it does fail when a push is not applied.
"""

import argparse
import asyncio
import dataclasses
import multiprocessing
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import sqlalchemy as sa

from backend.auth.tokens import TokenCodec
from backend.clock import ManualClock
from backend.context import build_context
from backend.db.migrate import upgrade
from backend.settings import Settings
from bench.report import Figure, fresh_postgres
from bench.sync_bench import NOW, analyse, seed

SECRET = "http-bench-signing-key-" + "x" * 24
TICK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ the phones


@dataclass
class PhoneState:
    device_id: str
    token: str
    orders: list[str]
    cursor: str
    seq: int = 0
    busy: asyncio.Lock | None = None


def pull_request(phone: PhoneState) -> bytes:
    return (
        f"GET /api/v1/sync/pull?cursor={phone.cursor} HTTP/1.1\r\nHost: bench\r\n"
        f"Authorization: Bearer {phone.token}\r\n\r\n"
    ).encode()


def push_request(phone: PhoneState, notes: int = 5) -> bytes:
    now = datetime.now(UTC)
    actions = []
    for i in range(notes):
        phone.seq += 1
        actions.append(
            {
                "id": str(uuid.uuid4()),
                "seq": phone.seq,
                "type": "work_order.note",
                "v": 1,
                "occurred_at": (now - timedelta(seconds=notes - i)).isoformat(),
                "payload": {"work_order_id": random.choice(phone.orders), "text": "阀门已检查"},
            }
        )
    body = msgspec.json.encode({"device_id": phone.device_id, "sent_at": now.isoformat(), "actions": actions})
    head = (
        f"POST /api/v1/sync/push HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {phone.token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


def simple_request(path: str, phone: PhoneState) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {phone.token}\r\n\r\n".encode()


# ------------------------------------------------------------------ a minimal HTTP/1.1 client


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def call(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length) if length else b""
        return status, body


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    not_applied: int = 0
    refusals: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0


async def _serve_one(
    conn: Connection, phone: PhoneState, kind: str, outcome: Outcome, scheduled: float
) -> None:
    if kind == "pull":
        request = pull_request(phone)
    elif kind == "push":
        request = push_request(phone)
    else:
        request = simple_request(kind, phone)
    status, body = await conn.call(request)
    outcome.latencies.append(time.perf_counter() - scheduled)
    outcome.statuses[status] = outcome.statuses.get(status, 0) + 1
    if status != 200:
        return
    if kind == "pull":
        phone.cursor = msgspec.json.decode(body)["cursor"]
    elif kind == "push":
        results = msgspec.json.decode(body)["results"]
        for r in results:
            if r["status"] != "applied":
                outcome.not_applied += 1
                outcome.refusals[f"{r['status']}/{r.get('code')}"] = (
                    outcome.refusals.get(f"{r['status']}/{r.get('code')}", 0) + 1
                )


def _kind(mix: str, rng: random.Random) -> str:
    if mix == "mix":
        return "pull" if rng.random() < 0.8 else "push"
    return mix


async def _drive(
    port: int,
    phones: list[PhoneState],
    mix: str,
    *,
    rate: float | None,
    concurrency: int,
    duration: float,
    requests: int | None = None,
) -> Outcome:
    """Open loop (``rate``) or closed loop (``concurrency`` at once) for ``duration`` seconds
    (closed loop: or until ``requests`` were answered)."""
    for phone in phones:
        phone.busy = asyncio.Lock()
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    opened = 0
    limit = 512 if rate else concurrency

    async def connection() -> Connection:
        nonlocal opened
        if pool.empty() and opened < limit:
            opened += 1
            return Connection(*await asyncio.open_connection("127.0.0.1", port))
        return await pool.get()

    outcome = Outcome()
    rng = random.Random(7)
    started = time.perf_counter()
    deadline = started + duration

    async def one(phone: PhoneState, kind: str, scheduled: float) -> None:
        assert phone.busy is not None
        async with phone.busy:  # a phone sends one request at a time, in order
            conn = await connection()
            try:
                await _serve_one(conn, phone, kind, outcome, scheduled)
            finally:
                pool.put_nowait(conn)

    if rate:
        tasks = []
        interval = 1.0 / rate
        i = 0
        while True:
            scheduled = started + i * interval
            if scheduled >= deadline:
                break
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            phone = phones[i % len(phones)]
            tasks.append(asyncio.create_task(one(phone, _kind(mix, rng), scheduled)))
            i += 1
        await asyncio.gather(*tasks)
    else:
        sent = 0

        async def loop(k: int) -> None:
            nonlocal sent
            n = 0
            while time.perf_counter() < deadline and (requests is None or sent < requests):
                phone = phones[(k + n * concurrency) % len(phones)]
                n += 1
                sent += 1
                await one(phone, _kind(mix, rng), time.perf_counter())

        await asyncio.gather(*(loop(k) for k in range(concurrency)))
    outcome.elapsed = time.perf_counter() - started
    return outcome


def _generator(port: int, phones: list[PhoneState], plan: dict[str, Any], answers: Any) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    outcome = asyncio.run(_drive(port, phones, **plan))
    for phone in phones:
        phone.busy = None
    answers.put((outcome, phones))


def run_load(port: int, phones: list[PhoneState], **plan: Any) -> tuple[Outcome, list[PhoneState]]:
    """The load generator in its own process, so that it does not share the servers' interpreter."""
    context = multiprocessing.get_context("fork")
    answers = context.Queue()
    process = context.Process(target=_generator, args=(port, phones, plan, answers))
    process.start()
    outcome, phones_after = answers.get()
    process.join()
    return outcome, phones_after


# ------------------------------------------------------------------ servers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    def __init__(self, name: str, command: list[str], env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.port = free_port()
        log = (workdir / f"{name}.log").open("w")
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port)], env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"{name} did not start; see {workdir / (name + '.log')}") from None
                time.sleep(0.2)

    def pids(self) -> list[int]:
        """The server's process and every worker it started."""
        found = [self.process.pid]
        for pid in found:
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            found += [int(c) for c in children]
        return found

    def cpu_seconds(self) -> float:
        """CPU of the server and its workers, including workers that ended (uvicorn replaces one
        that misses its health check): their time is in the server's cutime and cstime once it
        has reaped them, so the total never goes backwards."""
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime + stime
            if pid == self.process.pid:
                total += int(fields[13]) + int(fields[14])  # cutime + cstime: reaped workers
        return total / TICK

    def worker_rss_mib(self) -> float:
        sizes = []
        for pid in self.pids()[1:] or self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        sizes.append(int(line.split()[1]) / 1024)
            except OSError:
                continue
        return max(sizes) if sizes else 0.0

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


# ------------------------------------------------------------------ the run


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass
class Row:
    label: str
    rps: float
    p50: float
    p95: float
    p99: float
    cpu_ms: float
    rss: float
    note: str = ""


def measure(
    server: Server, phones: list[PhoneState], label: str, **plan: Any
) -> tuple[Row, list[PhoneState]]:
    before, workers = server.cpu_seconds(), set(server.pids())
    outcome, phones = run_load(server.port, phones, **plan)
    cpu = server.cpu_seconds() - before
    replaced = len(workers - set(server.pids()))
    done = len(outcome.latencies)
    bad = {s: n for s, n in outcome.statuses.items() if s != 200}
    note = f"non-200: {bad}" if bad else ""
    if outcome.not_applied:
        note += f" {outcome.not_applied} actions not applied {outcome.refusals}"
    if replaced:
        note += f" {replaced} worker(s) replaced meanwhile"
    row = Row(
        label,
        done / outcome.elapsed,
        statistics.median(outcome.latencies) * 1000 if done else float("nan"),
        percentile(outcome.latencies, 0.95) * 1000,
        percentile(outcome.latencies, 0.99) * 1000,
        cpu / max(done, 1) * 1000,
        server.worker_rss_mib(),
        note.strip(),
    )
    return row, phones


def lock_waits(url: str, stop: threading.Event, samples: list[tuple[int, int]]) -> None:
    """Sample the bench database's client backends in a transaction (active, or idle in one as a
    push is between statements): how many, and how many of them wait on a lock.

    Each sample is its own transaction (autocommit). PostgreSQL takes one snapshot of
    ``pg_stat_activity`` per transaction and hands it back until the transaction ends; sampled
    inside one long transaction, as this did before, every sample repeated the first, taken
    before the load began with every backend idle, and the run recorded 0 samples.
    """
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    database = sa.engine.make_url(url).database
    query = sa.text(
        "SELECT count(*) FILTER (WHERE state <> 'idle'), "
        "count(*) FILTER (WHERE state <> 'idle' AND wait_event_type = 'Lock') "
        "FROM pg_stat_activity WHERE datname = :db AND backend_type = 'client backend' "
        "AND pid <> pg_backend_pid()"
    )
    with engine.connect() as conn:
        while not stop.is_set():
            active, waiting = conn.execute(query, {"db": database}).one()
            samples.append((active, waiting))
            time.sleep(0.02)
    engine.dispose()


def prepare(url: str, orders: int, techs: int, workdir: Path) -> list[PhoneState]:
    from backend.sync.pull import pull

    ctx = build_context(
        Settings(var_dir=workdir, database_url=url, secret_key=SECRET), clock=ManualClock(NOW)
    )
    upgrade(ctx.db.engine)
    principals, assigned = seed(ctx, orders, techs)
    analyse(ctx.db.engine)
    codec = TokenCodec(SECRET, 3 * 3600)
    phones = []
    for p in principals:
        token = codec.issue(
            user_id=p.user_id, session_id=p.session_id, device_id=p.device_id, now=datetime.now(UTC)
        )
        cursor = pull(ctx, principal=p, cursor=None).cursor
        phones.append(PhoneState(p.device_id, token, [str(o) for o in assigned[p.user_id]], cursor))
    ctx.db.dispose()
    return phones


def figures(*, quick: bool = False, database_url: str | None = None) -> list[Figure]:
    """For ``python -m bench``: the full run, or 1,000 orders, 20 phones and short phases when quick."""
    sizes = ["--orders", "1000", "--techs", "20", "--rate", "150", "--duration", "3", "--phase", "1"]
    return main([*(sizes if quick else []), *(["--database-url", database_url] if database_url else [])])


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (its database is recreated)")
    parser.add_argument("--workers", type=int, default=None, help="default: 2 on PostgreSQL, 1 on SQLite")
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--techs", type=int, default=200)
    parser.add_argument("--rate", type=float, default=1000, help="open-loop requests per second")
    parser.add_argument("--concurrency", type=int, default=50, help="closed-loop phones at once")
    parser.add_argument("--duration", type=float, default=15, help="seconds per mix phase")
    parser.add_argument("--phase", type=float, default=3, help="seconds per single-endpoint phase")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="heatcrew-http-bench-"))
    url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    postgres = url.startswith("postgresql")
    workers = args.workers or (2 if postgres else 1)
    if postgres:
        fresh_postgres(url)
    phones = prepare(url, args.orders, args.techs, workdir)
    print(
        f"database: {url.split(':')[0]}   workers: {workers}   orders: {args.orders:,}   phones: {len(phones)}"
    )

    env = {k: v for k, v in os.environ.items() if not k.startswith("HEATCREW_")}
    env.update(
        {
            "HEATCREW_DATABASE_URL": url,
            "HEATCREW_VAR_DIR": str(workdir / "var"),
            "HEATCREW_SECRET_KEY": SECRET,
            "HEATCREW_ACCESS_TOKEN_TTL": str(3 * 3600),
            "HEATCREW_LOG_LEVEL": "warning",
            "HEATCREW_DOCS_ENABLED": "false",
        }
    )
    heatcrew = [sys.executable, "-m", "backend.cli", "serve", "--workers", str(workers)]
    bare = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.bare_app:app",
        "--app-dir",
        str(Path(__file__).resolve().parents[1]),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
    ]
    rows: dict[str, list[Row]] = {"heatcrew": [], "bare": []}
    lock_share: tuple[float, int, int, int, int] | None = None
    # Both servers run side by side, and each phase is measured on one right after the other: the
    # floor is taken in the same minute as the figure (this machine's speed drifts by the minute).
    # Each server has its own phones (a push the bare app answers moves no HeatCrew counter).
    servers = {}
    try:
        for name, command in (("heatcrew", heatcrew), ("bare", bare)):
            servers[name] = Server(name, command, env, workdir)
        fleet = {name: [dataclasses.replace(p) for p in phones] for name in servers}

        def phase(label: str, **plan: Any) -> None:
            for name, server in servers.items():
                row, fleet[name] = measure(server, fleet[name], label, **plan)
                rows[name].append(row)

        for name, server in servers.items():
            _, fleet[name] = measure(
                server,
                fleet[name],
                "warm-up",
                mix="mix",
                rate=None,
                concurrency=8,
                duration=min(2, args.phase),
            )
        phase("/health", mix="/health", rate=None, concurrency=4, duration=args.phase)
        for name, server in servers.items():  # every phone's cursor at the head: nothing new
            fleet[name] = refresh_cursors(server, fleet[name])
        phase("empty delta pull", mix="pull", rate=None, concurrency=4, duration=args.phase)
        phase("push 5 notes", mix="push", rate=None, concurrency=4, duration=args.phase)
        phase("GET /me", mix="/api/v1/me", rate=None, concurrency=4, duration=args.phase)
        phase(
            f"mix open loop {args.rate:g}/s", mix="mix", rate=args.rate, concurrency=0, duration=args.duration
        )
        phase(
            f"mix closed loop x{args.concurrency}",
            mix="mix",
            rate=None,
            concurrency=args.concurrency,
            duration=args.duration,
        )
        if postgres:
            samples: list[tuple[int, int]] = []
            stop = threading.Event()
            sampler = threading.Thread(target=lock_waits, args=(url, stop, samples))
            sampler.start()
            row, fleet["heatcrew"] = measure(
                servers["heatcrew"],
                fleet["heatcrew"],
                "mix open loop 200/s",
                mix="mix",
                rate=200,
                concurrency=0,
                duration=args.duration,
            )
            stop.set()
            sampler.join()
            active = sum(a for a, _ in samples)
            waiting = sum(w for _, w in samples)
            busy = sum(1 for a, _ in samples if a)
            share = 100 * waiting / active if active else float("nan")
            lock_share = (share, len(samples), busy, active, waiting)
            row.note = (
                row.note + f" lock waits: {waiting} of {active} sampled connections in a transaction"
                f" ({share:.1f} %; {len(samples)} samples, {busy} with any)"
            ).strip()
            rows["heatcrew"].append(row)
    finally:
        for server in servers.values():
            server.stop()
    print_table(rows)
    return as_figures(rows, lock_share, args.rate)


def as_figures(
    rows: dict[str, list[Row]], lock_share: tuple[float, int, int, int, int] | None, rate: float
) -> list[Figure]:
    """HeatCrew's rows, each beside the bare app's same row (its floor)."""
    bare = {r.label: r for r in rows.get("bare", [])}
    heat = {r.label: r for r in rows.get("heatcrew", [])}
    found = []
    for label, row in heat.items():
        floor = bare.get(label)
        found.append(
            Figure(
                "http",
                f"{label}: worker CPU per request",
                row.cpu_ms,
                "ms",
                floor.cpu_ms if floor else None,
                "bare Litestar",
                note=row.note if not label.endswith("200/s") else row.note.split("lock waits:")[0].strip(),
            )
        )
        if label.startswith("mix"):
            found.append(
                Figure("http", f"{label}: p99", row.p99, "ms", floor.p99 if floor else None, "bare Litestar")
            )
            found.append(
                Figure(
                    "http",
                    f"{label}: answered",
                    row.rps,
                    "req/s",
                    floor.rps if floor else None,
                    "bare Litestar",
                )
            )
    if "/health" in heat and "empty delta pull" in heat:
        found.append(
            Figure(
                "http",
                "empty delta pull: worker CPU per request",
                heat["empty delta pull"].cpu_ms,
                "ms",
                heat["/health"].cpu_ms,
                "HeatCrew /health",
                "<= 4x /health",
            )
        )
    if lock_share is not None:
        share, samples, busy, active, waiting = lock_share
        found.append(
            Figure(
                "http",
                "connections waiting on a lock, mix at 200 req/s",
                share,
                "%",
                target="< 10 %",
                note=f"{waiting} of {active} in {samples} samples ({busy} with a transaction)",
            )
        )
    return found


def refresh_cursors(server: Server, phones: list[PhoneState]) -> list[PhoneState]:
    """One pull per phone so that every cursor is at the head (a fast closed-loop pass)."""
    _, phones = run_load(
        server.port, phones, mix="pull", rate=None, concurrency=8, duration=60, requests=len(phones)
    )
    return phones


def print_table(rows: dict[str, list[Row]]) -> None:
    bare = {r.label: r for r in rows.get("bare", [])}
    print()
    print(
        f"{'':28} {'server':9} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'CPU ms/req':>10} "
        f"{'RSS MiB':>8}  vs bare"
    )
    for name in ("heatcrew", "bare"):
        for r in rows.get(name, []):
            floor = bare.get(r.label)
            ratio = (
                f"{r.cpu_ms / floor.cpu_ms:5.1f}x CPU"
                if name == "heatcrew" and floor and floor.cpu_ms
                else ""
            )
            print(
                f"{r.label:28} {name:9} {r.rps:8.0f} {r.p50:8.1f} {r.p95:8.1f} {r.p99:8.1f} {r.cpu_ms:10.2f} "
                f"{r.rss:8.0f}  {ratio} {r.note}"
            )
    heat = {r.label: r for r in rows.get("heatcrew", [])}
    if "/health" in heat and "empty delta pull" in heat and heat["/health"].cpu_ms:
        print(
            f"\nempty delta pull / /health worker CPU: {heat['empty delta pull'].cpu_ms / heat['/health'].cpu_ms:.1f}x "
            "(target <= 4x)"
        )


if __name__ == "__main__":
    main()
