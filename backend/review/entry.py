"""How orders enter review: explicit calls from where completion and late facts are recorded.

``work_orders.field.complete`` calls :func:`on_completed`; ``timeline.fact`` and the evidence
handlers of ``sync.handlers`` call :func:`after_fact` for an order that is already completed,
closed or cancelled. Each call only notes the order. The notes are settled when the transaction
commits (:func:`settle`, run by ``backend.unit_of_work``): the flags of every noted order are
computed together, a few queries for a push batch of hundreds, and the orders enter or re-enter
the queue. A new item is a plain row written with the batch (``db.buffer``), an existing one is
changed by one ``UPDATE``. A refused action's scope in ``sync.push`` restores the notes as they
were before it (:func:`mark`, :func:`restore`), so a refusal leaves no item behind.
"""

import uuid
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlmodel import Session

from backend.db import buffer
from backend.db.lists import one_of
from backend.ids import new_id
from backend.org.models import Company
from backend.review import flags as review_flags
from backend.review.models import ReviewItem, ReviewItemFlag
from backend.review.rules import ReviewPolicy, load_review_policy, reasons_to_enter
from backend.work_orders import locking
from backend.work_orders.models import WorkOrder

__all__ = (
    "DECIDED",
    "Mark",
    "after_fact",
    "forget",
    "mark",
    "on_completed",
    "policy_of",
    "restore",
    "settle",
    "sync_flags",
)

ITEMS = ReviewItem.__table__
ITEM_FLAGS = ReviewItemFlag.__table__
# An item in one of these states has had its decision; news about its order puts it back.
DECIDED = frozenset({"approved", "rejected"})
LATE_STATES = frozenset({"completed", "closed", "cancelled", "revisit_due"})
_POLICIES = "heatcrew.review_policies"
_NOTED = "heatcrew.review_noted"
_ITEMS = sa.select(
    ITEMS.c.order_id,
    ITEMS.c.id,
    ITEMS.c.status,
    ITEMS.c.flags,
    ITEMS.c.reasons,
    ITEMS.c.team_id,
    ITEMS.c.kind,
    ITEMS.c.queued_at,
).where(one_of(ITEMS.c.order_id, "order_ids"))


class _Noted(NamedTuple):
    """An order to settle: its company, when the news came, whether it was its completion, and
    whether a required photo was missing at a note (its photos may come later in the same batch:
    the flag is what the order lacked when it was completed, as if each action were pushed alone)."""

    company_id: uuid.UUID
    at: datetime
    completed: bool
    photo_missing: bool


Mark = dict[uuid.UUID, _Noted]


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
    """A completed order enters review if its kind, its flags or the sample say so (at commit)."""
    _note(session, order, at=at, completed=True)


def after_fact(session: Session, *, order: Any, at: datetime) -> None:
    """A fact arrived for an order that is already done: new flags bring it (back) into review."""
    if order.state in LATE_STATES:
        _note(session, order, at=at, completed=False)


def _note(session: Session, order: Any, *, at: datetime, completed: bool) -> None:
    noted: Mark = session.info.setdefault(_NOTED, {})
    before = noted.get(order.id)
    # The one flag that can stop holding later in a transaction (a photo arrives): taken now. A push
    # batch reads its orders' photos once, so this costs no query of its own per order.
    missing = review_flags.photo_missing(session, order)
    noted[order.id] = _Noted(
        order.company_id,
        before.at if before else at,
        completed or bool(before and before.completed),
        missing or bool(before and before.photo_missing),
    )


def mark(session: Session) -> Mark:
    """The orders noted so far: :func:`restore` goes back to them when the work since is undone."""
    return dict(session.info.get(_NOTED, {}))


def restore(session: Session, noted: Mark) -> None:
    session.info[_NOTED] = dict(noted)


def forget(session: Session) -> None:
    """The transaction ended: what it noted went with it."""
    session.info.pop(_NOTED, None)


def settle(session: Session) -> None:
    """Just before the commit: every noted order enters, re-enters or stays out of the queue."""
    noted: Mark | None = session.info.pop(_NOTED, None)
    if not noted:
        return
    by_company: dict[uuid.UUID, list[uuid.UUID]] = {}
    for order_id, note in noted.items():
        by_company.setdefault(note.company_id, []).append(order_id)
    for company_id, order_ids in by_company.items():
        orders = [locking.get_order_for_update(session, order_id=i, company_id=company_id) for i in order_ids]
        _settle_company(session, company_id, orders, noted)


def _settle_company(session: Session, company_id: uuid.UUID, orders: list[Any], noted: Mark) -> None:
    policy = policy_of(session, company_id)
    wanted = {f.value for f in policy.flags}
    found = review_flags.compute_many(session, orders, company_id)
    entering: list[tuple[Any, list[str]]] = []
    for order in orders:
        flags = found[order.id]
        if noted[order.id].photo_missing and "photo_missing" not in flags:
            flags = found[order.id] = [f for f in review_flags.FLAGS if f in {*flags, "photo_missing"}]
        if noted[order.id].completed:
            reasons = reasons_to_enter(policy, order_id=order.id, kind=order.kind, flags=flags)
        elif order.state in LATE_STATES:
            reasons = [f"flag:{f}" for f in flags if f in wanted]
        else:
            reasons = []
        if reasons:
            entering.append((order, reasons))
    if not entering:
        return
    current = {
        row.order_id: row
        for row in session.execute(_ITEMS, {"order_ids": [order.id for order, _ in entering]})
    }
    for order, reasons in entering:
        _enter(
            session,
            order,
            current.get(order.id),
            reasons=reasons,
            flags=found[order.id],
            at=noted[order.id].at,
        )


def _enter(
    session: Session, order: Any, current: Any, *, reasons: list[str], flags: list[str], at: datetime
) -> None:
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
