"""Audit benchmark: what recording one event adds to a committing transaction, and how a chain
holds up under concurrent writers.

    python -m bench.audit_bench                                   # a fresh SQLite file
    python -m bench.audit_bench --database-url postgresql+psycopg://postgres@127.0.0.1/bench_db

Migrates the database, then times ``--n`` small writing transactions (an ``UPDATE`` of one row)
without and with one ``audit.record`` each, one after the other, and then ``--threads`` writers
recording into one company's chain at once (PostgreSQL only: SQLite has one writer). Prints the
median and p95 per transaction and the chain's verification. Asserts nothing on time.
"""

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from backend import audit
from backend.audit.service import audit_key
from backend.audit.verify import verify_chain
from backend.db import Database
from backend.db.migrate import upgrade
from backend.org.models import Company
from backend.unit_of_work import UnitOfWork
from bench.report import Figure


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(db: Database, company: uuid.UUID, n: int, *, audited: bool) -> list[float]:
    times = []
    for i in range(n):
        started = time.perf_counter()
        with db.session() as session:
            session.execute(
                sa.update(Company.__table__).where(Company.__table__.c.id == company).values(name=f"c{i}")
            )
            if audited:
                audit.record(
                    session, company_id=company, event=audit.Event.login, target_type="user", target_id=i
                )
        times.append((time.perf_counter() - started) * 1000)
    return times


def figures(*, quick: bool = False, database_url: str | None = None) -> list[Figure]:
    """For ``python -m bench``: 500 transactions each way, or 50 when quick."""
    return main(
        [*(["--n", "50"] if quick else []), *(["--database-url", database_url] if database_url else [])]
    )


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    url = args.database_url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'audit-bench.db'}"
    db = Database(url, info={"audit_key": audit_key("bench")}, session_class=UnitOfWork)
    upgrade(db.engine)
    company = uuid.uuid4()
    with db.session() as session:
        session.add(
            Company(
                id=company,
                code=f"b{company.hex[:6]}",
                name="bench",
                timezone="UTC",
                created_at=db.clock.now(),
            )
        )
    timed(db, company, 20, audited=True)  # warm-up
    medians = {}
    for audited in (False, True):
        times = timed(db, company, args.n, audited=audited)
        medians[audited] = statistics.median(times)
        label = "with one audit event" if audited else "without audit      "
        print(
            f"{db.dialect}: {label}: median {statistics.median(times):.2f} ms, p95 {percentile(times, 0.95):.2f} ms"
        )
    out = [
        Figure(
            "audit",
            f"commit with one audit event ({db.dialect})",
            medians[True],
            "ms",
            medians[False],
            "the same commit without",
        )
    ]
    if db.dialect == "postgresql":
        each = args.n // args.threads
        started = time.perf_counter()

        def writer() -> None:
            for _ in range(each):
                audit.record_alone(db, company_id=company, event=audit.Event.login)

        workers = [threading.Thread(target=writer) for _ in range(args.threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        took = time.perf_counter() - started
        print(
            f"{db.dialect}: {args.threads} writers, {each * args.threads} events into one chain: {took:.2f} s"
        )
        out.append(
            Figure("audit", f"{args.threads} writers into one chain", each * args.threads / took, "events/s")
        )
    with db.session(readonly=True) as session:
        report = verify_chain(session, company_id=company)
    print(f"verify: ok={report.ok} events={report.events} head={report.head_seq}")
    db.dispose()
    return out


if __name__ == "__main__":
    main()
