"""The field's moves: intents checked against the order as it is now, facts always recorded.

An *intent* (accept, appointment, start, complete, return request) is refused with 409 when it
no longer applies; a *fact* (contact, departure, arrival, no access, note) happened whatever the
server thinks, so it is recorded, moves the order only when the move is legal, and is flagged for
the supervisor when the order has moved on.
"""

import math
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from backend.auth.principal import Principal
from backend.db import buffer
from backend.errors import Conflict, InvalidInput
from backend.ids import new_id
from backend.review import entry as review_entry
from backend.work_orders import locking, sla
from backend.work_orders.models import Appointment, Arrival, WorkOrder
from backend.work_orders.revisits import after_completion
from backend.work_orders.states import Move, State, next_state
from backend.work_orders.timeline import (
    FIELD_ROLES,
    FieldTime,
    fact,
    move,
    require_assignee,
    require_field_involvement,
    touch_households,
)
from mobile_contract.reference import ClockName, WorkOrderKind

__all__ = (
    "accept",
    "complete",
    "depart",
    "distance_to_household",
    "haversine_m",
    "note",
    "record_arrival",
    "record_contact",
    "record_no_access",
    "request_return",
    "set_appointment",
    "start_work",
)


# Beyond this the phone's fix says little about where it was.
USELESS_ACCURACY_M = 500.0
# Completing as done needs the photos the company asks for; "not fixed" or "answered" do not.
RESULTS_NEEDING_PHOTOS = frozenset({"fixed", "temporary_fix"})


def accept(session: Session, *, actor: Principal, order: WorkOrder, when: FieldTime) -> WorkOrder:
    require_assignee(order, actor)
    move(session, order, Move.accept, actor=actor, when=when)
    sla.meet_clock(session, order_id=order.id, clocks=(ClockName.accept,), at=when.corrected_at)
    return order


def set_appointment(
    session: Session,
    *,
    actor: Principal,
    order: WorkOrder,
    when: FieldTime,
    window_start: datetime,
    window_end: datetime,
    reason: str | None,
    requested_by: str = "resident",
) -> Appointment:
    if window_end <= window_start:
        raise InvalidInput("The visit window ends before it starts.", code="invalid_window")
    if window_end - window_start > timedelta(hours=12):
        raise InvalidInput("A visit window is at most 12 hours.", code="invalid_window")
    if actor.role in FIELD_ROLES:
        require_assignee(order, actor)
    current = session.exec(
        select(Appointment).where(Appointment.order_id == order.id, col(Appointment.replaced_at).is_(None))
    ).first()
    is_reschedule = current is not None
    move(
        session,
        order,
        Move.set_appointment,
        actor=actor,
        when=when,
        reason=reason,
        event_type="rescheduled" if is_reschedule or order.state == State.no_access else "appointment_set",
        data={
            "window_start": window_start.isoformat(),
            "window_end": window_end.isoformat(),
            "requested_by": requested_by,
        },
    )
    if current is not None:
        current.replaced_at = when.received_at
        session.add(current)
    appointment = Appointment(
        id=new_id(),
        order_id=order.id,
        window_start=window_start,
        window_end=window_end,
        reason=reason,
        requested_by=requested_by,
        created_by=actor.user_id,
        created_at=when.received_at,
    )
    session.add(appointment)
    # Agreeing a time with the resident is the contact the clock asks for.
    sla.meet_clock(session, order_id=order.id, clocks=(ClockName.contact,), at=when.corrected_at)
    return appointment


def start_work(session: Session, *, actor: Principal, order: WorkOrder, when: FieldTime) -> WorkOrder:
    require_assignee(order, actor)
    move(session, order, Move.start, actor=actor, when=when)
    return order


def complete(
    session: Session,
    *,
    actor: Principal,
    order: WorkOrder,
    when: FieldTime,
    result: str,
    satisfaction: int | None,
    note: str | None = None,
) -> WorkOrder:
    require_assignee(order, actor)
    next_state(State(order.state), Move.complete)  # a completion that no longer applies says so first
    if result in RESULTS_NEEDING_PHOTOS:
        _require_photos(session, order)
    move(
        session,
        order,
        Move.complete,
        actor=actor,
        when=when,
        data={"result": result, "satisfaction": satisfaction},
    )
    order.completed_at = when.corrected_at
    order.result = result
    # A new last visit at the address, for every phone that holds the household.
    touch_households(session, company_id=order.company_id, household_ids=[order.household_id])
    order.satisfaction = satisfaction
    order.result_note = note
    sla.meet_clock(
        session, order_id=order.id, clocks=(ClockName.resolve, ClockName.answer), at=when.corrected_at
    )
    after_completion(session, actor=actor, order=order, when=when)
    # The supervisor's queue: an explicit call, so it holds in a push batch as online.
    review_entry.on_completed(session, order=order, at=when.received_at)
    return order


def _require_photos(session: Session, order: WorkOrder) -> None:
    """Work reported done shows its evidence: the photos the company asks for this kind of order."""
    wanted = locking.policy(session, order.company_id).required_photos.get(WorkOrderKind(order.kind), [])
    if not wanted:
        return
    taken = locking.photo_purposes(session, order)
    missing = [p.value for p in wanted if p.value not in taken]
    if missing:
        raise Conflict(
            f"Completing needs these photos first: {', '.join(missing)}.",
            code="photos_missing",
            detail={"missing": missing},
        )


def request_return(
    session: Session, *, actor: Principal, order: WorkOrder, when: FieldTime, reason: str
) -> WorkOrder:
    """A technician cannot drop an order: they ask, a dispatcher decides."""
    require_assignee(order, actor)
    before = order.state
    move(session, order, Move.request_return, actor=actor, when=when, reason=reason)
    order.state_before_return = before
    order.return_reason = reason
    return order


# ---------------------------------------------------------------- field facts


def record_contact(
    session: Session, *, actor: Principal, order: WorkOrder, when: FieldTime, outcome: str, note: str | None
) -> dict[str, Any]:
    require_field_involvement(session, order, actor)
    event = fact(
        session,
        order,
        "contact",
        Move.contact if outcome == "reached" else None,
        actor=actor,
        when=when,
        data={"outcome": outcome, "note": note},
    )
    if outcome == "reached":
        sla.meet_clock(session, order_id=order.id, clocks=(ClockName.contact,), at=when.corrected_at)
    return event


def depart(session: Session, *, actor: Principal, order: WorkOrder, when: FieldTime) -> dict[str, Any]:
    require_field_involvement(session, order, actor)
    return fact(session, order, "departed", Move.depart, actor=actor, when=when)


def record_arrival(
    session: Session,
    *,
    actor: Principal,
    order: WorkOrder,
    when: FieldTime,
    lat: float | None,
    lon: float | None,
    accuracy_m: float | None,
    attempts: list[dict[str, Any]],
    outcome: str,
    badge_shown: bool,
) -> dict[str, Any]:
    """A door check-in. Made offline it is accepted as it is, and marked verified or not by distance."""
    require_field_involvement(session, order, actor)
    policy = locking.policy(session, order.company_id)
    distance = distance_to_household(session, order, lat, lon)
    verified: bool | None = None
    if distance is not None:
        slack = min(accuracy_m or 0.0, USELESS_ACCURACY_M)
        verified = (accuracy_m or 0.0) <= USELESS_ACCURACY_M and distance - slack <= policy.arrival_radius_m
    arrival = {
        "id": new_id(),
        "order_id": order.id,
        "user_id": actor.user_id,
        "device_id": actor.device_id,
        "lat": lat,
        "lon": lon,
        "accuracy_m": accuracy_m,
        "distance_m": round(distance, 1) if distance is not None else None,
        "location_verified": verified,
        "attempts": attempts,
        "outcome": outcome,
        "badge_shown": badge_shown,
        "occurred_at": when.occurred_at,
        "received_at": when.received_at,
        "corrected_at": when.corrected_at,
    }
    buffer.add_row(session, Arrival.__table__, arrival)
    # "No answer" after the attempts leads to a reschedule, not a failure.
    move = Move.arrive if outcome == "admitted" else Move.arrive_no_access
    flags = [] if verified is not False else ["location_not_verified"]
    fact(
        session,
        order,
        "arrived" if outcome == "admitted" else "no_access",
        move,
        actor=actor,
        when=when,
        lat=lat,
        lon=lon,
        extra_flags=flags,
        data={
            "arrival_id": str(arrival["id"]),
            "outcome": outcome,
            "attempts": len(attempts),
            "badge_shown": badge_shown,
            "distance_m": arrival["distance_m"],
            "location_verified": verified,
        },
    )
    # Being at the door stops the arrival clock even when nobody answers.
    sla.meet_clock(session, order_id=order.id, clocks=(ClockName.arrive,), at=when.corrected_at)
    return arrival


def record_no_access(
    session: Session,
    *,
    actor: Principal,
    order: WorkOrder,
    when: FieldTime,
    attempts: list[dict[str, Any]],
    note: str | None,
) -> dict[str, Any]:
    require_field_involvement(session, order, actor)
    return fact(
        session,
        order,
        "no_access",
        Move.no_access,
        actor=actor,
        when=when,
        data={"attempts": attempts, "note": note},
    )


def note(
    session: Session, *, actor: Principal, order: WorkOrder, when: FieldTime, text: str
) -> dict[str, Any]:
    require_field_involvement(session, order, actor)
    return fact(session, order, "note", None, actor=actor, when=when, data={"text": text})


# ---------------------------------------------------------------- revisits


def distance_to_household(
    session: Session, order: WorkOrder, lat: float | None, lon: float | None
) -> float | None:
    if lat is None or lon is None:
        return None
    household = locking.place(session, order.household_id)
    target_lat, target_lon = household.lat, household.lon
    if target_lat is None or target_lon is None:
        if household.building_lat is None or household.building_lon is None:
            return None
        target_lat, target_lon = household.building_lat, household.building_lon
    return haversine_m(lat, lon, target_lat, target_lon)


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    earth_radius_m = 6_371_008.8
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * earth_radius_m * math.asin(math.sqrt(a))
