"""Upload benchmark: phones uploading 10 MB photos at once to a real server process.

    python -m bench.upload_bench                     # 20 concurrent uploads of a 10 MB JPEG
    python -m bench.upload_bench -c 40 --rounds 3    # more phones, several waves

Starts ``heatcrew demo`` in its own process (a fresh SQLite database and local blob store in a
temporary directory, served by uvicorn exactly as in production), logs a technician in, warms the
server up with two uploads, then sends ``--concurrency`` different 10 MB JPEGs at once through
``PUT /api/v1/blobs/{sha256}``, each on its own connection. The server's memory is read from
``/proc/<pid>/status``: its peak (``VmHWM``) is reset after the warm-up and ``VmRSS`` is sampled
every few milliseconds, so the figure is what the uploads added, pipeline included. Prints figures;
never passes or fails on them. The target is at most 100 MB added for 20 concurrent uploads.
"""

import argparse
import hashlib
import io
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from PIL import Image

from bench.report import Figure

TARGET_BYTES = 10_000_000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ten_megabyte_jpeg() -> bytes:
    """A 12 MP JPEG of sensor-like noise (noise does not compress) of about 10 MB."""
    noise = Image.effect_noise((4000, 3000), 48)
    img = Image.merge(
        "RGB",
        (
            noise,
            noise.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
            noise.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
        ),
    )
    best = b""
    for quality in range(96, 70, -2):
        out = io.BytesIO()
        img.save(out, "JPEG", quality=quality)
        best = out.getvalue()
        if len(best) <= TARGET_BYTES * 1.05:
            break
    return best


def variant(jpeg: bytes, nonce: int) -> bytes:
    """The same photo with a different comment segment: another file (hash) with the same pixels."""
    comment = f"bench {nonce} {os.urandom(8).hex()}".encode()
    segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    return jpeg[:2] + segment + jpeg[2:]


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def reset_peak(pid: int) -> bool:
    """Reset the kernel's peak-RSS mark of ``pid`` (Linux >= 4.0); False when not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


class Sampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.005) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak = 0
        self.running = True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(self.every)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(workdir: Path, extra_env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    script = Path(sys.executable).parent / "heatcrew"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "backend.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEATCREW_")}
    env.update({"HEATCREW_VAR_DIR": str(workdir / "var"), "HEATCREW_LOG_LEVEL": "warning", **extra_env})
    log = (workdir / "server.log").open("w")
    process = subprocess.Popen(
        [*command, "demo", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited: {(workdir / 'server.log').read_text()}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    raise SystemExit("server did not start")


def server_pid(process: subprocess.Popen) -> int:
    """The process that serves (``heatcrew`` runs uvicorn in-process with one worker)."""
    return process.pid


def upload(base: str, token: str, data: bytes) -> tuple[float, int]:
    name = hashlib.sha256(data).hexdigest()
    with httpx.Client(base_url=base, timeout=300) as http:
        started = time.perf_counter()
        response = http.put(
            f"/api/v1/blobs/{name}",
            content=data,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"},
        )
        return time.perf_counter() - started, response.status_code


def figures(*, quick: bool = False, database_url: str | None = None) -> list[Figure]:
    """For ``python -m bench``: 20 concurrent 10 MB uploads, or 4 when quick."""
    return main(["-c", "4" if quick else "20", *(["--database-url", database_url] if database_url else [])])


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    args = parser.parse_args(argv)

    photo = ten_megabyte_jpeg()
    workdir = Path(tempfile.mkdtemp(prefix="heatcrew-upload-bench-"))
    env = {"HEATCREW_DATABASE_URL": args.database_url} if args.database_url else {}
    process, base = start_server(workdir, env)
    pid = server_pid(process)
    try:
        login = httpx.post(
            f"{base}/api/v1/auth/login",
            json={
                "username": "tech1",
                "password": "demo-password",
                "device": {"id": "bench-phone-0001", "platform": "android", "app_version": "1.0.0"},
            },
            timeout=30,
        )
        login.raise_for_status()
        token = login.json()["access_token"]
        nonce = 0
        for _ in range(2):  # warm-up: imports, thread pool, allocator
            nonce += 1
            _, status = upload(base, token, variant(photo, nonce))
            assert status == 201, status
        time.sleep(0.5)
        baseline = rss_kib(pid)
        hwm_reset = reset_peak(pid)
        print(f"server: pid {pid}, {os.cpu_count()} CPUs, database {args.database_url or 'SQLite (temp)'}")
        print(f"file: 4000x3000 JPEG, {len(photo) / 1e6:.2f} MB; {args.concurrency} concurrent uploads")
        print(f"server RSS before: {baseline / 1024:.1f} MiB")

        sampler = Sampler(pid)
        sampler.start()
        latencies: list[float] = []
        statuses: list[int] = []
        started = time.perf_counter()
        for round_no in range(args.rounds):
            files = []
            for _ in range(args.concurrency):
                nonce += 1
                files.append(variant(photo, nonce))
            barrier = threading.Barrier(args.concurrency)
            lock = threading.Lock()

            def phone(data: bytes, barrier: threading.Barrier = barrier, lock: threading.Lock = lock) -> None:
                barrier.wait()
                took, status = upload(base, token, data)
                with lock:
                    latencies.append(took)
                    statuses.append(status)

            threads = [threading.Thread(target=phone, args=(data,)) for data in files]
            round_started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            print(
                f"round {round_no + 1}: {time.perf_counter() - round_started:.2f} s, "
                f"RSS after {rss_kib(pid) / 1024:.1f} MiB"
            )
        wall = time.perf_counter() - started
        sampler.running = False
        sampler.join()
        hwm = rss_kib(pid, "VmHWM")
        peak = max(sampler.peak, hwm if hwm_reset else 0)

        total = args.concurrency * args.rounds
        print(f"statuses: {dict((s, statuses.count(s)) for s in sorted(set(statuses)))}")
        print(
            f"throughput: {total / wall:.2f} uploads/s, {total * len(photo) / wall / 1e6:.1f} MB/s "
            f"({total} uploads in {wall:.2f} s)"
        )
        print(
            f"latency s: p50 {percentile(latencies, 0.5):.2f}  p95 {percentile(latencies, 0.95):.2f}  "
            f"max {max(latencies):.2f}  mean {statistics.fmean(latencies):.2f}"
        )
        print(
            f"server peak RSS: {peak / 1024:.1f} MiB (sampled {sampler.peak / 1024:.1f}, "
            f"VmHWM {'%.1f' % (hwm / 1024) if hwm_reset else 'not resettable'})"
        )
        print(f"server peak RSS increase: {(peak - baseline) / 1024:.1f} MiB (target <= 100 MB)")
        return [
            Figure(
                "upload",
                f"server RSS, {args.concurrency} x 10 MB uploads at once",
                peak / 1024,
                "MiB",
                baseline / 1024,
                "idle server",
                "added <= 100 MB for 20",
                f"added {(peak - baseline) / 1024:.0f} MiB",
            ),
            Figure("upload", "throughput", total * len(photo) / wall / 1e6, "MB/s"),
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
