"""The demo company of SPEC.md: for trying the app locally, never for a real database."""

from sqlmodel import Session, col, select

from backend.auth import service as auth_service
from backend.auth.models import Role, User
from backend.context import AppContext
from backend.errors import Conflict
from backend.ids import new_id
from backend.org.models import Company

__all__ = ("DEMO_PASSWORD", "DEMO_USERS", "seed_demo")

DEMO_PASSWORD = "demo-password"
DEMO_COMPANY_CODE = "demo"
# username, full name, role, staff number
DEMO_USERS: tuple[tuple[str, str, Role, str], ...] = (
    ("admin", "系统管理员", Role.admin, "A0001"),
    ("dispatcher1", "调度员 王芳", Role.dispatcher, "D0101"),
    ("supervisor1", "督查员 李强", Role.supervisor, "S0201"),
    ("tech1", "维修工 张伟", Role.technician, "T0301"),
    ("tech2", "维修工 刘洋", Role.technician, "T0302"),
    ("inspector1", "测温员 陈静", Role.inspector, "I0401"),
)


def seed_demo(ctx: AppContext, session: Session) -> Company:
    """Create the demo company once; a second run finds it and changes nothing.

    Refuses a database that holds any real (non-demo) user: demo passwords are public.
    """
    real_user = session.exec(select(User.username).where(col(User.is_demo).is_(False))).first()
    if real_user is not None:
        raise Conflict(
            "This database has real users; the demo refuses to seed it.",
            code="demo_refused",
            detail={"user": real_user},
        )
    company = session.exec(select(Company).where(Company.code == DEMO_COMPANY_CODE)).first()
    if company is None:
        company = Company(
            id=new_id(),
            code=DEMO_COMPANY_CODE,
            name="演示供热公司 (HeatCrew demo)",
            timezone=ctx.settings.timezone,
            is_demo=True,
            created_at=ctx.clock.now(),
        )
        session.add(company)
        session.flush()
    existing = set(session.exec(select(User.username).where(User.company_id == company.id)))
    for username, full_name, role, staff_number in DEMO_USERS:
        if username in existing:
            continue
        auth_service.create_user(
            ctx,
            session,
            company_id=company.id,
            username=username,
            full_name=full_name,
            role=role,
            password=DEMO_PASSWORD,
            staff_number=staff_number,
            phone="13800000000",
            is_demo=True,
        )
    return company
