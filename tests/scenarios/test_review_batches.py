"""Review entry settled at commit: a batch of actions puts an order in the queue exactly as the same
actions pushed one by one do, whatever else the batch holds."""

import json
import logging
import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from backend.context import AppContext
from tests.api.helpers import auth, login
from tests.fixtures.pushing import Phone
from tests.scenarios.test_action_catalogue import started

pytestmark = pytest.mark.usefixtures("demo")

QUIET = {"always_kinds": [], "flags": [], "sample_percent": 0, "own_team_only": False}


def set_policy(client: TestClient, **changes: Any) -> None:
    response = client.put(
        "/api/v1/review/policy", json={**QUIET, **changes}, headers=auth(login(client, "supervisor1"))
    )
    assert response.status_code == 200, response.text


def push(
    client: TestClient,
    ctx: AppContext,
    phone: Phone,
    actions: list[tuple[str, int, dict]],
    *,
    clock_behind: timedelta = timedelta(0),
) -> list:
    """One push of these actions, the phone's next seqs; the answers' (status, code). The phone's
    clock may be ``clock_behind`` the server's."""
    now = ctx.clock.now() - clock_behind
    envelopes = []
    for type_, v, payload in actions:
        phone.seq += 1
        envelopes.append(
            {
                "id": str(uuid.uuid4()),
                "seq": phone.seq,
                "type": type_,
                "v": v,
                "occurred_at": now.isoformat(),
                "payload": payload,
            }
        )
    batch = {"device_id": phone.device, "sent_at": now.isoformat(), "actions": envelopes}
    response = client.post("/api/v1/sync/push", json=batch, headers=auth(phone.tokens))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["last_applied_seq"] == phone.seq, body
    return [(r["status"], r.get("code")) for r in body["results"]]


def queue_entry(ctx: AppContext, order_id: str) -> list[tuple[str, list[str], list[str]]]:
    """The order's review items: status, flags, and the flags' own rows."""
    with ctx.db.engine.connect() as conn:
        items = conn.execute(
            sa.text("SELECT id, status, flags FROM review_item WHERE order_id = :o"),
            {"o": uuid.UUID(order_id) if ctx.db.dialect == "postgresql" else uuid.UUID(order_id).hex},
        ).all()
        found = []
        for item_id, status, flags in items:
            rows = conn.execute(
                sa.text("SELECT flag FROM review_item_flag WHERE item_id = :i ORDER BY flag"), {"i": item_id}
            ).scalars()
            found.append((status, json.loads(flags) if isinstance(flags, str) else flags, list(rows)))
        return found


@pytest.mark.parametrize("batched", [False, True], ids=["one-by-one", "one-batch"])
def test_photos_taken_after_a_completion_do_not_undo_its_photo_missing(
    client: TestClient, ctx: AppContext, batched: bool
) -> None:
    """Completed "not fixed" without the repair's photos, which the phone sends after: the order
    enters review as photo_missing, pushed in one batch as when each action went alone."""
    set_policy(client, flags=["photo_missing"])
    phone = Phone(client, ctx, "tech1")
    order_id = started(ctx)
    actions = [
        ("work_order.complete", 2, {"work_order_id": order_id, "result": "not_fixed", "satisfaction": 4}),
        ("evidence.photo", 1, {"work_order_id": order_id, "blob": phone.upload_photo(), "purpose": "before"}),
        ("evidence.photo", 1, {"work_order_id": order_id, "blob": phone.upload_photo(), "purpose": "after"}),
    ]
    if batched:
        assert push(client, ctx, phone, actions) == [("applied", None)] * 3
    else:
        for action in actions:
            assert push(client, ctx, phone, [action]) == [("applied", None)]
    assert queue_entry(ctx, order_id) == [("pending", ["photo_missing"], ["photo_missing"])]


def test_kept_action_scopes_leave_the_commit_work_to_the_commit(client: TestClient, ctx: AppContext) -> None:
    """Three refusals put every later action of the batch in its own savepoint. A savepoint kept is
    not a commit: the change log is written once, at the real commit, and the completion among the
    kept actions still enters review once."""
    set_policy(client, flags=["photo_missing"])
    phone = Phone(client, ctx, "tech1")
    order_id = started(ctx)
    missing = str(uuid.uuid4())
    refused = ("work_order.note", 1, {"work_order_id": missing, "text": "没有这张工单"})
    actions = [
        refused,
        ("work_order.note", 1, {"work_order_id": order_id, "text": "到场"}),
        refused,
        ("work_order.complete", 2, {"work_order_id": order_id, "result": "not_fixed", "satisfaction": 4}),
        refused,
        ("work_order.note", 1, {"work_order_id": order_id, "text": "已完工"}),
    ]
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    sa.event.listen(ctx.db.engine, "before_cursor_execute", seen)
    try:
        answers = push(client, ctx, phone, actions)
    finally:
        sa.event.remove(ctx.db.engine, "before_cursor_execute", seen)
    assert answers == [("rejected", "not_found"), ("applied", None)] * 3
    change_log_writes = [s for s in statements if s.lstrip().upper().startswith("INSERT INTO CHANGE_LOG")]
    assert len(change_log_writes) == 1, change_log_writes
    assert queue_entry(ctx, order_id) == [("pending", ["photo_missing"], ["photo_missing"])]


def timeline_notes(client: TestClient, order_id: str) -> list[str]:
    """The notes on the order's timeline, as the office reads them."""
    response = client.get(f"/api/v1/work-orders/{order_id}", headers=auth(login(client, "supervisor1")))
    assert response.status_code == 200, response.text
    return [e["data"]["text"] for e in response.json()["timeline"] if e["type"] == "note"]


def test_one_item_flagged_anew_and_another_opened_in_a_careful_batch(
    client: TestClient, ctx: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    """A late note flags an order already in the queue (its item is updated) and another order
    enters it (a new item and its flag rows), in a batch with a refusal, so its actions run in
    savepoints and review settles them all at the commit. The batch is applied in one go: every
    note it was told was applied is on its order and in the phone's next pull, and each order has
    its one item with every flag."""
    set_policy(client, flags=["photo_missing", "clock_skew"])
    phone = Phone(client, ctx, "tech1")
    queued, fresh = started(ctx), started(ctx)

    def complete(order_id: str) -> tuple[str, int, dict]:
        payload = {"work_order_id": order_id, "result": "not_fixed", "satisfaction": 4}
        return ("work_order.complete", 2, payload)

    assert push(client, ctx, phone, [complete(queued)]) == [("applied", None)]
    assert queue_entry(ctx, queued) == [("pending", ["photo_missing"], ["photo_missing"])]
    before = client.get("/api/v1/sync/pull", headers=auth(phone.tokens)).json()["cursor"]
    actions = [
        ("work_order.note", 1, {"work_order_id": queued, "text": "补记：阀门已换"}),
        ("work_order.note", 1, {"work_order_id": str(uuid.uuid4()), "text": "没有这张工单"}),
        complete(fresh),
        ("work_order.note", 1, {"work_order_id": fresh, "text": "已完工"}),
    ]
    with caplog.at_level(logging.WARNING, logger="heatcrew.sync"):
        # The phone's clock is ten minutes behind: everything it sends is flagged clock_skew.
        answers = push(client, ctx, phone, actions, clock_behind=timedelta(minutes=10))
    assert answers == [("applied", None), ("rejected", "not_found"), ("applied", None), ("applied", None)]
    # Not a write the database refused, retried action by action: the batch went through whole.
    assert [r.getMessage() for r in caplog.records if "retried" in r.getMessage()] == []
    assert timeline_notes(client, queued) == ["补记：阀门已换"]
    assert timeline_notes(client, fresh) == ["已完工"]
    page = client.get("/api/v1/sync/pull", params={"cursor": before}, headers=auth(phone.tokens)).json()
    assert {queued, fresh} <= {c["id"] for c in page["changes"] if c["entity"] == "work_order"}
    both = ["clock_skew", "photo_missing"]
    assert queue_entry(ctx, queued) == [("pending", ["photo_missing", "clock_skew"], both)]
    assert queue_entry(ctx, fresh) == [("pending", both, both)]
