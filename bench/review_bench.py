"""The review queue at scale: a page of the queue, a filtered page and the counts, on PostgreSQL.

    python -m bench.review_bench --items 1000000 --database-url postgresql+psycopg://postgres@127.0.0.1/review_bench

Makes the database (dropped first), migrates it, fills ``work_order`` with ``--items``
completed orders and ``review_item`` with one item each (:func:`seed_review_items`, shared with
``bench.console_bench``: a tenth of the items flagged, a fifth still open) and
times the service calls the console makes.
"""

import argparse
import time
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlmodel import Session

from backend.auth.models import Role
from backend.auth.principal import Principal
from backend.db.migrate import upgrade
from backend.review import service
from backend.review.service import QueueFilter
from bench.report import Figure

FILL = """
INSERT INTO company (id, code, name, timezone, is_demo, created_at) VALUES (:company, 'bench', 'Bench', 'Asia/Shanghai', false, now());
INSERT INTO building (id, company_id, address) VALUES (:building, :company, 'x');
INSERT INTO household (id, company_id, building_id, account_number, unit, heated_area_m2, resident_name, is_key_customer, created_at)
  VALUES (:household, :company, :building, 'B-1', '1', 50, 'r', false, now());
INSERT INTO work_order (id, company_id, kind, source, forwarded, urgent, household_id, description, state,
  received_at, created_at, updated_at, completed_at, review_flags, version)
  SELECT md5('o' || n)::uuid, :company, (ARRAY['repair','leak','pipe_burst'])[1 + n % 3], 'hotline', false, false,
    :household, 'd', 'completed', now() - make_interval(secs => :items - n), now(), now(),
    now() - make_interval(secs => :items - n), '[]', 1
  FROM generate_series(1, :items) AS n
"""

REVIEW_ITEMS_SQL = [
    # One item per completed or closed order of the company, queued when the order was completed:
    # a fifth open (pending, one in ten of those redo_answered), the rest decided.
    """INSERT INTO review_item (id, company_id, order_id, team_id, kind, status, reasons, flags,
                               entered_at, queued_at, decided_at, version)
       SELECT md5('item' || o.id)::uuid, o.company_id, o.id, o.team_id, o.kind, s.status, '["sample"]',
              CASE WHEN h.n % 10 = 0 THEN jsonb_build_array(f.flag)::json ELSE '[]' END,
              o.completed_at, o.completed_at,
              CASE WHEN s.status NOT IN ('pending', 'redo_answered') THEN o.completed_at END, 1
       FROM work_order o
       CROSS JOIN LATERAL (SELECT abs(hashtext(o.id::text || 'review')) AS n) h
       CROSS JOIN LATERAL (SELECT (ARRAY['clock_skew', 'location_not_verified', 'photo_missing',
                                         'repeat_fault', 'measurement_failed'])[1 + (h.n / 10) % 5] AS flag) f
       CROSS JOIN LATERAL (SELECT CASE WHEN h.n % 50 = 0 THEN 'redo_answered' WHEN h.n % 5 = 0 THEN 'pending'
                                       WHEN h.n % 100 = 1 THEN 'rejected' WHEN h.n % 100 = 3 THEN 'redo_requested'
                                       ELSE 'approved' END AS status) s
       WHERE o.company_id = :company AND o.completed_at IS NOT NULL
         AND NOT EXISTS (SELECT 1 FROM review_item r WHERE r.order_id = o.id)""",
    """INSERT INTO review_item_flag (item_id, flag, company_id, status, team_id, kind, queued_at)
       SELECT i.id, i.flags ->> 0, i.company_id, i.status, i.team_id, i.kind, i.queued_at FROM review_item i
       WHERE i.company_id = :company AND json_array_length(i.flags) > 0
         AND NOT EXISTS (SELECT 1 FROM review_item_flag f WHERE f.item_id = i.id)""",
]


def seed_review_items(conn: sa.Connection, company_id: uuid.UUID) -> int:
    """Review items (and flag rows) for every completed order of the company; how many.

    Shared by this benchmark and ``bench.console_bench``'s review pages: run it after the orders
    are in, then ``ANALYZE`` (or ``VACUUM ANALYZE``, for index-only scans) the tables.
    """
    for statement in REVIEW_ITEMS_SQL:
        conn.execute(sa.text(statement), {"company": company_id})
    return conn.execute(
        sa.text("SELECT count(*) FROM review_item WHERE company_id = :c"), {"c": company_id}
    ).scalar_one()


def figures(*, quick: bool = False, database_url: str | None = None) -> list[Figure]:
    """For ``python -m bench`` (PostgreSQL only): 1,000,000 items, or 20,000 when quick."""
    if not database_url:
        return []
    return main(["--items", "20000" if quick else "1000000", "--database-url", database_url])


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--database-url", required=True)
    args = parser.parse_args(argv)
    url = make_url(args.database_url)
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{url.database}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{url.database}"'))
    admin.dispose()
    engine = sa.create_engine(url)
    upgrade(engine)
    company = uuid.uuid4()
    ids = {"company": company, "building": uuid.uuid4(), "household": uuid.uuid4(), "items": args.items}
    started = time.perf_counter()
    with engine.begin() as conn:
        for statement in FILL.split(";\n"):
            if statement.strip():
                conn.execute(sa.text(statement), ids)
        seed_review_items(conn, company)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE work_order, review_item, review_item_flag")
    print(f"filled {args.items} orders and items in {time.perf_counter() - started:.1f} s")
    actor = Principal(
        user_id=uuid.uuid4(),
        company_id=company,
        role=Role.supervisor,
        username="bench",
        full_name="bench",
        device_id="bench",
        session_id=uuid.uuid4(),
    )
    calls = {
        "queue, first page of 50": lambda s: service.list_items(s, actor=actor),
        "queue, page 100 (keyset)": None,
        "queue, kind=leak": lambda s: service.list_items(s, actor=actor, where=QueueFilter(kind="leak")),
        "queue, flag=clock_skew": lambda s: service.list_items(
            s, actor=actor, where=QueueFilter(flag="clock_skew")
        ),
        "queue, last day": lambda s: service.list_items(
            s, actor=actor, where=QueueFilter(since=datetime.now(UTC).replace(hour=0, minute=0, second=0))
        ),
        "counts, open queue": lambda s: service.counts(s, actor=actor),
    }
    found: list[Figure] = []
    with Session(engine) as session:
        floor = []
        for _ in range(20):
            t = time.perf_counter()
            session.execute(sa.text("SELECT 1"))
            floor.append(time.perf_counter() - t)
        floor_ms = sorted(floor)[10] * 1000
        after = None
        for _ in range(99):
            after = service.list_items(session, actor=actor, after=after).next_after
        calls["queue, page 100 (keyset)"] = lambda s: service.list_items(s, actor=actor, after=after)
        for name, call in calls.items():
            assert call is not None
            call(session)  # warm
            runs = []
            for _ in range(5):
                t = time.perf_counter()
                call(session)
                runs.append(time.perf_counter() - t)
            print(f"{name:28} median {sorted(runs)[2] * 1000:7.1f} ms")
            found.append(Figure("review", name, sorted(runs)[2] * 1000, "ms", floor_ms, "SELECT 1"))
    engine.dispose()
    return found


if __name__ == "__main__":
    main()
