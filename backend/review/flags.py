"""The review flags of an order, one function per flag, each named as the flag.

Every function takes the session and the order (an ORM row or a push batch's locked order) and
answers whether the flag holds. :func:`compute_many` answers the same for many orders at once,
with one query per flag that needs the database, not one per order: a push batch's review entries
are settled that way at commit (``review.entry``). The batch's buffered rows are written before
any query here runs (``db.buffer``), so they see what the batch did.

The first four come from the order's timeline: ``timeline.record`` keeps every event's flags on
``work_order.review_flags``.
"""

import uuid
from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session, col

from backend.evidence.measurements import judge
from backend.evidence.models import Document, Measurement, Signature
from backend.work_orders import locking
from backend.work_orders.models import WorkOrder
from mobile_contract.reference import WorkOrderKind

__all__ = (
    "FLAGS",
    "after_cancelled",
    "after_reassignment",
    "clock_skew",
    "compute",
    "compute_many",
    "location_not_verified",
    "measurement_failed",
    "photo_missing",
    "repeat_fault",
    "signature_refused",
)

REPEAT_WINDOW = timedelta(days=30)
# The kinds that are repairs: a second one at the same household within the window is a repeat fault.
REPAIR_KINDS = frozenset(
    {WorkOrderKind.repair, WorkOrderKind.leak, WorkOrderKind.pipe_burst, WorkOrderKind.routine_maintenance}
)


def after_reassignment(session: Session, order: WorkOrder) -> bool:
    """Evidence came from a technician after the order had passed to another."""
    return "after_reassignment" in order.review_flags


def after_cancelled(session: Session, order: WorkOrder) -> bool:
    """Evidence arrived for an order already cancelled."""
    return "after_cancelled" in order.review_flags


def clock_skew(session: Session, order: WorkOrder) -> bool:
    """A phone's clock was far from the server's when it sent the order's actions."""
    return "clock_skew" in order.review_flags


def location_not_verified(session: Session, order: WorkOrder) -> bool:
    """A check-in's position was too far from the household (or too vague) to confirm the visit."""
    return "location_not_verified" in order.review_flags


def photo_missing(session: Session, order: WorkOrder) -> bool:
    """The completion lacks a photo purpose the company's policy requires for the kind."""
    try:
        kind = WorkOrderKind(order.kind)
    except ValueError:
        return False
    wanted = locking.policy(session, order.company_id).required_photos.get(kind, [])
    if not wanted:
        return False
    taken = locking.photo_purposes(session, order)
    return any(p.value not in taken for p in wanted)


def signature_refused(session: Session, order: WorkOrder) -> bool:
    """A resident refused to sign a document of the order."""
    return (
        session.execute(
            sa.select(Signature.id)
            .join(Document, col(Document.id) == Signature.document_id)
            .where(
                Document.order_id == order.id,
                Signature.company_id == order.company_id,
                col(Signature.refused_reason).is_not(None),
            )
            .limit(1)
        ).first()
        is not None
    )


def repeat_fault(session: Session, order: WorkOrder) -> bool:
    """The household had another repair completed within 30 days before this one."""
    if order.repeat_of_id is not None:
        return True
    if order.completed_at is None or order.kind not in REPAIR_KINDS:
        return False
    return (
        session.execute(
            sa.select(WorkOrder.id)
            .where(
                WorkOrder.household_id == order.household_id,
                WorkOrder.id != order.id,
                col(WorkOrder.kind).in_(sorted(REPAIR_KINDS)),
                col(WorkOrder.completed_at) >= order.completed_at - REPEAT_WINDOW,
                col(WorkOrder.completed_at) < order.completed_at,
            )
            .limit(1)
        ).first()
        is not None
    )


def measurement_failed(session: Session, order: WorkOrder) -> bool:
    """A measurement of the order fails the indoor standard (≥ 18 °C 06:00–21:00 local, ≥ 16 °C otherwise)."""
    rows = list(session.execute(sa.select(Measurement).where(Measurement.order_id == order.id)).scalars())
    if not rows:
        return False
    company = locking.company(session, order.company_id)
    design = locking.policy(session, order.company_id).design_outdoor_min_c
    return any(
        (m.result or judge(m, timezone=company.timezone, design_outdoor_min_c=design).result) == "fail"
        for m in rows
    )


FLAGS = {
    "after_reassignment": after_reassignment,
    "after_cancelled": after_cancelled,
    "clock_skew": clock_skew,
    "location_not_verified": location_not_verified,
    "photo_missing": photo_missing,
    "signature_refused": signature_refused,
    "repeat_fault": repeat_fault,
    "measurement_failed": measurement_failed,
}


def compute(session: Session, order: WorkOrder) -> list[str]:
    """Every flag that holds for the order, in the catalogue's order."""
    return [name for name, holds in FLAGS.items() if holds(session, order)]


# The flags kept on the order itself, from its timeline.
_RECORDED = ("after_reassignment", "after_cancelled", "clock_skew", "location_not_verified")


def compute_many(
    session: Session, orders: Sequence[WorkOrder], company_id: uuid.UUID
) -> dict[uuid.UUID, list[str]]:
    """:func:`compute` for orders of one company: three queries in all, whatever their number."""
    if not orders:
        return {}
    ids = [order.id for order in orders]
    refused = _refused_signatures(session, ids, company_id)
    repeats = _repeat_faults(session, orders)
    failed = _failed_measurements(session, ids, company_id)
    found: dict[uuid.UUID, list[str]] = {}
    for order in orders:
        holds = {name for name in _RECORDED if name in order.review_flags}
        if photo_missing(session, order):
            holds.add("photo_missing")
        if order.id in refused:
            holds.add("signature_refused")
        if order.id in repeats:
            holds.add("repeat_fault")
        if order.id in failed:
            holds.add("measurement_failed")
        found[order.id] = [name for name in FLAGS if name in holds]
    return found


def _refused_signatures(session: Session, ids: list[uuid.UUID], company_id: uuid.UUID) -> set[uuid.UUID]:
    return set(
        session.execute(
            sa.select(Document.order_id)
            .join(Signature, col(Signature.document_id) == Document.id)
            .where(
                col(Document.order_id).in_(ids),
                Signature.company_id == company_id,
                col(Signature.refused_reason).is_not(None),
            )
            .distinct()
        ).scalars()
    )


def _repeat_faults(session: Session, orders: Sequence[WorkOrder]) -> set[uuid.UUID]:
    repeats = {order.id for order in orders if order.repeat_of_id is not None}
    asking = [
        order
        for order in orders
        if order.id not in repeats and order.completed_at is not None and order.kind in REPAIR_KINDS
    ]
    if not asking:
        return repeats
    earliest = min(order.completed_at for order in asking) - REPEAT_WINDOW  # type: ignore[operator]
    latest = max(order.completed_at for order in asking)  # type: ignore[type-var]
    before: dict[uuid.UUID, list[tuple[uuid.UUID, object]]] = {}
    for household_id, order_id, completed_at in session.execute(
        sa.select(WorkOrder.household_id, WorkOrder.id, WorkOrder.completed_at).where(
            col(WorkOrder.household_id).in_(sorted({order.household_id for order in asking})),
            col(WorkOrder.kind).in_(sorted(REPAIR_KINDS)),
            col(WorkOrder.completed_at) >= earliest,
            col(WorkOrder.completed_at) < latest,
        )
    ):
        before.setdefault(household_id, []).append((order_id, completed_at))
    for order in asking:
        assert order.completed_at is not None
        since = order.completed_at - REPEAT_WINDOW
        if any(
            other != order.id and since <= at < order.completed_at  # type: ignore[operator]
            for other, at in before.get(order.household_id, ())
        ):
            repeats.add(order.id)
    return repeats


def _failed_measurements(session: Session, ids: list[uuid.UUID], company_id: uuid.UUID) -> set[uuid.UUID]:
    rows = list(session.execute(sa.select(Measurement).where(col(Measurement.order_id).in_(ids))).scalars())
    if not rows:
        return set()
    company = locking.company(session, company_id)
    design = locking.policy(session, company_id).design_outdoor_min_c
    return {
        m.order_id
        for m in rows
        if (m.result or judge(m, timezone=company.timezone, design_outdoor_min_c=design).result) == "fail"
    }
