"""A ``heatcrew serve --workers 2`` on PostgreSQL killed (SIGKILL, every process) at random moments.

Several phones push notes and upload photos the whole time; the server is killed while they do,
then started again on the same port, a few times over. The kill points come from a seeded random
generator (the seed is printed; ``HEATCREW_TEST_KILL_SEED`` replays one). What the kills hit is
whatever was in flight: a push batch, an upload's body, a blob being moved into place, a commit.
Afterwards, against the phones' ledgers: every action applied exactly once, every photo intact with
its derived copies, every queue drained with the server's counter at the phone's last seq, and no
half-written upload visible as a blob (every file in the blob directory hashes to its name).
"""

import hashlib
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backend.context import AppContext
from backend.storage.base import is_sha256
from backend.storage.local import LocalBlobStore
from mobile_contract.client import Offline
from tests.fixtures.field import new_order
from tests.fixtures.fleet import Phone, Switchboard, audit, noise_photo
from tests.fixtures.live_server import free_port, start_server, stop_server

pytestmark = pytest.mark.usefixtures("demo")

SECRET = "kill-recovery-test-key-0123456789abcdef0123"
PHONES = (
    ("tech1", "east-phone"),
    ("tech1", "east-tablet"),
    ("tech2", "west-phone"),
    ("tech2", "west-tablet"),
)
KILLS = 3
MAX_STEPS = 200  # per phone at most (each a few notes and a photo); the kills end the run first


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """PostgreSQL only: the deployment that runs several workers."""
    return postgres_url


@pytest.fixture
def seed() -> int:
    chosen = int(os.environ.get("HEATCREW_TEST_KILL_SEED") or random.SystemRandom().randrange(1 << 32))
    print(f"kill seed: {chosen} (replay with HEATCREW_TEST_KILL_SEED={chosen})")
    return chosen


class Server:
    """One ``heatcrew serve --workers 2``, always on the same port, killed and started again."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir, self.env, self.port = workdir, env, free_port()
        self.process = None
        self.kills = 0
        self.starts: list[float] = []

    def start(self) -> None:
        began = time.monotonic()
        self.process, self.base = start_server(
            self.workdir, ["serve", "--workers", "2"], self.env, port=self.port
        )
        self.starts.append(time.monotonic() - began)

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)  # the supervisor and both workers, no goodbyes
        self.process.wait(timeout=15)
        self.kills += 1

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_server(self.process)


@pytest.fixture
def server(database_url: str, tmp_path: Path, ctx: AppContext) -> Iterator[Server]:
    ctx.db.engine.dispose()
    env = {
        "HEATCREW_DATABASE_URL": database_url,
        "HEATCREW_VAR_DIR": str(tmp_path / "server-var"),
        "HEATCREW_SECRET_KEY": SECRET,
        "HEATCREW_AUTO_MIGRATE": "false",
        "HEATCREW_LOG_LEVEL": "warning",
        "HEATCREW_LOGIN_MAX_ATTEMPTS_PER_ADDRESS": "1000",
    }
    running = Server(tmp_path, env)
    running.start()
    yield running
    running.stop()


def test_a_server_killed_at_random_points_loses_and_doubles_nothing(
    server: Server, ctx: AppContext, tmp_path: Path, seed: int
) -> None:
    started = time.monotonic()
    rng = random.Random(seed)
    for username in ("tech1", "tech2"):
        for account in ("100101", "100102"):
            new_order(ctx, assignee=username, account=account)
    phones: list[Phone] = []
    for username, device in PHONES:
        network = Switchboard([server.base], timeout=10)
        phone = Phone(network, tmp_path / f"{device}.sqlite", device_id=device)
        phone.network, phone.username = network, username
        phone.login(username, "demo-password")
        phone.pull()
        phones.append(phone)
    stop = threading.Event()
    errors: list[BaseException] = []
    offline = {p.device_id: 0 for p in phones}
    cut_off = {p.device_id: 0 for p in phones}  # a request in flight when the server died
    pushed = threading.Semaphore(0)  # one release per push answered

    def work(phone: Phone, phone_seed: int) -> None:
        own = random.Random(phone_seed)
        try:
            orders = sorted(phone.local("work_order"))
            for step in range(MAX_STEPS):
                if stop.is_set():
                    break
                order = orders[step % len(orders)]
                for n in range(own.randint(1, 6)):
                    phone.enqueue(
                        "work_order.note", {"work_order_id": order, "text": f"{phone.device_id} {step}.{n}"}
                    )
                sha = phone.attach_file(noise_photo(own, (own.randint(300, 900), own.randint(200, 700))))
                phone.enqueue("evidence.photo", {"work_order_id": order, "blob": sha, "purpose": "before"})
                while not stop.is_set():  # a dead server: the same queue again, a moment later
                    try:
                        phone.push()
                        pushed.release()
                        break
                    except Offline as exc:
                        offline[phone.device_id] += 1
                        if not isinstance(exc.__cause__, httpx.ConnectError):
                            cut_off[phone.device_id] += 1
                        time.sleep(0.3)
                time.sleep(own.uniform(0, 0.2))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(p, rng.randrange(1 << 32))) for p in phones]
    try:
        for t in threads:
            t.start()
        for _ in range(KILLS):
            # Once the phones are at it again (a few pushes answered), at a random moment.
            for _ in range(rng.randint(1, 8)):
                assert pushed.acquire(timeout=30), "the phones stopped pushing"
            time.sleep(rng.uniform(0.0, 0.4))
            server.kill()
            time.sleep(rng.uniform(0.0, 0.5))
            server.start()
        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert not errors, errors
        for phone in phones:  # back on a good connection: every queue drains
            deadline = time.monotonic() + 30
            while phone.pending() or phone.last_applied_seq < _last_seq(phone):
                try:
                    phone.push()
                except Offline:
                    time.sleep(0.2)
                assert time.monotonic() < deadline, f"{phone.device_id} is stuck: {phone.pending()[:3]}"

        blob_dir = tmp_path / "server-var" / "blobs"
        report = audit(ctx, phones, LocalBlobStore(blob_dir))
        assert not report.problems, "\n".join(report.problems)
        stored = _blob_files(blob_dir)
        assert stored, "no blob was stored"
        torn = [p for p in stored if hashlib.sha256(p.read_bytes()).hexdigest() != p.name]
        assert not torn, f"half-written blobs: {torn}"
        assert server.kills == KILLS
        assert sum(offline.values()) > 0, "no push ever met a dead server: the kills hit nothing"
    except BaseException as exc:
        logs = "\n".join(log.read_text()[-3000:] for log in sorted(tmp_path.glob("server-*.log")))
        raise AssertionError(f"seed {seed}: {exc}\n--- server logs ---\n{logs}") from exc
    finally:
        stop.set()
        for phone in phones:
            phone.network.close()
            phone.close()
    print(
        f"seed {seed}: {KILLS} kills, {report.actions} actions, {report.photos} photos,"
        f" {sum(offline.values())} pushes met a dead server, {sum(cut_off.values())} of them"
        f" cut off mid-request, {time.monotonic() - started:.1f} s"
        f" (starts: {', '.join(f'{t:.1f}' for t in server.starts)} s)"
    )


def _last_seq(phone: Phone) -> int:
    row = phone.db.execute("SELECT max(seq) FROM outbox").fetchone()
    return int(row[0] or 0)


def _blob_files(root: Path) -> list[Path]:
    """Every file where blobs live (``ab/cd/<sha256>``), leaving out the scratch and upload areas."""
    found = []
    for path in root.rglob("*"):
        if path.is_file() and path.relative_to(root).parts[0] not in ("tmp", "uploads"):
            assert is_sha256(path.name), f"a stray file among the blobs: {path}"
            found.append(path)
    return found
