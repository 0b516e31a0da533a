"""Two server processes on one PostgreSQL database and one bucket, phones alternating between them.

Every request of every phone goes to the other server than the one before: uploads (some cut off
mid-body and resumed with ``HEAD`` + ``PUT ?offset=``, on whichever server comes next), pushes
and pulls. At the end the servers' rows and the bucket are audited against the phones' ledgers:
every action applied exactly once, every photo's bytes and derived copies in the bucket under
their hashes, and a fresh pull from either server equal to what each phone built up by deltas.
"""

import os
import random
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.context import AppContext
from backend.storage.s3 import S3BlobStore
from mobile_contract.client import Offline
from tests.fixtures.field import new_order
from tests.fixtures.fleet import Phone, Switchboard, audit, differences, full_snapshot, noise_photo
from tests.fixtures.live_server import start_server, stop_server
from tests.fixtures.s3 import TEST_ACCESS_KEY_ID, TEST_REGION, TEST_SECRET_ACCESS_KEY

pytestmark = pytest.mark.usefixtures("demo")

SECRET = "two-servers-test-key-0123456789abcdef012345"
PHONES = (
    ("tech1", "north-phone"),
    ("tech1", "north-tablet"),
    ("tech2", "south-phone"),
    ("tech2", "south-tablet"),
)
ROUNDS = 4


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """PostgreSQL only: two servers on one SQLite file is not a deployment."""
    return postgres_url


def _moto_available() -> bool:
    return bool(os.environ.get("HEATCREW_TEST_S3_ENDPOINT")) or (
        (Path(sys.executable).parent / "moto_server").is_file() or shutil.which("moto_server") is not None
    )


@pytest.fixture
def bucket(request: pytest.FixtureRequest) -> str:
    if not _moto_available():
        pytest.skip("no moto_server and no HEATCREW_TEST_S3_ENDPOINT")
    return request.getfixturevalue("s3_bucket")


@pytest.fixture
def servers(
    database_url: str, bucket: str, moto_s3_endpoint: str, tmp_path: Path, ctx: AppContext
) -> Iterator[list[str]]:
    ctx.db.engine.dispose()
    started = []
    try:
        for name in ("a", "b"):
            env = {
                "HEATCREW_DATABASE_URL": database_url,
                "HEATCREW_VAR_DIR": str(tmp_path / f"server-{name}"),
                "HEATCREW_SECRET_KEY": SECRET,
                "HEATCREW_AUTO_MIGRATE": "false",
                "HEATCREW_LOG_LEVEL": "warning",
                "HEATCREW_LOGIN_MAX_ATTEMPTS_PER_ADDRESS": "1000",
                "HEATCREW_BLOB_BACKEND": "s3",
                "HEATCREW_S3_BUCKET": bucket,
                "HEATCREW_S3_ENDPOINT_URL": moto_s3_endpoint,
                "HEATCREW_S3_REGION": TEST_REGION,
                "HEATCREW_S3_ACCESS_KEY_ID": TEST_ACCESS_KEY_ID,
                "HEATCREW_S3_SECRET_ACCESS_KEY": TEST_SECRET_ACCESS_KEY,
            }
            started.append(start_server(tmp_path, ["serve"], env))
        yield [base for _, base in started]
    finally:
        for process, _ in started:
            stop_server(process)


def test_two_servers_one_database_one_bucket_lose_and_double_nothing(
    servers: list[str], bucket: str, moto_s3_endpoint: str, ctx: AppContext, tmp_path: Path
) -> None:
    started = time.monotonic()
    for username in ("tech1", "tech2"):
        for account in ("100101", "100102"):
            new_order(ctx, assignee=username, account=account)
    phones: list[Phone] = []
    for username, device in PHONES:
        network = Switchboard(servers)
        phone = Phone(network, tmp_path / f"{device}.sqlite", device_id=device)
        phone.network, phone.username = network, username
        phone.login(username, "demo-password")
        phone.pull()
        phones.append(phone)
    errors: list[BaseException] = []

    def work(phone: Phone, seed: int) -> None:
        rng = random.Random(seed)
        try:
            orders = sorted(phone.local("work_order"))
            assert orders, f"{phone.device_id} holds no order"
            for r in range(ROUNDS):
                order = orders[r % len(orders)]
                for n in range(3):
                    phone.enqueue(
                        "work_order.note", {"work_order_id": order, "text": f"{phone.device_id} {r}.{n}"}
                    )
                sha = phone.attach_file(noise_photo(rng))
                phone.enqueue("evidence.photo", {"work_order_id": order, "blob": sha, "purpose": "before"})
                if r % 2 == 0:  # this round's upload drops half-way; the next sync resumes it
                    phone.network.cut_next_upload_at = 0.5
                for _attempt in range(5):
                    try:
                        phone.sync()
                        break
                    except Offline:  # after the cut: sync again, as a phone does
                        time.sleep(0.1)
                else:
                    raise AssertionError(f"{phone.device_id} could not sync")
        except BaseException as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=work, args=(p, i)) for i, p in enumerate(phones)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
        for phone in phones:
            phone.sync()  # the last word: every answer recorded, every delta pulled

        store = S3BlobStore(
            bucket,
            endpoint_url=moto_s3_endpoint,
            region=TEST_REGION,
            access_key_id=TEST_ACCESS_KEY_ID,
            secret_access_key=TEST_SECRET_ACCESS_KEY,
        )
        report = audit(ctx, phones, store)
        assert not report.problems, "\n".join(report.problems)
        assert report.actions == len(PHONES) * ROUNDS * 4
        assert report.photos == len(PHONES) * ROUNDS
        assert report.blobs_checked >= 3 * report.photos

        for phone in phones:
            cuts = phone.network.cuts
            resumed = phone.network.resumed_puts()
            assert cuts == ROUNDS // 2
            assert len(resumed) >= 1, f"{phone.device_id} never resumed an upload: {phone.network.requests}"
            assert {s for s, _, _ in phone.network.requests} == {0, 1}
            token = phone._get("access_token")
            assert token
            on_a = full_snapshot(phone.network.clients[0], token)
            on_b = full_snapshot(phone.network.clients[1], token)
            assert on_a == on_b
            by_deltas = {
                (entity, key): data
                for entity in {e for e, _ in on_a}
                for key, data in phone.local(entity).items()
            }
            differing = differences(by_deltas, on_a)
            assert not differing, f"{phone.device_id}: the deltas built another state: {differing}"
    except Exception as exc:  # the servers' own account of what went wrong
        logs = "\n".join(log.read_text()[-3000:] for log in sorted(tmp_path.glob("server-*.log")))
        raise AssertionError(f"{exc}\n--- server logs ---\n{logs}") from exc
    finally:
        for phone in phones:
            phone.network.close()
            phone.close()
    took = time.monotonic() - started
    print(f"two servers: {report.actions} actions, {report.photos} photos, {took:.1f} s")
