"""What each role may see of work orders and households, and how it is shaped for them.

Technicians and inspectors see only the orders assigned to them and those orders' households,
with the resident's phone masked unless one of their orders there is active. Everything another
caller may not see answers 404, so its existence is not leaked.
"""

import uuid
from datetime import datetime, timedelta
from typing import TypeVar

import msgspec
import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from backend.auth.models import Role
from backend.auth.principal import Principal
from backend.errors import NotFound
from backend.evidence import documents
from backend.evidence.models import Document, MeterReading, Photo
from backend.org.models import Building, Company, Household
from backend.work_orders import sla
from backend.work_orders.models import Appointment, Arrival, Revisit, SlaClock, WorkOrder, WorkOrderEvent
from backend.work_orders.schemas import (
    AppointmentRead,
    ArrivalRead,
    BoardEntry,
    ClockRead,
    DocumentSummary,
    EventRead,
    Evidence,
    HouseholdRead,
    MeterReadingRead,
    PhotoRead,
    RevisitRead,
    WorkOrderDetail,
    WorkOrderRead,
)
from backend.work_orders.states import ACTIVE_STATES, TERMINAL_STATES, State, allowed_moves
from mobile_contract.reference import WorkOrderKind

__all__ = (
    "board",
    "get_household",
    "get_visible_order",
    "household_read",
    "list_orders",
    "mask_phone",
    "order_detail",
    "order_read",
    "repeat_faults",
)

FIELD_ROLES = (Role.technician, Role.inspector)


def is_field(principal: Principal) -> bool:
    return principal.role in FIELD_ROLES


def mask_phone(phone: str | None) -> str | None:
    if not phone:
        return phone
    digits = phone.strip()
    if len(digits) <= 4:
        return "*" * len(digits)
    keep_head = 3 if len(digits) >= 11 else 1
    return digits[:keep_head] + "*" * (len(digits) - keep_head - 4) + digits[-4:]


def order_ref(order_id: uuid.UUID) -> str:
    """A short code a dispatcher can read over the phone: the random tail of the UUIDv7."""
    return order_id.hex[-8:].upper()


def get_visible_order(session: Session, *, principal: Principal, order_id: uuid.UUID) -> WorkOrder:
    order = session.get(WorkOrder, order_id)
    if order is None or order.company_id != principal.company_id:
        raise NotFound("No such work order.")
    if is_field(principal) and order.assignee_id != principal.user_id:
        raise NotFound("No such work order.")
    return order


def get_household(session: Session, *, principal: Principal, household_id: uuid.UUID) -> HouseholdRead:
    household = session.get(Household, household_id)
    if household is None or household.company_id != principal.company_id:
        raise NotFound("No such household.")
    if is_field(principal):
        states = session.exec(
            select(WorkOrder.state).where(
                WorkOrder.household_id == household_id, WorkOrder.assignee_id == principal.user_id
            )
        ).all()
        if not states:
            raise NotFound("No such household.")
        return household_read(session, household, unmask=any(s in ACTIVE_STATES for s in states))
    return household_read(session, household, unmask=True)


def household_read(session: Session, household: Household, *, unmask: bool) -> HouseholdRead:
    building = session.get(Building, household.building_id)
    return HouseholdRead(
        id=household.id,
        account_number=household.account_number,
        address=building.address if building else "",
        unit=household.unit,
        heated_area_m2=household.heated_area_m2,
        resident_name=household.resident_name,
        resident_phone=household.resident_phone if unmask else mask_phone(household.resident_phone),
        is_key_customer=household.is_key_customer,
        lat=household.lat if household.lat is not None else (building.lat if building else None),
        lon=household.lon if household.lon is not None else (building.lon if building else None),
    )


def _clocks(session: Session, orders: list[WorkOrder], now: datetime) -> dict[uuid.UUID, list[ClockRead]]:
    by_order: dict[uuid.UUID, list[ClockRead]] = {o.id: [] for o in orders}
    if not orders:
        return by_order
    stopped = {o.id: o.closed_at if o.state == State.cancelled else None for o in orders}
    rows = session.exec(
        select(SlaClock)
        .where(col(SlaClock.order_id).in_(list(by_order)))
        .order_by(col(SlaClock.due_at), col(SlaClock.clock))
    )
    for clock in rows:
        by_order[clock.order_id].append(
            ClockRead(
                clock=clock.clock,
                target=clock.target,
                started_at=clock.started_at,
                due_at=clock.due_at,
                met_at=clock.met_at,
                status=sla.clock_status(clock, now=now, stopped_at=stopped[clock.order_id]),
                calendar_estimated=clock.calendar_estimated,
            )
        )
    return by_order


def order_read(order: WorkOrder, clocks: list[ClockRead]) -> WorkOrderRead:
    return WorkOrderRead(
        id=order.id,
        ref=order_ref(order.id),
        kind=order.kind,
        source=order.source,
        state=order.state,
        forwarded=order.forwarded,
        urgent=order.urgent,
        household_id=order.household_id,
        team_id=order.team_id,
        assignee_id=order.assignee_id,
        description=order.description,
        received_at=order.received_at,
        updated_at=order.updated_at,
        completed_at=order.completed_at,
        repeat_of_id=order.repeat_of_id,
        review_flags=list(order.review_flags),
        version=order.version,
        allowed_moves=allowed_moves(State(order.state)),
        clocks=clocks,
    )


def list_orders(
    session: Session,
    *,
    principal: Principal,
    now: datetime,
    states: list[State] | None = None,
    team_id: uuid.UUID | None = None,
    kind: str | None = None,
    assignee_id: uuid.UUID | None = None,
    overdue: bool | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[WorkOrderRead]:
    query = select(WorkOrder).where(WorkOrder.company_id == principal.company_id)
    if is_field(principal):
        query = query.where(WorkOrder.assignee_id == principal.user_id)
    if states:
        query = query.where(col(WorkOrder.state).in_([s.value for s in states]))
    if team_id is not None:
        query = query.where(WorkOrder.team_id == team_id)
    if kind is not None:
        query = query.where(WorkOrder.kind == kind)
    if assignee_id is not None:
        query = query.where(WorkOrder.assignee_id == assignee_id)
    if overdue is not None:
        late = (
            select(SlaClock.id)
            .where(SlaClock.order_id == WorkOrder.id, col(SlaClock.met_at).is_(None), SlaClock.due_at < now)
            .exists()
        )
        live = col(WorkOrder.state).not_in([s.value for s in TERMINAL_STATES])
        query = query.where(sa.and_(late, live) if overdue else sa.not_(sa.and_(late, live)))
    orders = list(session.exec(query.order_by(col(WorkOrder.received_at).desc()).limit(limit).offset(offset)))
    clocks = _clocks(session, orders, now)
    return [order_read(o, clocks[o.id]) for o in orders]


def order_detail(
    session: Session, *, principal: Principal, order: WorkOrder, now: datetime
) -> WorkOrderDetail:
    household = session.get(Household, order.household_id)
    assert household is not None
    unmask = not is_field(principal) or order.state in ACTIVE_STATES
    events = session.exec(
        select(WorkOrderEvent)
        .where(WorkOrderEvent.order_id == order.id)
        .order_by(col(WorkOrderEvent.received_at), col(WorkOrderEvent.id))
    )
    appointments = session.exec(
        select(Appointment).where(Appointment.order_id == order.id).order_by(col(Appointment.created_at))
    )
    arrivals = session.exec(
        select(Arrival).where(Arrival.order_id == order.id).order_by(col(Arrival.received_at))
    )
    revisit = session.exec(select(Revisit).where(Revisit.order_id == order.id)).first()
    return WorkOrderDetail(
        order=order_read(order, _clocks(session, [order], now)[order.id]),
        household=household_read(session, household, unmask=unmask),
        # A fix on the timeline or a check-in is the crew's track (行踪轨迹): the office sees it,
        # field staff do not.
        timeline=[_masked(_read(e, EventRead), principal) for e in events],
        appointments=[_read(a, AppointmentRead) for a in appointments],
        arrivals=[_masked(_read(a, ArrivalRead), principal) for a in arrivals],
        revisit=revisit_read(revisit) if revisit else None,
        evidence=evidence(session, order),
    )


def evidence(session: Session, order: WorkOrder) -> Evidence:
    photos = list(
        session.exec(
            select(Photo).where(Photo.order_id == order.id).order_by(col(Photo.received_at), col(Photo.id))
        )
    )
    readings = session.exec(
        select(MeterReading).where(MeterReading.order_id == order.id).order_by(col(MeterReading.received_at))
    )
    papers = session.exec(
        select(Document)
        .where(Document.order_id == order.id)
        .order_by(col(Document.received_at), col(Document.id))
    )
    company = session.get(Company, order.company_id)
    assert company is not None
    wanted = sla.load_policy(company).required_photos.get(WorkOrderKind(order.kind), [])
    taken = {p.purpose for p in photos}
    summaries = []
    for paper in papers:
        check = documents.verify(session, paper)
        summaries.append(
            DocumentSummary(
                id=paper.id,
                type=paper.type,
                status=check.status,
                missing=check.missing,
                supersedes=paper.supersedes_id,
                superseded_by=paper.superseded_by_id,
            )
        )
    return Evidence(
        photos=[
            PhotoRead(
                id=p.id,
                purpose=p.purpose,
                sha256=p.blob_sha256,
                thumb_url=f"/api/v1/blobs/{p.blob_sha256}/thumb",
                display_url=f"/api/v1/blobs/{p.blob_sha256}/display",
                taken_at=p.taken_at,
                occurred_at=p.occurred_at,
                received_at=p.received_at,
                flags=p.flags,
                original_removed_at=p.original_removed_at,
            )
            for p in photos
        ],
        photos_missing=[p.value for p in wanted if p.value not in taken],
        meter_readings=[
            MeterReadingRead(
                id=r.id,
                meter_id=r.meter_id,
                value=r.value,
                phase=r.phase,
                photo_sha256=r.blob_sha256,
                occurred_at=r.occurred_at,
                flags=r.flags,
            )
            for r in readings
        ],
        documents=summaries,
    )


def revisit_read(revisit: Revisit) -> RevisitRead:
    return _read(revisit, RevisitRead)


_R = TypeVar("_R", bound=msgspec.Struct)
_Located = TypeVar("_Located", EventRead, ArrivalRead)


def _read(row: object, read: type[_R]) -> _R:
    """A table row as its wire type, field by field by name."""
    return msgspec.convert(row, read, from_attributes=True)


def _masked(read: _Located, principal: Principal) -> _Located:
    return msgspec.structs.replace(read, lat=None, lon=None) if is_field(principal) else read


def board(
    session: Session,
    *,
    principal: Principal,
    now: datetime,
    soon: timedelta,
    team_id: uuid.UUID | None = None,
) -> list[BoardEntry]:
    """Every running clock that is overdue or due within ``soon``, most urgent first."""
    query = (
        select(SlaClock, WorkOrder)
        .join(WorkOrder, col(WorkOrder.id) == SlaClock.order_id)
        .where(
            WorkOrder.company_id == principal.company_id,
            col(SlaClock.met_at).is_(None),
            SlaClock.due_at <= now + soon,
            col(WorkOrder.state).not_in([s.value for s in TERMINAL_STATES]),
        )
        .order_by(col(SlaClock.due_at))
    )
    if team_id is not None:
        query = query.where(WorkOrder.team_id == team_id)
    return [
        BoardEntry(
            order_id=order.id,
            ref=order_ref(order.id),
            kind=order.kind,
            state=order.state,
            team_id=order.team_id,
            assignee_id=order.assignee_id,
            clock=clock.clock,
            due_at=clock.due_at,
            minutes_left=int((clock.due_at - now).total_seconds() // 60),
        )
        for clock, order in session.exec(query)
    ]


def repeat_faults(session: Session, *, principal: Principal, since: datetime) -> list[dict[str, object]]:
    earlier = aliased(WorkOrder)
    rows = session.execute(
        sa.select(earlier.team_id, sa.func.count())
        .select_from(WorkOrder)
        .join(earlier, earlier.id == WorkOrder.repeat_of_id)
        .where(WorkOrder.company_id == principal.company_id, WorkOrder.received_at >= since)
        .group_by(earlier.team_id)
    ).all()
    return [{"team_id": str(team) if team else None, "repeat_faults": count} for team, count in rows]
