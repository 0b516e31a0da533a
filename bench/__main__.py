"""Run every benchmark and print one table: benchmark, figure, value, floor, ratio, target.

    python -m bench                       # every benchmark at full size (long: tens of minutes)
    python -m bench --quick               # small sizes: a smoke run, figures not comparable
    python -m bench --only photo --only http
    python -m bench --database-url postgresql+psycopg://postgres@127.0.0.1:5432/heatcrew_bench
    python -m bench --sqlite              # never PostgreSQL

A benchmark is any module ``bench/<name>_bench.py`` with a ``figures()`` function (see
``bench/report.py``); each runs in a process of its own, so that one's memory or threads do not
colour the next one's figures, and one that fails leaves a line saying so. PostgreSQL is used by
the benchmarks that can use it when ``--database-url`` (or ``HEATCREW_BENCH_DATABASE_URL``) names a
server, or else when one answers at the local default (user postgres, trust auth); each benchmark
gets its own database, ``<name>_<benchmark>``, dropped and created anew. Nothing here asserts a
time: the table is for people.
"""

import argparse
import importlib
import inspect
import json
import os
import pkgutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from bench.report import Figure, fresh_postgres, print_table

LOCAL_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/heatcrew_bench"


def discover() -> list[str]:
    """Every ``bench/<name>_bench.py``, by name, in alphabetical order."""
    folder = Path(__file__).parent
    return sorted(
        m.name[: -len("_bench")] for m in pkgutil.iter_modules([str(folder)]) if m.name.endswith("_bench")
    )


def _reachable(url: str) -> bool:
    engine = sa.create_engine(
        sa.engine.make_url(url).set(database="postgres"), connect_args={"connect_timeout": 2}
    )
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        engine.dispose()


def _postgres(args: argparse.Namespace) -> str | None:
    if args.sqlite:
        return None
    url = args.database_url or os.environ.get("HEATCREW_BENCH_DATABASE_URL")
    if url:
        return url
    return LOCAL_POSTGRES if _reachable(LOCAL_POSTGRES) else None


def run_one(name: str, *, quick: bool, database_url: str | None, out: Path) -> None:
    """In the child process: the benchmark's figures, written to ``out`` as JSON."""
    module = importlib.import_module(f"bench.{name}_bench")
    function = getattr(module, "figures", None)
    if function is None:
        raise SystemExit(f"bench/{name}_bench.py has no figures() function")
    kwargs: dict[str, object] = {"quick": quick}
    if "database_url" in inspect.signature(function).parameters and database_url:
        base = sa.engine.make_url(database_url)
        own = base.set(database=f"{base.database}_{name}").render_as_string(hide_password=False)
        fresh_postgres(own)
        kwargs["database_url"] = own
    figures = function(**kwargs)
    out.write_text(json.dumps([f.to_json() for f in figures]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", action="append", metavar="NAME", help="this benchmark only (repeatable)")
    parser.add_argument(
        "--database-url", default=None, help="PostgreSQL server for the benchmarks that use one"
    )
    parser.add_argument("--sqlite", action="store_true", help="SQLite only, even if PostgreSQL answers")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        run_one(args.child, quick=args.quick, database_url=args.database_url, out=args.out)
        return 0

    known = discover()
    wanted = [n.removesuffix("_bench") for n in args.only] if args.only else known
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        parser.error(f"no such benchmark: {', '.join(unknown)} (there are: {', '.join(known)})")
    database_url = _postgres(args)
    print(
        f"benchmarks: {', '.join(wanted)}{' (quick)' if args.quick else ''}; cpus: {os.cpu_count()};"
        f" database: {'PostgreSQL' if database_url else 'SQLite'}",
        flush=True,
    )
    figures: list[Figure] = []
    failed = 0
    for name in wanted:
        print(f"\n== {name} ==", flush=True)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="heatcrew-bench-") as folder:
            out = Path(folder) / "figures.json"
            command = [sys.executable, "-m", "bench", "--child", name, "--out", str(out)]
            if args.quick:
                command.append("--quick")
            if database_url:
                command += ["--database-url", database_url]
            done = subprocess.run(command, check=False)
            if done.returncode == 0 and out.exists():
                figures += [Figure.from_json(f) for f in json.loads(out.read_text())]
            else:
                failed += 1
                figures.append(
                    Figure(
                        name, "FAILED", float("nan"), "", note=f"exit {done.returncode}; see its output above"
                    )
                )
        print(f"({name}: {time.perf_counter() - started:.0f} s)", flush=True)
    print()
    print_table(figures, markdown=args.markdown)
    if args.json:
        args.json.write_text(json.dumps([f.to_json() for f in figures], indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
