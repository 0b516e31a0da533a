"""The action id is the phone's idempotency key: an id sent again is never applied again.

A phone that re-queues an action after a crash sends the same id under a new seq. The same
action answers ``duplicate`` with its first answer; anything else under that id is a permanent
``rejected / action_id_reused``. Either way the seq is used up, so the queue moves on.
"""

import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from backend.context import AppContext
from backend.sync.models import SyncAction
from backend.work_orders.models import WorkOrderEvent
from tests.api.helpers import auth, login
from tests.fixtures.field import new_order

pytestmark = pytest.mark.usefixtures("demo")


class Phone:
    def __init__(self, client: TestClient, ctx: AppContext) -> None:
        self.client = client
        self.ctx = ctx
        self.device = f"ids-{uuid.uuid4().hex[:8]}"
        self.tokens = login(client, "tech1", device_id=self.device)

    def action(self, seq: int, text: str, *, action_id: str | None = None, order_id: str) -> dict[str, Any]:
        return {
            "id": action_id or str(uuid.uuid4()),
            "seq": seq,
            "type": "work_order.note",
            "v": 1,
            "occurred_at": (self.ctx.clock.now() - timedelta(minutes=3)).isoformat(),
            "payload": {"work_order_id": order_id, "text": text},
        }

    def push(self, *actions: dict[str, Any]) -> dict[str, Any]:
        body = {
            "device_id": self.device,
            "sent_at": self.ctx.clock.now().isoformat(),
            "actions": list(actions),
        }
        response = self.client.post("/api/v1/sync/push", json=body, headers=auth(self.tokens))
        assert response.status_code == 200, response.text
        return response.json()


def notes(ctx: AppContext, text: str) -> int:
    with ctx.db.session(readonly=True) as session:
        return len(
            session.exec(
                select(WorkOrderEvent.id).where(
                    WorkOrderEvent.type == "note", col(WorkOrderEvent.data)["text"].as_string() == text
                )
            ).all()
        )


def statuses(answer: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(r["status"], r.get("code") or r.get("original_status")) for r in answer["results"]]


@pytest.fixture
def order_id(ctx: AppContext) -> str:
    return str(new_order(ctx).id)


def test_one_id_sent_four_times_is_one_note(client: TestClient, ctx: AppContext, order_id: str) -> None:
    """The case that was found: one id under four seqs, in one batch and in later ones."""
    phone = Phone(client, ctx)
    note = phone.action(1, "阀门已关", order_id=order_id)
    again = [{**note, "seq": seq} for seq in (2, 3, 4)]
    first = phone.push(note, again[0])
    assert statuses(first) == [("applied", None), ("duplicate", "applied")]
    later = phone.push(again[1], again[2])
    assert later["last_applied_seq"] == 4
    assert statuses(later) == [("duplicate", "applied"), ("duplicate", "applied")]
    assert notes(ctx, "阀门已关") == 1
    # The queue goes on after them.
    after = phone.push(phone.action(5, "继续", order_id=order_id))
    assert statuses(after) == [("applied", None)]


def test_other_content_under_a_used_id_is_refused_for_good(
    client: TestClient, ctx: AppContext, order_id: str
) -> None:
    phone = Phone(client, ctx)
    note = phone.action(1, "第一条", order_id=order_id)
    phone.push(note)
    forged = phone.action(2, "另一条", action_id=note["id"], order_id=order_id)
    answer = phone.push(forged)
    assert answer["last_applied_seq"] == 2, "the seq is used up: the queue is not blocked"
    (result,) = answer["results"]
    assert (result["status"], result["code"]) == ("rejected", "action_id_reused")
    assert not result.get("retryable"), "permanent: the phone must not send it again"
    assert notes(ctx, "另一条") == 0
    # Resent after a lost answer: the same refusal, still nothing applied.
    assert statuses(phone.push(forged)) == [("rejected", "action_id_reused")]
    assert notes(ctx, "另一条") == 0 and notes(ctx, "第一条") == 1


def test_a_used_id_in_a_resent_batch_answers_as_the_first_time(
    client: TestClient, ctx: AppContext, order_id: str
) -> None:
    """The answer to a batch holding a reused id is lost; the resend gets the same answers."""
    phone = Phone(client, ctx)
    note = phone.action(1, "一次", order_id=order_id)
    batch = [note, {**note, "seq": 2}, phone.action(3, "二次", order_id=order_id)]
    first = phone.push(*batch)
    resent = phone.push(*batch)
    assert statuses(first) == [("applied", None), ("duplicate", "applied"), ("applied", None)]
    assert statuses(resent) == [("duplicate", "applied"), ("duplicate", "applied"), ("duplicate", "applied")]
    assert (notes(ctx, "一次"), notes(ctx, "二次")) == (1, 1)


def test_a_refused_first_delivery_is_the_answer_to_the_second(client: TestClient, ctx: AppContext) -> None:
    phone = Phone(client, ctx)
    foreign = str(new_order(ctx, assignee="tech2", account="200101").id)
    note = phone.action(1, "不是我的", order_id=foreign)
    answer = phone.push(note, {**note, "seq": 2})
    assert [(r["status"], r.get("code")) for r in answer["results"]] == [
        ("rejected", "not_found"),
        ("duplicate", "not_found"),
    ]
    assert answer["results"][1]["original_status"] == "rejected"


def test_the_database_holds_one_answer_per_action_id_and_device(ctx: AppContext, client: TestClient) -> None:
    phone = Phone(client, ctx)
    order_id = str(new_order(ctx).id)
    note = phone.action(1, "一条", order_id=order_id)
    phone.push(note)
    with ctx.db.engine.connect() as conn:
        row = conn.execute(sa.select(SyncAction.__table__).where(SyncAction.device_id == phone.device)).one()
        with pytest.raises(IntegrityError):
            conn.execute(sa.insert(SyncAction.__table__).values({**row._mapping, "seq": 99}))
        conn.rollback()
    # Ids are each phone's own: another device's action under the same id is its own action.
    tablet = Phone(client, ctx)
    answer = tablet.push({**note, "payload": {"work_order_id": order_id, "text": "平板上的一条"}})
    assert statuses(answer) == [("applied", None)]


def test_a_seq_used_up_by_a_repeated_id_refuses_another_action(
    client: TestClient, ctx: AppContext, order_id: str
) -> None:
    """Found by review: a new action sent under a seq that a repeated id had used up was answered
    "duplicate" without being applied, so the phone took it for done and the work was lost."""
    phone = Phone(client, ctx)
    note = phone.action(1, "第一条", order_id=order_id)
    phone.push(note, {**note, "seq": 2})
    answer = phone.push(phone.action(2, "从未应用", order_id=order_id))
    assert statuses(answer) == [("rejected", "seq_reused")]
    assert notes(ctx, "从未应用") == 0


def test_a_used_id_is_refused_even_when_the_new_content_names_a_file_not_uploaded(
    client: TestClient, ctx: AppContext, order_id: str
) -> None:
    """Found by review: a batch's first run does not read earlier deliveries (the index finds a
    reused id at the commit), but an action waiting for a file writes no answer to collide: a photo
    under a used id was told to wait for an upload instead of being refused for good."""
    phone = Phone(client, ctx)
    note = phone.action(1, "先写的备注", order_id=order_id)
    phone.push(note)
    photo = {
        **note,
        "seq": 2,
        "type": "evidence.photo",
        "payload": {"work_order_id": order_id, "blob": "ab" * 32, "purpose": "before"},
    }
    answer = phone.push(photo, phone.action(3, "之后", order_id=order_id))
    assert statuses(answer) == [("rejected", "action_id_reused"), ("applied", None)]
    assert answer["last_applied_seq"] == 3
    # The same photo action, resent as the first one was: the same refusal.
    assert statuses(phone.push({**photo, "seq": 4})) == [("rejected", "action_id_reused")]
