"""The live channel: how soon a push reaches the phones listening on ``GET /api/v1/sync/events``.

    python -m bench.poke_bench --database-url postgresql+psycopg://postgres@127.0.0.1/bench_poke

The demo company is seeded; ``--phones`` devices of one technician (tech1) get an access token
and open an event stream each against ``heatcrew serve --workers 2`` (so the streams are spread
over both workers and the notice must cross from the worker that took the push to the other).
Another device of the same technician then pushes a note on one of tech1's orders, ``--rounds``
times. For every stream it prints the time from the push's answer (and from sending it) to the
``head`` event, p50/p95/p99, and the workers' memory per open stream. Beside it, the floor: a bare
LISTEN/NOTIFY round trip with psycopg on the same server (NOTIFY committed → listener has it).
It asserts only that every stream heard every push.
"""

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import psycopg
import sqlalchemy as sa
from sqlmodel import select

from backend.auth.models import AuthSession, Device, User
from backend.auth.tokens import TokenCodec
from backend.context import build_context
from backend.db.migrate import upgrade
from backend.demo import seed_demo
from backend.ids import new_id
from backend.settings import Settings
from backend.work_orders.models import WorkOrder
from bench.http_bench import SECRET, Server, fresh_postgres, percentile
from bench.report import Figure

TTL = 3 * 3600


def prepare(url: str, phones: int, workdir: Path) -> tuple[list[tuple[str, str]], str, list[str]]:
    """``phones`` listening devices and one pushing device of tech1: (device, token) pairs."""
    ctx = build_context(Settings(var_dir=workdir, database_url=url, secret_key=SECRET))
    upgrade(ctx.db.engine)
    now = datetime.now(UTC)
    codec = TokenCodec(SECRET, TTL)
    devices = []
    with ctx.db.session() as session:
        seed_demo(ctx, session)
        tech = session.exec(select(User).where(User.username == "tech1")).one()
        orders = [str(o) for o in session.exec(select(WorkOrder.id).where(WorkOrder.assignee_id == tech.id))]
        for i in range(phones + 1):
            device_id = f"poke-device-{i:05d}"
            session.add(
                Device(
                    id=device_id,
                    user_id=tech.id,
                    platform="android",
                    app_version="1",
                    registered_at=now,
                    last_seen_at=now,
                )
            )
            session.flush()
            session_id = new_id()
            session.add(AuthSession(id=session_id, user_id=tech.id, device_id=device_id, created_at=now))
            token = codec.issue(user_id=tech.id, session_id=session_id, device_id=device_id, now=now)
            devices.append((device_id, token))
    ctx.db.dispose()
    listeners, (pusher, pusher_token) = devices[:-1], devices[-1]
    return listeners, f"{pusher}\n{pusher_token}", orders


class Stream:
    def __init__(self) -> None:
        self.heads: list[float] = []
        self.woke = asyncio.Event()
        self.ready = asyncio.Event()


async def open_stream(port: int, token: str, stream: Stream) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    writer.write(
        (
            f"GET /api/v1/sync/events HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
            "Accept: text/event-stream\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    status = await reader.readline()
    if b" 200 " not in status:
        raise RuntimeError(f"stream refused: {status!r}")
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    while True:
        line = await reader.readline()
        if not line:
            return
        if line.startswith(b"event: head"):
            at = time.perf_counter()
            if not stream.ready.is_set():
                stream.ready.set()
            else:
                stream.heads.append(at)
                stream.woke.set()


async def push_note(port: int, device: str, token: str, order: str, seq: int) -> tuple[float, float]:
    now = datetime.now(UTC)
    body = msgspec.json.encode(
        {
            "device_id": device,
            "sent_at": now.isoformat(),
            "actions": [
                {
                    "id": str(uuid.uuid4()),
                    "seq": seq,
                    "type": "work_order.note",
                    "v": 1,
                    "occurred_at": (now - timedelta(seconds=1)).isoformat(),
                    "payload": {"work_order_id": order, "text": "阀门已检查"},
                }
            ],
        }
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sent = time.perf_counter()
    writer.write(
        (
            f"POST /api/v1/sync/push HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        + body
    )
    await writer.drain()
    status = await reader.readline()
    answered = time.perf_counter()
    await reader.read()
    writer.close()
    if b" 200 " not in status:
        raise RuntimeError(f"push failed: {status!r}")
    return sent, answered


async def drive(
    port: int, listeners: list[tuple[str, str]], pusher: str, orders: list[str], rounds: int, server: Server
):
    device, token = pusher.split("\n")
    streams = [Stream() for _ in listeners]
    tasks = []
    half = len(streams) // 2
    rss = []
    # Memory per stream is the growth from the first half to all of them: the first streams also
    # start threads and pooled connections a worker keeps anyway.
    for part in (slice(0, half), slice(half, None)):
        for (_, t), stream in zip(listeners[part], streams[part], strict=True):
            tasks.append(asyncio.create_task(open_stream(port, t, stream)))
            if len(tasks) % 50 == 0:
                await asyncio.sleep(0.05)
        await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in streams[part])), 60)
        await asyncio.sleep(1.0)
        rss.append(server_rss(server))
    per_stream = (rss[1] - rss[0]) / max(1, len(streams) - half)
    from_answer: list[float] = []
    from_send: list[float] = []
    for i in range(rounds):
        for s in streams:
            s.woke.clear()
            s.heads.clear()
        sent, answered = await push_note(port, device, token, orders[i % len(orders)], i + 1)
        await asyncio.wait_for(asyncio.gather(*(s.woke.wait() for s in streams)), 10)
        for s in streams:
            from_answer.append(s.heads[0] - answered)
            from_send.append(s.heads[0] - sent)
        await asyncio.sleep(0.2)
    for task in tasks:
        task.cancel()
    return from_answer, from_send, per_stream


def server_rss(server: Server) -> float:
    total = 0.0
    for pid in server.pids()[1:]:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total  # KiB over the workers


def floor(url: str, rounds: int) -> list[float]:
    """NOTIFY sent (and committed) on one connection → received on another, with psycopg."""
    conninfo = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    out = []
    with (
        psycopg.connect(conninfo, autocommit=True) as listener,
        psycopg.connect(conninfo, autocommit=True) as sender,
    ):
        listener.execute("LISTEN bench_floor")
        for _ in range(rounds):
            started = time.perf_counter()
            sender.execute("NOTIFY bench_floor, 'x'")  # autocommit: sent, committed, delivered
            for _notice in listener.notifies(timeout=5, stop_after=1):
                out.append(time.perf_counter() - started)
    return out


def show(label: str, values: list[float]) -> None:
    ms = [v * 1000 for v in values]
    print(
        f"{label:<38} n={len(ms):>6}  p50 {statistics.median(ms):7.2f} ms  p95 {percentile(ms, 0.95):7.2f} ms  "
        f"p99 {percentile(ms, 0.99):7.2f} ms"
    )


def figures(*, quick: bool = False, database_url: str | None = None) -> list[Figure]:
    """For ``python -m bench`` (PostgreSQL only): 200 streams and 20 pushes, or 20 and 5 when quick."""
    if not database_url:
        return []
    sizes = ["--phones", "20", "--rounds", "5"] if quick else []
    return main([*sizes, "--database-url", database_url])


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True, help="PostgreSQL URL (its database is recreated)")
    parser.add_argument("--phones", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="heatcrew-poke-bench-"))
    fresh_postgres(args.database_url)
    listeners, pusher, orders = prepare(args.database_url, args.phones, workdir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEATCREW_")}
    env.update(
        {
            "HEATCREW_DATABASE_URL": args.database_url,
            "HEATCREW_VAR_DIR": str(workdir / "var"),
            "HEATCREW_SECRET_KEY": SECRET,
            "HEATCREW_ACCESS_TOKEN_TTL": str(TTL),
            "HEATCREW_LOG_LEVEL": "warning",
            "HEATCREW_DOCS_ENABLED": "false",
        }
    )
    command = [sys.executable, "-m", "backend.cli", "serve", "--workers", str(args.workers)]
    server = Server("heatcrew", command, env, workdir)
    try:
        from_answer, from_send, per_stream = asyncio.run(
            drive(server.port, listeners, pusher, orders, args.rounds, server)
        )
    finally:
        server.stop()
    print(f"phones: {args.phones}   workers: {args.workers}   pushes: {args.rounds}   (PostgreSQL)")
    show("push answered -> phone's head event", from_answer)
    show("push sent -> phone's head event", from_send)
    bare = floor(args.database_url, 200)
    show("floor: NOTIFY sent -> LISTEN has it", bare)
    print(f"worker memory per open stream: {per_stream:.1f} KiB")
    notify = statistics.median(bare) * 1000
    return [
        Figure(
            "poke",
            "push sent -> head event, p50",
            statistics.median(from_send) * 1000,
            "ms",
            notify,
            "bare NOTIFY",
        ),
        Figure(
            "poke",
            "push sent -> head event, p99",
            percentile(from_send, 0.99) * 1000,
            "ms",
            notify,
            "bare NOTIFY",
        ),
        Figure("poke", "memory per open stream", per_stream, "KiB"),
    ]


if __name__ == "__main__":
    main()
