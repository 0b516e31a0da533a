"""KPIs, their charts and the exports, on both databases, from orders worked through the services.

The demo's own orders are cleared first, so every figure below is counted by hand from the orders
the ``season`` fixture works (T0 is the tests' clock start, Monday 2026-12-07 08:30 in Shanghai;
the figures are read ten days later):

  A  repair  tech1 (T1)  contacted, arrived, completed on time; revisit done late, satisfaction 4
  B  leak    tech2 (T2)  never worked: arrive and resolve missed
  C  complaint tech1     answered on time
  D  complaint tech2     never answered
  E  leak, 12345, forwarded, urgent, tech1: accepted, arrived, completed; revisit satisfied (5) on
     time, so closed
  F  repair  tech2  at A's household five days later: a repeat of A; never worked
  G  temperature complaint, inspector1 (no team): never worked; carries the measurements
  I  routine maintenance tech2: completed on time; revisit never done
  J  repair, 12345, tech2: never worked
"""

import csv
import io
import uuid
import xml.etree.ElementTree as ET
from datetime import timedelta
from typing import Any

import openpyxl
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from sqlmodel import select

from backend.auth import service as auth_service
from backend.auth.models import Role, User
from backend.clock import ManualClock
from backend.context import AppContext
from backend.ids import new_id
from backend.org.models import Building, Company, Household, Team
from backend.reports import charts, exports
from backend.reports.schemas import Kpi
from backend.work_orders.models import Revisit
from tests.api.helpers import assert_error, auth, login
from tests.fixtures.field import act, new_order, principal, take_photos
from tests.fixtures.pushing import Phone

pytestmark = pytest.mark.usefixtures("demo")

AT_DOOR = {"lat": 41.79683, "lon": 123.42452, "accuracy_m": 12.0}
ADMITTED = [{"method": "knock", "at": "2026-12-07T00:40:00Z"}]


def _clear_demo_orders(ctx: AppContext) -> None:
    with ctx.db.session() as session:
        # The KPI rollup is derived from these rows: it goes with them.
        tables = ("change_log", "sla_clock", "work_order_event", "work_order", "kpi_delta", "kpi_settled")
        for table in tables:
            session.execute(sa.text(f"DELETE FROM {table}"))


def _work(
    ctx: AppContext, clock: ManualClock, order_id: uuid.UUID, user: str, *, result: str = "fixed"
) -> None:
    """Accept, reach the resident, arrive, work, complete: five minutes apart."""
    tech = principal(ctx, user)
    act(ctx, order_id, "accept", tech)
    clock.advance(minutes=1)
    act(ctx, order_id, "record_contact", tech, outcome="reached", note=None)
    clock.advance(minutes=2)
    act(
        ctx,
        order_id,
        "record_arrival",
        tech,
        attempts=ADMITTED,
        outcome="admitted",
        badge_shown=True,
        **AT_DOOR,
    )
    act(ctx, order_id, "start_work", tech)
    take_photos(ctx, order_id, tech, "before", "after", "site_cleared")
    clock.advance(minutes=2)
    act(ctx, order_id, "complete", tech, result=result, satisfaction=3)


def _revisit(client: TestClient, ctx: AppContext, order_id: uuid.UUID, satisfaction: int) -> None:
    with ctx.db.session(readonly=True) as session:
        revisit = session.exec(select(Revisit).where(Revisit.order_id == order_id)).one()
    done = client.post(
        f"/api/v1/revisits/{revisit.id}/outcome",
        json={"channel": "phone", "outcome": "satisfied", "satisfaction": satisfaction},
        headers=auth(login(client, "dispatcher1")),
    )
    assert done.status_code == 200, done.text


def _measurement(household: uuid.UUID, order: uuid.UUID, readings: list[float], **extra: Any) -> dict:
    return {
        "measurement_id": str(uuid.uuid4()),
        "household_id": str(household),
        "work_order_id": str(order),
        "instrument_id": "TH-0042",
        "rooms": [{"name": "卧室", "kind": "bedroom", "readings_c": readings, "height_m": 1.3}],
        "outdoor_c": -9.0,
        "closed_minutes": 40,
        **extra,
    }


@pytest.fixture
def season(client: TestClient, ctx: AppContext, clock: ManualClock) -> dict[str, Any]:
    _clear_demo_orders(ctx)
    t0 = clock.now()
    a = new_order(ctx, kind="repair", account="100101", assignee="tech1")
    b = new_order(ctx, kind="leak", account="200102", assignee="tech2")
    c = new_order(ctx, kind="complaint", source="complaint", account="100102", assignee="tech1")
    d = new_order(ctx, kind="complaint", source="complaint", account="200201", assignee="tech2")
    e = new_order(
        ctx,
        kind="leak",
        source="mayor_hotline",
        account="100103",
        assignee="tech1",
        forwarded=True,
        urgent=True,
    )
    g = new_order(ctx, kind="temperature_complaint", account="200203", assignee="inspector1")
    i = new_order(ctx, kind="routine_maintenance", account="200202", assignee="tech2")
    j = new_order(ctx, kind="repair", source="mayor_hotline", account="200103", assignee="tech2")
    for order, user, result in ((a, "tech1", "fixed"), (c, "tech1", "answered"), (e, "tech1", "fixed")):
        _work(ctx, clock, order.id, user, result=result)
    _work(ctx, clock, i.id, "tech2")
    # Four records on G: a pass, a fail, one incomplete (windows closed too briefly), and a pass
    # corrected by a fail (only the correction counts).
    inspector = Phone(client, ctx, "inspector1")
    household = g.household_id
    for record in (
        _measurement(household, g.id, [19.0, 19.1, 19.0]),
        _measurement(household, g.id, [17.0, 17.1, 17.0]),
        _measurement(household, g.id, [19.0, 19.0, 19.0], closed_minutes=10),
    ):
        assert inspector.push("measurement.record", 1, record)["status"] == "applied"
    first = _measurement(household, g.id, [18.5, 18.5, 18.6])
    assert inspector.push("measurement.record", 1, first)["status"] == "applied"
    correction = _measurement(
        household, g.id, [17.5, 17.5, 17.5], supersedes=first["measurement_id"], supersede_reason="重测"
    )
    assert inspector.push("measurement.record", 1, correction)["status"] == "applied"
    clock.set(t0 + timedelta(days=1))
    _revisit(client, ctx, e.id, 5)  # due in 7 days (a key customer): on time, closes E
    clock.set(t0 + timedelta(days=3))
    _revisit(client, ctx, a.id, 4)  # due in 48 hours: late
    clock.set(t0 + timedelta(days=5))
    f = new_order(ctx, kind="repair", account="100101", assignee="tech2")
    assert f.repeat_of_id == a.id
    clock.set(t0 + timedelta(days=10))
    return {"orders": {"A": a, "B": b, "C": c, "D": d, "E": e, "F": f, "G": g, "I": i, "J": j}}


def _kpis(client: TestClient, user: str = "dispatcher1", **params: Any) -> dict[str, dict]:
    response = client.get("/api/v1/reports/kpis", params=params, headers=auth(login(client, user)))
    assert response.status_code == 200, response.text
    body = response.json()
    return {k["name"]: k for k in body["kpis"]} | {"_report": body}


def _figures(kpis: dict[str, dict]) -> dict[str, tuple[int, int]]:
    return {name: (k["numerator"], k["denominator"]) for name, k in kpis.items() if name != "_report"}


WHOLE_COMPANY = {
    "on_time_accept": (1, 1),  # E
    "on_time_contact": (1, 3),  # A met; F, J missed
    "on_time_arrive": (3, 7),  # A, E, I met; B, F, G, J missed
    "on_time_resolve": (3, 6),  # A, E, I met; B, F, J missed
    "on_time_answer": (1, 3),  # C met; D, G missed
    "on_time_revisit": (1, 3),  # E on time; A late; I never done
    "complaints_answered": (1, 2),  # C; D
    "temperature_pass": (1, 3),  # pass, fail, the correction's fail
    "revisit_completion": (2, 3),  # A, E done; I not
    "revisit_satisfaction": (9, 2),  # 4 + 5
    "repeat_repairs": (1, 3),  # A (F repeats it) of A, E, I
    "hotline_feedback": (1, 2),  # E; J not
    "hotline_closure": (1, 2),
    "hotline_satisfaction": (1, 1),
}
TEAM_T1 = {
    "on_time_accept": (1, 1),
    "on_time_contact": (1, 1),
    "on_time_arrive": (2, 2),
    "on_time_resolve": (2, 2),
    "on_time_answer": (1, 1),
    "on_time_revisit": (1, 2),
    "complaints_answered": (1, 1),
    "temperature_pass": (0, 0),  # G's records: G has no team
    "revisit_completion": (2, 2),
    "revisit_satisfaction": (9, 2),
    "repeat_repairs": (1, 2),  # F (tech2's) counts against A's team
    "hotline_feedback": (1, 1),
    "hotline_closure": (1, 1),
    "hotline_satisfaction": (1, 1),
}


def _team_id(ctx: AppContext, code: str) -> uuid.UUID:
    with ctx.db.session(readonly=True) as session:
        return session.exec(select(Team.id).where(Team.code == code)).one()


def test_each_kpi_counts_what_its_definition_says(client: TestClient, season: dict) -> None:
    kpis = _kpis(client)
    assert _figures(kpis) == WHOLE_COMPANY
    report = kpis["_report"]
    assert (report["since"], report["until"], report["bucket"]) == ("2026-11-15", "2027-03-15", "week")
    assert kpis["revisit_satisfaction"]["value"] == 4.5
    assert kpis["on_time_accept"]["value"] == 1.0 and kpis["on_time_accept"]["meets_target"] is True
    assert kpis["on_time_contact"]["target"] == 0.99 and kpis["on_time_contact"]["meets_target"] is False
    assert kpis["temperature_pass"]["target"] == 0.97
    assert kpis["repeat_repairs"]["better"] == "lower"
    # The series adds up to the figure, week by week from 15 November.
    series = kpis["on_time_arrive"]["series"]
    assert series[0]["start"] == "2026-11-15" and series[-1]["end"] == "2027-03-15"
    assert sum(p["denominator"] for p in series) == 7
    (week,) = [p for p in series if p["denominator"]]
    assert (week["start"], week["end"]) == ("2026-12-06", "2026-12-12")


def test_a_team_filter_counts_that_teams_orders(client: TestClient, ctx: AppContext, season: dict) -> None:
    t1 = _team_id(ctx, "T1")
    kpis = _kpis(client, team=str(t1))
    assert _figures(kpis) == TEAM_T1
    assert kpis["temperature_pass"]["value"] is None and kpis["temperature_pass"]["meets_target"] is None
    assert kpis["_report"]["team_id"] == str(t1)


def test_a_short_period_is_counted_by_day(client: TestClient, season: dict) -> None:
    # 12 December: F was received that morning; its contact and arrive clocks fell due the same day.
    kpis = _kpis(client, since="2026-12-12", until="2026-12-12")
    assert kpis["_report"]["bucket"] == "day"
    assert kpis["on_time_contact"]["denominator"] == 1 and kpis["on_time_arrive"]["denominator"] == 1
    assert kpis["on_time_resolve"]["denominator"] == 0  # due on the 13th
    assert kpis["repeat_repairs"]["denominator"] == 0
    week = _kpis(client, since="2026-12-07", until="2026-12-13")
    assert [p["start"] for p in week["on_time_arrive"]["series"]] == [f"2026-12-{d:02}" for d in range(7, 14)]


def test_bad_periods_and_foreign_teams_are_refused(client: TestClient, season: dict) -> None:
    headers = auth(login(client, "dispatcher1"))
    url = "/api/v1/reports/kpis"
    assert_error(
        client.get(url, params={"since": "2026-12-10", "until": "2026-12-01"}, headers=headers),
        400,
        "invalid_input",
    )
    assert_error(
        client.get(url, params={"since": "2025-01-01", "until": "2026-12-01"}, headers=headers),
        400,
        "invalid_input",
    )
    assert_error(client.get(url, params={"team": str(uuid.uuid4())}, headers=headers), 404, "not_found")
    assert_error(client.get("/api/v1/reports/kpis/nothing.svg", headers=headers), 404, "not_found")
    assert_error(client.get("/api/v1/reports/exports/orders.pdf", headers=headers), 404, "not_found")


@pytest.mark.parametrize("user", ["tech1", "inspector1"])
def test_field_roles_get_403(client: TestClient, season: dict, user: str) -> None:
    headers = auth(login(client, user))
    for url in (
        "/api/v1/reports/kpis",
        "/api/v1/reports/kpis/on_time_arrive.svg",
        "/api/v1/reports/exports/orders.csv",
    ):
        assert_error(client.get(url, headers=headers), 403, "forbidden")


def test_a_supervisor_with_a_team_sees_only_that_team(
    client: TestClient, ctx: AppContext, season: dict
) -> None:
    t1, t2 = _team_id(ctx, "T1"), _team_id(ctx, "T2")
    with ctx.db.session() as session:
        session.exec(select(User).where(User.username == "supervisor1")).one().team_id = t1
    assert _figures(_kpis(client, "supervisor1")) == TEAM_T1
    assert _figures(_kpis(client, "supervisor1", team=str(t1))) == TEAM_T1
    other = client.get(
        "/api/v1/reports/kpis", params={"team": str(t2)}, headers=auth(login(client, "supervisor1"))
    )
    assert_error(other, 403, "forbidden")
    assert _figures(_kpis(client, "admin")) == WHOLE_COMPANY


def test_another_company_sees_only_its_own(client: TestClient, ctx: AppContext, season: dict) -> None:
    with ctx.db.session() as session:
        company = Company(id=new_id(), code="north", name="North Heat", created_at=ctx.clock.now())
        session.add(company)
        session.flush()
        auth_service.create_user(
            ctx,
            session,
            company_id=company.id,
            username="north-admin",
            full_name="North Admin",
            role=Role.admin,
            password="north-password-1",
        )
    north = auth(login(client, "north-admin", password="north-password-1"))
    body = client.get("/api/v1/reports/kpis", headers=north).json()
    assert all(k["denominator"] == 0 and k["value"] is None for k in body["kpis"])
    # A team of the demo company does not exist for them.
    t1 = _team_id(ctx, "T1")
    assert_error(
        client.get("/api/v1/reports/kpis", params={"team": str(t1)}, headers=north), 404, "not_found"
    )
    csv_body = client.get("/api/v1/reports/exports/orders.csv", headers=north).content.decode("utf-8-sig")
    assert len(list(csv.reader(io.StringIO(csv_body)))) == 1  # the header alone


def test_the_chart_is_svg_with_the_target_line_and_its_value_in_words(
    client: TestClient, season: dict
) -> None:
    response = client.get(
        "/api/v1/reports/kpis/on_time_arrive.svg", headers=auth(login(client, "dispatcher1"))
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(response.text)
    ns = {"s": "http://www.w3.org/2000/svg"}
    assert root.tag == "{http://www.w3.org/2000/svg}svg" and root.get("role") == "img"
    label = root.get("aria-label")
    assert label == root.find("s:title", ns).text
    assert "42.9%" in label and "3 of 7" in label and "misses" in label and "99.0%" in label
    (target,) = root.findall(".//s:line[@class='target-line']", ns)
    assert float(target.get("y1")) == float(target.get("y2"))
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "target 99.0%" in texts
    assert len(root.findall(".//s:g[@class='bars']/s:rect", ns)) == 1  # one week with clocks


def test_render_escapes_text_and_draws_every_bar() -> None:
    from datetime import date

    from backend.reports.schemas import SeriesPoint

    kpi = Kpi(
        name="x",
        title="<script>班组</script>",
        unit="score",
        value=4.2,
        numerator=42,
        denominator=10,
        target=4.5,
        better="higher",
        meets_target=False,
        definition="",
        series=[
            SeriesPoint(
                start=date(2026, 12, d), end=date(2026, 12, d), value=3 + d / 10, numerator=1, denominator=1
            )
            for d in range(1, 8)
        ],
    )
    svg = str(charts.render(kpi))
    root = ET.fromstring(svg)
    assert "<script>" not in svg and "班组" in root.get("aria-label")
    assert len(root.findall(".//{http://www.w3.org/2000/svg}rect")) == 7


def _export(client: TestClient, name: str, **params: Any) -> Any:
    response = client.get(
        f"/api/v1/reports/exports/{name}", params=params, headers=auth(login(client, "dispatcher1"))
    )
    assert response.status_code == 200, response.text
    return response


def test_orders_csv_has_a_bom_parses_back_and_holds_no_phone_numbers(
    client: TestClient, ctx: AppContext, season: dict
) -> None:
    response = _export(client, "orders.csv")
    assert response.content.startswith(b"\xef\xbb\xbf")
    assert response.headers["content-type"].startswith("text/csv")
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="heatcrew-orders-2026-11-15_2027-03-15.csv"')
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert len(rows) == 9
    by_id = {r["id"]: r for r in rows}
    a = by_id[str(season["orders"]["A"].id)]
    assert a["team"] == "南京街维修班" and a["assignee"] == "维修工 张伟"
    assert a["address"] == "和平区南京北街 12 号 1-2-201"
    assert a["received_at"] == "2026-12-07 08:30:00"  # Shanghai time
    assert (a["contact_status"], a["arrive_status"], a["revisit_status"]) == ("met", "met", "missed")
    assert a["accept_due"] == "" and a["answer_status"] == ""
    b = by_id[str(season["orders"]["B"].id)]
    assert b["arrive_status"] == "missed" and b["arrive_met"] == ""
    text = response.content.decode("utf-8-sig")
    assert "139123400" not in text and "赵建国" not in text  # neither phones nor residents' names
    t2 = _team_id(ctx, "T2")
    team_rows = list(
        csv.DictReader(io.StringIO(_export(client, "orders.csv", team=str(t2)).content.decode("utf-8-sig")))
    )
    assert {r["team"] for r in team_rows} == {"文化路维修班"} and len(team_rows) == 5
    # The team's name is in the file name, kept by filename* (RFC 5987).
    disposition = _export(client, "orders.csv", team=str(t2)).headers["content-disposition"]
    assert "filename*=UTF-8''heatcrew-orders-%E6%96%87%E5%8C%96%E8%B7%AF" in disposition


def test_measurements_export_in_both_formats(client: TestClient, season: dict) -> None:
    rows = list(csv.DictReader(io.StringIO(_export(client, "measurements.csv").content.decode("utf-8-sig"))))
    assert sorted(r["result"] for r in rows) == ["fail", "fail", "incomplete", "pass", "pass"]
    assert sorted(r["superseded"] for r in rows) == ["no", "no", "no", "no", "yes"]
    assert {r["inspector"] for r in rows} == {"测温员 陈静"}
    assert {r["resident_signed"] for r in rows} == {"no"}
    assert "卧室: 19.0/19.1/19.0" in {r["readings_c"] for r in rows}
    response = _export(client, "measurements.xlsx")
    assert response.headers["content-type"] == exports.CONTENT_TYPES["xlsx"]
    sheet = openpyxl.load_workbook(io.BytesIO(response.content), read_only=True).active
    table = list(sheet.iter_rows(values_only=True))
    assert table[0][:3] == ("id", "measured_at", "household")
    assert len(table) == 6 and sorted(r[10] for r in table[1:]) == [
        "fail",
        "fail",
        "incomplete",
        "pass",
        "pass",
    ]
    assert all(r[1].year == 2026 for r in table[1:])  # real dates, local time


def test_kpis_export_matches_the_api(client: TestClient, season: dict) -> None:
    rows = list(csv.DictReader(io.StringIO(_export(client, "kpis.csv").content.decode("utf-8-sig"))))
    totals = {
        r["kpi"]: (int(r["numerator"]), int(r["denominator"]))
        for r in rows
        if r["from"] == "2026-11-15" and r["to"] == "2027-03-15"
    }
    assert totals == WHOLE_COMPANY
    sheet = openpyxl.load_workbook(io.BytesIO(_export(client, "kpis.xlsx").content), read_only=True).active
    table = list(sheet.iter_rows(values_only=True))
    assert table[0][0] == "kpi" and len(table) == len(rows) + 1


def test_cells_that_look_like_formulas_are_neutralised(
    client: TestClient, ctx: AppContext, season: dict
) -> None:
    with ctx.db.session() as session:
        session.exec(select(Team).where(Team.code == "T1")).one().name = '=HYPERLINK("http://x")'
        building = session.exec(select(Building).where(Building.address == "和平区南京北街 12 号")).one()
        building.address = "@SUM(1+1) 路"
        session.exec(
            select(Household).where(Household.account_number == "100101")
        ).one().account_number = "+100101"
    rows = list(csv.DictReader(io.StringIO(_export(client, "orders.csv").content.decode("utf-8-sig"))))
    a = next(r for r in rows if r["id"] == str(season["orders"]["A"].id))
    assert a["team"] == '\'=HYPERLINK("http://x")'
    assert a["address"].startswith("'@SUM") and a["household"] == "'+100101"
    sheet = openpyxl.load_workbook(io.BytesIO(_export(client, "orders.xlsx").content)).active
    header = [c.value for c in sheet[1]]
    cells = {str(row[0].value): row for row in sheet.iter_rows(min_row=2)}
    cell = cells[str(season["orders"]["A"].id)][header.index("team")]
    assert cell.data_type == "s" and cell.value.startswith("'=")
    assert exports.neutralise("-1") == "'-1" and exports.neutralise("正常") == "正常"


def test_an_export_naming_households_is_in_the_audit_log_and_a_kpi_export_is_not(
    client: TestClient, ctx: AppContext, season: dict
) -> None:
    from backend.audit.models import AuditEvent

    def exported() -> list[Any]:
        with ctx.db.session(readonly=True) as session:
            return list(
                session.execute(
                    sa.select(AuditEvent.target_id, AuditEvent.actor_user_id, AuditEvent.detail).where(
                        AuditEvent.event == "export.personal_data"
                    )
                )
            )

    assert _export(client, "kpis.csv").status_code == 200
    assert exported() == []
    assert _export(client, "orders.xlsx", since="2026-11-20", until="2026-12-31").status_code == 200
    assert _export(client, "measurements.csv").status_code == 200
    rows = exported()
    assert [row.target_id for row in rows] == ["orders.xlsx", "measurements.csv"]
    with ctx.db.session(readonly=True) as session:
        dispatcher = session.exec(select(User.id).where(User.username == "dispatcher1")).one()
    assert {row.actor_user_id for row in rows} == {dispatcher}
    assert rows[0].detail["filters"] == {"since": "2026-11-20", "until": "2026-12-31", "team_id": None}


def test_orders_xlsx_holds_the_same_local_times_as_the_csv(client: TestClient, season: dict) -> None:
    rows = list(csv.DictReader(io.StringIO(_export(client, "orders.csv").content.decode("utf-8-sig"))))
    sheet = openpyxl.load_workbook(io.BytesIO(_export(client, "orders.xlsx").content), read_only=True).active
    table = list(sheet.iter_rows(values_only=True))
    header = list(table[0])
    assert header == list(rows[0])
    times = [i for i, name in enumerate(header) if name.endswith(("_at", "_due", "_met"))]
    by_id = {r[0]: r for r in table[1:]}
    compared = 0
    for row in rows:
        cells = by_id[row["id"]]
        for i in times:
            text = row[header[i]]
            assert (cells[i].isoformat(" ", "seconds") if cells[i] is not None else "") == text
            compared += bool(text)
    assert compared > 20
    a = by_id[str(season["orders"]["A"].id)]
    assert a[header.index("received_at")].isoformat(" ") == "2026-12-07 08:30:00"  # Shanghai time


def test_every_clock_carries_its_orders_company_and_kind_whichever_path_made_it(
    client: TestClient, ctx: AppContext, clock: ManualClock
) -> None:
    """Clocks started with the order, a revisit clock started by a service call, and one started in
    a push batch (a buffered row written in bulk) all copy the order's company and kind."""
    _clear_demo_orders(ctx)
    by_service = new_order(ctx, kind="leak", account="100101", assignee="tech1")
    _work(ctx, clock, by_service.id, "tech1")
    by_push = new_order(ctx, kind="repair", account="200102", assignee="tech1")
    tech = principal(ctx, "tech1")
    act(ctx, by_push.id, "accept", tech)
    act(ctx, by_push.id, "record_contact", tech, outcome="reached", note=None)
    act(
        ctx,
        by_push.id,
        "record_arrival",
        tech,
        attempts=ADMITTED,
        outcome="admitted",
        badge_shown=True,
        **AT_DOOR,
    )
    act(ctx, by_push.id, "start_work", tech)
    take_photos(ctx, by_push.id, tech, "before", "after", "site_cleared")
    clock.advance(minutes=5)
    pushed = Phone(client, ctx, "tech1").push(
        "work_order.complete", 2, {"work_order_id": str(by_push.id), "result": "fixed", "satisfaction": 5}
    )
    assert pushed["status"] == "applied", pushed
    with ctx.db.session(readonly=True) as session:
        rows = session.execute(
            sa.text(
                "SELECT c.order_id, c.clock, c.company_id, c.order_kind, o.company_id, o.kind "
                "FROM sla_clock c JOIN work_order o ON o.id = c.order_id"
            )
        ).all()
    clocks = {(str(r[0]).replace("-", ""), r[1]) for r in rows}
    assert (by_service.id.hex, "revisit") in clocks and (by_push.id.hex, "revisit") in clocks
    assert (by_push.id.hex, "arrive") in clocks
    assert all(r[2] is not None and r[2] == r[4] and r[3] == r[5] for r in rows), rows
