"""Revisits (回访) after a repair: made at completion, given to someone, answered."""

import uuid
from datetime import timedelta

from sqlmodel import Session

from backend.auth.models import User
from backend.auth.principal import Principal
from backend.db import buffer
from backend.errors import InvalidInput
from backend.ids import new_id
from backend.sync import changes
from backend.work_orders import locking, sla
from backend.work_orders.models import Revisit, WorkOrder
from backend.work_orders.states import IllegalTransition, Move
from backend.work_orders.timeline import FIELD_ROLES, FieldTime, fact, move
from mobile_contract.reference import ClockName

__all__ = (
    "after_completion",
    "assign_revisit",
    "record_revisit_outcome",
)


def after_completion(session: Session, *, actor: Principal, order: WorkOrder, when: FieldTime) -> None:
    policy = locking.policy(session, order.company_id)
    if order.kind not in {k.value for k in policy.revisit_kinds}:
        return
    household = locking.place(session, order.household_id)
    assert order.completed_at is not None
    minutes = policy.key_customer_revisit_minutes if household.is_key_customer else policy.revisit_minutes
    due_at = order.completed_at + timedelta(minutes=minutes)
    revisit_id = new_id()
    buffer.add_row(
        session,
        Revisit.__table__,
        {
            "id": revisit_id,
            "company_id": order.company_id,
            "order_id": order.id,
            "household_id": order.household_id,
            "due_at": due_at,
            "state": "due",
            "created_at": when.received_at,
        },
    )
    sla.start_revisit_clock(session, order=order, due_at=due_at, minutes=minutes)
    move(
        session,
        order,
        Move.await_revisit,
        actor=None,
        when=when,
        data={"revisit_id": str(revisit_id), "due_at": due_at.isoformat()},
    )


def assign_revisit(
    session: Session, *, actor: Principal, revisit: Revisit, assignee_id: uuid.UUID
) -> Revisit:
    assignee = session.get(User, assignee_id)
    if assignee is None or assignee.company_id != revisit.company_id or assignee.role not in FIELD_ROLES:
        raise InvalidInput("Revisits are given to technicians or inspectors.", code="not_assignable")
    if revisit.state == "done":
        raise IllegalTransition("This revisit is already done.", detail={"state": "done", "allowed": []})
    previous = revisit.assignee_id
    revisit.assignee_id = assignee_id
    session.add(revisit)
    changes.touch(
        session,
        company_id=revisit.company_id,
        entity="revisit",
        entity_id=revisit.id,
        users=[u for u in (previous, assignee_id) if u],
    )
    return revisit


def record_revisit_outcome(
    session: Session,
    *,
    actor: Principal,
    revisit: Revisit,
    when: FieldTime,
    channel: str,
    outcome: str,
    satisfaction: int | None,
    note: str | None,
) -> Revisit:
    if revisit.state == "done":
        raise IllegalTransition("This revisit is already done.", detail={"state": "done", "allowed": []})
    order = locking.get_order_for_update(session, order_id=revisit.order_id, company_id=revisit.company_id)
    revisit.state = "done"
    revisit.channel = channel
    revisit.outcome = outcome
    revisit.satisfaction = satisfaction
    revisit.note = note
    revisit.done_at = when.corrected_at
    revisit.done_by = actor.user_id
    session.add(revisit)
    if revisit.assignee_id:
        changes.touch(
            session,
            company_id=revisit.company_id,
            entity="revisit",
            entity_id=revisit.id,
            users=[revisit.assignee_id],
        )
    sla.meet_clock(session, order_id=order.id, clocks=(ClockName.revisit,), at=when.corrected_at)
    flags = ["revisit_fault_persists"] if outcome == "fault_persists" else []
    if outcome == "unreachable":
        # Nobody answered: the revisit stays due and is tried again.
        revisit.state = "due"
        revisit.done_at = None
        fact(
            session,
            order,
            "revisit_attempt",
            None,
            actor=actor,
            when=when,
            data={"channel": channel, "outcome": outcome},
        )
        return revisit
    move(
        session,
        order,
        Move.close,
        actor=actor,
        when=when,
        event_type="revisit_done",
        extra_flags=flags,
        data={"channel": channel, "outcome": outcome, "satisfaction": satisfaction, "note": note},
    )
    order.closed_at = when.received_at
    return revisit


# ---------------------------------------------------------------- internals
