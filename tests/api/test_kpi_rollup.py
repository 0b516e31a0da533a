"""The KPI rollup against the raw queries: random field days, the same report either way.

Each run works the demo company's orders through the real paths (the services in their own
transactions as requests run them, and phones pushing over HTTP: the push batches' bulk rows),
with random events: new orders (some 12345, some received hours ago, some at a household with a
recent repair: repeats), the field's steps pushed late (the phone's clock hours behind: facts on
days already past), completions, cancellations, reassignment to the other team, returns
approved (reopened to dispatch), closing, measurements judged pass, fail or incomplete (with and
without an order, some corrected), revisits done on time or late. At checkpoints days apart, every
KPI of several scopes (the season, each team, short periods with daily bars, a period that ended)
is computed from the rollup (whole past days) and the raw rows (today), and from the raw rows
alone: the reports must be equal, bar for bar. The rollup is then compacted and rebuilt from
scratch, and must still agree.
"""

import random
import uuid
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from sqlmodel import select

from backend.auth.models import User
from backend.clock import ManualClock
from backend.context import AppContext
from backend.errors import HeatCrewError
from backend.org.models import Household
from backend.reports import kpis, rollup, scope
from backend.work_orders import service
from backend.work_orders.models import Revisit, WorkOrder
from tests.api.helpers import auth, login
from tests.fixtures.field import new_order, principal, take_photos, when
from tests.fixtures.pushing import Phone

pytestmark = pytest.mark.usefixtures("demo")

ACCOUNTS = ("100101", "100102", "100103", "200102", "200201", "200203", "200202", "200103")
KINDS = ("repair", "repair", "leak", "complaint", "temperature_complaint", "routine_maintenance")
AT_DOOR = {"lat": 41.79683, "lon": 123.42452, "accuracy_m": 12.0}


class Field:
    """The demo company's people, doing things to orders; every refused step is skipped."""

    def __init__(self, client: TestClient, ctx: AppContext, clock: ManualClock, rng: random.Random) -> None:
        self.client, self.ctx, self.clock, self.rng = client, ctx, clock, rng
        self.phones = {u: Phone(client, ctx, u) for u in ("tech1", "tech2", "inspector1")}
        self.office = principal(ctx, "dispatcher1")
        self.orders: list[uuid.UUID] = []
        self.measurements: list[str] = []
        self.refused = 0
        self.logged_in: dict[str, Any] = {}

    def order(self) -> uuid.UUID:
        return self.rng.choice(self.orders)

    def assignee(self, order_id: uuid.UUID) -> str | None:
        with self.ctx.db.session(readonly=True) as session:
            order = session.get(WorkOrder, order_id)
            assert order is not None
            user = session.get(User, order.assignee_id) if order.assignee_id else None
            return user.username if user else None

    def push(self, user: str, type_: str, payload: dict[str, Any], *, late_hours: float = 0.0) -> None:
        """A phone's action; ``late_hours``: it happened that long before it reached the server."""
        phone = self.phones[user]
        phone.seq += 1
        now = self.clock.now()
        if self.logged_in.get(user) != now:  # the clock moved: its access token may have expired
            phone.tokens = login(self.client, user, device_id=phone.device)
            self.logged_in[user] = now
        phone.last_batch = {
            "device_id": phone.device,
            "sent_at": now.isoformat(),
            "actions": [
                {
                    "id": str(uuid.uuid4()),
                    "seq": phone.seq,
                    "type": type_,
                    "v": 1,
                    "occurred_at": (now - timedelta(hours=late_hours, seconds=30)).isoformat(),
                    "payload": payload,
                }
            ],
        }
        answer = phone.resend()
        if answer["status"] != "applied":
            self.refused += 1

    def office_step(self, step: str, order_id: uuid.UUID, **kwargs: Any) -> None:
        try:
            with self.ctx.db.session() as session:
                order = service.get_order_for_update(
                    session, order_id=order_id, company_id=self.office.company_id
                )
                getattr(service, step)(
                    session, actor=self.office, order=order, now=self.clock.now(), **kwargs
                )
        except HeatCrewError:
            self.refused += 1

    # ------------------------------------------------------------ events

    def create(self) -> None:
        rng = self.rng
        kind = rng.choice(KINDS)
        source = rng.choice(("hotline", "hotline", "mayor_hotline", "complaint"))
        try:
            order = new_order(
                self.ctx,
                kind=kind,
                source=source,
                account=rng.choice(ACCOUNTS),
                assignee=rng.choice(("tech1", "tech2", "tech2", "inspector1", None)),
                received_ago=timedelta(hours=rng.choice((0, 0, 5, 30))),  # entered late
                forwarded=source == "mayor_hotline",
            )
        except HeatCrewError:
            self.refused += 1
            return
        self.orders.append(order.id)

    def work(self, order_id: uuid.UUID | None = None) -> None:
        """The field's steps, pushed: some reach the server hours after they happened."""
        order_id = order_id or self.order()
        user = self.assignee(order_id)
        if user is None:
            return
        late = self.rng.choice((0.0, 0.0, 3.0, 20.0))
        ref = {"work_order_id": str(order_id)}
        self.push(user, "work_order.accept", ref, late_hours=late)
        self.push(user, "work_order.contact", {**ref, "outcome": "reached"}, late_hours=late)
        attempts = [{"method": "knock", "at": (self.clock.now() - timedelta(hours=late)).isoformat()}]
        arrive = {**ref, **AT_DOOR, "attempts": attempts, "outcome": "admitted", "badge_shown": True}
        self.push(user, "work_order.arrive", arrive, late_hours=late)
        self.push(user, "work_order.start", ref, late_hours=late)

    def complete(self, order_id: uuid.UUID | None = None) -> None:
        order_id = order_id or self.order()
        user = self.assignee(order_id)
        if user is None:
            return
        take_photos(self.ctx, order_id, principal(self.ctx, user), "before", "after", "site_cleared")
        result = "answered" if self.rng.random() < 0.3 else "fixed"
        payload = {"work_order_id": str(order_id), "result": result, "satisfaction": self.rng.randint(1, 5)}
        self.push(user, "work_order.complete", payload, late_hours=self.rng.choice((0.0, 6.0)))

    def cancel(self) -> None:
        self.office_step("cancel", self.order(), reason="住户取消")

    def close(self) -> None:
        self.office_step("close", self.order(), reason=None)

    def reassign(self) -> None:
        order_id = self.order()
        other = "tech1" if self.assignee(order_id) == "tech2" else "tech2"
        with self.ctx.db.session(readonly=True) as session:
            user_id = session.exec(select(User.id).where(User.username == other)).one()
        self.office_step("assign", order_id, assignee_id=user_id)

    def send_back(self) -> None:
        """The technician asks to return it, the dispatcher approves: back to dispatch."""
        order_id = self.order()
        user = self.assignee(order_id)
        if user is None:
            return
        tech = principal(self.ctx, user)
        try:
            with self.ctx.db.session() as session:
                order = service.get_order_for_update(session, order_id=order_id, company_id=tech.company_id)
                service.request_return(
                    session, actor=tech, order=order, when=when(self.clock.now()), reason="缺件"
                )
        except HeatCrewError:
            self.refused += 1
            return
        self.office_step("approve_return", order_id, reason=None)

    def measure(self) -> None:
        rng = self.rng
        readings = rng.choice(([19.0, 19.1, 19.0], [17.0, 17.1, 17.2], [18.6, 18.5, 18.7]))
        with self.ctx.db.session(readonly=True) as session:
            inspector = session.exec(select(User.id).where(User.username == "inspector1")).one()
            theirs = session.exec(select(WorkOrder).where(WorkOrder.assignee_id == inspector)).all()
        if not theirs:
            return
        order = rng.choice(theirs)
        record: dict[str, Any] = {
            "measurement_id": str(uuid.uuid4()),
            "household_id": str(order.household_id),
            "instrument_id": "TH-0042",
            "rooms": [{"name": "卧室", "kind": "bedroom", "readings_c": readings, "height_m": 1.3}],
            "outdoor_c": -9.0,
            "closed_minutes": rng.choice((40, 40, 10)),  # 10: incomplete
        }
        if rng.random() < 0.7:  # else a round at the household, without the order
            record["work_order_id"] = str(order.id)
        if self.measurements and rng.random() < 0.3:
            record["supersedes"] = rng.choice(self.measurements)
            record["supersede_reason"] = "重测"
        self.push("inspector1", "measurement.record", record, late_hours=rng.choice((0.0, 26.0)))
        self.measurements.append(record["measurement_id"])

    def revisit(self) -> None:
        with self.ctx.db.session(readonly=True) as session:
            due = session.exec(select(Revisit).where(Revisit.state == "due")).all()
        if not due:
            return
        revisit = self.rng.choice(due)
        response = self.client.post(
            f"/api/v1/revisits/{revisit.id}/outcome",
            json={
                "channel": "phone",
                "outcome": self.rng.choice(("satisfied", "satisfied", "fault_persists")),
                "satisfaction": self.rng.randint(1, 5),
            },
            headers=auth(login(self.client, "dispatcher1")),
        )
        if response.status_code != 200:
            self.refused += 1

    def repeat(self) -> None:
        """A new repair at the household of a completed one: the dispatcher links it as a repeat."""
        with self.ctx.db.session(readonly=True) as session:
            done = session.exec(
                select(WorkOrder.household_id).where(WorkOrder.completed_at.is_not(None))  # type: ignore[union-attr]
            ).all()
            accounts = {h.id: h.account_number for h in session.exec(select(Household)).all()}
        if done:
            order = new_order(
                self.ctx, kind="repair", account=accounts[self.rng.choice(done)], assignee="tech2"
            )
            self.orders.append(order.id)


def _reports(ctx: AppContext, clock: ManualClock) -> list[tuple[str, Any, Any]]:
    """(scope, from the rollup, raw) for each scope checked."""
    office = principal(ctx, "dispatcher1")
    today = clock.now().astimezone(ZoneInfo("Asia/Shanghai")).date()
    out = []
    with ctx.db.session(readonly=True) as session:
        teams = [None, *session.execute(sa.text("SELECT id FROM team ORDER BY code")).scalars()]
        periods = [
            (None, None),
            (today - timedelta(days=9), today),
            (today - timedelta(days=6), today - timedelta(days=2)),
        ]
        for team in teams:
            for since, until in periods:
                where = scope.resolve(
                    session,
                    principal=office,
                    now=clock.now(),
                    since=since,
                    until=until,
                    team_id=uuid.UUID(str(team)) if team else None,
                )
                out.append(
                    (
                        f"team={team} {where.since}..{where.until}",
                        msgspec.to_builtins(kpis.compute(session, scope=where)),
                        msgspec.to_builtins(kpis.compute(session, scope=where, use_rollup=False)),
                    )
                )
    return out


def _differing(rolled: dict[str, Any], raw: dict[str, Any]) -> list[Any]:
    """The KPIs that differ: (name, numerator/denominator each way, the bars that differ)."""
    out = []
    for a, b in zip(rolled["kpis"], raw["kpis"], strict=True):
        if a != b:
            bars = [
                (x["start"], (x["numerator"], x["denominator"]), (y["numerator"], y["denominator"]))
                for x, y in zip(a["series"], b["series"], strict=True)
                if x != y
            ]
            out.append(
                (a["name"], (a["numerator"], a["denominator"]), (b["numerator"], b["denominator"]), bars)
            )
    return out


def _agree(ctx: AppContext, clock: ManualClock) -> dict[str, int]:
    """Assert every checked scope agrees; the whole company's season denominators, by KPI."""
    reports = _reports(ctx, clock)
    for name, rolled, raw in reports:
        assert rolled == raw, (name, _differing(rolled, raw))
    return {k["name"]: k["denominator"] for k in reports[0][1]["kpis"]}


@pytest.mark.parametrize("seed", [7, 2027])
def test_the_rollup_gives_the_raw_queries_report(
    client: TestClient, ctx: AppContext, clock: ManualClock, seed: int
) -> None:
    rng = random.Random(seed)
    field = Field(client, ctx, clock, rng)
    events = [
        (field.create, 6),
        (field.work, 5),
        (field.complete, 4),
        (field.cancel, 1),
        (field.close, 1),
        (field.reassign, 2),
        (field.send_back, 1),
        (field.measure, 3),
        (field.revisit, 2),
        (field.repeat, 1),
    ]
    for _ in range(4):  # every kind of event at least once up front
        field.create()
    rounds = new_order(ctx, kind="temperature_complaint", account="200203", assignee="inspector1")
    field.orders.append(rounds.id)
    hotline = new_order(ctx, kind="repair", source="mayor_hotline", account="100103", assignee="tech1")
    field.orders.append(hotline.id)
    field.work(hotline.id)
    field.complete(hotline.id)
    for event, _weight in events:
        event()
    counted: dict[str, int] = {}
    for checkpoint in range(4):
        for _ in range(12):
            rng.choices([e for e, _ in events], weights=[w for _, w in events])[0]()
            clock.advance(minutes=rng.choice((5, 30, 90, 300, 900)))
        for name, n in _agree(ctx, clock).items():
            counted[name] = max(counted.get(name, 0), n)
        clock.advance(days=1 + checkpoint % 2)
    with ctx.db.session(readonly=True) as session:
        rows = session.execute(sa.select(sa.func.count()).select_from(rollup.DELTAS)).scalar_one()
    assert rows > 0  # the rollup answered, not only the raw queries
    # Every KPI had something to count (the property is not vacuous).
    assert not [name for name, n in counted.items() if n == 0], [n for n, c in counted.items() if not c]

    # Compacted by maintenance, then rebuilt from the raw rows as the migration does: the same figures.
    with ctx.db.engine.begin() as conn:
        assert rollup.compact(conn) >= 0
    assert _agree(ctx, clock)
    with ctx.db.engine.begin() as conn:
        before = _totals(conn)
        rollup.rebuild(conn)
        assert _totals(conn) == before
    _agree(ctx, clock)


def _totals(conn: sa.Connection) -> dict[tuple[Any, ...], tuple[int, int]]:
    d = rollup.DELTAS.c
    rows = conn.execute(
        sa.select(
            d.company_id, d.team_id, d.ingredient, d.day, sa.func.sum(d.numerator), sa.func.sum(d.denominator)
        ).group_by(d.company_id, d.team_id, d.ingredient, d.day)
    )
    return {tuple(r[:4]): (int(r[4]), int(r[5])) for r in rows if r[4] or r[5]}
