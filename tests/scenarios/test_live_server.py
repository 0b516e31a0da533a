"""Against a real server in its own process: several workers racing, and a server killed mid-batch."""

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from sqlmodel import col, func, select

from backend.context import AppContext
from backend.sync.models import SyncAction, SyncDevice
from backend.work_orders.models import WorkOrder, WorkOrderEvent
from mobile_contract.client import Offline, OutboxClient
from tests.fixtures.field import new_order, principal
from tests.fixtures.live_server import start_server, stop_server

pytestmark = pytest.mark.usefixtures("demo")

SECRET = "live-server-test-key-0123456789abcdef"


@pytest.fixture
def server_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "HEATCREW_DATABASE_URL": database_url,
        "HEATCREW_VAR_DIR": str(tmp_path / "server-var"),
        "HEATCREW_SECRET_KEY": SECRET,
        "HEATCREW_AUTO_MIGRATE": "false",
        "HEATCREW_LOG_LEVEL": "warning",
        "HEATCREW_LOGIN_MAX_ATTEMPTS_PER_ADDRESS": "1000",
    }


@pytest.fixture
def workers(server_env: dict[str, str], tmp_path: Path, ctx: AppContext) -> Iterator[str]:
    ctx.db.engine.dispose()
    process, base = start_server(tmp_path, ["serve", "--workers", "3"], server_env)
    yield base
    stop_server(process)


def phone(base: str, tmp_path: Path, username: str, device: str) -> OutboxClient:
    client = OutboxClient(
        httpx.Client(base_url=base, timeout=60), tmp_path / f"{device}.sqlite", device_id=device
    )
    client.login(username, "demo-password")
    return client


def test_two_devices_and_a_dispatcher_race_on_several_workers(
    workers: str, ctx: AppContext, tmp_path: Path
) -> None:
    order = new_order(ctx, assignee="tech1", account="100101")
    order_id = str(order.id)
    devices = [
        phone(workers, tmp_path, "tech1", "race-phone"),
        phone(workers, tmp_path, "tech1", "race-tablet"),
    ]
    tech_ids = [str(principal(ctx, "tech1").user_id), str(principal(ctx, "tech2").user_id)]
    rounds, notes_per_round = 8, 5
    errors: list[BaseException] = []

    def work(device: OutboxClient) -> None:
        try:
            for r in range(rounds):
                device.enqueue("work_order.accept", {"work_order_id": order_id})
                for n in range(notes_per_round):
                    device.enqueue(
                        "work_order.note", {"work_order_id": order_id, "text": f"{device.device_id} {r}.{n}"}
                    )
                device.push()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    def dispatch() -> None:
        try:
            http = httpx.Client(base_url=workers, timeout=60)
            token = http.post(
                "/api/v1/auth/login",
                json={
                    "username": "dispatcher1",
                    "password": "demo-password",
                    "device": {"id": "console-race-1", "platform": "web", "app_version": "1"},
                },
            ).json()["access_token"]
            for i in range(rounds * 2):
                http.post(
                    f"/api/v1/work-orders/{order_id}/assign",
                    json={"user_id": tech_ids[i % 2]},
                    headers={"Authorization": f"Bearer {token}"},
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(d,)) for d in devices] + [
        threading.Thread(target=dispatch)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    sent = rounds * (1 + notes_per_round)
    with ctx.db.session(readonly=True) as session:
        for device in devices:
            assert session.get(SyncDevice, device.device_id).last_applied_seq == sent
            answered = session.exec(
                select(func.count()).select_from(SyncAction).where(SyncAction.device_id == device.device_id)
            ).one()
            assert answered == sent
        notes = session.exec(
            select(func.count())
            .select_from(WorkOrderEvent)
            .where(WorkOrderEvent.order_id == order.id, WorkOrderEvent.type == "note")
        ).one()
        all_events = session.exec(
            select(func.count()).select_from(WorkOrderEvent).where(WorkOrderEvent.order_id == order.id)
        ).one()
        final = session.get(WorkOrder, order.id)
    assert notes == 2 * rounds * notes_per_round  # facts are never refused, never doubled
    # Every change bumps the version exactly once: a lost update would leave it behind the events.
    assert final.version == 1 + all_events
    for device in devices:
        assert device.pending() == []
        device.close()


def test_pull_racing_writes_converges(workers: str, ctx: AppContext, tmp_path: Path) -> None:
    device = phone(workers, tmp_path, "tech2", "racing-puller")
    stop = threading.Event()
    pulls = {"n": 0}
    errors: list[BaseException] = []

    def keep_pulling() -> None:
        try:
            while not stop.is_set():
                device.pull()
                pulls["n"] += 1
        except BaseException as exc:
            errors.append(exc)

    puller = threading.Thread(target=keep_pulling)
    puller.start()
    created = []
    for i in range(12):
        created.append(new_order(ctx, assignee="tech2", account="200101" if i % 2 else "200202"))
        time.sleep(0.01)
    with ctx.db.session() as session:  # and some leave the scope again
        for order in created[:4]:
            row = session.get(WorkOrder, order.id)
            row.assignee_id = principal(ctx, "tech1").user_id
            row.version += 1
            session.add(row)
            from backend.sync import changes

            changes.touch(
                session,
                company_id=row.company_id,
                entity="work_order",
                entity_id=row.id,
                users=[principal(ctx, "tech2").user_id],
            )
    stop.set()
    puller.join(timeout=120)
    assert not errors, errors
    device.pull()
    with ctx.db.session(readonly=True) as session:
        truth = {
            str(i)
            for i in session.exec(
                select(WorkOrder.id).where(
                    WorkOrder.assignee_id == principal(ctx, "tech2").user_id,
                    col(WorkOrder.state).not_in(["closed", "cancelled"]),
                )
            )
        }
    assert set(device.local("work_order")) == truth
    assert pulls["n"] > 1
    device.close()


def test_a_server_killed_mid_batch_applies_everything_exactly_once(
    server_env: dict[str, str], ctx: AppContext, tmp_path: Path
) -> None:
    order = new_order(ctx, assignee="tech1", account="100102")
    ctx.db.engine.dispose()
    process, base = start_server(tmp_path, ["serve"], server_env)
    device = phone(base, tmp_path, "tech1", "killed-server-phone")
    total = 1500
    for i in range(total):
        device.enqueue("work_order.note", {"work_order_id": str(order.id), "text": f"note {i}"})
    device.batch_size = 500
    outcome: dict[str, object] = {}

    def push() -> None:
        try:
            outcome["report"] = device.push()
        except Offline as exc:
            outcome["offline"] = exc

    pushing = threading.Thread(target=push)
    pushing.start()
    time.sleep(0.6)  # somewhere inside the three batches
    stop_server(process, kill=True)
    pushing.join(timeout=60)
    with ctx.db.session(readonly=True) as session:
        applied_before = session.exec(
            select(func.count())
            .select_from(WorkOrderEvent)
            .where(WorkOrderEvent.order_id == order.id, WorkOrderEvent.type == "note")
        ).one()
    port = int(base.rsplit(":", 1)[1])
    process, base = start_server(tmp_path, ["serve"], server_env, port=port)
    try:
        device.push()
    finally:
        stop_server(process)
    with ctx.db.session(readonly=True) as session:
        texts = session.exec(
            select(WorkOrderEvent.data).where(
                WorkOrderEvent.order_id == order.id, WorkOrderEvent.type == "note"
            )
        ).all()
    assert sorted(t["text"] for t in texts) == sorted(f"note {i}" for i in range(total))
    assert device.pending() == []
    assert applied_before % 500 == 0 or applied_before == 0  # a batch lands whole or not at all
    device.close()


def test_an_expired_token_on_an_upload_head_is_refreshed(
    server_env: dict[str, str], ctx: AppContext, tmp_path: Path
) -> None:
    """A real server sends no body with a HEAD's 401: the phone cannot read ``token_expired``."""
    order = new_order(ctx, assignee="tech1", account="100102")
    ctx.db.engine.dispose()
    process, base = start_server(tmp_path, ["serve"], {**server_env, "HEATCREW_ACCESS_TOKEN_TTL": "2"})
    try:
        device = phone(base, tmp_path, "tech1", "head-refresh-phone")
        sha = device.attach_file(_small_jpeg())
        photo_id, _ = device.enqueue(
            "evidence.photo", {"work_order_id": str(order.id), "blob": sha, "purpose": "before"}
        )
        time.sleep(3)  # the access token has expired; the first request of the sync is the HEAD
        head = httpx.head(f"{base}/api/v1/blobs/{sha}", headers={"Authorization": "Bearer expired"})
        assert head.status_code == 401 and head.content == b""
        device.push()
        assert device.pending() == []
        assert device.outcome(photo_id)["status"] == "applied"
    finally:
        stop_server(process)


def _small_jpeg() -> bytes:
    out = io.BytesIO()
    Image.effect_noise((320, 240), 50).convert("RGB").save(out, "JPEG", quality=85)
    return out.getvalue()
