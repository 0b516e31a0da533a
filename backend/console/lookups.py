"""What the console's pages show beside the services' answers: names of teams and people, the
technicians with their open workload, households found by address. Reads only, within the
caller's company."""

import uuid

import sqlalchemy as sa
from sqlmodel import Session, col, select

from backend.auth.models import Role, User
from backend.org.models import Building, Household, Team
from backend.work_orders.models import WorkOrder
from backend.work_orders.states import TERMINAL_STATES

__all__ = (
    "assignable_people",
    "find_households",
    "household_address",
    "order_assignees",
    "people_names",
    "teams",
)


def teams(session: Session, *, company_id: uuid.UUID) -> list[Team]:
    return list(session.exec(select(Team).where(Team.company_id == company_id).order_by(col(Team.code))))


def people_names(session: Session, *, company_id: uuid.UUID) -> dict[uuid.UUID, str]:
    rows = session.exec(select(User.id, User.full_name).where(User.company_id == company_id))
    return {user_id: name for user_id, name in rows}


def assignable_people(session: Session, *, company_id: uuid.UUID) -> list[tuple[User, int]]:
    """Active technicians and inspectors, each with the number of open orders assigned to them."""
    open_orders = (
        select(WorkOrder.assignee_id, sa.func.count().label("n"))
        .where(
            WorkOrder.company_id == company_id,
            col(WorkOrder.state).not_in([s.value for s in TERMINAL_STATES]),
            col(WorkOrder.assignee_id).is_not(None),
        )
        .group_by(col(WorkOrder.assignee_id))
        .subquery()
    )
    rows = session.exec(
        select(User, sa.func.coalesce(open_orders.c.n, 0))
        .outerjoin(open_orders, open_orders.c.assignee_id == User.id)
        .where(
            User.company_id == company_id,
            col(User.is_active).is_(True),
            col(User.role).in_([Role.technician.value, Role.inspector.value]),
        )
        .order_by(col(User.username))
    )
    return [(user, int(count)) for user, count in rows]


def find_households(
    session: Session, *, company_id: uuid.UUID, text: str, limit: int = 20
) -> list[tuple[Household, Building]]:
    """Households whose building address, unit or account number contains ``text``."""
    text = text.strip()
    if not text:
        return []
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = session.exec(
        select(Household, Building)
        .join(Building, col(Building.id) == Household.building_id)
        .where(
            Household.company_id == company_id,
            sa.or_(
                col(Building.address).ilike(pattern, escape="\\"),
                col(Household.unit).ilike(pattern, escape="\\"),
                col(Household.account_number).ilike(pattern, escape="\\"),
            ),
        )
        .order_by(col(Building.address), col(Household.unit))
        .limit(limit)
    )
    return list(rows)


def order_assignees(
    session: Session, *, company_id: uuid.UUID, order_ids: list[uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID | None]:
    """Each order's assignee now (a page's worth of orders in one query)."""
    if not order_ids:
        return {}
    rows = session.exec(
        select(WorkOrder.id, WorkOrder.assignee_id).where(
            WorkOrder.company_id == company_id, col(WorkOrder.id).in_(order_ids)
        )
    )
    return {order_id: assignee_id for order_id, assignee_id in rows}


def household_address(session: Session, *, company_id: uuid.UUID, household_id: uuid.UUID) -> str:
    """``address unit · account number`` of one household of the company (empty if not found)."""
    row = session.exec(
        select(Building.address, Household.unit, Household.account_number)
        .join(Building, col(Building.id) == Household.building_id)
        .where(Household.company_id == company_id, Household.id == household_id)
    ).first()
    return f"{row[0]} {row[1]} · {row[2]}" if row else ""
