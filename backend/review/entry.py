"""How orders enter review: explicit calls from where completion and late facts are recorded.

``work_orders.field.complete`` calls :func:`on_completed`; ``timeline.fact`` and the evidence
handlers of ``sync.handlers`` call :func:`after_fact` for an order that is already completed,
closed or cancelled. Both work in a push batch: a new item is a plain row written with the batch
(``db.buffer``), an existing one is changed by one ``UPDATE``; a refused action's scope undoes
either. No session listener is involved.
"""

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from backend.db import buffer
from backend.ids import new_id
from backend.org.models import Company
from backend.review import flags as review_flags
from backend.review.models import ReviewItem, ReviewItemFlag
from backend.review.rules import ReviewPolicy, load_review_policy, reasons_to_enter
from backend.work_orders.models import WorkOrder

__all__ = ("DECIDED", "after_fact", "on_completed", "policy_of", "sync_flags")

ITEMS = ReviewItem.__table__
ITEM_FLAGS = ReviewItemFlag.__table__
# An item in one of these states has had its decision; news about its order puts it back.
DECIDED = frozenset({"approved", "rejected"})
LATE_STATES = frozenset({"completed", "closed", "cancelled", "revisit_due"})
_POLICIES = "heatcrew.review_policies"
_ITEM = sa.select(
    ITEMS.c.id,
    ITEMS.c.status,
    ITEMS.c.flags,
    ITEMS.c.reasons,
    ITEMS.c.team_id,
    ITEMS.c.kind,
    ITEMS.c.queued_at,
).where(ITEMS.c.order_id == sa.bindparam("order_id"))


def policy_of(session: Session, company_id: uuid.UUID) -> ReviewPolicy:
    """The company's review policy, read once per transaction."""
    cache: dict[uuid.UUID, ReviewPolicy] = session.info.setdefault(_POLICIES, {})
    if company_id not in cache:
        stored = session.execute(
            sa.select(Company.review_policy).where(Company.id == company_id)  # type: ignore[arg-type]
        ).scalar_one()
        cache[company_id] = load_review_policy(stored)
    return cache[company_id]


def on_completed(session: Session, *, order: WorkOrder, at: datetime) -> None:
    """A completed order enters review if its kind, its flags or the sample say so."""
    policy = policy_of(session, order.company_id)
    found = review_flags.compute(session, order)
    reasons = reasons_to_enter(policy, order_id=order.id, kind=order.kind, flags=found)
    if reasons:
        _enter(session, order, reasons=reasons, flags=found, at=at)


def after_fact(session: Session, *, order: Any, at: datetime) -> None:
    """A fact arrived for an order that is already done: new flags bring it (back) into review."""
    if order.state not in LATE_STATES:
        return
    policy = policy_of(session, order.company_id)
    wanted = {f.value for f in policy.flags}
    found = review_flags.compute(session, order)
    if not any(f in wanted for f in found):
        return
    _enter(session, order, reasons=[f"flag:{f}" for f in found if f in wanted], flags=found, at=at)


def _enter(session: Session, order: Any, *, reasons: list[str], flags: list[str], at: datetime) -> None:
    current = session.execute(_ITEM, {"order_id": order.id}).first()
    if current is None:
        item_id = new_id()
        buffer.add_row(
            session,
            ITEMS,
            {
                "id": item_id,
                "company_id": order.company_id,
                "order_id": order.id,
                "team_id": order.team_id,
                "kind": order.kind,
                "status": "pending",
                "reasons": reasons,
                "flags": flags,
                "entered_at": at,
                "queued_at": at,
                "decided_at": None,
                "decided_by": None,
                "decision_reason": None,
                "version": 1,
            },
        )
        copied = {"status": "pending", "team_id": order.team_id, "kind": order.kind, "queued_at": at}
        for flag in flags:
            buffer.add_row(
                session,
                ITEM_FLAGS,
                {"item_id": item_id, "flag": flag, "company_id": order.company_id, **copied},
            )
        return
    new_flags = [f for f in flags if f not in current.flags]
    if not new_flags:
        return
    values: dict[str, Any] = {
        "flags": [*current.flags, *new_flags],
        "reasons": [*current.reasons, *(r for r in reasons if r not in current.reasons)],
        "version": ITEMS.c.version + 1,
    }
    copied = {
        "status": current.status,
        "team_id": current.team_id,
        "kind": current.kind,
        "queued_at": current.queued_at,
    }
    if current.status in DECIDED:
        # Decided before this evidence existed: it needs another look.
        values.update(status="pending", queued_at=at, decided_at=None, decided_by=None, decision_reason=None)
        copied.update(status="pending", queued_at=at)
        sync_flags(session, current.id, status="pending", queued_at=at)
    session.execute(sa.update(ITEMS).where(ITEMS.c.id == current.id).values(**values))
    for flag in new_flags:
        buffer.add_row(
            session,
            ITEM_FLAGS,
            {"item_id": current.id, "flag": flag, "company_id": order.company_id, **copied},
        )


def sync_flags(session: Session, item_id: uuid.UUID, **values: Any) -> None:
    """Keep the copies on the item's flag rows in step with a change of its status (or queued_at)."""
    session.execute(sa.update(ITEM_FLAGS).where(ITEM_FLAGS.c.item_id == item_id).values(**values))
