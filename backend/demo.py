"""The demo company (admin, dispatcher1, supervisor1, tech1, tech2, inspector1): for trying the app
locally, never for a real database."""

from datetime import timedelta

from sqlmodel import Session, col, select

from backend.auth import service as auth_service
from backend.auth.models import Role, User
from backend.auth.principal import Principal
from backend.context import AppContext
from backend.errors import Conflict
from backend.evidence.models import Instrument
from backend.ids import new_id
from backend.org.models import Building, Company, Household, Station, Team
from backend.work_orders import service as orders

__all__ = ("DEMO_PASSWORD", "DEMO_USERS", "seed_demo", "seed_review_demo")

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
    if existing:
        return company
    teams = _seed_places(ctx, session, company)
    users: dict[str, User] = {}
    for username, full_name, role, staff_number in DEMO_USERS:
        users[username] = auth_service.create_user(
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
    users["tech1"].team_id = teams["T1"].id
    users["tech2"].team_id = teams["T2"].id
    session.flush()
    _seed_orders(ctx, session, company, users)
    _seed_instruments(ctx, session, company)
    return company


def _seed_instruments(ctx: AppContext, session: Session, company: Company) -> None:
    """Two calibrated thermometers and one whose certificate has lapsed (measurements refuse it)."""
    today = ctx.clock.now().date()
    for serial, expires in (("TH-0042", 365), ("TH-0043", 200), ("TH-0007", -10)):
        session.add(
            Instrument(
                company_id=company.id,
                id=serial,
                model="精密数字温度计 ±0.3 °C",
                certificate_no=f"JJG-{serial}",
                calibration_expires=today + timedelta(days=expires),
                accuracy_c=0.3,
                updated_at=ctx.clock.now(),
            )
        )


# account number, building index, unit, m², resident, phone, key customer
_HOUSEHOLDS = (
    ("100101", 0, "1-2-201", 86.5, "赵建国", "13912340001", False),
    ("100102", 0, "1-3-302", 92.0, "钱淑芬", "13912340002", False),
    ("100103", 0, "2-1-101", 110.2, "孙立新", "13912340003", True),
    ("100201", 1, "1-5-502", 78.0, "李秀兰", "13912340004", False),
    ("100202", 1, "3-2-202", 65.3, "周海涛", "13912340005", False),
    ("100203", 1, "3-6-601", 120.0, "吴春梅", "13912340006", False),
    ("200101", 2, "1-1-102", 88.8, "郑志强", "13912340007", False),
    ("200102", 2, "2-4-401", 95.5, "王桂英", "13912340008", False),
    ("200103", 2, "2-7-702", 70.0, "冯德胜", "13912340009", False),
    ("200201", 3, "1-3-301", 101.0, "陈玉珍", "13912340010", True),
    ("200202", 3, "4-2-201", 83.4, "褚文杰", "13912340011", False),
    ("200203", 3, "4-5-503", 76.9, "卫红霞", "13912340012", False),
)
_BUILDINGS = (
    ("S01", "和平区南京北街 12 号", 41.7968, 123.4245),
    ("S01", "和平区十一纬路 8 号", 41.7941, 123.4189),
    ("S02", "沈河区文化路 35 号", 41.7712, 123.4395),
    ("S02", "沈河区青年大街 120 号", 41.7789, 123.4371),
)


def _seed_places(ctx: AppContext, session: Session, company: Company) -> dict[str, Team]:
    stations = {
        code: Station(id=new_id(), company_id=company.id, code=code, name=name)
        for code, name in (("S01", "南京街换热站"), ("S02", "文化路换热站"))
    }
    session.add_all(stations.values())
    session.flush()  # no ORM relationships: parents are flushed before their children by hand
    teams = {
        "T1": Team(
            id=new_id(), company_id=company.id, code="T1", name="南京街维修班", station_id=stations["S01"].id
        ),
        "T2": Team(
            id=new_id(), company_id=company.id, code="T2", name="文化路维修班", station_id=stations["S02"].id
        ),
    }
    session.add_all(teams.values())
    session.flush()
    buildings = [
        Building(
            id=new_id(),
            company_id=company.id,
            station_id=stations[code].id,
            address=address,
            lat=lat,
            lon=lon,
        )
        for code, address, lat, lon in _BUILDINGS
    ]
    session.add_all(buildings)
    session.flush()
    for account, building, unit, area, name, phone, key in _HOUSEHOLDS:
        session.add(
            Household(
                id=new_id(),
                company_id=company.id,
                building_id=buildings[building].id,
                account_number=account,
                unit=unit,
                heated_area_m2=area,
                resident_name=name,
                resident_phone=phone,
                is_key_customer=key,
                created_at=ctx.clock.now(),
            )
        )
    session.flush()
    return teams


# assignee, household account, kind, source, description, minutes since the call
_ORDERS = (
    ("tech1", "100101", "leak", "hotline", "卫生间暖气片接口滴水", 10),
    ("tech1", "100102", "repair", "hotline", "卧室暖气不热，需排气", 45),
    ("tech1", "100201", "routine_maintenance", "internal", "单元立管阀门检查", 90),
    ("tech2", "200101", "leak", "mayor_hotline", "厨房暖气管道漏水 (12345 转办)", 5),
    ("tech2", "200102", "repair", "hotline", "客厅暖气片上热下凉", 30),
    ("tech2", "200201", "meter_service", "internal", "热量表校验", 120),
    ("inspector1", "100103", "temperature_complaint", "complaint", "住户反映室温 16°C", 60),
    (None, "200203", "complaint", "hotline", "投诉维修人员未按约定时间上门", 20),
)


def _seed_orders(ctx: AppContext, session: Session, company: Company, users: dict[str, User]) -> None:
    dispatcher = users["dispatcher1"]
    actor = Principal(
        user_id=dispatcher.id,
        company_id=company.id,
        role=Role.dispatcher,
        username=dispatcher.username,
        full_name=dispatcher.full_name,
        device_id="demo-seed",
        session_id=new_id(),
    )
    households = {
        h.account_number: h for h in session.exec(select(Household).where(Household.company_id == company.id))
    }
    now = ctx.clock.now()
    for assignee, account, kind, source, description, minutes_ago in _ORDERS:
        orders.create_order(
            session,
            actor=actor,
            now=now,
            kind=kind,
            household_id=households[account].id,
            source=source,
            description=description,
            received_at=now - timedelta(minutes=minutes_ago),
            forwarded=source == "mayor_hotline",
            urgent=source == "mayor_hotline",
            assignee_id=users[assignee].id if assignee else None,
        )


def seed_review_demo(ctx: AppContext, session: Session, company: Company) -> None:
    """For the console: repairs go to review, and one completed repair of tech2's waits there with
    its photos and a receipt the resident signed. Run by ``heatcrew demo`` (once), not by tests."""
    import hashlib
    import io
    import uuid

    import msgspec
    from PIL import Image

    from backend.evidence import photos
    from backend.evidence.models import Blob, BlobUploader
    from backend.review.models import ReviewItem
    from backend.sync.handlers import CATALOGUE, Applying
    from backend.work_orders.timeline import online
    from backend.work_orders.views import order_ref

    if session.exec(select(ReviewItem.id).where(ReviewItem.company_id == company.id)).first() is not None:
        return
    company.review_policy = {"always_kinds": ["repair", "leak", "pipe_burst"], "sample_percent": 10}
    session.add(company)
    users = {u.username: u for u in session.exec(select(User).where(User.company_id == company.id))}
    tech = users["tech2"]
    actor = Principal(
        user_id=tech.id,
        company_id=company.id,
        role=Role.technician,
        username=tech.username,
        full_name=tech.full_name,
        device_id="demo-seed",
        session_id=new_id(),
    )
    household = session.exec(
        select(Household).where(Household.company_id == company.id, Household.account_number == "200203")
    ).one()
    building = session.get(Building, household.building_id)
    assert building is not None
    dispatcher = users["dispatcher1"]
    office = Principal(
        user_id=dispatcher.id,
        company_id=company.id,
        role=Role.dispatcher,
        username=dispatcher.username,
        full_name=dispatcher.full_name,
        device_id="demo-seed",
        session_id=new_id(),
    )
    now = ctx.clock.now()
    order = orders.create_order(
        session,
        actor=office,
        now=now,
        kind="repair",
        household_id=household.id,
        source="hotline",
        description="客厅暖气片漏水",
        received_at=now - timedelta(hours=3),
        assignee_id=tech.id,
    )
    when = online(now)
    orders.accept(session, actor=actor, order=order, when=when)
    orders.record_arrival(
        session,
        actor=actor,
        order=order,
        when=when,
        lat=building.lat,
        lon=building.lon,
        accuracy_m=8.0,
        attempts=[{"method": "ring", "at": now.isoformat()}],
        outcome="admitted",
        badge_shown=True,
    )
    orders.start_work(session, actor=actor, order=order, when=when)

    def apply(type_: str, payload: dict) -> None:
        handler = CATALOGUE[(type_, 1)]
        handler.apply(Applying(session, actor, when, uuid.uuid4(), raw=payload), handler.decode(payload))

    for purpose, colour in (("before", (180, 60, 40)), ("after", (60, 140, 70))):
        out = io.BytesIO()
        Image.new("RGB", (640, 480), colour).save(out, "JPEG", quality=80)
        data = out.getvalue()
        sha = hashlib.sha256(data).hexdigest()
        claims, copies = photos.process(data)
        ctx.blobs.put(sha, iter([data]))
        variants = {}
        for copy in copies:
            copy_sha = hashlib.sha256(copy.content).hexdigest()
            ctx.blobs.put(copy_sha, iter([copy.content]))
            variants[copy.name] = copy_sha
        session.add(
            Blob(
                company_id=company.id,
                sha256=sha,
                size=len(data),
                content_type="image/jpeg",
                uploaded_by=tech.id,
                uploaded_at=now,
                media=claims.format,
                claims=msgspec.to_builtins(claims),
                variants=variants,
            )
        )
        session.add(BlobUploader(company_id=company.id, sha256=sha, user_id=tech.id, uploaded_at=now))
        session.flush()
        apply("evidence.photo", {"work_order_id": str(order.id), "blob": sha, "purpose": purpose})
    content = {
        "work_order_id": str(order.id),
        "order_ref": order_ref(order.id),
        "technician_name": tech.full_name,
        "staff_number": tech.staff_number,
        "resident_name": household.resident_name,
        "address": f"{building.address} {household.unit}",
        "arrived_at": now.isoformat(),
        "completed_at": now.isoformat(),
        "found": "客厅暖气片接口渗水",
        "done": "更换密封垫，试压正常",
        "result": "fixed",
        "satisfaction": 5,
        "parts_used": ["密封垫 DN20"],
    }
    document_id = uuid.uuid4()
    apply("document.issue", {"document": {"type": "receipt", "id": str(document_id)}, "content": content})
    from mobile_contract.documents import content_sha256

    strokes = [[[10, 10, 0], [60, 40, 120], [110, 20, 240]]]
    for name, role in ((household.resident_name, "resident"), (tech.full_name, "technician")):
        apply(
            "evidence.signature",
            {
                "document": {"type": "receipt", "id": str(document_id)},
                "signer_name": name,
                "signer_role": role,
                "content_sha256": content_sha256(content),
                "strokes": strokes,
            },
        )
    orders.complete(session, actor=actor, order=order, when=when, result="fixed", satisfaction=5)
