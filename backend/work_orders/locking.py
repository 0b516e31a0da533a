"""A push batch's orders: locked once, moved in memory, written back in bulk.

Outside a batch an order is an ORM row locked with ``SELECT … FOR UPDATE``. Inside one
(:func:`lock_orders`) it is a :class:`LockedOrder`, a plain object whose changed columns
``db.buffer`` writes back; the batch reads each order's household with it, and the clocks and
photo purposes of all its orders together the first time an action needs any (a batch of notes
never does), and the company's policy once. The caches live in ``session.info`` and end with the
transaction.
"""

import uuid
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col, select

from backend.db import buffer, direct
from backend.db.lists import one_of
from backend.errors import NotFound
from backend.evidence.models import Photo
from backend.org.models import Building, Company, Household
from backend.work_orders import sla
from backend.work_orders.models import WorkOrder
from mobile_contract.reference import SlaPolicy

__all__ = (
    "LockedOrder",
    "company",
    "end_batch",
    "forget_locked",
    "get_order_for_update",
    "keep",
    "lock_orders",
    "locked_ids",
    "note_photo",
    "photo_added",
    "photo_purposes",
    "place",
    "policy",
)


ORDERS = WorkOrder.__table__
_LOCKED = "heatcrew.locked_orders"
_COMPANIES = "heatcrew.companies"
_HOUSEHOLDS = "heatcrew.households"
_PHOTOS = "heatcrew.photo_purposes"
_PHOTOS_DEFERRED = "heatcrew.photo_purposes_deferred"


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
    deadlocks), with their households; their clocks and photos are read once, when first needed."""
    locked = session.info.setdefault(_LOCKED, {})
    if order_ids:
        _lock(session, locked, order_ids, company_id)


def _lock(
    session: Session, locked: dict[uuid.UUID, LockedOrder], order_ids: list[uuid.UUID], company_id: uuid.UUID
) -> None:
    ids = sorted(set(order_ids).difference(locked))
    if not ids:
        return
    # Plain rows through the driver (``db.direct``): the ORM's execution path costs more than the
    # statement. What the batch buffered goes first, as before any statement of the session.
    buffer.write_rows(session)
    rows = direct.rows(session.connection(), _LOCK_ORDERS, {"ids": ids})
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


def locked_ids(session: Session) -> list[uuid.UUID]:
    """The orders this batch holds locked (to lock again in one go after a rollback)."""
    return list(session.info.get(_LOCKED) or ())


def forget_locked(session: Session) -> None:
    """After a savepoint rollback the cached rows may be stale: read them again."""
    if _LOCKED in session.info:
        session.info[_LOCKED] = {}
    session.info.pop(_HOUSEHOLDS, None)
    session.info.pop(_PHOTOS, None)
    session.info.pop(_PHOTOS_DEFERRED, None)
    sla.forget_preloaded(session)


def end_batch(session: OrmSession) -> None:
    """The transaction ended: the row locks went with it, and so does the batch."""
    for key in (_LOCKED, _HOUSEHOLDS, _PHOTOS, _PHOTOS_DEFERRED, _COMPANIES):
        session.info.pop(key, None)
    sla.forget_preloaded(session)  # type: ignore[arg-type]


def _preload_photo_purposes(session: Session, order_ids: list[uuid.UUID]) -> None:
    # Read for all of them when the batch first asks for one (a completion): a batch of notes reads
    # none. Complete for a locked order: a photo is added only by someone holding the order's lock.
    session.info.setdefault(_PHOTOS, {})
    session.info.setdefault(_PHOTOS_DEFERRED, set()).update(order_ids)


def _batch_photo_purposes(session: Session, order_id: uuid.UUID) -> set[str] | None:
    deferred: set[uuid.UUID] | None = session.info.get(_PHOTOS_DEFERRED)
    cache: dict[uuid.UUID, set[str]] | None = session.info.get(_PHOTOS)
    if cache is None:
        return None
    if deferred and order_id in deferred:
        wanted = sorted(deferred)
        deferred.clear()
        session.flush()  # a photo added as an ORM object is read with the others
        for wanted_id in wanted:
            cache[wanted_id] = set()
        for found_id, purpose in session.execute(_PHOTO_PURPOSES, {"ids": wanted}):
            cache[found_id].add(purpose)
    return cache.get(order_id)


def photo_added(session: OrmSession, instance: object) -> None:
    """A photo added as an ORM object counts for completing within the batch."""
    if isinstance(instance, Photo):
        note_photo(session, order_id=instance.order_id, purpose=instance.purpose)  # type: ignore[arg-type]


def note_photo(session: Session | OrmSession, *, order_id: uuid.UUID, purpose: str) -> None:
    """A photo written in bulk (not as an ORM object) counts for completing within the batch.

    An order whose photos the batch has not read yet needs nothing: the read will find it."""
    cache = session.info.get(_PHOTOS)
    if cache is not None and order_id in cache:
        cache[order_id].add(purpose)


def photo_purposes(session: Session, order: WorkOrder) -> set[str]:
    """What the order's photos show; within a push batch, read with its orders and kept up to date."""
    batch = _batch_photo_purposes(session, order.id)
    if batch is not None:
        return batch
    return set(session.exec(select(Photo.purpose).where(Photo.order_id == order.id).distinct()))


class _Place(NamedTuple):
    """What a check-in and a revisit need of a household: its building's position beside its own;
    and when its resident's data was erased, for the free text of actions queued before that."""

    is_key_customer: bool
    lat: float | None
    lon: float | None
    building_lat: float | None
    building_lon: float | None
    erased_at: datetime | None


_PLACE = (
    Household.is_key_customer,
    Household.lat,
    Household.lon,
    col(Building.lat).label("building_lat"),
    col(Building.lon).label("building_lon"),
    Household.erased_at,
)

# A push batch runs these every time: built once, with parameters.
_LOCK_ORDERS = (
    # By primary key alone: a company filter here tempts SQLite's planner into a company-wide scan.
    # The household's place comes along; only the orders are locked.
    sa.select(ORDERS, *_PLACE)
    .join_from(ORDERS, Household, Household.id == ORDERS.c.household_id)
    .join(Building, col(Building.id) == Household.building_id)
    .where(one_of(ORDERS.c.id, "ids"))
    .order_by(ORDERS.c.id)
    .with_for_update(of=ORDERS)
)
_PHOTO_PURPOSES = sa.select(Photo.order_id, Photo.purpose).where(one_of(Photo.order_id, "ids")).distinct()
_POLICY = sa.select(Company.sla_policy).where(Company.id == sa.bindparam("company_id"))


def place(session: Session, household_id: uuid.UUID) -> _Place:
    cache = session.info.get(_HOUSEHOLDS, {})
    if household_id in cache:
        return cache[household_id]
    row = session.execute(
        sa.select(*_PLACE)
        .join(Building, col(Building.id) == Household.building_id)
        .where(Household.id == household_id)
    ).one()
    return _Place(*row)


def company(session: Session, company_id: uuid.UUID) -> Company:
    company = session.get(Company, company_id)
    assert company is not None
    return company


def policy(session: Session, company_id: uuid.UUID) -> SlaPolicy:
    cache: dict[uuid.UUID, SlaPolicy] = session.info.setdefault(_COMPANIES, {})
    if company_id not in cache:
        # The one column it needs, not a Company object: a push batch reads it every time.
        row = session.execute(_POLICY, {"company_id": company_id}).one()
        cache[company_id] = sla.load_policy(row)  # type: ignore[arg-type]
    return cache[company_id]


# ---------------------------------------------------------------- dispatcher


def keep(session: Session, order: WorkOrder) -> None:
    """Write the order's changes with the session; a batch's locked order is written back by db.buffer."""
    if not isinstance(order, LockedOrder):
        session.add(order)
