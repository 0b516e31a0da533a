"""The dispatcher's and the supervisor's moves: create, assign, cancel, returns, close."""

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from backend.auth.models import Role, User
from backend.auth.principal import Principal
from backend.errors import InvalidInput
from backend.ids import new_id
from backend.org.models import Household
from backend.work_orders import locking, sla
from backend.work_orders.models import WorkOrder
from backend.work_orders.states import Move, State
from backend.work_orders.timeline import move, online, record, touch_order
from mobile_contract.reference import SlaPolicy

__all__ = (
    "approve_return",
    "assign",
    "cancel",
    "close",
    "create_order",
    "refuse_return",
)


def create_order(
    session: Session,
    *,
    actor: Principal,
    now: datetime,
    kind: str,
    household_id: uuid.UUID,
    source: str,
    description: str,
    received_at: datetime | None = None,
    forwarded: bool = False,
    urgent: bool = False,
    team_id: uuid.UUID | None = None,
    assignee_id: uuid.UUID | None = None,
) -> WorkOrder:
    household = session.get(Household, household_id)
    if household is None or household.company_id != actor.company_id:
        raise InvalidInput(
            "No such household.", code="unknown_household", detail={"household_id": str(household_id)}
        )
    received_at = received_at or now
    if received_at > now + timedelta(minutes=5):
        raise InvalidInput("received_at is in the future.", code="received_in_future")
    if received_at < now - timedelta(days=31):
        raise InvalidInput("received_at is more than 31 days ago.", code="received_too_old")
    company = locking.company(session, actor.company_id)
    policy = sla.load_policy(company)
    order = WorkOrder(
        id=new_id(),
        company_id=actor.company_id,
        kind=kind,
        source=source,
        forwarded=forwarded,
        urgent=urgent,
        household_id=household.id,
        team_id=team_id,
        description=description,
        state=State.new.value,
        received_at=received_at,
        created_at=now,
        created_by=actor.user_id,
        updated_at=now,
    )
    order.repeat_of_id = _earlier_fault(session, order=order, policy=policy)
    if order.repeat_of_id is not None:
        order.review_flags = ["repeat_fault"]
    session.add(order)
    session.flush()
    sla.start_clocks(session, order=order, policy=policy, zone=ZoneInfo(company.timezone))
    record(
        session,
        order,
        "created",
        actor=actor,
        when=online(now),
        to_state=State.new,
        data={
            "source": source,
            "kind": kind,
            "repeat_of": str(order.repeat_of_id) if order.repeat_of_id else None,
        },
    )
    if assignee_id is not None:
        assign(session, actor=actor, order=order, assignee_id=assignee_id, now=now)
    return order


def _earlier_fault(session: Session, *, order: WorkOrder, policy: SlaPolicy) -> uuid.UUID | None:
    """The latest repair at the same household completed within the repeat window, if any."""
    repair_kinds = [k.value for k in policy.revisit_kinds]
    if order.kind not in repair_kinds:
        return None
    since = order.received_at - timedelta(days=policy.repeat_fault_days)
    return session.exec(
        select(WorkOrder.id)
        .where(
            WorkOrder.household_id == order.household_id,
            col(WorkOrder.kind).in_(repair_kinds),
            col(WorkOrder.completed_at).is_not(None),
            col(WorkOrder.completed_at) >= since,
            col(WorkOrder.completed_at) <= order.received_at,
        )
        .order_by(col(WorkOrder.completed_at).desc())
    ).first()


def assign(
    session: Session,
    *,
    actor: Principal,
    order: WorkOrder,
    assignee_id: uuid.UUID,
    now: datetime,
    reason: str | None = None,
) -> WorkOrder:
    assignee = session.get(User, assignee_id)
    if assignee is None or assignee.company_id != order.company_id:
        raise InvalidInput("No such user.", code="unknown_user", detail={"user_id": str(assignee_id)})
    if assignee.role not in (Role.technician, Role.inspector) or not assignee.is_active:
        raise InvalidInput(
            "Orders are assigned to active technicians or inspectors.",
            code="not_assignable",
            detail={"user_id": str(assignee_id), "role": assignee.role},
        )
    previous = order.assignee_id
    move(
        session,
        order,
        Move.assign,
        actor=actor,
        when=online(now),
        reason=reason,
        data={"assignee_id": str(assignee_id), "previous_assignee_id": str(previous) if previous else None},
    )
    order.assignee_id = assignee_id
    touch_order(session, order, household=True)
    if assignee.team_id is not None:
        order.team_id = assignee.team_id
    order.return_reason = None
    order.state_before_return = None
    return order


def cancel(session: Session, *, actor: Principal, order: WorkOrder, reason: str, now: datetime) -> WorkOrder:
    move(session, order, Move.cancel, actor=actor, when=online(now), reason=reason)
    order.cancel_reason = reason
    order.closed_at = now
    return order


def approve_return(
    session: Session, *, actor: Principal, order: WorkOrder, now: datetime, reason: str | None
) -> WorkOrder:
    move(session, order, Move.approve_return, actor=actor, when=online(now), reason=reason)
    order.assignee_id = None
    order.state_before_return = None
    return order


def refuse_return(
    session: Session, *, actor: Principal, order: WorkOrder, now: datetime, reason: str | None
) -> WorkOrder:
    move(
        session,
        order,
        Move.refuse_return,
        actor=actor,
        when=online(now),
        reason=reason,
        previous=order.state_before_return,
    )
    order.state_before_return = None
    order.return_reason = None
    return order


def close(
    session: Session, *, actor: Principal, order: WorkOrder, now: datetime, reason: str | None
) -> WorkOrder:
    move(session, order, Move.close, actor=actor, when=online(now), reason=reason)
    order.closed_at = now
    return order


# ---------------------------------------------------------------- field intents
