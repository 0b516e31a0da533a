"""Console benchmark: the KPI page for a whole heating season, and a streamed export of 100k orders.

    python -m bench.console_bench                      # 1,000,000 orders on a fresh PostgreSQL database
    python -m bench.console_bench --orders 200000 --export-orders 100000

Seeds one company on PostgreSQL by ``INSERT ... SELECT generate_series`` (orders over the season
15 Nov – 15 Mar, their SLA clocks, revisits, measurements with their documents), analyses the
tables, then measures the service functions the handlers call (no HTTP), each beside a floor
measured in the same run on the same rows:

- KPIs: ``kpis.compute`` for the whole season (target ≤ 1 s) — floor: plain ``count(*)`` over
  the rows each KPI query reads.
- Export: ``exports.export`` of about ``--export-orders`` orders as CSV and XLSX, consumed chunk by
  chunk: wall time, rows/s, the added peak RSS (sampled every 5 ms) and, with ``--tracemalloc``, a
  second run's tracemalloc peak — floor: a raw server-side cursor fetching the same rows.

- Review pages: :func:`measure_review_pages`, the console's queue and item pages through the whole
  route (in-process TestClient, a signed-in supervisor) over review items for every completed
  order (``bench.review_bench.seed_review_items``) — floor: the login page and the session check.

Prints figures and asserts nothing on them.
"""

import argparse
import hashlib
import math
import os
import statistics
import tempfile
import threading
import time
import tracemalloc
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from backend.auth.models import Role, User
from backend.auth.principal import Principal
from backend.clock import ManualClock
from backend.context import AppContext, build_context
from backend.db.migrate import upgrade
from backend.reports import exports, kpis, rollup, scope
from backend.settings import Settings
from bench.report import Figure, print_table

SEASON_START = date(2026, 11, 15)
SEASON_END = date(2027, 3, 15)
NOW = datetime(2027, 3, 20, 2, 0, tzinfo=UTC)  # after the season: every clock has run out
ADMIN_URL = os.environ.get(
    "HEATCREW_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
TEAMS, TECHS_PER_TEAM, HOUSEHOLDS, BUILDINGS = 10, 4, 50_000, 2_000

# Deterministic ids: md5 of a tag and a number, so rows refer to each other without lookups.
SEED_SQL = [
    """INSERT INTO company (id, code, name, timezone, is_demo, created_at)
       VALUES (md5('company')::uuid, 'bench', '基准供热公司', 'Asia/Shanghai', false, now())""",
    """INSERT INTO team (id, company_id, code, name)
       SELECT md5('team' || t)::uuid, md5('company')::uuid, 'T' || t, '维修班 ' || t
       FROM generate_series(0, :teams - 1) t""",
    """INSERT INTO app_user (id, company_id, username, full_name, role, team_id, password_hash,
                             is_active, is_demo, created_at)
       SELECT md5('user' || u)::uuid, md5('company')::uuid, 'tech' || u, '维修工 ' || u, 'technician',
              md5('team' || (u / :per_team))::uuid, 'x', true, false, now()
       FROM generate_series(0, :teams * :per_team - 1) u
       UNION ALL SELECT md5('dispatcher')::uuid, md5('company')::uuid, 'dispatcher', '调度员', 'dispatcher',
              NULL, 'x', true, false, now()
       UNION ALL SELECT md5('inspector')::uuid, md5('company')::uuid, 'inspector', '测温员', 'inspector',
              md5('team0')::uuid, 'x', true, false, now()""",
    """INSERT INTO building (id, company_id, address)
       SELECT md5('building' || b)::uuid, md5('company')::uuid, '和平区南京北街 ' || b || ' 号'
       FROM generate_series(0, :buildings - 1) b""",
    """INSERT INTO household (id, company_id, building_id, account_number, unit, heated_area_m2,
                              resident_name, resident_phone, is_key_customer, created_at)
       SELECT md5('household' || h)::uuid, md5('company')::uuid, md5('building' || (h % :buildings))::uuid,
              'A' || h, '1-' || (h % 30) || '-' || (h % 7 + 1) || '01', 80, '住户 ' || h,
              '139' || lpad(h::text, 8, '0'), h % 50 = 0, now()
       FROM generate_series(0, :households - 1) h""",
    # Orders spread evenly over the season; kinds, sources and outcomes by residue.
    """INSERT INTO work_order (id, company_id, kind, source, forwarded, urgent, household_id, team_id,
                               assignee_id, description, state, received_at, created_at, updated_at,
                               completed_at, closed_at, result, satisfaction, repeat_of_id,
                               review_flags, version)
       SELECT md5('order' || i)::uuid, md5('company')::uuid, k.kind,
              CASE WHEN i % 20 = 0 THEN 'mayor_hotline' ELSE 'hotline' END, i % 20 = 0, i % 20 = 0,
              md5('household' || (i % :households))::uuid, md5('team' || (i % :teams))::uuid,
              md5('user' || ((i % :teams) * :per_team + (i / :teams) % :per_team))::uuid,
              '暖气不热', s.state, r.at, r.at, r.at,
              CASE WHEN s.state IN ('closed', 'completed') THEN r.at + (i % 30 + 1) * interval '1 hour' END,
              CASE WHEN s.state IN ('closed', 'cancelled') THEN r.at + (i % 30 + 2) * interval '1 hour' END,
              CASE WHEN s.state IN ('closed', 'completed') THEN 'fixed' END,
              CASE WHEN s.state IN ('closed', 'completed') THEN 3 + i % 3 END,
              CASE WHEN i % 50 = 1 AND i >= :households THEN md5('order' || (i - :households))::uuid END,
              '[]', 1
       FROM generate_series(0, :orders - 1) i
       CROSS JOIN LATERAL (SELECT timestamptz '2026-11-14 16:00:00+00'
                                  + (i::float8 / :orders) * interval '120 days' AS at) r
       CROSS JOIN LATERAL (SELECT (ARRAY['repair', 'repair', 'repair', 'leak', 'leak', 'routine_maintenance',
                                         'complaint', 'temperature_complaint', 'meter_service',
                                         'pipe_burst'])[i % 10 + 1] AS kind) k
       CROSS JOIN LATERAL (SELECT CASE WHEN i % 100 = 3 THEN 'cancelled' WHEN i % 100 < 3 THEN 'in_progress'
                                       WHEN i % 10 = 6 THEN 'completed' ELSE 'closed' END AS state) s""",
    # Clocks: arrive and resolve (answer for complaints), contact for repairs; 97 % met on time.
    """INSERT INTO sla_clock (id, order_id, company_id, order_kind, clock, started_at, due_at, met_at, target,
                              calendar_estimated)
       SELECT md5('clock' || o.id || c.clock)::uuid, o.id, o.company_id, o.kind, c.clock, o.received_at,
              o.received_at + c.minutes * interval '1 minute',
              CASE WHEN o.state = 'cancelled' THEN NULL
                   WHEN abs(hashtext(o.id::text || c.clock)) % 100 < 97
                        THEN o.received_at + c.minutes * 0.5 * interval '1 minute'
                   WHEN abs(hashtext(o.id::text || c.clock)) % 100 < 99
                        THEN o.received_at + c.minutes * 1.5 * interval '1 minute' END,
              c.minutes || ' min', false
       FROM work_order o
       CROSS JOIN LATERAL (VALUES ('arrive', 120), ('resolve', 1440), ('contact', 30), ('answer', 4320), ('accept', 30))
            AS c(clock, minutes)
       WHERE (c.clock IN ('arrive', 'resolve') AND o.kind <> 'complaint')
          OR (c.clock = 'contact' AND o.kind = 'repair')
          OR (c.clock = 'accept' AND o.forwarded)
          OR (c.clock = 'answer' AND o.kind IN ('complaint', 'temperature_complaint'))""",
    # Revisits of completed repairs, due 48 h after; 90 % done, with a score.
    """INSERT INTO revisit (id, company_id, order_id, household_id, assignee_id, due_at, state, channel,
                            outcome, satisfaction, done_at, created_at)
       SELECT md5('revisit' || o.id)::uuid, o.company_id, o.id, o.household_id, NULL,
              o.completed_at + interval '48 hours', CASE WHEN d.done THEN 'done' ELSE 'due' END,
              CASE WHEN d.done THEN 'phone' END, CASE WHEN d.done THEN 'satisfied' END,
              CASE WHEN d.done THEN 3 + abs(hashtext(o.id::text)) % 3 END,
              CASE WHEN d.done THEN o.completed_at + interval '40 hours' END, o.completed_at
       FROM work_order o
       CROSS JOIN LATERAL (SELECT abs(hashtext(o.id::text || 'r')) % 10 <> 0 AS done) d
       WHERE o.completed_at IS NOT NULL
         AND o.kind IN ('leak', 'repair', 'routine_maintenance', 'pipe_burst', 'meter_service')""",
    """INSERT INTO sla_clock (id, order_id, company_id, order_kind, clock, started_at, due_at, met_at, target,
                              calendar_estimated)
       SELECT md5('clock' || r.order_id || 'revisit')::uuid, r.order_id, r.company_id, o.kind, 'revisit',
              r.created_at, r.due_at, r.done_at, '48 h', false
       FROM revisit r JOIN work_order o ON o.id = r.order_id""",
    # One measurement in five orders (temperature complaints and rounds), each with its document.
    """INSERT INTO measurement (id, company_id, household_id, order_id, instrument_id, rooms, outdoor_c,
                                closed_minutes, measured_at, result, user_id, occurred_at, received_at,
                                corrected_at, flags)
       SELECT md5('measurement' || i)::uuid, md5('company')::uuid, md5('household' || (i % :households))::uuid,
              md5('order' || i)::uuid, 'TH-0042',
              '[{"name": "卧室", "kind": "bedroom", "readings_c": [18.6, 18.7, 18.6]}]', -8, 40, r.at,
              CASE WHEN (i / 5) % 100 < 96 THEN 'pass' WHEN (i / 5) % 100 < 99 THEN 'fail' ELSE 'incomplete' END,
              md5('inspector')::uuid, r.at, r.at, r.at, '[]'
       FROM generate_series(0, :orders - 1, 5) i
       CROSS JOIN LATERAL (SELECT timestamptz '2026-11-14 16:00:00+00'
                                  + (i::float8 / :orders) * interval '120 days' + interval '3 hours' AS at) r""",
    """INSERT INTO document (id, company_id, type, order_id, household_id, content, content_sha256,
                             user_id, occurred_at, received_at, corrected_at, flags)
       SELECT m.id, m.company_id, 'measurement', m.order_id, m.household_id, '{}', md5(m.id::text),
              m.user_id, m.occurred_at, m.received_at, m.corrected_at, '[]'
       FROM measurement m""",
]


def seed(ctx: AppContext, orders: int) -> None:
    params = {
        "orders": orders,
        "teams": TEAMS,
        "per_team": TECHS_PER_TEAM,
        "households": HOUSEHOLDS,
        "buildings": BUILDINGS,
    }
    with ctx.db.engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
        for statement in SEED_SQL:
            started = time.perf_counter()
            text = sa.text(statement)
            conn.execute(text, {k: v for k, v in params.items() if f":{k}" in statement})
            table = statement.split("INTO ", 1)[1].split(" ", 1)[0]
            print(f"  seeded {table:<12} {time.perf_counter() - started:6.1f} s")
    with ctx.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("SET statement_timeout = 0")
        conn.exec_driver_sql("VACUUM ANALYZE")
    # The rows went in behind the service's back (as a restore or a bulk load would): the rollup is
    # built from them as migration 0018's backfill builds it.
    started = time.perf_counter()
    with ctx.db.engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
        entities = rollup.rebuild(conn)
    with ctx.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE kpi_delta, kpi_settled")
    print(f"  rollup rebuilt ({entities:,} entities) in {time.perf_counter() - started:6.1f} s")
    with ctx.db.engine.connect() as conn:
        for table in ("work_order", "sla_clock", "revisit", "measurement", "kpi_delta"):
            print(
                f"  {table:<12} {conn.exec_driver_sql(f'SELECT count(*) FROM {table}').scalar_one():>10,} rows"
            )


def md5_uuid(tag: str) -> uuid.UUID:
    return uuid.UUID(hashlib.md5(tag.encode()).hexdigest())


def dispatcher() -> Principal:
    return Principal(
        user_id=md5_uuid("dispatcher"),
        company_id=md5_uuid("company"),
        role=Role.dispatcher,
        username="dispatcher",
        full_name="调度员",
        device_id="bench",
        session_id=uuid.uuid4(),
    )


def timed(fn, repeat: int = 3) -> tuple[float, float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), statistics.median(times), result


# ---------------------------------------------------------------- KPIs


def measure_kpis(ctx: AppContext) -> list[Figure]:
    principal = dispatcher()
    with ctx.db.session(readonly=True) as session:
        where = scope.resolve(session, principal=principal, now=NOW, since=SEASON_START, until=SEASON_END)

    def page() -> object:
        with ctx.db.session(readonly=True) as session:
            return kpis.compute(session, scope=where)

    def raw_page() -> object:
        with ctx.db.session(readonly=True) as session:
            return kpis.compute(session, scope=where, use_rollup=False)

    best, median, report = timed(page)
    print(f"\nKPI page, whole season ({where.since} – {where.until}, {len(where.buckets())} weeks)")
    print(
        f"  kpis.compute (rollup)   best {best * 1000:7.0f} ms   median {median * 1000:7.0f} ms   (target ≤ 1000 ms)"
    )
    raw_best, raw_median, raw_report = timed(raw_page)
    print(f"  kpis.compute (raw rows) best {raw_best * 1000:7.0f} ms   median {raw_median * 1000:7.0f} ms")
    same = raw_report == report
    print(f"  the two reports are {'the same' if same else 'DIFFERENT'}")
    for group, query in kpis._GROUPS:

        def one(query=query) -> object:
            with ctx.db.session(readonly=True) as session:
                return query(
                    session,
                    where,
                    "postgresql",
                    (where.start, where.end),
                    kpis.load_policy(session.get(kpis.Company, where.company_id)),
                )

        b, m, _ = timed(one)
        print(f"    {group[0]:<22} best {b * 1000:7.0f} ms   median {m * 1000:7.0f} ms")
    floor_sql = [
        "SELECT count(*) FROM sla_clock WHERE company_id = :c AND due_at >= :a AND due_at < :b",
        "SELECT count(*) FROM measurement WHERE company_id = :c AND measured_at >= :a AND measured_at < :b",
        "SELECT count(*) FROM revisit WHERE company_id = :c AND due_at >= :a AND due_at < :b",
        "SELECT count(*) FROM work_order WHERE company_id = :c AND completed_at >= :a AND completed_at < :b",
        "SELECT count(*) FROM work_order WHERE company_id = :c AND received_at >= :a AND received_at < :b "
        "AND source = 'mayor_hotline'",
    ]

    def floor() -> object:
        with ctx.db.engine.connect() as conn:
            return [
                conn.execute(
                    sa.text(s), {"c": where.company_id, "a": where.start, "b": where.end}
                ).scalar_one()
                for s in floor_sql
            ]

    fb, fm, counts = timed(floor)
    print(
        f"  floor: count(*) of the same rows  best {fb * 1000:7.0f} ms   median {fm * 1000:7.0f} ms   rows {counts}"
    )
    for kpi in report.kpis:  # type: ignore[attr-defined]
        shown = "—" if kpi.value is None else f"{kpi.value:.4f}"
        print(f"    {kpi.name:<22} {shown:>8}   {kpi.numerator:>9,} / {kpi.denominator:<9,}")
    return [
        Figure(
            "console",
            "KPI page, whole season, raw rows only (best of 3)",
            raw_best * 1000,
            "ms",
            fb * 1000,
            "count(*) of the rows each KPI reads",
        ),
        Figure(
            "console",
            "KPI page, whole season (best of 3)",
            best * 1000,
            "ms",
            fb * 1000,
            "count(*) of the rows each KPI reads",
            "<= 1000 ms",
        ),
    ]


# ---------------------------------------------------------------- export


class RssSampler:
    """The process's resident set, sampled every 5 ms from /proc while the export runs."""

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak = self.start = self.rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def measure_export(
    ctx: AppContext, orders: int, wanted: int, *, with_tracemalloc: bool = False
) -> list[Figure]:
    days = max(1, math.ceil(120 * wanted / orders))
    since = SEASON_START
    until = date.fromordinal(since.toordinal() + days - 1)
    with ctx.db.session(readonly=True) as session:
        where = scope.resolve(session, principal=dispatcher(), now=NOW, since=since, until=until)
    with ctx.db.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT count(*) FROM work_order WHERE company_id = :c AND received_at >= :a AND received_at < :b"
            ),
            {"c": where.company_id, "a": where.start, "b": where.end},
        ).scalar_one()
    print(f"\nExport of {rows:,} orders ({since} – {until}), streamed")

    def consume(fmt: str) -> tuple[float, int]:
        size = 0
        started = time.perf_counter()
        with ctx.db.session(readonly=True) as session:
            for chunk in exports.export(session, scope=where, kind="orders", fmt=fmt):  # type: ignore[arg-type]
                size += len(chunk)
        return time.perf_counter() - started, size

    measured: dict[str, tuple[float, float]] = {}
    for fmt in ("csv", "xlsx"):
        with RssSampler() as rss:
            seconds, size = consume(fmt)
        traced = ""
        if with_tracemalloc:  # slow: every allocation is traced
            tracemalloc.start()
            consume(fmt)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            traced = f"   tracemalloc peak {peak / 2**20:6.1f} MiB"
        print(
            f"  {fmt:<5} {seconds:6.2f} s   {rows / seconds:9,.0f} rows/s   {size / 1e6:7.1f} MB   "
            f"added peak RSS {(rss.peak - rss.start) / 2**20:6.1f} MiB (target ≤ 50 MiB){traced}"
        )
        measured[fmt] = (rows / seconds, (rss.peak - rss.start) / 2**20)

    # The export's own SELECT, without its clocks or any formatting.
    raw_sql = (
        "SELECT o.id, o.kind, o.source, o.state, t.name, a.full_name, h.account_number, b.address, h.unit, "
        "o.received_at, o.completed_at, o.closed_at, o.result, o.satisfaction FROM work_order o "
        "JOIN household h ON h.id = o.household_id JOIN building b ON b.id = h.building_id "
        "LEFT JOIN team t ON t.id = o.team_id LEFT JOIN app_user a ON a.id = o.assignee_id "
        "WHERE o.company_id = %s AND o.received_at >= %s AND o.received_at < %s ORDER BY o.received_at, o.id"
    )

    def raw() -> int:
        fetched = 0
        raw_conn = ctx.db.engine.raw_connection()
        try:
            with raw_conn.driver_connection.cursor(name="bench_floor") as cur:  # type: ignore[union-attr]
                cur.itersize = exports.BATCH
                cur.execute(raw_sql, (where.company_id, where.start, where.end))
                while batch := cur.fetchmany(exports.BATCH):
                    fetched += len(batch)
            raw_conn.rollback()
        finally:
            raw_conn.close()
        return fetched

    raw()
    with RssSampler() as rss:
        started = time.perf_counter()
        fetched = raw()
        seconds = time.perf_counter() - started
    print(
        f"  floor: raw server-side cursor fetch of the orders  {seconds:6.2f} s   {fetched / seconds:9,.0f} rows/s   "
        f"added peak RSS {(rss.peak - rss.start) / 2**20:6.1f} MiB"
    )
    floor = fetched / seconds
    out = []
    for fmt, (rate, added) in measured.items():
        out.append(
            Figure("console", f"{fmt} export of {rows:,} orders", rate, "rows/s", floor, "raw cursor fetch")
        )
        out.append(Figure("console", f"{fmt} export: added peak RSS", added, "MiB", target="<= 50 MiB"))
    return out


# ---------------------------------------------------------------- review pages

REVIEW_PASSWORD = "bench-password"


def _seed_review(ctx: AppContext, app_ctx: AppContext) -> uuid.UUID:
    """Review items for the bench company's orders, its supervisor, and one realistic item (the
    demo company's repair with photos and a signed receipt, a redo request and ~15 events); its id."""
    from sqlmodel import select

    from backend.demo import seed_review_demo
    from backend.org.models import Company
    from backend.review import service
    from backend.review.models import ReviewItem
    from backend.review.schemas import RedoItem
    from backend.sync.handlers import CATALOGUE, Applying
    from backend.work_orders import timeline
    from backend.work_orders.models import WorkOrder
    from bench.review_bench import seed_review_items

    company_id = md5_uuid("company")
    with ctx.db.engine.begin() as conn:
        # What the demo's review order needs in the bench company: tech2 (seeded), a dispatcher
        # and the household 200203 in a building with a position, and the supervisor who signs in.
        statements = [
            "INSERT INTO app_user (id, company_id, username, full_name, role, team_id, password_hash, "
            "is_active, is_demo, created_at, staff_number) VALUES "
            "(:s, :c, 'supervisor', '督查员', 'supervisor', NULL, :h, true, false, now(), NULL), "
            "(:d, :c, 'dispatcher1', '调度员 张', 'dispatcher', NULL, 'x', true, false, now(), NULL)",
            "UPDATE app_user SET staff_number = 'T0002' WHERE username = 'tech2'",
            "INSERT INTO building (id, company_id, address, lat, lon) "
            "VALUES (:b, :c, '沈河区青年大街 1 号', 41.80, 123.43)",
            "INSERT INTO household (id, company_id, building_id, account_number, unit, heated_area_m2, "
            "resident_name, is_key_customer, created_at) VALUES (:hh, :c, :b, '200203', '2-3-302', 80, "
            "'住户 王', false, now())",
        ]
        values = {
            "s": md5_uuid("supervisor"),
            "d": md5_uuid("dispatcher1"),
            "c": company_id,
            "h": app_ctx.passwords.hash(REVIEW_PASSWORD),
            "b": md5_uuid("demo building"),
            "hh": md5_uuid("demo household"),
        }
        for statement in statements:
            conn.execute(sa.text(statement), values)
    with app_ctx.db.session() as session:
        company = session.get(Company, company_id)
        assert company is not None
        seed_review_demo(app_ctx, session, company)
    started = time.perf_counter()
    with ctx.db.engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
        items = seed_review_items(conn, company_id)
    with ctx.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("SET statement_timeout = 0")
        conn.exec_driver_sql("VACUUM ANALYZE review_item, review_item_flag")
    print(f"  seeded {items:,} review items in {time.perf_counter() - started:.1f} s")
    with app_ctx.db.session() as session:
        item = session.exec(
            select(ReviewItem)
            .where(ReviewItem.company_id == company_id, ReviewItem.status == "pending")
            .order_by(ReviewItem.entered_at.desc())  # type: ignore[attr-defined]
        ).first()
        assert item is not None
        order = session.get(WorkOrder, item.order_id)
        assert order is not None
        supervisor = session.exec(
            select(User).where(User.company_id == company_id, User.username == "supervisor")
        ).one()
        tech = session.get(User, order.assignee_id)
        assert tech is not None
        office = Principal(
            user_id=supervisor.id,
            company_id=company.id,
            role=Role.supervisor,
            username=supervisor.username,
            full_name=supervisor.full_name,
            device_id="bench",
            session_id=uuid.uuid4(),
        )
        field = Principal(
            user_id=tech.id,
            company_id=company_id,
            role=Role.technician,
            username=tech.username,
            full_name=tech.full_name,
            device_id="bench",
            session_id=uuid.uuid4(),
        )
        when = timeline.online(app_ctx.clock.now())
        handler = CATALOGUE[("work_order.note", 1)]
        for n in range(5):  # the demo's order has ten events: notes make it fifteen, the redo one more
            payload = {"work_order_id": str(order.id), "text": f"备注 {n}"}
            handler.apply(Applying(session, field, when, uuid.uuid4(), raw=payload), handler.decode(payload))
        service.request_redo(
            session,
            actor=office,
            item_id=item.id,
            now=app_ctx.clock.now(),
            items=[RedoItem(kind="photo", purpose="after", text="照片模糊")],
            due_at=app_ctx.clock.now() + timedelta(days=2),
            reason="照片不清楚",
        )
        return item.id


def _time_get(client: object, url: str, n: int, **kwargs: object) -> tuple[float, float]:
    times = []
    for _ in range(n + 3):
        started = time.perf_counter()
        response = client.get(url, **kwargs)  # type: ignore[attr-defined]
        times.append(time.perf_counter() - started)
        assert response.status_code in (200, 303), (url, response.status_code, response.text[:300])
    times = sorted(times[3:])  # the first three warm caches and templates
    return statistics.median(times), times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)]


def measure_review_pages(
    ctx: AppContext, *, requests: int = 40, seeded: bool = False
) -> dict[str, float] | None:
    """The review console's pages through the whole route in process (Litestar's TestClient: the
    session check, the service calls, the template), signed in as a supervisor, each timed
    ``requests`` times (median and p95), beside floors measured in the same run: the login page
    (a template, no session) and ``/console/`` (the session check and a redirect).

    Returns ``{"queue page": median s, "item page": median s, ...}`` (p95 as ``"<name> p95"``).
    ``seeded``: the database was seeded by an earlier run (``--keep``); time the pages only.
    """
    from litestar.testing import TestClient

    from backend.app import create_app
    from tests.fixtures.console import console_login

    app = create_app(ctx.settings, clock=ctx.clock)
    app_ctx = app.state.ctx
    if seeded:
        with ctx.db.engine.connect() as conn:
            item_id = conn.execute(
                sa.text(
                    "SELECT id FROM review_item WHERE company_id = :c AND status <> 'approved' "
                    "ORDER BY entered_at DESC LIMIT 1"
                ),
                {"c": md5_uuid("company")},
            ).scalar_one()
    else:
        item_id = _seed_review(ctx, app_ctx)
    team = md5_uuid("team3")
    pages = {
        "login page (floor)": ("/console/login", {}),
        "session check + redirect (floor)": ("/console/", {"follow_redirects": False}),
        "queue page": ("/console/review", {}),
        "queue page, no period": ("/console/review?since=", {}),
        "queue page, team + kind + flag": (
            f"/console/review?team={team}&kind=leak&flag=clock_skew",
            {},
        ),
        "queue page, decided, no period": ("/console/review?status=approved&since=", {}),
        "rows fragment": ("/console/review/rows?kind=repair", {"headers": {"HX-Request": "true"}}),
    }
    figures: dict[str, float] = {}
    print(f"\nReview pages, whole route in process, {requests} requests each (median, p95)")
    with TestClient(app) as bench_client:
        login = console_login(bench_client, "supervisor", password=REVIEW_PASSWORD)
        assert login.status_code == 303, login.text[:300]
        runs = [(name, bench_client, url, kw) for name, (url, kw) in pages.items()]
        runs.append(("item page", bench_client, f"/console/review/{item_id}", {}))
        for name, client, url, kwargs in runs:
            median, p95 = _time_get(client, url, requests, **kwargs)
            figures[name], figures[f"{name} p95"] = median, p95
            target = "" if "floor" in name else "   (target ≤ 100 ms)"
            print(f"  {name:<34} median {median * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms{target}")
    app_ctx.db.dispose()
    return figures


def run(
    orders: int,
    export_orders: int,
    *,
    database_url: str = "",
    keep: bool = False,
    with_tracemalloc: bool = False,
    review_only: bool = False,
) -> list[Figure]:
    """Seed ``orders`` on PostgreSQL (``database_url``: an empty database, else a new one) and measure."""
    made = None
    url = database_url
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    if not url:
        made = f"heatcrew_console_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{made}"')
        url = make_url(ADMIN_URL).set(database=made).render_as_string(hide_password=False)
    tmp = Path(tempfile.mkdtemp(prefix="console-bench-"))
    ctx = build_context(
        Settings(var_dir=tmp, database_url=url, secret_key="bench" * 8, db_statement_timeout=600),
        clock=ManualClock(NOW),
    )
    figures: list[Figure] = []
    try:
        upgrade(ctx.db.engine)
        if review_only:
            return _review_figures(measure_review_pages(ctx, seeded=True))
        print(f"database: {ctx.db.dialect}   orders: {orders:,}   cpu: {os.cpu_count()}")
        started = time.perf_counter()
        seed(ctx, orders)
        seeded = time.perf_counter() - started
        print(f"  seeding took {seeded:.0f} s")
        figures.append(Figure("console", f"seeding {orders:,} orders", seeded, "s"))
        figures += measure_kpis(ctx)
        figures += measure_export(ctx, orders, export_orders, with_tracemalloc=with_tracemalloc)
        figures += _review_figures(measure_review_pages(ctx))
    finally:
        ctx.db.dispose()
        if made and not keep:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{made}" WITH (FORCE)')
        admin.dispose()
    return figures


def _review_figures(review: dict[str, float] | None) -> list[Figure]:
    """The review pages' medians beside the login page's, the floor measured in the same run."""
    if not review:
        return []
    floor = review.get("login page (floor)")
    return [
        Figure(
            "console",
            f"{name} (median; p95 {review.get(name + ' p95', float('nan')) * 1000:.0f} ms)",
            seconds * 1000,
            "ms",
            None if floor is None else floor * 1000,
            "the login page",
            "<= 100 ms",
        )
        for name, seconds in review.items()
        if not name.endswith(" p95") and "(floor)" not in name
    ]


def figures(*, quick: bool = False, database_url: str | None = None) -> list[Figure]:
    """For ``python -m bench``: 1,000,000 orders and a 100k export, or 20,000 and 5,000 when quick."""
    orders, export_orders = (20_000, 5_000) if quick else (1_000_000, 100_000)
    return run(orders, export_orders, database_url=database_url or "")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--export-orders", type=int, default=100_000)
    parser.add_argument(
        "--database-url", default="", help="an empty PostgreSQL database (default: a new one)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database it made")
    parser.add_argument(
        "--review-only",
        action="store_true",
        help="with --database-url of a database kept by an earlier run: time the review pages only",
    )
    parser.add_argument("--tracemalloc", action="store_true", help="also trace the export's allocations")
    args = parser.parse_args()
    found = run(
        args.orders,
        args.export_orders,
        database_url=args.database_url,
        keep=args.keep,
        with_tracemalloc=args.tracemalloc,
        review_only=args.review_only,
    )
    print()
    print_table(found)


if __name__ == "__main__":
    main()
