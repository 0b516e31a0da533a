"""Work-order flows: the dispatcher's moves and the field's, each checked and recorded.

Two kinds of field input (SPEC.md §3): an *intent* (accept, appointment, start, complete, return
request) is checked against the order as it is now and refused with 409 when it no longer
applies; a *fact* (contact, departure, arrival, no access, note) happened whatever the server
thinks, so it is always recorded, moves the order only when the move is legal, and is flagged for
the supervisor when the order has moved on.
"""

import math
import uuid
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import msgspec
import sqlalchemy as sa
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session, col, select

from backend.auth.models import Role, User
from backend.auth.principal import Principal
from backend.db import buffer
from backend.errors import Conflict, Forbidden, InvalidInput, NotFound
from backend.evidence.models import Photo
from backend.ids import new_id
from backend.org.models import Building, Company, Household
from backend.sync import changes
from backend.work_orders import sla
from backend.work_orders.models import Appointment, Arrival, Revisit, WorkOrder, WorkOrderEvent
from backend.work_orders.states import IllegalTransition, Move, State, allowed_moves, next_state
from mobile_contract.reference import ClockName, SlaPolicy, WorkOrderKind

__all__ = (
    "FieldTime",
    "accept",
    "approve_return",
    "assign",
    "assign_revisit",
    "cancel",
    "close",
    "complete",
    "create_order",
    "depart",
    "forget_locked",
    "get_order_for_update",
    "has_order_at",
    "late_fact_flags",
    "lock_orders",
    "note",
    "note_photo",
    "online",
    "record_arrival",
    "record_contact",
    "record_no_access",
    "record_revisit_outcome",
    "refuse_return",
    "request_return",
    "require_field_involvement",
    "set_appointment",
    "start_work",
)

FIELD_ROLES = (Role.technician, Role.inspector)
# Beyond this the phone's fix says little about where it was.
USELESS_ACCURACY_M = 500.0
# Completing as done needs the photos the company asks for; "not fixed" or "answered" do not.
RESULTS_NEEDING_PHOTOS = frozenset({"fixed", "temporary_fix"})


class FieldTime(msgspec.Struct, frozen=True):
    """Both clocks of one action: the phone's, the server's, and the phone's corrected for skew."""

    occurred_at: datetime
    received_at: datetime
    corrected_at: datetime
    skew_flagged: bool = False


def online(now: datetime) -> FieldTime:
    """An action taken on the server itself (console, dispatcher): all clocks agree."""
    return FieldTime(occurred_at=now, received_at=now, corrected_at=now)


# ---------------------------------------------------------------- loading


EVENTS = WorkOrderEvent.__table__
ORDERS = WorkOrder.__table__
_LOCKED = "heatcrew.locked_orders"
_COMPANIES = "heatcrew.companies"
_HOUSEHOLDS = "heatcrew.households"
_PHOTOS = "heatcrew.photo_purposes"


class LockedOrder:
    """A work order locked for a push batch: a plain object with one attribute per column.

    Every service function that takes a ``WorkOrder`` takes this too. A batch moves its orders
    through the state machine in memory and ``db.buffer`` writes back what changed, one statement
    for all of them, before the session's next query and before the commit; an ORM object costs
    more per attribute set than that whole write.
    """

    __slots__ = tuple(c.key for c in ORDERS.columns)

    def __init__(self, row: Any) -> None:
        for name, value in zip(self.__slots__, row, strict=True):
            setattr(self, name, value)


def get_order_for_update(session: Session, *, order_id: uuid.UUID, company_id: uuid.UUID) -> WorkOrder:
    """The order, row-locked on PostgreSQL so two writers cannot interleave on it.

    Within a push batch (after :func:`lock_orders`) it is the batch's :class:`LockedOrder`.
    """
    locked: dict[uuid.UUID, LockedOrder] | None = session.info.get(_LOCKED)
    order: WorkOrder | LockedOrder | None
    if locked is not None:
        if order_id not in locked:
            _lock(session, locked, [order_id], company_id)
        order = locked.get(order_id)
    else:
        order = session.exec(select(WorkOrder).where(WorkOrder.id == order_id).with_for_update()).first()
    if order is None or order.company_id != company_id:
        raise NotFound("No such work order.")
    return order  # type: ignore[return-value]


def lock_orders(session: Session, *, order_ids: list[uuid.UUID], company_id: uuid.UUID) -> None:
    """Start a push batch: lock its orders at once, in id order (one order for every writer: no
    deadlocks), and read their clocks, households and the company's policy once."""
    locked = session.info.setdefault(_LOCKED, {})
    if order_ids:
        _policy(session, company_id)
        _lock(session, locked, order_ids, company_id)


def _lock(
    session: Session, locked: dict[uuid.UUID, LockedOrder], order_ids: list[uuid.UUID], company_id: uuid.UUID
) -> None:
    ids = sorted(set(order_ids).difference(locked))
    if not ids:
        return
    rows = session.execute(_LOCK_ORDERS, {"ids": ids})
    places: dict[uuid.UUID, Any] = session.info.setdefault(_HOUSEHOLDS, {})
    width = len(LockedOrder.__slots__)
    fresh = []
    for row in rows:
        order = LockedOrder(row[:width])
        if order.company_id == company_id:
            fresh.append(order)
            places[order.household_id] = _Place(*row[width:])
    locked.update((order.id, order) for order in fresh)
    buffer.track(session, ORDERS, fresh)
    sla.preload_clocks(session, [order.id for order in fresh])
    _preload_photo_purposes(session, [order.id for order in fresh])


def forget_locked(session: Session) -> None:
    """After a savepoint rollback the cached rows may be stale: read them again."""
    if _LOCKED in session.info:
        session.info[_LOCKED] = {}
    session.info.pop(_HOUSEHOLDS, None)
    session.info.pop(_PHOTOS, None)
    sla.forget_preloaded(session)


@sa.event.listens_for(OrmSession, "after_rollback")
def _after_rollback(session: OrmSession) -> None:
    forget_locked(session)  # type: ignore[arg-type]


@sa.event.listens_for(OrmSession, "after_transaction_end")
def _after_transaction_end(session: OrmSession, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the locks went with the transaction: so does the batch
        for key in (_LOCKED, _HOUSEHOLDS, _PHOTOS, _COMPANIES):
            session.info.pop(key, None)
        sla.forget_preloaded(session)  # type: ignore[arg-type]


def _preload_photo_purposes(session: Session, order_ids: list[uuid.UUID]) -> None:
    # Complete for a locked order: a photo is added only by someone holding the order's lock.
    cache: dict[uuid.UUID, set[str]] = session.info.setdefault(_PHOTOS, {})
    if not order_ids:
        return
    for order_id in order_ids:
        cache[order_id] = set()
    for order_id, purpose in session.execute(_PHOTO_PURPOSES, {"ids": order_ids}):
        cache[order_id].add(purpose)


@sa.event.listens_for(OrmSession, "transient_to_pending")
def _photo_added(session: OrmSession, instance: object) -> None:
    if isinstance(instance, Photo):
        cache = session.info.get(_PHOTOS)
        if cache is not None and instance.order_id in cache:
            cache[instance.order_id].add(instance.purpose)


def note_photo(session: Session, *, order_id: uuid.UUID, purpose: str) -> None:
    """A photo written in bulk (not as an ORM object) counts for completing within the batch."""
    cache = session.info.get(_PHOTOS)
    if cache is not None and order_id in cache:
        cache[order_id].add(purpose)


def _photo_purposes(session: Session, order: WorkOrder) -> set[str]:
    """What the order's photos show; within a push batch, read with its orders and kept up to date."""
    cache = session.info.get(_PHOTOS)
    if cache is not None and order.id in cache:
        return cache[order.id]
    return set(session.exec(select(Photo.purpose).where(Photo.order_id == order.id).distinct()))


class _Place(NamedTuple):
    """What a check-in and a revisit need of a household: its building's position beside its own."""

    is_key_customer: bool
    lat: float | None
    lon: float | None
    building_lat: float | None
    building_lon: float | None


_PLACE = (
    Household.is_key_customer,
    Household.lat,
    Household.lon,
    col(Building.lat).label("building_lat"),
    col(Building.lon).label("building_lon"),
)

# A push batch runs these every time: built once, with parameters.
_LOCK_ORDERS = (
    # By primary key alone: a company filter here tempts SQLite's planner into a company-wide scan.
    # The household's place comes along; only the orders are locked.
    sa.select(ORDERS, *_PLACE)
    .join_from(ORDERS, Household, Household.id == ORDERS.c.household_id)
    .join(Building, col(Building.id) == Household.building_id)
    .where(ORDERS.c.id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(ORDERS.c.id)
    .with_for_update(of=ORDERS)
)
_PHOTO_PURPOSES = (
    sa.select(Photo.order_id, Photo.purpose)
    .where(col(Photo.order_id).in_(sa.bindparam("ids", expanding=True)))
    .distinct()
)
_POLICY = sa.select(Company.sla_policy).where(Company.id == sa.bindparam("company_id"))


def _household(session: Session, household_id: uuid.UUID) -> _Place:
    cache = session.info.get(_HOUSEHOLDS, {})
    if household_id in cache:
        return cache[household_id]
    row = session.execute(
        sa.select(*_PLACE)
        .join(Building, col(Building.id) == Household.building_id)
        .where(Household.id == household_id)
    ).one()
    return _Place(*row)


def _company(session: Session, company_id: uuid.UUID) -> Company:
    company = session.get(Company, company_id)
    assert company is not None
    return company


def _policy(session: Session, company_id: uuid.UUID) -> SlaPolicy:
    cache: dict[uuid.UUID, SlaPolicy] = session.info.setdefault(_COMPANIES, {})
    if company_id not in cache:
        # The one column it needs, not a Company object: a push batch reads it every time.
        row = session.execute(_POLICY, {"company_id": company_id}).one()
        cache[company_id] = sla.load_policy(row)  # type: ignore[arg-type]
    return cache[company_id]


# ---------------------------------------------------------------- dispatcher


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
    company = _company(session, actor.company_id)
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
    _record(
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
    _move(
        session,
        order,
        Move.assign,
        actor=actor,
        when=online(now),
        reason=reason,
        data={"assignee_id": str(assignee_id), "previous_assignee_id": str(previous) if previous else None},
    )
    order.assignee_id = assignee_id
    _touch(session, order)
    if assignee.team_id is not None:
        order.team_id = assignee.team_id
    order.return_reason = None
    order.state_before_return = None
    return order


def cancel(session: Session, *, actor: Principal, order: WorkOrder, reason: str, now: datetime) -> WorkOrder:
    _move(session, order, Move.cancel, actor=actor, when=online(now), reason=reason)
    order.cancel_reason = reason
    order.closed_at = now
    return order


def approve_return(
    session: Session, *, actor: Principal, order: WorkOrder, now: datetime, reason: str | None
) -> WorkOrder:
    _move(session, order, Move.approve_return, actor=actor, when=online(now), reason=reason)
    order.assignee_id = None
    order.state_before_return = None
    return order


def refuse_return(
    session: Session, *, actor: Principal, order: WorkOrder, now: datetime, reason: str | None
) -> WorkOrder:
    _move(
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
    _move(session, order, Move.close, actor=actor, when=online(now), reason=reason)
    order.closed_at = now
    return order


# ---------------------------------------------------------------- field intents


def accept(session: Session, *, actor: Principal, order: WorkOrder, when: FieldTime) -> WorkOrder:
    _require_assignee(order, actor)
    _move(session, order, Move.accept, actor=actor, when=when)
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
        _require_assignee(order, actor)
    current = session.exec(
        select(Appointment).where(Appointment.order_id == order.id, col(Appointment.replaced_at).is_(None))
    ).first()
    is_reschedule = current is not None
    _move(
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
    _require_assignee(order, actor)
    _move(session, order, Move.start, actor=actor, when=when)
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
    _require_assignee(order, actor)
    next_state(State(order.state), Move.complete)  # a completion that no longer applies says so first
    if result in RESULTS_NEEDING_PHOTOS:
        _require_photos(session, order)
    _move(
        session,
        order,
        Move.complete,
        actor=actor,
        when=when,
        data={"result": result, "satisfaction": satisfaction},
    )
    order.completed_at = when.corrected_at
    order.result = result
    order.satisfaction = satisfaction
    order.result_note = note
    sla.meet_clock(
        session, order_id=order.id, clocks=(ClockName.resolve, ClockName.answer), at=when.corrected_at
    )
    _after_completion(session, actor=actor, order=order, when=when)
    return order


def _require_photos(session: Session, order: WorkOrder) -> None:
    """Work reported done shows its evidence: the photos the company asks for this kind of order."""
    wanted = _policy(session, order.company_id).required_photos.get(WorkOrderKind(order.kind), [])
    if not wanted:
        return
    taken = _photo_purposes(session, order)
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
    _require_assignee(order, actor)
    before = order.state
    _move(session, order, Move.request_return, actor=actor, when=when, reason=reason)
    order.state_before_return = before
    order.return_reason = reason
    return order


# ---------------------------------------------------------------- field facts


def record_contact(
    session: Session, *, actor: Principal, order: WorkOrder, when: FieldTime, outcome: str, note: str | None
) -> dict[str, Any]:
    require_field_involvement(session, order, actor)
    event = _fact(
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
    return _fact(session, order, "departed", Move.depart, actor=actor, when=when)


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
    policy = _policy(session, order.company_id)
    distance = _distance_to_household(session, order, lat, lon)
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
    _fact(
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
    return _fact(
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
    return _fact(session, order, "note", None, actor=actor, when=when, data={"text": text})


# ---------------------------------------------------------------- revisits


def _after_completion(session: Session, *, actor: Principal, order: WorkOrder, when: FieldTime) -> None:
    policy = _policy(session, order.company_id)
    if order.kind not in {k.value for k in policy.revisit_kinds}:
        return
    household = _household(session, order.household_id)
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
    _move(
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
    order = get_order_for_update(session, order_id=revisit.order_id, company_id=revisit.company_id)
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
        _fact(
            session,
            order,
            "revisit_attempt",
            None,
            actor=actor,
            when=when,
            data={"channel": channel, "outcome": outcome},
        )
        return revisit
    _move(
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


def _require_assignee(order: WorkOrder, actor: Principal) -> None:
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
    if State(order.state) in _SETTLED:
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


def _move(
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
    return _record(
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


def _fact(
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
    if before in _SETTLED:
        flags.append(f"after_{before.value}")
    elif move is not None and not reassigned and move in _ALLOWED[before]:
        # Otherwise (e.g. a second check-in at the same door) it is recorded and the order stays put.
        after = next_state(before, move)
    if after is not None:
        order.state = after.value
    return _record(
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


def _record(
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
    if not isinstance(order, LockedOrder):  # a batch's order is written back by db.buffer
        session.add(order)
    _touch(session, order)
    return event


def _touch(session: Session, order: WorkOrder) -> None:
    """The assignee's phone learns of the change on its next pull."""
    users = [order.assignee_id] if order.assignee_id else []
    changes.touch(session, company_id=order.company_id, entity="work_order", entity_id=order.id, users=users)


# A fact arriving for an order in one of these states is news the supervisor must see.
_SETTLED = frozenset({State.cancelled, State.closed, State.completed, State.revisit_due, State.returned})
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


def _distance_to_household(
    session: Session, order: WorkOrder, lat: float | None, lon: float | None
) -> float | None:
    if lat is None or lon is None:
        return None
    household = _household(session, order.household_id)
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
