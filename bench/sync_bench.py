"""Sync benchmark: push throughput, replay throughput, day-pack and empty-delta pull latency.

    python -m bench.sync_bench --orders 10000            # embedded SQLite in a temp dir
    python -m bench.sync_bench --orders 1000000 --database-url postgresql+psycopg://postgres@127.0.0.1/bench

Measures server time (the service functions the HTTP handlers call, no network), prints figures
and never passes or fails on them. The fleet: technicians with 40 open orders each; the push
batches are 200 mixed actions a technician takes on their orders in a day, photos included (their
uploads are seeded); the rest of the orders are past winters' closed ones, up to 50,000 of them
with their two photos. The tables are analysed after seeding, as a restored or bulk-loaded database
would be before it serves.

The technicians are split into equal groups with the same kind of day: the first pushes one batch
after another through one worker; each next group pushes at once through more worker processes
(``--workers``, default 2 and 4), as a deployment on PostgreSQL runs them, all in one company, so
the rows show whether one company's pushes scale with workers. Every push is timed in the process
that runs it; throughput is actions applied over the wall time of the run.
"""

import argparse
import gc
import hashlib
import multiprocessing
import os
import queue
import resource
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from argon2 import PasswordHasher

from backend.auth.models import AuthSession, Device, Role, User
from backend.auth.principal import Principal
from backend.clock import ManualClock
from backend.context import build_context
from backend.db.migrate import upgrade
from backend.evidence.models import Blob, BlobUploader, Photo
from backend.ids import new_id
from backend.org.models import Building, Company, Household
from backend.settings import Settings
from backend.sync import changes
from backend.sync.pull import pull
from backend.sync.push import push
from backend.work_orders.models import SlaClock, WorkOrder
from bench.report import Figure, fresh_postgres
from mobile_contract.sync import ActionEnvelope, PushRequest

NOW = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
ORDERS_PER_TECH = 40
HISTORY_WITH_PHOTOS = 50_000  # closed orders with their two photos


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def seed(ctx, orders: int, techs: int) -> tuple[list[Principal], dict[uuid.UUID, list[uuid.UUID]]]:
    """Bulk-insert a company with ``orders`` work orders; ``techs`` technicians hold 40 open ones each."""
    engine = ctx.db.engine
    company_id = new_id()
    households = max(orders // 10, 1)
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(
            sa.insert(Company),
            [
                {
                    "id": company_id,
                    "code": "bench",
                    "name": "Bench Heat",
                    "timezone": "Asia/Shanghai",
                    "is_demo": True,
                    "created_at": NOW,
                }
            ],
        )
        building_id = new_id()
        conn.execute(
            sa.insert(Building), [{"id": building_id, "company_id": company_id, "address": "基准路 1 号"}]
        )
        household_ids = [new_id() for _ in range(households)]
        for start in range(0, households, 20_000):
            conn.execute(
                sa.insert(Household),
                [
                    {
                        "id": h,
                        "company_id": company_id,
                        "building_id": building_id,
                        "account_number": f"B{start + i}",
                        "unit": "1-1-101",
                        "heated_area_m2": 80.0,
                        "resident_name": "住户",
                        "resident_phone": "13900000000",
                        "is_key_customer": False,
                        "created_at": NOW,
                    }
                    for i, h in enumerate(household_ids[start : start + 20_000])
                ],
            )
        hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        password = hasher.hash("bench-password")
        tech_ids = [new_id() for _ in range(techs)]
        conn.execute(
            sa.insert(User),
            [
                {
                    "id": t,
                    "company_id": company_id,
                    "username": f"bench-tech-{i}",
                    "full_name": f"Tech {i}",
                    "role": Role.technician.value,
                    "password_hash": password,
                    "is_active": True,
                    "is_demo": True,
                    "created_at": NOW,
                }
                for i, t in enumerate(tech_ids)
            ],
        )
    assigned: dict[uuid.UUID, list[uuid.UUID]] = {t: [] for t in tech_ids}
    history: list[uuid.UUID] = []
    chunk = 20_000
    for start in range(0, orders, chunk):  # one transaction per chunk: a huge one only bloats the WAL
        with engine.begin() as conn:
            rows, clocks = [], []
            for n in range(start, min(orders, start + chunk)):
                order_id = new_id()
                tech = tech_ids[n // ORDERS_PER_TECH] if n < techs * ORDERS_PER_TECH else None
                # Beyond the technicians' open orders, the history: closed orders of past winters.
                state = "assigned" if tech else "closed"
                rows.append(
                    {
                        "id": order_id,
                        "company_id": company_id,
                        "kind": "repair",
                        "source": "hotline",
                        "forwarded": False,
                        "urgent": False,
                        "household_id": household_ids[n % households],
                        "assignee_id": tech,
                        "description": "bench",
                        "state": state,
                        "received_at": NOW - timedelta(minutes=5),
                        "created_at": NOW,
                        "updated_at": NOW,
                        "completed_at": None if tech else NOW - timedelta(days=30 + n % 300),
                        "review_flags": [],
                        "version": 1,
                    }
                )
                for clock, minutes in (("contact", 30), ("arrive", 120), ("resolve", 1440)):
                    clocks.append(
                        {
                            "id": new_id(),
                            "order_id": order_id,
                            "company_id": company_id,
                            "order_kind": "repair",
                            "clock": clock,
                            "started_at": NOW,
                            "due_at": NOW + timedelta(minutes=minutes),
                            "target": f"{minutes} min",
                            "calendar_estimated": False,
                            "met_at": None if tech else NOW,
                        }
                    )
                if tech:
                    assigned[tech].append(order_id)
                elif len(history) < HISTORY_WITH_PHOTOS:
                    history.append(order_id)
            conn.execute(sa.insert(WorkOrder), rows)
            conn.execute(sa.insert(SlaClock), clocks)
    with engine.begin() as conn:  # the photos of the day, uploaded before their actions are pushed
        today = [
            upload(company_id, photo_hash(order, purpose), tech, NOW)
            for tech, orders in assigned.items()
            for order in orders
            for purpose in ("before", "after")
        ]
        conn.execute(sa.insert(Blob), today)
        conn.execute(sa.insert(BlobUploader), [uploader(u) for u in today])
    # Past winters' photos: the photo and upload tables are as large as a season's, not just today's.
    for start in range(0, len(history), 10_000):
        past = [
            (order, purpose) for order in history[start : start + 10_000] for purpose in ("before", "after")
        ]
        with engine.begin() as conn:
            season = [
                upload(company_id, photo_hash(order, purpose), tech_ids[0], NOW - timedelta(days=60))
                for order, purpose in past
            ]
            conn.execute(sa.insert(Blob), season)
            conn.execute(sa.insert(BlobUploader), [uploader(u) for u in season])
            conn.execute(
                sa.insert(Photo),
                [
                    {
                        "id": new_id(),
                        "company_id": company_id,
                        "order_id": order,
                        "blob_sha256": photo_hash(order, purpose),
                        "purpose": purpose,
                        "user_id": tech_ids[0],
                        "occurred_at": NOW - timedelta(days=60),
                        "received_at": NOW - timedelta(days=60),
                        "corrected_at": NOW - timedelta(days=60),
                        "flags": [],
                    }
                    for order, purpose in past
                ],
            )
    principals = []
    with ctx.db.session() as session:
        changes.ensure_counter(session, company_id)
        for i, tech in enumerate(tech_ids):
            device_id = f"bench-device-{i}"
            session.add(
                Device(
                    id=device_id,
                    user_id=tech,
                    platform="android",
                    app_version="1",
                    registered_at=NOW,
                    last_seen_at=NOW,
                )
            )
            session.flush()
            session_id = new_id()
            session.add(AuthSession(id=session_id, user_id=tech, device_id=device_id, created_at=NOW))
            principals.append(
                Principal(
                    user_id=tech,
                    company_id=company_id,
                    role=Role.technician,
                    username=f"bench-tech-{i}",
                    full_name=f"Tech {i}",
                    device_id=device_id,
                    session_id=session_id,
                )
            )
    print(
        f"seeded {orders:,} orders, {households:,} households, {techs} technicians, "
        f"{2 * len(history):,} past photos in {time.perf_counter() - started:.1f} s"
    )
    started = time.perf_counter()
    analyse(engine)
    print(f"analysed in {time.perf_counter() - started:.1f} s")
    return principals, assigned


def analyse(engine: sa.Engine) -> None:
    """Planner statistics for the bulk-loaded tables (autovacuum would get there later)."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


def upload(company_id: uuid.UUID, sha256: str, by: uuid.UUID, at: datetime) -> dict[str, object]:
    """An uploaded photo's row (its bytes are not needed: pushes only check it is there)."""
    return {
        "company_id": company_id,
        "sha256": sha256,
        "size": 100_000,
        "content_type": "image/jpeg",
        "uploaded_by": by,
        "uploaded_at": at,
        "media": "JPEG",
        "variants": {},
    }


def uploader(blob: dict[str, object]) -> dict[str, object]:
    """Who sent the bytes of an upload: the user who may attach it."""
    return {k: blob[k] for k in ("company_id", "sha256", "uploaded_at")} | {"user_id": blob["uploaded_by"]}


def photo_hash(order: uuid.UUID, purpose: str) -> str:
    return hashlib.sha256(f"{order}:{purpose}".encode()).hexdigest()


def day_batches(orders: list[uuid.UUID], batch_size: int = 200) -> list[list[tuple[str, dict]]]:
    """A technician's day on 40 orders: accept, call, travel, knock, photos, work, notes, complete."""
    actions: list[tuple[str, dict]] = []
    for order in orders:
        oid = str(order)
        photos = {
            purpose: (
                "evidence.photo",
                {"work_order_id": oid, "blob": photo_hash(order, purpose), "purpose": purpose},
            )
            for purpose in ("before", "after")
        }
        actions += [
            ("work_order.accept", {"work_order_id": oid}),
            ("work_order.contact", {"work_order_id": oid, "outcome": "reached"}),
            ("work_order.depart", {"work_order_id": oid}),
            (
                "work_order.arrive",
                {
                    "work_order_id": oid,
                    "lat": 41.8,
                    "lon": 123.4,
                    "accuracy_m": 10,
                    "attempts": [{"method": "knock", "at": NOW.isoformat()}],
                    "outcome": "admitted",
                    "badge_shown": True,
                },
            ),
            photos["before"],
            ("work_order.start", {"work_order_id": oid}),
            ("work_order.note", {"work_order_id": oid, "text": "更换阀门"}),
            ("work_order.note", {"work_order_id": oid, "text": "试压正常"}),
            photos["after"],
            ("work_order.complete", {"work_order_id": oid, "result": "fixed", "satisfaction": 5}),
        ]
    return [actions[i : i + batch_size] for i in range(0, len(actions), batch_size)]


def envelopes(batch: list[tuple[str, dict]], first_seq: int) -> PushRequest:
    return PushRequest(
        device_id="",
        sent_at=NOW,
        actions=[
            ActionEnvelope(id=uuid.uuid4(), seq=first_seq + i, type=t, v=1, occurred_at=NOW, payload=p)
            for i, (t, p) in enumerate(batch)
        ],
    )


def _push_worker(settings: Settings, share: list[tuple[Principal, PushRequest]], barrier, answers) -> None:
    """One worker process: its own connections, its technicians' batches in order."""
    ctx = build_context(settings, clock=ManualClock(NOW))
    principal = share[0][0]  # connect and load everything before the clock starts
    push(
        ctx, principal=principal, request=PushRequest(device_id=principal.device_id, sent_at=NOW, actions=[])
    )
    gc.collect()
    barrier.wait()
    started, applied, latencies = time.perf_counter(), 0, []
    for principal, request in share:
        t0 = time.perf_counter()
        answer = push(ctx, principal=principal, request=request)
        latencies.append((time.perf_counter() - t0) * 1000)
        applied += sum(r.status == "applied" for r in answer.results)
    answers.put((started, time.perf_counter(), applied, latencies))
    ctx.db.dispose()


def _push_in_parallel(
    settings: Settings, shares: list[list[tuple[Principal, PushRequest]]]
) -> tuple[int, float, list[float]]:
    """Every share pushed by its own process at once: actions applied, wall time, batch latencies."""
    spawn = multiprocessing.get_context("spawn")
    barrier, answers = spawn.Barrier(len(shares)), spawn.Queue()
    workers = [
        spawn.Process(target=_push_worker, args=(settings, share, barrier, answers)) for share in shares
    ]
    for worker in workers:
        worker.start()
    reports = []
    while len(reports) < len(workers):
        try:
            reports.append(answers.get(timeout=5))
        except queue.Empty:
            if any(w.exitcode not in (None, 0) for w in workers):
                raise SystemExit("a push worker failed") from None
    for worker in workers:
        worker.join()
    elapsed = max(r[1] for r in reports) - min(r[0] for r in reports)
    return sum(r[2] for r in reports), elapsed, [x for r in reports for x in r[3]]


def figures(*, quick: bool = False, database_url: str | None = None) -> list[Figure]:
    """For ``python -m bench``: 10,000 orders and 48 technicians, or 1,000 and 6 when quick."""
    sizes = ["--orders", "1000", "--techs", "6", "--pulls", "30"] if quick else []
    return main([*sizes, *(["--database-url", database_url] if database_url else [])])


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--techs", type=int, default=48, help="technicians pushing a day of 40 orders each")
    parser.add_argument(
        "--workers",
        default="2,4",
        help="worker processes pushing at once in the runs after the one-worker run (comma-separated)",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="default: a fresh SQLite file; a PostgreSQL database is recreated",
    )
    parser.add_argument("--pulls", type=int, default=200)
    args = parser.parse_args(argv)
    found: list[Figure] = []

    tmp = Path(tempfile.mkdtemp(prefix="heatcrew-bench-"))
    url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    if url.startswith("postgresql"):
        fresh_postgres(url)
    clock = ManualClock(NOW)
    ctx = build_context(Settings(var_dir=tmp, database_url=url, secret_key="bench" * 8), clock=clock)
    upgrade(ctx.db.engine)
    print(f"database: {ctx.db.dialect}   orders: {args.orders:,}   cpu: {os.cpu_count()}")
    techs, assigned = seed(ctx, args.orders, args.techs)

    # ---- pull: day pack (snapshot of 40 open orders) and empty delta, before any push
    day_pack, empty, cursor = [], [], None
    for i in range(args.pulls):
        principal = techs[i % len(techs)]
        t0 = time.perf_counter()
        page = pull(ctx, principal=principal, cursor=None)
        day_pack.append((time.perf_counter() - t0) * 1000)
        assert sum(c.entity == "work_order" for c in page.changes) == ORDERS_PER_TECH
        cursor = page.cursor
        t0 = time.perf_counter()
        delta = pull(ctx, principal=principal, cursor=cursor)
        empty.append((time.perf_counter() - t0) * 1000)
        assert not delta.changes and not delta.reset
    # Floor: a read transaction doing nothing but SELECT 1, on the same engine.
    nothing = []
    for _ in range(args.pulls):
        t0 = time.perf_counter()
        with ctx.db.session(readonly=True) as session:
            session.execute(sa.text("SELECT 1")).scalar_one()
        nothing.append((time.perf_counter() - t0) * 1000)
    read_floor = statistics.median(nothing)
    found += [
        Figure("sync", f"pull day pack ({ORDERS_PER_TECH} orders), p50", statistics.median(day_pack), "ms"),
        Figure(
            "sync",
            "pull empty delta, p50",
            statistics.median(empty),
            "ms",
            read_floor,
            "SELECT 1 transaction",
        ),
    ]
    print(f"read transaction with SELECT 1 (the floor): p50 {read_floor:.2f} ms")
    print(
        f"pull day pack ({ORDERS_PER_TECH} orders): p50 {statistics.median(day_pack):.2f} ms  "
        f"p95 {percentile(day_pack, 0.95):.2f} ms  p99 {percentile(day_pack, 0.99):.2f} ms"
    )
    print(
        f"pull empty delta:           p50 {statistics.median(empty):.2f} ms  "
        f"p95 {percentile(empty, 0.95):.2f} ms  p99 {percentile(empty, 0.99):.2f} ms"
    )

    # ---- push: every technician's day, in batches of 200 mixed actions. Half the technicians
    # push one after another through one worker; the other half at once through several worker
    # processes, as a deployment on PostgreSQL runs them (SQLite takes one writer at a time).
    plans = []
    for principal in techs:
        seq = 1
        for batch in day_batches(assigned[principal.user_id]):
            request = envelopes(batch, seq)
            request.device_id = principal.device_id
            plans.append((principal, request))
            seq += len(batch)
    counts = [int(n) for n in str(args.workers).split(",") if n.strip()]
    group = len(techs) // (1 + len(counts))
    groups = [techs[i * group : (i + 1) * group] for i in range(1 + len(counts))]
    serial = [(p, r) for p, r in plans if p in groups[0]]
    gc.collect()
    latencies, applied, started = [], 0, time.perf_counter()
    for principal, request in serial:
        t0 = time.perf_counter()
        answer = push(ctx, principal=principal, request=request)
        latencies.append((time.perf_counter() - t0) * 1000)
        applied += sum(r.status == "applied" for r in answer.results)
    elapsed = time.perf_counter() - started
    total = sum(len(r.actions) for _, r in serial)
    assert applied == total, f"only {applied} of {total} applied"
    one_worker = applied / elapsed
    found.append(Figure("sync", "push, one worker", one_worker, "actions/s"))
    found.append(Figure("sync", "push batch of 200, one worker, p95", percentile(latencies, 0.95), "ms"))
    print(
        f"push, one worker, {len(serial)} batches of 200: {one_worker:,.0f} actions/s applied   "
        f"batch p50 {statistics.median(latencies):.1f} ms  p95 {percentile(latencies, 0.95):.1f} ms  "
        f"p99 {percentile(latencies, 0.99):.1f} ms"
    )
    for workers, members in zip(counts, groups[1:], strict=True):
        shares = [
            [(p, r) for p, r in plans if p in members and members.index(p) % workers == w]
            for w in range(workers)
        ]
        ctx.db.dispose()  # the workers open their own connections
        applied, elapsed, latencies = _push_in_parallel(ctx.settings, shares)
        total = sum(len(r.actions) for share in shares for _, r in share)
        assert applied == total, f"only {applied} of {total} applied"
        found.append(
            Figure(
                "sync",
                f"push, {workers} workers at once (one company)",
                applied / elapsed,
                "actions/s",
                floor=one_worker,
                floor_is="one worker, same run",
            )
        )
        print(
            f"push, {workers} workers at once, {sum(map(len, shares))} batches of 200: "
            f"{applied / elapsed:,.0f} actions/s applied ({applied / elapsed / one_worker:.2f}x one worker)   "
            f"batch p50 {statistics.median(latencies):.1f} ms  "
            f"p95 {percentile(latencies, 0.95):.1f} ms  p99 {percentile(latencies, 0.99):.1f} ms"
        )

    # ---- replay: the same batches again (answers lost on the way back)
    total = sum(len(r.actions) for _, r in plans)
    latencies, started = [], time.perf_counter()
    for principal, request in plans:
        t0 = time.perf_counter()
        answer = push(ctx, principal=principal, request=request)
        latencies.append((time.perf_counter() - t0) * 1000)
        assert all(r.status == "duplicate" for r in answer.results)
    elapsed = time.perf_counter() - started
    found.append(Figure("sync", "replay of applied batches", total / elapsed, "actions/s"))
    print(
        f"replay of applied batches:  {total / elapsed:,.0f} actions/s   batch p50 "
        f"{statistics.median(latencies):.1f} ms  p95 {percentile(latencies, 0.95):.1f} ms"
    )

    # ---- a refusal costs its batch a second run, in savepoints from the refused action on: 200
    # notes on the day's (now completed) orders, and the same with an accept in the middle, which
    # no longer applies (conflict), from each technician's next seq
    next_seq = {p.user_id: 1 + sum(len(r.actions) for q, r in plans if q is p) for p in techs}
    medians: dict[str, float] = {}
    for label, refused_at in (("200 notes", None), ("200 notes, one refused", 100)):
        latencies = []
        for principal in techs[:20]:
            orders = assigned[principal.user_id]
            batch = [
                ("work_order.note", {"work_order_id": str(orders[i % len(orders)]), "text": f"补记 {i}"})
                for i in range(200)
            ]
            if refused_at is not None:
                batch[refused_at] = ("work_order.accept", {"work_order_id": str(orders[0])})
            request = envelopes(batch, next_seq[principal.user_id])
            request.device_id = principal.device_id
            next_seq[principal.user_id] += len(batch)
            t0 = time.perf_counter()
            answer = push(ctx, principal=principal, request=request)
            latencies.append((time.perf_counter() - t0) * 1000)
            refusals = sum(r.status != "applied" for r in answer.results)
            assert refusals == (refused_at is not None), f"{refusals} refused"
        medians[label] = statistics.median(latencies)
        print(
            f"push {label + ':':<24} batch p50 {statistics.median(latencies):.1f} ms  "
            f"p95 {percentile(latencies, 0.95):.1f} ms"
        )

    # ---- a delta after the day: each technician's 40 changed orders
    deltas = []
    for principal in techs:
        t0 = time.perf_counter()
        page = pull(ctx, principal=principal, cursor=cursor if principal is techs[-1] else None)
        deltas.append((time.perf_counter() - t0) * 1000)
    found.append(
        Figure(
            "sync",
            "push 200 notes, one refused, p50",
            medians["200 notes, one refused"],
            "ms",
            medians["200 notes"],
            "none refused",
        )
    )
    found.append(Figure("sync", "pull after the day, p50", statistics.median(deltas), "ms"))
    print(f"pull after the day:         p50 {statistics.median(deltas):.2f} ms")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (RSS):          {peak_mb:.0f} MB")
    ctx.db.dispose()
    shutil.rmtree(tmp, ignore_errors=True)  # the SQLite file of a 1M run is large
    found.append(Figure("sync", "peak memory (RSS)", peak_mb, "MB"))
    return found


if __name__ == "__main__":
    main()
