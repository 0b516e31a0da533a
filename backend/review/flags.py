"""The review flags of an order, one function per flag, each named as the flag.

Every function takes the session and the order (an ORM row or a push batch's locked order) and
answers whether the flag holds. Inside a push the batch's buffered rows are written before any
query here runs (``db.buffer``), so they see what the batch did so far.

The first four come from the order's timeline: ``timeline.record`` keeps every event's flags on
``work_order.review_flags``.
"""

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
