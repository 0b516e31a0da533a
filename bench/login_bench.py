"""Login benchmark: phones logging in at once against a real server process, memory added.

    python -m bench.login_bench                          # 100 concurrent logins, server defaults
    python -m bench.login_bench -c 100 --queue-wait 60   # let every login wait for its check
    python -m bench.login_bench --hash-concurrency 100   # no bound: what the bound saves

Starts ``heatcrew demo`` in its own process (fresh SQLite and blobs in a temporary directory,
uvicorn exactly as in production, so passwords are hashed and checked with the production
Argon2id parameters: 64 MiB per check). The per-user and per-address login limits are raised for
the run (every login comes from 127.0.0.1, and this measures the password checks, not the
limits). Two logins warm the server up; then its idle RSS is read: the floor. ``--concurrency``
logins (the six demo users in turn, each on its own phone and connection) are released at once
while the server's RSS is sampled every few milliseconds and its kernel peak (``VmHWM``, reset
after the warm-up) is read at the end. Prints the floor, the peak and the RSS the logins added,
and the answers (``200``, or ``503 login_busy`` for logins whose wait for a check ran out).
Asserts nothing on time or memory. The target is at most 200 MB added for 100 logins.
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from bench.report import Figure
from bench.upload_bench import Sampler, percentile, reset_peak, rss_kib, server_pid, start_server

DEMO_USERS = ("tech1", "tech2", "inspector1", "supervisor1", "dispatcher1", "admin")
PASSWORD = "demo-password"


def log_in(base: str, username: str, device: str) -> tuple[float, int, str | None]:
    with httpx.Client(base_url=base, timeout=300) as http:
        started = time.perf_counter()
        response = http.post(
            "/api/v1/auth/login",
            json={
                "username": username,
                "password": PASSWORD,
                "device": {"id": device, "platform": "android", "app_version": "1.0.0"},
            },
        )
        took = time.perf_counter() - started
    code = None if response.status_code == 200 else response.json().get("code")
    return took, response.status_code, code


def figures(*, quick: bool = False, database_url: str | None = None) -> list[Figure]:
    """For ``python -m bench``: 100 concurrent logins, or 10 when quick."""
    return main(["-c", "10" if quick else "100", *(["--database-url", database_url] if database_url else [])])


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--concurrency", type=int, default=100)
    parser.add_argument("--hash-concurrency", type=int, default=None, help="HEATCREW_LOGIN_HASH_CONCURRENCY")
    parser.add_argument("--queue-wait", type=float, default=None, help="HEATCREW_LOGIN_QUEUE_WAIT (s)")
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="heatcrew-login-bench-"))
    env = {
        "HEATCREW_LOGIN_MAX_FAILURES_PER_USER": "100000",
        "HEATCREW_LOGIN_MAX_ATTEMPTS_PER_ADDRESS": "100000",
    }
    if args.database_url:
        env["HEATCREW_DATABASE_URL"] = args.database_url
    if args.hash_concurrency is not None:
        env["HEATCREW_LOGIN_HASH_CONCURRENCY"] = str(args.hash_concurrency)
    if args.queue_wait is not None:
        env["HEATCREW_LOGIN_QUEUE_WAIT"] = str(args.queue_wait)
    process, base = start_server(workdir, env)
    pid = server_pid(process)
    try:
        for i in range(2):  # warm-up: imports, thread pool, allocator, one Argon2 check each
            _, status, code = log_in(base, DEMO_USERS[i], f"bench-warm-{i:04d}")
            assert status == 200, (status, code)
        time.sleep(0.5)
        floor = rss_kib(pid)
        hwm_reset = reset_peak(pid)
        print(f"server: pid {pid}, {os.cpu_count()} CPUs, database {args.database_url or 'SQLite (temp)'}")
        print(
            f"{args.concurrency} concurrent logins, production Argon2id; hash concurrency "
            f"{args.hash_concurrency or 'default (2)'}, queue wait {args.queue_wait or 'default (5 s)'}"
        )
        print(f"idle server RSS (the floor): {floor / 1024:.1f} MiB")

        barrier = threading.Barrier(args.concurrency)
        lock = threading.Lock()
        results: list[tuple[float, int, str | None]] = []

        def phone(n: int) -> None:
            username = DEMO_USERS[n % len(DEMO_USERS)]
            barrier.wait()
            result = log_in(base, username, f"bench-phone-{n:04d}")
            with lock:
                results.append(result)

        sampler = Sampler(pid)
        sampler.start()
        threads = [threading.Thread(target=phone, args=(n,)) for n in range(args.concurrency)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        sampler.running = False
        sampler.join()
        hwm = rss_kib(pid, "VmHWM")
        peak = max(sampler.peak, hwm if hwm_reset else 0)

        answers = Counter(f"{status}" + (f" {code}" if code else "") for _, status, code in results)
        latencies = [took for took, _, _ in results]
        print(f"answers: {dict(sorted(answers.items()))} in {wall:.2f} s")
        print(
            f"latency s: p50 {percentile(latencies, 0.5):.2f}  p95 {percentile(latencies, 0.95):.2f}  "
            f"max {max(latencies):.2f}  mean {statistics.fmean(latencies):.2f}"
        )
        print(
            f"server peak RSS: {peak / 1024:.1f} MiB (sampled {sampler.peak / 1024:.1f}, "
            f"VmHWM {'%.1f' % (hwm / 1024) if hwm_reset else 'not resettable'})"
        )
        print(
            f"RSS added by {args.concurrency} logins: {(peak - floor) / 1024:.1f} MiB "
            f"above the idle floor of {floor / 1024:.1f} MiB (target <= 200 MB)"
        )
        answered = f"{answers.get('200', 0)} of {args.concurrency} answered 200"
        return [
            Figure(
                "login",
                f"server RSS, {args.concurrency} logins at once",
                peak / 1024,
                "MiB",
                floor / 1024,
                "idle server",
                "added <= 200 MB for 100",
                f"added {(peak - floor) / 1024:.0f} MiB",
            ),
            Figure(
                "login",
                f"latency p95, {args.concurrency} at once",
                percentile(latencies, 0.95),
                "s",
                note=answered,
            ),
        ]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
