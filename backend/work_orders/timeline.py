"""What every change to an order goes through: the move, the fact, and the timeline event.

An order changes by a *move* of the state machine (refused when it does not apply) or by a
*fact* (recorded whatever the state, moving the order only along a legal move and flagged when
the order has moved on). Either way it is one timeline event with who, which device, the three
clocks and the flags; the order's version goes up and the change feed hears of it.
"""

import uuid
from datetime import datetime
from typing import Any

import msgspec
from sqlmodel import Session, col, select

from backend.auth.models import Role
from backend.auth.principal import Principal
from backend.db import buffer
from backend.errors import Forbidden
from backend.ids import new_id
from backend.review import entry as review_entry
from backend.sync import changes
from backend.work_orders import locking
from backend.work_orders.models import WorkOrder, WorkOrderEvent
from backend.work_orders.states import IllegalTransition, Move, State, allowed_moves, next_state

__all__ = (
    "FIELD_ROLES",
    "SETTLED",
    "FieldTime",
    "fact",
    "has_order_at",
    "late_fact_flags",
    "move",
    "online",
    "record",
    "require_assignee",
    "require_field_involvement",
    "touch_households",
    "touch_order",
)


FIELD_ROLES = (Role.technician, Role.inspector)


class FieldTime(msgspec.Struct, frozen=True):
    """Both clocks of one action: the phone's, the server's, and the phone's corrected for skew."""

    occurred_at: datetime
    received_at: datetime
    corrected_at: datetime
    skew_flagged: bool = False


def online(now: datetime) -> FieldTime:
    """An action taken on the server itself (console, dispatcher): all clocks agree."""
    return FieldTime(occurred_at=now, received_at=now, corrected_at=now)


EVENTS = WorkOrderEvent.__table__


def require_assignee(order: WorkOrder, actor: Principal) -> None:
    if actor.role in FIELD_ROLES and order.assignee_id != actor.user_id:
        raise IllegalTransition(
            "This order is no longer assigned to you.",
            code="not_assignee",
            detail={
                "state": order.state,
                "assignee_id": str(order.assignee_id) if order.assignee_id else None,
            },
        )


def late_fact_flags(order: WorkOrder, actor: Principal) -> list[str]:
    """What a supervisor must know about evidence that arrives for an order that moved on."""
    flags = []
    if actor.role in FIELD_ROLES and order.assignee_id != actor.user_id:
        flags.append("after_reassignment")
    if State(order.state) in SETTLED:
        flags.append(f"after_{order.state}")
    return flags


def has_order_at(session: Session, *, actor: Principal, household_id: uuid.UUID) -> bool:
    """Office roles may record anywhere in their company; field staff where they hold an order."""
    if actor.role not in FIELD_ROLES:
        return True
    return (
        session.exec(
            select(WorkOrder.id).where(
                WorkOrder.household_id == household_id, WorkOrder.assignee_id == actor.user_id
            )
        ).first()
        is not None
    )


def require_field_involvement(session: Session, order: WorkOrder, actor: Principal) -> None:
    """A fact comes from someone who holds, or once held, the order; anyone else is refused."""
    if actor.role not in FIELD_ROLES or order.assignee_id == actor.user_id:
        return
    held = session.exec(
        select(WorkOrderEvent.id).where(
            WorkOrderEvent.order_id == order.id,
            WorkOrderEvent.type == "assigned",
            col(WorkOrderEvent.data)["assignee_id"].as_string() == str(actor.user_id),
        )
    ).first()
    if held is None:
        raise Forbidden("This order was never assigned to you.")


def move(
    session: Session,
    order: WorkOrder,
    move: Move,
    *,
    actor: Principal | None,
    when: FieldTime,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
    event_type: str | None = None,
    previous: str | None = None,
    extra_flags: list[str] | None = None,
    lat: float | None = None,
    lon: float | None = None,
) -> dict[str, Any]:
    before = State(order.state)
    after = next_state(before, move, previous=previous)
    order.state = after.value
    return record(
        session,
        order,
        event_type or _EVENT_NAMES[move],
        actor=actor,
        when=when,
        from_state=before,
        to_state=after,
        reason=reason,
        data=data,
        flags=extra_flags,
        lat=lat,
        lon=lon,
    )


def fact(
    session: Session,
    order: WorkOrder,
    event_type: str,
    move: Move | None,
    *,
    actor: Principal,
    when: FieldTime,
    data: dict[str, Any] | None = None,
    extra_flags: list[str] | None = None,
    lat: float | None = None,
    lon: float | None = None,
) -> dict[str, Any]:
    """Record what happened; move the order only when the move is legal, flag it when not."""
    flags = list(extra_flags or [])
    reassigned = actor.role in FIELD_ROLES and order.assignee_id != actor.user_id
    if reassigned:
        flags.append("after_reassignment")
    before = State(order.state)
    after: State | None = None
    if before in SETTLED:
        flags.append(f"after_{before.value}")
    elif move is not None and not reassigned and move in _ALLOWED[before]:
        # Otherwise (e.g. a second check-in at the same door) it is recorded and the order stays put.
        after = next_state(before, move)
    if after is not None:
        order.state = after.value
    event = record(
        session,
        order,
        event_type,
        actor=actor,
        when=when,
        from_state=before,
        to_state=after,
        data=data,
        flags=flags,
        lat=lat,
        lon=lon,
    )
    if before in SETTLED:
        # News for an order that is done: its review item may need to (re)open.
        review_entry.after_fact(session, order=order, at=when.received_at)
    return event


def record(
    session: Session,
    order: WorkOrder,
    event_type: str,
    *,
    actor: Principal | None,
    when: FieldTime,
    from_state: State | None = None,
    to_state: State | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
    flags: list[str] | None = None,
    lat: float | None = None,
    lon: float | None = None,
) -> dict[str, Any]:
    flags = list(flags or [])
    if when.skew_flagged:
        flags.append("clock_skew")
    event = {
        "id": new_id(),
        "order_id": order.id,
        "type": event_type,
        "from_state": from_state.value if from_state else None,
        "to_state": to_state.value if to_state else None,
        "actor_id": actor.user_id if actor else None,
        "device_id": actor.device_id if actor and actor.role in FIELD_ROLES else None,
        "occurred_at": when.occurred_at,
        "received_at": when.received_at,
        "corrected_at": when.corrected_at,
        "lat": lat,
        "lon": lon,
        "reason": reason,
        "data": {k: v for k, v in (data or {}).items() if v is not None},
        "flags": flags,
    }
    buffer.add_row(session, EVENTS, event)
    review = [f for f in flags if f not in order.review_flags]
    if review:
        order.review_flags = [*order.review_flags, *review]
    order.updated_at = when.received_at
    order.version += 1
    locking.keep(session, order)
    touch_order(session, order, household=to_state is not None)
    return event


def touch_order(session: Session, order: WorkOrder, *, household: bool = False) -> None:
    """The assignee's phone learns of the change on its next pull; with ``household`` (a move, an
    assignment), of the order's household too.

    What a phone holds of a household depends on the states and the assignees of the orders there:
    whether it holds the household at all, whether the resident's phone shows in full, the last
    visits. A note, a photo or a measurement changes none of it, and the phone's next pull does
    not send the household again."""
    users = [order.assignee_id] if order.assignee_id else []
    changes.touch(session, company_id=order.company_id, entity="work_order", entity_id=order.id, users=users)
    if household:
        company_id, household_id = order.company_id, order.household_id
        changes.touch(session, company_id=company_id, entity="household", entity_id=household_id, users=users)


def touch_households(session: Session, *, company_id: uuid.UUID, household_ids: list[uuid.UUID]) -> None:
    """Every phone that holds these households (its user has an open order there) gets them again
    on its next pull: for a change of what they show to everyone (their data, their last visits)."""
    for household_id in household_ids:
        changes.touch(
            session,
            company_id=company_id,
            entity="household",
            entity_id=household_id,
            users=[changes.HOLDERS],
        )


# A fact arriving for an order in one of these states is news the supervisor must see.
SETTLED = frozenset({State.cancelled, State.closed, State.completed, State.revisit_due, State.returned})
# The moves allowed from each state, worked out once.
_ALLOWED = {state: frozenset(allowed_moves(state)) for state in State}

_EVENT_NAMES = {
    Move.assign: "assigned",
    Move.accept: "accepted",
    Move.contact: "contact",
    Move.set_appointment: "appointment_set",
    Move.depart: "departed",
    Move.arrive: "arrived",
    Move.arrive_no_access: "no_access",
    Move.no_access: "no_access",
    Move.start: "started",
    Move.complete: "completed",
    Move.request_return: "return_requested",
    Move.approve_return: "return_approved",
    Move.refuse_return: "return_refused",
    Move.await_revisit: "revisit_created",
    Move.close: "closed",
    Move.cancel: "cancelled",
}
