"""A push admits its caller in the batch's own transaction: one statement reads the session,
device and user beside the device's counter. A revoked device, a disabled account or an ended
session is refused (401, its stable code) with nothing applied, whether the phone has pushed
before or not."""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from sqlmodel import select

from backend.audit.models import AuditEvent
from backend.auth.models import Device, User
from backend.clock import ManualClock
from backend.context import AppContext
from backend.sync.models import SyncAction, SyncDevice
from backend.work_orders.models import WorkOrderEvent
from tests.api.helpers import assert_error, auth, counting, login
from tests.fixtures.field import new_order

__all__ = ()

pytestmark = pytest.mark.usefixtures("demo")


def _notes(device_id: str, order_id: uuid.UUID, first_seq: int, count: int = 2) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "device_id": device_id,
        "sent_at": now,
        "actions": [
            {
                "id": str(uuid.uuid4()),
                "seq": seq,
                "type": "work_order.note",
                "v": 1,
                "occurred_at": now,
                "payload": {"work_order_id": str(order_id), "text": f"第 {seq} 条备注"},
            }
            for seq in range(first_seq, first_seq + count)
        ],
    }


def _applied(ctx: AppContext, device_id: str) -> tuple[int, int]:
    """The device's counter and how many answers it has stored."""
    with ctx.db.session() as session:
        counter = session.exec(
            select(SyncDevice.last_applied_seq).where(SyncDevice.device_id == device_id)
        ).first()
        answers = len(session.exec(select(SyncAction.seq).where(SyncAction.device_id == device_id)).all())
    return counter or 0, answers


def _notes_on(ctx: AppContext, order_id: uuid.UUID) -> int:
    with ctx.db.session() as session:
        return len(
            session.exec(
                select(WorkOrderEvent.id).where(
                    WorkOrderEvent.order_id == order_id, WorkOrderEvent.type == "note"
                )
            ).all()
        )


def _revoke(client: TestClient, device_id: str) -> None:
    supervisor = login(client, "supervisor1")
    answer = client.post(
        f"/api/v1/devices/{device_id}/revoke", json={"reason": "lost"}, headers=auth(supervisor)
    )
    assert answer.status_code == 200, answer.text


def _disable(client: TestClient, username: str) -> str:
    admin = login(client, "admin")
    users = client.get("/api/v1/users", headers=auth(admin)).json()
    user_id = next(u["id"] for u in users if u["username"] == username)
    assert client.post(f"/api/v1/users/{user_id}/disable", headers=auth(admin)).status_code == 200
    return user_id


@pytest.mark.parametrize("pushed_before", [True, False], ids=["known device", "first push"])
@pytest.mark.parametrize("refusal", ["device_revoked", "user_disabled", "session_revoked"])
def test_a_caller_no_longer_admitted_has_nothing_applied(
    client: TestClient, ctx: AppContext, pushed_before: bool, refusal: str
) -> None:
    device = f"admit-{refusal[:6]}-{int(pushed_before)}"
    tokens = login(client, "tech1", device_id=device)
    order = new_order(ctx)
    if pushed_before:
        first = client.post("/api/v1/sync/push", json=_notes(device, order.id, 1), headers=auth(tokens))
        assert first.status_code == 200, first.text
        assert [r["status"] for r in first.json()["results"]] == ["applied", "applied"]
    before = _applied(ctx, device), _notes_on(ctx, order.id)
    user_id = None
    if refusal == "device_revoked":
        _revoke(client, device)
    elif refusal == "user_disabled":
        user_id = _disable(client, "tech1")
    else:
        assert client.post("/api/v1/auth/logout", headers=auth(tokens)).status_code in (200, 204)

    seq = 3 if pushed_before else 1
    answer = client.post("/api/v1/sync/push", json=_notes(device, order.id, seq), headers=auth(tokens))

    assert_error(answer, 401, refusal)
    assert (_applied(ctx, device), _notes_on(ctx, order.id)) == before
    if user_id is not None:
        client.post(f"/api/v1/users/{user_id}/enable", headers=auth(login(client, "admin")))


def test_a_token_for_another_device_is_refused_before_anything_is_read(client: TestClient) -> None:
    tokens = login(client, "tech1", device_id="admit-mine")
    answer = client.post(
        "/api/v1/sync/push", json=_notes("admit-someone-else", uuid.uuid4(), 1), headers=auth(tokens)
    )
    assert_error(answer, 403, "device_mismatch")


def test_a_batch_for_another_device_is_a_denial_in_the_audit_log(client: TestClient, ctx: AppContext) -> None:
    """A phone pushing under another device's id is refused like any other 403: recorded with who
    tried it (a stolen or confused token), and nothing of the batch applied."""
    tokens = login(client, "tech1", device_id="admit-thief")
    order = new_order(ctx)
    answer = client.post(
        "/api/v1/sync/push",
        json=_notes("admit-victim", order.id, 1),
        headers={**auth(tokens), "X-Request-ID": "req-push-mismatch"},
    )
    assert_error(answer, 403, "device_mismatch")
    assert _notes_on(ctx, order.id) == 0
    with ctx.db.session(readonly=True) as session:
        denied = session.exec(select(AuditEvent).where(AuditEvent.event == "access.denied")).all()
        tech1 = session.exec(select(User.id).where(User.username == "tech1")).one()
    assert [(d.actor_user_id, d.actor_device_id, d.request_id, d.detail["code"]) for d in denied] == [
        (tech1, "admit-thief", "req-push-mismatch", "device_mismatch")
    ]


def test_a_revoked_device_pushing_for_another_device_is_told_it_is_revoked(client: TestClient) -> None:
    tokens = login(client, "tech1", device_id="admit-lost")
    _revoke(client, "admit-lost")
    answer = client.post(
        "/api/v1/sync/push", json=_notes("admit-other", uuid.uuid4(), 1), headers=auth(tokens)
    )
    assert_error(answer, 401, "device_revoked")


def test_a_known_devices_push_admits_its_caller_in_the_counters_statement(
    client: TestClient, ctx: AppContext
) -> None:
    device = "admit-count-01"
    tokens = login(client, "tech1", device_id=device)
    order = new_order(ctx)
    assert (
        client.post("/api/v1/sync/push", json=_notes(device, order.id, 1), headers=auth(tokens)).status_code
        == 200
    )

    with counting(ctx) as seen:
        answer = client.post("/api/v1/sync/push", json=_notes(device, order.id, 3), headers=auth(tokens))

    assert answer.status_code == 200, answer.text
    assert [r["status"] for r in answer.json()["results"]] == ["applied", "applied"]
    reads_of_the_session = [s for s in seen if "auth_session" in s]
    assert len(reads_of_the_session) == 1
    assert "sync_device" in reads_of_the_session[0] and "sync_counter" in reads_of_the_session[0]
    work = [s for s in seen if not s.startswith("BEGIN")]  # SQLite's BEGIN IMMEDIATE
    assert work[0] is reads_of_the_session[0]
    # Earlier deliveries of the action ids are not looked for: the unique index finds a reused one.
    assert not [s for s in seen if s.lstrip().startswith("SELECT") and "FROM sync_action" in s]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_push_waiting_for_an_order_does_not_hold_up_the_phones_other_requests(
    client: TestClient, ctx: AppContext, clock: ManualClock, database_url: str
) -> None:
    """The device's last-seen time is not written under the batch's locks: while a push waits for
    an order another writer holds, the same phone's other requests are answered at once."""
    device = "admit-seen-busy"
    tokens = login(client, "tech1", device_id=device)
    order = new_order(ctx)
    first = client.post("/api/v1/sync/push", json=_notes(device, order.id, 1), headers=auth(tokens))
    assert first.status_code == 200, first.text
    clock.advance(minutes=2)  # the device's last-seen time is due a write
    holder = sa.create_engine(database_url)
    monitor = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with holder.connect() as held, monitor.connect() as watch, ThreadPoolExecutor(2) as pool:
            held.execute(sa.text("SELECT 1 FROM work_order WHERE id = :id FOR UPDATE"), {"id": order.id})
            push = pool.submit(
                client.post, "/api/v1/sync/push", json=_notes(device, order.id, 3), headers=auth(tokens)
            )
            waiting_for_lock(watch)
            status = pool.submit(client.get, "/api/v1/sync/status", headers=auth(tokens))
            try:
                answered = status.result(timeout=5)
            finally:
                held.rollback()
            assert answered.status_code == 200, answered.text
            assert answered.json()["last_applied_seq"] == 2
            pushed = push.result(timeout=30)
    finally:
        holder.dispose()
        monitor.dispose()
    assert pushed.status_code == 200, pushed.text
    assert [r["status"] for r in pushed.json()["results"]] == ["applied", "applied"]
    with ctx.db.session(readonly=True) as session:
        seen = session.exec(select(Device.last_seen_at).where(Device.id == device)).one()
    assert seen == clock.now()


def waiting_for_lock(watch: sa.Connection, *, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if watch.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
        ).scalar():
            return
        time.sleep(0.05)
    raise AssertionError("the push never waited for the order")
