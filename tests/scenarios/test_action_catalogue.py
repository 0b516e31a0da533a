"""Every action of the catalogue, pushed over HTTP: applied, sent again, and refused without a trace.

A refused action (``rejected`` or ``conflict``) must leave the database exactly as it found it,
but for its stored answer and the device's counter: whatever its handler changed before it
refused is undone by the push path itself, not by each handler's care. The sweep is generic: a
new ``(type, v)`` without its three cases fails ``test_every_action_has_its_cases``.
"""

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jsonschema
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from sqlmodel import select

from backend.context import AppContext
from backend.contract.build import CONTRACT_ROOT
from backend.contract.openapi import envelope_name
from backend.db.models import metadata
from backend.review import service as review
from backend.review.models import ReviewItem
from backend.review.rules import ReviewPolicy
from backend.review.schemas import RedoItem
from backend.sync.handlers import CATALOGUE
from backend.work_orders import service
from backend.work_orders.models import Revisit, WorkOrder
from mobile_contract.documents import content_sha256
from tests.api.helpers import auth
from tests.fixtures import contract
from tests.fixtures.field import act, new_order, principal, receipt
from tests.fixtures.pushing import Phone

pytestmark = pytest.mark.usefixtures("demo")

# Rows every push writes by design: the answer, the device's counter, and the company's feed
# bookkeeping (made by the company's first push on PostgreSQL, where changes do not bump it).
BOOKKEEPING = {"sync_action", "sync_device", "sync_counter"}


@dataclass
class Case:
    """How to get one action applied and how to get it refused, from the demo company's state."""

    user: str
    applied: Callable[[AppContext, Phone], dict[str, Any]]
    refused: Callable[[AppContext, Phone], dict[str, Any]]
    refusal: tuple[str, str]  # (status, code)


def order(ctx: AppContext, *, assignee: str = "tech1", kind: str = "repair", account: str = "100101") -> str:
    return str(new_order(ctx, kind=kind, account=account, assignee=assignee).id)


def step(ctx: AppContext, order_id: str, *steps: str, user: str = "tech1") -> None:
    actor = principal(ctx, user)
    for name in steps:
        act(ctx, uuid.UUID(order_id), name, actor)


def arrived(ctx: AppContext, user: str = "tech1", **kw: Any) -> str:
    order_id = order(ctx, assignee=user, **kw)
    actor = principal(ctx, user)
    step(ctx, order_id, "accept", "depart", user=user)
    door = {"lat": None, "lon": None, "accuracy_m": None, "attempts": [], "badge_shown": True}
    act(ctx, uuid.UUID(order_id), "record_arrival", actor, outcome="admitted", **door)
    return order_id


def started(ctx: AppContext, user: str = "tech1", **kw: Any) -> str:
    order_id = arrived(ctx, user, **kw)
    step(ctx, order_id, "start_work", user=user)
    return order_id


def dispatcher_does(ctx: AppContext, order_id: str, name: str, **kwargs: Any) -> None:
    actor = principal(ctx, "dispatcher1")
    with ctx.db.session() as session:
        target = service.get_order_for_update(
            session, order_id=uuid.UUID(order_id), company_id=actor.company_id
        )
        getattr(service, name)(session, actor=actor, order=target, now=ctx.clock.now(), **kwargs)


def on_order(**fields: Any) -> Callable[[AppContext, Phone], dict[str, Any]]:
    """A payload for a fresh order of the phone's user."""
    return lambda ctx, phone: {"work_order_id": order(ctx, assignee=phone.username), **fields}


def on_foreign_order(**fields: Any) -> Callable[[AppContext, Phone], dict[str, Any]]:
    """A payload naming an order that was never the phone user's: it does not exist for them."""
    return lambda ctx, phone: {"work_order_id": order(ctx, assignee="tech2", account="200101"), **fields}


def window(ctx: AppContext) -> dict[str, str]:
    start = ctx.clock.now() + timedelta(hours=2)
    return {"window_start": start.isoformat(), "window_end": (start + timedelta(hours=2)).isoformat()}


def appointment_on_cancelled(ctx: AppContext, phone: Phone) -> dict[str, Any]:
    order_id = _accepted(ctx)
    dispatcher_does(ctx, order_id, "cancel", reason="resident called it off")
    return {"work_order_id": order_id, **window(ctx)}


def photo_of(ctx: AppContext, phone: Phone) -> dict[str, Any]:
    return {"work_order_id": order(ctx), "blob": phone.upload_photo(), "purpose": "before"}


def photo_on_a_foreign_order(ctx: AppContext, phone: Phone) -> dict[str, Any]:
    return {
        "work_order_id": order(ctx, assignee="tech2", account="200101"),
        "blob": phone.upload_photo(),
        "purpose": "before",
    }


def measurement(ctx: AppContext, phone: Phone, instrument: str = "TH-0042") -> dict[str, Any]:
    order_id = order(ctx, assignee="inspector1", kind="temperature_complaint", account="100103")
    with ctx.db.session(readonly=True) as session:
        household = session.get(WorkOrder, uuid.UUID(order_id)).household_id
    return {
        "measurement_id": str(uuid.uuid4()),
        "household_id": str(household),
        "work_order_id": order_id,
        "instrument_id": instrument,
        "rooms": [{"name": "主卧", "kind": "bedroom", "readings_c": [18.4, 18.5, 18.4], "height_m": 1.3}],
        "outdoor_c": -12.5,
        "closed_minutes": 35,
    }


def issue(ctx: AppContext, phone: Phone, **changes: Any) -> dict[str, Any]:
    return {
        "document": {"type": "receipt", "id": str(uuid.uuid4())},
        "content": receipt(order(ctx), **changes),
    }


def signature(ctx: AppContext, phone: Phone, *, tampered: bool = False) -> dict[str, Any]:
    issued = issue(ctx, phone)
    assert phone.push("document.issue", 1, issued)["status"] == "applied"
    signed = {**issued["content"], "satisfaction": 1} if tampered else issued["content"]
    return {
        "document": issued["document"],
        "signer_name": "赵建国",
        "signer_role": "resident",
        "content_sha256": content_sha256(signed),
        "strokes": [[[0, 0, 0], [40, 12, 30], [80, 4, 60]]],
    }


def completion(result: str) -> Callable[[AppContext, Phone], dict[str, Any]]:
    return lambda ctx, phone: {"work_order_id": started(ctx), "result": result, "satisfaction": 5}


def return_requested_twice(ctx: AppContext, phone: Phone) -> dict[str, Any]:
    order_id = order(ctx)
    assert (
        phone.push("work_order.return_request", 1, {"work_order_id": order_id, "reason": "缺零件"})["status"]
        == "applied"
    )
    return {"work_order_id": order_id, "reason": "还是缺零件"}


def revisit(ctx: AppContext, phone: Phone, *, closed_first: bool = False) -> dict[str, Any]:
    order_id = started(ctx)
    act(ctx, uuid.UUID(order_id), "complete", principal(ctx, "tech1"), result="not_fixed", satisfaction=4)
    with ctx.db.session(readonly=True) as session:
        revisit_id = session.exec(select(Revisit.id).where(Revisit.order_id == uuid.UUID(order_id))).one()
    if closed_first:
        # A supervisor closed the order from the office while the phone was offline.
        dispatcher_does(ctx, order_id, "close", reason="closed by phone call")
    return {"revisit_id": str(revisit_id), "channel": "phone", "outcome": "satisfied", "satisfaction": 5}


def redo_response(ctx: AppContext, phone: Phone, *, unknown_document: bool = False) -> dict[str, Any]:
    """A completed order of the phone's user in review, with a redo request for one more photo."""
    supervisor = principal(ctx, "supervisor1")
    with ctx.db.session() as session:
        review.set_policy(
            session, actor=supervisor, policy=ReviewPolicy(always_kinds=["repair"], sample_percent=0)
        )
    order_id = started(ctx, phone.username)
    act(
        ctx,
        uuid.UUID(order_id),
        "complete",
        principal(ctx, phone.username),
        result="not_fixed",
        satisfaction=3,
    )
    with ctx.db.session() as session:
        item = session.exec(select(ReviewItem).where(ReviewItem.order_id == uuid.UUID(order_id))).one()
        redo = review.request_redo(
            session,
            actor=supervisor,
            item_id=item.id,
            now=ctx.clock.now(),
            items=[RedoItem(kind="photo", purpose="after")],
            due_at=ctx.clock.now() + timedelta(days=1),
        )
    payload: dict[str, Any] = {
        "redo_request_id": str(redo.id),
        "photos": [{"purpose": "after", "blob": phone.upload_photo()}],
        "note": "已重拍",
    }
    if unknown_document:
        payload["document_ids"] = [str(uuid.uuid4())]
    return payload


CASES: dict[tuple[str, int], Case] = {
    ("work_order.accept", 1): Case(
        "tech1",
        on_order(),
        lambda ctx, phone: {"work_order_id": _accepted(ctx)},
        ("conflict", "illegal_transition"),
    ),
    ("work_order.contact", 1): Case(
        "tech1",
        on_order(outcome="reached", note="约好下午"),
        on_foreign_order(outcome="reached"),
        ("rejected", "not_found"),
    ),
    ("work_order.appointment", 1): Case(
        "tech1",
        lambda ctx, phone: {"work_order_id": _accepted(ctx), **window(ctx)},
        appointment_on_cancelled,
        ("conflict", "illegal_transition"),
    ),
    ("work_order.depart", 1): Case("tech1", on_order(), on_foreign_order(), ("rejected", "not_found")),
    ("work_order.arrive", 1): Case(
        "tech1",
        on_order(lat=41.7968, lon=123.4245, accuracy_m=8, outcome="admitted", badge_shown=True),
        on_foreign_order(outcome="admitted"),
        ("rejected", "not_found"),
    ),
    ("work_order.no_access", 1): Case(
        "tech1", on_order(note="敲门三次无人"), on_foreign_order(note="x"), ("rejected", "not_found")
    ),
    ("work_order.start", 1): Case(
        "tech1",
        lambda ctx, phone: {"work_order_id": arrived(ctx)},
        lambda ctx, phone: {"work_order_id": _accepted(ctx)},  # not at the door yet
        ("conflict", "illegal_transition"),
    ),
    ("work_order.note", 1): Case(
        "tech1", on_order(text="阀门锈死"), on_foreign_order(text="x"), ("rejected", "not_found")
    ),
    ("evidence.photo", 1): Case("tech1", photo_of, photo_on_a_foreign_order, ("rejected", "not_found")),
    ("measurement.record", 1): Case(
        "inspector1",
        measurement,
        lambda ctx, phone: measurement(ctx, phone, instrument="TH-0007"),  # its certificate expired
        ("rejected", "instrument_expired"),
    ),
    ("document.issue", 1): Case(
        "tech1",
        issue,
        lambda ctx, phone: issue(ctx, phone, staff_number="T9999"),
        ("rejected", "content_disagrees"),
    ),
    ("evidence.signature", 1): Case(
        "tech1",
        signature,
        lambda ctx, phone: signature(ctx, phone, tampered=True),
        ("rejected", "content_mismatch"),
    ),
    ("meter.reading", 1): Case(
        "tech1",
        on_order(meter_id="HM-2231", value=1234.5, phase="before"),
        on_foreign_order(meter_id="HM-2231", value=1.0),
        ("rejected", "not_found"),
    ),
    ("work_order.complete", 1): Case(
        "tech1", completion("not_fixed"), completion("fixed"), ("conflict", "photos_missing")
    ),
    ("work_order.complete", 2): Case(
        "tech1", completion("not_fixed"), completion("fixed"), ("conflict", "photos_missing")
    ),
    ("work_order.return_request", 1): Case(
        "tech1", on_order(reason="缺零件"), return_requested_twice, ("conflict", "illegal_transition")
    ),
    ("revisit.outcome", 1): Case(
        "tech1",
        revisit,
        lambda ctx, phone: revisit(ctx, phone, closed_first=True),
        ("rejected", "illegal_transition"),
    ),
    ("redo.response", 1): Case(
        "tech1",
        redo_response,
        lambda ctx, phone: redo_response(ctx, phone, unknown_document=True),
        ("rejected", "unknown_document"),
    ),
}


def _accepted(ctx: AppContext) -> str:
    order_id = order(ctx)
    step(ctx, order_id, "accept")
    return order_id


def snapshot(ctx: AppContext) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order."""
    with ctx.db.engine.connect() as conn:
        return {
            table.name: sorted((tuple(row) for row in conn.execute(sa.select(table))), key=repr)
            for table in metadata.sorted_tables
        }


def test_every_action_has_its_cases() -> None:
    assert set(CASES) == set(CATALOGUE)


@pytest.mark.parametrize("key", sorted(CASES), ids=lambda k: f"{k[0]}-v{k[1]}")
def test_an_action_is_applied_once_and_answered_again_the_same(
    key: tuple[str, int], client: TestClient, ctx: AppContext
) -> None:
    case = CASES[key]
    phone = Phone(client, ctx, case.user)
    payload = case.applied(ctx, phone)
    first = phone.push(*key, payload)
    assert first["status"] == "applied", first
    before = snapshot(ctx)
    again = phone.resend()
    assert (again["status"], again["original_status"]) == ("duplicate", "applied")
    assert snapshot(ctx) == before, "a resent action changed something"
    # What the server applied fits what is published for it, and so do both answers.
    (envelope,) = phone.last_batch["actions"]
    published = contract.current()
    published.check(envelope_name(*key), envelope)
    published.check("ActionEnvelope", envelope)
    for answer in (first, again):
        published.check("ActionResult", answer)
    action_schema = json.loads(
        (CONTRACT_ROOT / "schemas" / "actions" / f"{key[0]}.v{key[1]}.json").read_text()
    )
    jsonschema.Draft202012Validator(action_schema, format_checker=jsonschema.FormatChecker()).validate(
        envelope
    )


@pytest.mark.parametrize("key", sorted(CASES), ids=lambda k: f"{k[0]}-v{k[1]}")
def test_a_refused_action_leaves_no_trace_but_its_answer(
    key: tuple[str, int], client: TestClient, ctx: AppContext
) -> None:
    case = CASES[key]
    phone = Phone(client, ctx, case.user)
    payload = case.refused(ctx, phone)
    before = snapshot(ctx)
    result = phone.push(*key, payload)
    assert (result["status"], result["code"]) == case.refusal, result
    contract.current().check("ActionResult", result)  # its code is one the document lists
    after = snapshot(ctx)
    changed = {name for name in after if after[name] != before[name]}
    assert changed <= BOOKKEEPING, f"a refused {key[0]} changed {sorted(changed - BOOKKEEPING)}"
    assert len(after["sync_action"]) == len(before["sync_action"]) + 1
    # The queue moves on: the next action from this phone is applied.
    next_one = {"work_order_id": order(ctx, assignee=case.user), "text": "下一个"}
    note = phone.push("work_order.note", 1, next_one)
    assert note["status"] == "applied", note


def test_a_batch_keeps_what_its_applied_actions_did_around_a_refusal(
    client: TestClient, ctx: AppContext
) -> None:
    """Savepoints come in only after a refusal; the actions before and after it still count."""
    phone = Phone(client, ctx, "tech1")
    payload = revisit(ctx, phone, closed_first=True)
    mine = order(ctx)
    now = ctx.clock.now()

    def action(seq: int, type_: str, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": str(uuid.uuid4()),
            "seq": seq,
            "type": type_,
            "v": 1,
            "occurred_at": now.isoformat(),
            "payload": body,
        }

    batch = {
        "device_id": phone.device,
        "sent_at": now.isoformat(),
        "actions": [
            action(1, "work_order.accept", {"work_order_id": mine}),
            action(2, "revisit.outcome", payload),
            action(3, "work_order.note", {"work_order_id": mine, "text": "在路上"}),
            action(4, "work_order.accept", {"work_order_id": mine}),  # already accepted by seq 1
            action(5, "work_order.depart", {"work_order_id": mine}),
        ],
    }
    response = client.post("/api/v1/sync/push", json=batch, headers=auth(phone.tokens))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["last_applied_seq"] == 5
    assert [(r["status"], r.get("code")) for r in body["results"]] == [
        ("applied", None),
        ("rejected", "illegal_transition"),
        ("applied", None),
        ("conflict", "illegal_transition"),
        ("applied", None),
    ]
    detail = client.get(f"/api/v1/work-orders/{mine}", headers=auth(phone.tokens)).json()
    assert detail["order"]["state"] == "en_route"
    assert [e["type"] for e in detail["timeline"]][-3:] == ["accepted", "note", "departed"]
    with ctx.db.session(readonly=True) as session:
        assert session.get(Revisit, uuid.UUID(payload["revisit_id"])).state == "due"


def test_a_refusal_that_quotes_a_long_name_is_stored_and_the_queue_moves_on(
    client: TestClient, ctx: AppContext
) -> None:
    """Found by review: the refusal's message quoted a 600-character field name; on PostgreSQL the
    answer row did not fit, and every push of that phone failed for good."""
    phone = Phone(client, ctx, "tech1")
    slip = {"document": {"type": "damage_slip", "id": str(uuid.uuid4())}, "content": {"k" * 600: 1}}
    result = phone.push("document.issue", 1, slip)
    assert (result["status"], result["code"]) == ("rejected", "invalid_document")
    assert 0 < len(result["message"]) <= 500
    assert phone.resend()["status"] == "duplicate"
    assert (
        phone.push("work_order.note", 1, {"work_order_id": order(ctx), "text": "继续"})["status"] == "applied"
    )
