"""SLA clocks: due times from the company's policy, met when the field says so (corrected time)."""

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec
import sqlalchemy as sa
from sqlmodel import Session, select

from backend.db import buffer
from backend.db.lists import one_of
from backend.ids import new_id
from backend.org.models import Company
from backend.work_orders.calendar import add_working_days
from backend.work_orders.models import SlaClock, WorkOrder
from mobile_contract.reference import ClockName, ClockTarget, SlaPolicy

__all__ = (
    "clock_status",
    "load_policy",
    "meet_clock",
    "preload_clocks",
    "start_clocks",
    "start_revisit_clock",
)

# Within one push, the clocks of the batch's orders are read once and kept here (session.info).
_CLOCKS = "heatcrew.sla_clocks"
_DEFERRED = "heatcrew.sla_clocks_deferred"
CLOCKS = SlaClock.__table__
_PRELOAD = sa.select(CLOCKS).where(one_of(CLOCKS.c.order_id, "ids"))


class BatchClock:
    """A clock of a push batch's order: a plain object, written back by ``db.buffer`` when it changes."""

    __slots__ = tuple(c.key for c in CLOCKS.columns)

    def __init__(self, values: object) -> None:
        for name, value in zip(self.__slots__, values, strict=True):  # type: ignore[call-overload]
            setattr(self, name, value)


def load_policy(company: Company) -> SlaPolicy:
    if company.sla_policy is None:
        return SlaPolicy()
    return msgspec.convert(company.sla_policy, SlaPolicy)


def preload_clocks(session: Session, order_ids: list[uuid.UUID]) -> None:
    """The clocks of these orders are read together, once, when the batch first needs one of them:
    meeting them costs no query of its own, and a batch that meets none (notes) reads none."""
    cache: dict[uuid.UUID, list[SlaClock]] = session.info.setdefault(_CLOCKS, {})
    deferred: set[uuid.UUID] = session.info.setdefault(_DEFERRED, set())
    deferred.update(i for i in order_ids if i not in cache)


def _batch_clocks(session: Session, order_id: uuid.UUID) -> list[SlaClock] | None:
    """The batch's clocks of the order (read now with every other deferred order's), or None
    outside a batch."""
    deferred: set[uuid.UUID] | None = session.info.get(_DEFERRED)
    if deferred and order_id in deferred:
        wanted = sorted(deferred)
        deferred.clear()
        cache: dict[uuid.UUID, list[SlaClock]] = session.info[_CLOCKS]
        session.flush()  # a clock added as an ORM object is read with the others
        for wanted_id in wanted:
            cache[wanted_id] = []
        # Plain rows, not ORM objects: a batch meets dozens of clocks and the unit of work costs more.
        clocks = [BatchClock(row) for row in session.execute(_PRELOAD, {"ids": wanted})]
        for clock in clocks:
            cache[clock.order_id].append(clock)
        buffer.track(session, CLOCKS, clocks)
    cache = session.info.get(_CLOCKS)
    if cache is not None and order_id in cache:
        return cache[order_id]
    return None


def forget_preloaded(session: Session) -> None:
    session.info.pop(_CLOCKS, None)
    session.info.pop(_DEFERRED, None)


def _remember(session: Session, clock: SlaClock) -> None:
    deferred = session.info.get(_DEFERRED)
    if deferred and clock.order_id in deferred:
        # Added (and so flushed) before the batch reads its clocks: that read finds this one.
        return
    cache = session.info.get(_CLOCKS)
    if cache is not None and clock.order_id in cache:
        cache[clock.order_id].append(clock)


def _describe(target: ClockTarget) -> str:
    if target.working_days is not None:
        return f"{target.working_days} working days"
    minutes = target.minutes or 0
    if minutes % (24 * 60) == 0:
        return f"{minutes // (24 * 60)} d"
    if minutes % 60 == 0 and minutes >= 120:
        return f"{minutes // 60} h"
    return f"{minutes} min"


def targets_for(order: WorkOrder, policy: SlaPolicy) -> dict[ClockName, ClockTarget]:
    # Keys are enums when decoded from JSON, plain strings in the built-in defaults.
    targets = {ClockName(name): target for name, target in policy.kinds.get(order.kind, {}).items()}  # type: ignore[call-overload]
    if order.forwarded:
        targets[ClockName.accept] = ClockTarget(minutes=policy.forwarded_accept_minutes)
    if order.urgent:
        current = targets.get(ClockName.resolve)
        if current is None or current.minutes is None or current.minutes > policy.urgent_resolve_minutes:
            targets[ClockName.resolve] = ClockTarget(minutes=policy.urgent_resolve_minutes)
    return targets


def start_clocks(session: Session, *, order: WorkOrder, policy: SlaPolicy, zone: ZoneInfo) -> list[SlaClock]:
    clocks = []
    for name, target in targets_for(order, policy).items():
        estimated = False
        if target.working_days is not None:
            due = add_working_days(order.received_at, target.working_days, zone)
            due_at, estimated = due.due_at, due.estimated
        else:
            due_at = order.received_at + timedelta(minutes=target.minutes or 0)
        clock = SlaClock(
            id=new_id(),
            order_id=order.id,
            company_id=order.company_id,
            order_kind=order.kind,
            clock=name.value,
            started_at=order.received_at,
            due_at=due_at,
            target=_describe(target),
            calendar_estimated=estimated,
        )
        session.add(clock)
        _remember(session, clock)
        clocks.append(clock)
    return clocks


def start_revisit_clock(session: Session, *, order: WorkOrder, due_at: datetime, minutes: int) -> SlaClock:
    assert order.completed_at is not None
    batch = _batch_clocks(session, order.id)
    if batch is not None:  # a push batch: a plain row, written in bulk
        row = {
            "id": new_id(),
            "order_id": order.id,
            "company_id": order.company_id,
            "order_kind": order.kind,
            "clock": ClockName.revisit.value,
            "started_at": order.completed_at,
            "due_at": due_at,
            "met_at": None,
            "target": _describe(ClockTarget(minutes=minutes)),
            "calendar_estimated": False,
        }
        buffer.add_row(session, CLOCKS, row)
        batch_clock = BatchClock(row[name] for name in BatchClock.__slots__)
        buffer.track(session, CLOCKS, [batch_clock])  # met later in the batch: updated after its insert
        batch.append(batch_clock)
        return batch_clock  # type: ignore[return-value]
    clock = SlaClock(
        id=new_id(),
        order_id=order.id,
        company_id=order.company_id,
        order_kind=order.kind,
        clock=ClockName.revisit.value,
        started_at=order.completed_at,
        due_at=due_at,
        target=_describe(ClockTarget(minutes=minutes)),
    )
    session.add(clock)
    _remember(session, clock)
    return clock


def meet_clock(session: Session, *, order_id: uuid.UUID, clocks: tuple[ClockName, ...], at: datetime) -> None:
    """Stop the named clocks at ``at`` (the corrected field time); a clock is met once, first time wins."""
    names = {c.value for c in clocks}
    batch = _batch_clocks(session, order_id)
    rows = (
        batch
        if batch is not None
        else list(session.exec(select(SlaClock).where(SlaClock.order_id == order_id)))
    )
    for clock in rows:
        if clock.clock in names and clock.met_at is None:
            clock.met_at = at
            if isinstance(clock, SlaClock):  # a batch's plain clock is written back by db.buffer
                session.add(clock)


def clock_status(clock: SlaClock, *, now: datetime, stopped_at: datetime | None = None) -> str:
    """met / missed / running / stopped (the order was cancelled before the clock ran out)."""
    return status_of(clock.due_at, clock.met_at, now=now, stopped_at=stopped_at)


def status_of(
    due_at: datetime, met_at: datetime | None, *, now: datetime, stopped_at: datetime | None
) -> str:
    """:func:`clock_status` of a clock's due and met times (exports call it per row)."""
    if met_at is not None:
        return "met" if met_at <= due_at else "missed"
    until = min(now, stopped_at) if stopped_at is not None else now
    if until > due_at:
        return "missed"
    return "stopped" if stopped_at is not None else "running"
