"""One phone's queue sent several times at once (a flaky network resends while the first push is
still running): every action is applied exactly once and the counter ends at the last seq, on a
device's first push and later ones, with refusals in the batch (careful runs) or without."""

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlmodel import select

from backend.context import AppContext
from backend.sync.models import SyncAction, SyncDevice
from backend.work_orders.models import WorkOrderEvent
from tests.api.helpers import auth, login
from tests.fixtures.field import new_order

__all__ = ()

pytestmark = pytest.mark.usefixtures("demo")

SENDS = 4


def _batch(device_id: str, actions: list[tuple[int, uuid.UUID, uuid.UUID]]) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "device_id": device_id,
        "sent_at": now,
        "actions": [
            {
                "id": str(action_id),
                "seq": seq,
                "type": "work_order.note",
                "v": 1,
                "occurred_at": now,
                "payload": {"work_order_id": str(order_id), "text": f"note {seq}"},
            }
            for seq, action_id, order_id in actions
        ],
    }


def _phone(
    client: TestClient, ctx: AppContext, device: str, *, pushed_before: bool
) -> tuple[dict[str, Any], Any, int]:
    """A logged-in phone, an order of its own and the seq its queue starts at: 2 once it has pushed
    one note (a known device), else 1 (its first push)."""
    tokens = login(client, "tech1", device_id=device)
    order = new_order(ctx)
    if not pushed_before:
        return tokens, order, 1
    first = client.post(
        "/api/v1/sync/push", json=_batch(device, [(1, uuid.uuid4(), order.id)]), headers=auth(tokens)
    )
    assert first.status_code == 200, first.text
    return tokens, order, 2


def _state(ctx: AppContext, device_id: str, order_id: uuid.UUID) -> tuple[int, int, int]:
    with ctx.db.session(readonly=True) as session:
        counter = session.exec(
            select(SyncDevice.last_applied_seq).where(SyncDevice.device_id == device_id)
        ).first()
        answers = len(session.exec(select(SyncAction.seq).where(SyncAction.device_id == device_id)).all())
        notes = len(
            session.exec(
                select(WorkOrderEvent.id).where(
                    WorkOrderEvent.order_id == order_id, WorkOrderEvent.type == "note"
                )
            ).all()
        )
    return counter or 0, answers, notes


@pytest.mark.parametrize("pushed_before", [False, True], ids=["first push", "known device"])
@pytest.mark.parametrize("refused", [False, True], ids=["all applied", "one refused"])
def test_one_queue_sent_four_times_at_once_is_applied_once(
    client: TestClient, ctx: AppContext, pushed_before: bool, refused: bool
) -> None:
    device = f"race-phone-{int(pushed_before)}{int(refused)}"
    tokens, order, start = _phone(client, ctx, device, pushed_before=pushed_before)
    missing = uuid.uuid4()  # an order nobody has: its note is refused, the queue goes on
    actions = [
        (seq, uuid.uuid4(), missing if refused and seq == start + 2 else order.id)
        for seq in range(start, start + 6)
    ]
    body = _batch(device, actions)
    with ThreadPoolExecutor(SENDS) as pool:
        answers = list(
            pool.map(
                lambda _: client.post("/api/v1/sync/push", json=body, headers=auth(tokens)), range(SENDS)
            )
        )

    assert [a.status_code for a in answers] == [200] * SENDS, [a.text for a in answers]
    last = start + 5
    assert all(a.json()["last_applied_seq"] == last for a in answers)
    firsts = [
        [r["status"] for r in a.json()["results"]]
        for a in answers
        if any(r["status"] in ("applied", "rejected") for r in a.json()["results"])
    ]
    assert len(firsts) == 1, firsts  # one push applied the queue; the others were told it was done
    applied_notes = 6 - int(refused) + int(pushed_before)
    assert _state(ctx, device, order.id) == (last, last, applied_notes)


@pytest.mark.parametrize("pushed_before", [False, True], ids=["first push", "known device"])
def test_a_batch_whose_every_action_is_refused_moves_the_queue_on_once(
    client: TestClient, ctx: AppContext, pushed_before: bool
) -> None:
    device = f"race-refused-{int(pushed_before)}"
    tokens, order, start = _phone(client, ctx, device, pushed_before=pushed_before)
    # Four actions, each refused (an order nobody has): every one costs a careful run.
    body = _batch(device, [(seq, uuid.uuid4(), uuid.uuid4()) for seq in range(start, start + 4)])
    answer = client.post("/api/v1/sync/push", json=body, headers=auth(tokens))
    assert answer.status_code == 200, answer.text
    assert [r["status"] for r in answer.json()["results"]] == ["rejected"] * 4
    assert answer.json()["last_applied_seq"] == start + 3
    again = client.post("/api/v1/sync/push", json=body, headers=auth(tokens))
    assert [(r["status"], r["original_status"]) for r in again.json()["results"]] == [
        ("duplicate", "rejected")
    ] * 4
    assert _state(ctx, device, order.id) == (start + 3, start + 3, int(pushed_before))
