"""The console's KPI page and export downloads in process, on SQLite and PostgreSQL: the cards show
what ``kpis.compute`` counts for the demo's orders, the htmx fragment and its address, the filters'
errors at their exact status, the team restriction, and CSV/XLSX streamed behind the cookie session.

The demo's clocks run from the tests' clock start (Monday 2026-12-07 08:30 in Shanghai); the page
is read three days later, when many have run out, so the figures are not all zero.
"""

import csv
import io
import re
import uuid
from datetime import date
from typing import Any

import openpyxl
import pytest
import structlog.testing
from litestar.testing import TestClient
from sqlmodel import select

from backend.auth import service as auth_service
from backend.auth.models import Role, User
from backend.clock import ManualClock
from backend.context import AppContext
from backend.ids import new_id
from backend.org.models import Company, Team
from backend.reports import kpis, scope
from tests.api.helpers import auth, login
from tests.fixtures.console import console_login, signed_in

pytestmark = pytest.mark.usefixtures("demo")

CARD = re.compile(
    r'<li class="kpi-card" data-kpi="(?P<name>[a-z_0-9]+)">.*?'
    r'class="kpi-value" data-value="(?P<value>[^"]*)".*?'
    r'data-numerator="(?P<num>\d+)" data-denominator="(?P<den>\d+)".*?'
    r'data-met="(?P<met>yes|no|none)".*?</li>',
    re.S,
)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def later(clock: ManualClock) -> ManualClock:
    """Three days on: the demo's accept, contact and arrive clocks have run out."""
    clock.advance(days=3)
    return clock


def _cards(html: str) -> dict[str, dict[str, str]]:
    return {m["name"]: m.groupdict() for m in CARD.finditer(html)}


def _computed(ctx: AppContext, username: str, **filters: Any) -> kpis.KpiReport:
    from tests.fixtures.field import principal

    with ctx.db.session(readonly=True) as session:
        where = scope.resolve(session, principal=principal(ctx, username), now=ctx.clock.now(), **filters)
        return kpis.compute(session, scope=where)


def _expected(report: kpis.KpiReport) -> dict[str, tuple[str, str, str]]:
    def shown(k: kpis.Kpi) -> str:
        if k.value is None:
            return "无数据"
        return f"{k.value:.2f}" if k.unit == "score" else f"{k.value * 100:.1f}%"

    met = {True: "yes", False: "no", None: "none"}
    return {k.name: (shown(k), f"{k.numerator}/{k.denominator}", met[k.meets_target]) for k in report.kpis}


def _figures(cards: dict[str, dict[str, str]]) -> dict[str, tuple[str, str, str]]:
    return {n: (c["value"], f"{c['num']}/{c['den']}", c["met"]) for n, c in cards.items()}


def _team_id(ctx: AppContext, code: str) -> uuid.UUID:
    with ctx.db.session(readonly=True) as session:
        return session.exec(select(Team.id).where(Team.code == code)).one()


def _user_id(ctx: AppContext, username: str) -> uuid.UUID:
    with ctx.db.session(readonly=True) as session:
        return session.exec(select(User.id).where(User.username == username)).one()


def _restrict(ctx: AppContext, username: str, team_id: uuid.UUID) -> None:
    with ctx.db.session() as session:
        session.exec(select(User).where(User.username == username)).one().team_id = team_id


def test_the_page_shows_every_kpi_as_kpis_compute_counts_it_in_chinese(
    client: TestClient, ctx: AppContext, later: ManualClock
) -> None:
    signed_in(client, "supervisor1")
    page = client.get("/console/kpis")
    assert page.status_code == 200, page.text
    cards = _cards(page.text)
    report = _computed(ctx, "supervisor1")
    assert list(cards) == list(kpis.KPI_NAMES)
    assert _figures(cards) == _expected(report)
    assert any(k.denominator > 0 for k in report.kpis)  # the demo's clocks counted: not all empty
    # The default period is the heating season running (15 Nov – 15 Mar), every team.
    assert 'data-since="2026-11-15" data-until="2027-03-15"' in page.text
    # Titles, definitions and the charts' words are Chinese; the chart has its target line.
    assert "室温达标率" in page.text and "按时到场" in page.text
    assert "<details>" in page.text and "口径说明" in page.text
    assert "“接单”时限" in page.text  # the clock's name inside the definition is translated too
    svgs = re.findall(r'<svg [^>]*role="img" aria-label="([^"]+)"', page.text)
    assert len(svgs) == len(kpis.KPI_NAMES) and all("目标" in label for label in svgs)
    assert page.text.count('class="target-line"') == len(kpis.KPI_NAMES)
    assert "Accepted on time" not in page.text
    # Met or not is said in words, not only by colour.
    assert "达到目标" in page.text or "未达到目标" in page.text
    assert 'aria-current="page">绩效指标</a>' in page.text


def test_english_readers_get_the_english_titles(client: TestClient, later: ManualClock) -> None:
    token = signed_in(client, "dispatcher1")
    client.post("/console/locale", data={"locale": "en", "csrf_token": token, "next": "/console/kpis"})
    page = client.get("/console/kpis")
    assert page.status_code == 200
    assert "Accepted on time" in page.text and "Indoor temperature pass rate" in page.text
    assert re.search(r'aria-label="Arrived on time: [^"]*target at least 99\.0%', page.text)


def test_the_fragment_carries_the_form_and_cards_and_pushes_the_pages_address(
    client: TestClient, ctx: AppContext, later: ManualClock
) -> None:
    signed_in(client, "dispatcher1")
    t1 = _team_id(ctx, "T1")
    params = {"since": "2026-12-01", "until": "2026-12-10", "team": str(t1)}
    fragment = client.get("/console/kpis/cards", params=params, headers={"HX-Request": "true"})
    assert fragment.status_code == 200, fragment.text
    assert "<html" not in fragment.text and 'id="kpi-filters"' in fragment.text
    assert fragment.headers["hx-push-url"] == f"/console/kpis?since=2026-12-01&until=2026-12-10&team={t1}"
    report = _computed(ctx, "dispatcher1", since=date(2026, 12, 1), until=date(2026, 12, 10), team_id=t1)
    assert _figures(_cards(fragment.text)) == _expected(report)
    assert re.search(rf'<option value="{t1}" selected>', fragment.text)
    assert 'value="2026-12-01"' in fragment.text and "按日统计" in fragment.text
    # The page at the pushed address shows the same figures (the URL can be shared).
    page = client.get(fragment.headers["hx-push-url"])
    assert _figures(_cards(page.text)) == _figures(_cards(fragment.text))
    # Export links carry the same filters.
    assert f'href="/console/kpis/exports/orders.csv?since=2026-12-01&amp;until=2026-12-10&amp;team={t1}"' in (
        fragment.text
    )


@pytest.mark.parametrize(
    ("period", "since", "until"),
    [
        ("season", "2026-11-15", "2027-03-15"),
        ("last30", "2026-11-11", "2026-12-10"),
        ("month", "2026-12-01", "2026-12-31"),
    ],
)
def test_quick_periods_replace_the_dates(
    client: TestClient, later: ManualClock, period: str, since: str, until: str
) -> None:
    signed_in(client, "dispatcher1")
    fragment = client.get(
        "/console/kpis/cards",
        params={"since": "2026-12-05", "until": "2026-12-06", "period": period},
        headers={"HX-Request": "true"},
    )
    assert fragment.status_code == 200
    assert f'data-since="{since}" data-until="{until}"' in fragment.text
    assert fragment.headers["hx-push-url"] == f"/console/kpis?since={since}&until={until}"


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"since": "2026-12-10", "until": "2026-12-01"}, 400, "invalid_input"),
        ({"since": "10/12/2026"}, 400, "invalid_input"),
        ({"since": "2025-01-01", "until": "2026-12-01"}, 400, "invalid_input"),
        ({"team": "nope"}, 400, "invalid_input"),
        ({"period": "decade"}, 400, "invalid_input"),
        ({"team": str(uuid.UUID(int=7))}, 404, "not_found"),
    ],
)
def test_bad_filters_show_their_error_above_the_form_at_their_status(
    client: TestClient, params: dict[str, str], status: int, code: str
) -> None:
    signed_in(client, "dispatcher1")
    for url, headers in (("/console/kpis", {}), ("/console/kpis/cards", {"HX-Request": "true"})):
        response = client.get(url, params=params, headers=headers)
        assert response.status_code == status, response.text
        assert f'data-code="{code}"' in response.text
        assert 'id="kpi-filters"' in response.text and 'class="kpi-card"' not in response.text
    assert client.get("/console/kpis/cards", params=params).headers["hx-push-url"] == "false"


def test_a_supervisor_with_a_team_sees_and_may_choose_only_it(
    client: TestClient, ctx: AppContext, later: ManualClock
) -> None:
    t1, t2 = _team_id(ctx, "T1"), _team_id(ctx, "T2")
    _restrict(ctx, "supervisor1", t1)
    signed_in(client, "supervisor1")
    page = client.get("/console/kpis")
    assert page.status_code == 200
    options = re.findall(r'<option value="([^"]*)"', page.text.split('id="team"')[1].split("</select>")[0])
    assert options == [str(t1)]
    assert _figures(_cards(page.text)) == _expected(_computed(ctx, "supervisor1", team_id=t1))
    other = client.get("/console/kpis", params={"team": str(t2)})
    assert other.status_code == 403
    assert 'data-code="forbidden"' in other.text
    export = client.get("/console/kpis/exports/orders.csv", params={"team": str(t2)})
    assert export.status_code == 403
    assert 'data-code="forbidden"' in export.text


def test_another_companys_team_is_not_found(client: TestClient, ctx: AppContext) -> None:
    with ctx.db.session() as session:
        company = Company(id=new_id(), code="north", name="North Heat", created_at=ctx.clock.now())
        session.add(company)
        session.flush()
        team = Team(id=new_id(), company_id=company.id, code="N1", name="North one")
        session.add(team)
    signed_in(client, "admin")
    for url in ("/console/kpis", "/console/kpis/cards", "/console/kpis/exports/orders.csv"):
        response = client.get(url, params={"team": str(team.id)})
        assert response.status_code == 404, (url, response.text)
        assert 'data-code="not_found"' in response.text


def test_the_other_company_sees_empty_cards_and_no_demo_team(client: TestClient, ctx: AppContext) -> None:
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
    response = console_login(client, "north-admin", password="north-password-1")
    assert response.status_code == 303
    page = client.get("/console/kpis")
    assert page.status_code == 200
    cards = _cards(page.text)
    assert len(cards) == len(kpis.KPI_NAMES) and {c["den"] for c in cards.values()} == {"0"}
    assert '<option value="' + str(_team_id(ctx, "T1")) not in page.text


def test_exports_stream_csv_with_a_bom_and_xlsx_that_openpyxl_reads(
    client: TestClient, ctx: AppContext, later: ManualClock
) -> None:
    signed_in(client, "supervisor1")
    params = {"since": "2026-12-01", "until": "2026-12-31"}
    orders = client.get("/console/kpis/exports/orders.csv", params=params)
    assert orders.status_code == 200, orders.text
    assert orders.headers["content-type"].startswith("text/csv")
    assert orders.headers["cache-control"] == "no-store"
    assert orders.headers["content-disposition"].startswith("attachment;")
    assert "orders" in orders.headers["content-disposition"]
    assert orders.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(orders.content.decode("utf-8-sig"))))
    with ctx.db.session(readonly=True) as session:
        from backend.work_orders.models import WorkOrder

        seeded = len(session.exec(select(WorkOrder.id)).all())
    assert len(rows) == 1 + seeded and seeded > 0
    assert "13912340001" not in orders.content.decode("utf-8-sig")  # residents' phones never leave
    for kind in ("orders", "measurements", "kpis"):
        sheet = client.get(f"/console/kpis/exports/{kind}.xlsx", params=params)
        assert sheet.status_code == 200, sheet.text
        assert sheet.headers["content-type"] == XLSX
        book = openpyxl.load_workbook(io.BytesIO(sheet.content), read_only=True)
        header = next(book.active.iter_rows(values_only=True))
        assert header and all(header)
    with structlog.testing.capture_logs() as logged:
        figures = client.get("/console/kpis/exports/kpis.csv", params=params)
    table = list(csv.DictReader(io.StringIO(figures.content.decode("utf-8-sig"))))
    assert {row["kpi"] for row in table} == set(kpis.KPI_NAMES)
    assert {row["title"] for row in table} >= {"Accepted on time"}  # the file keeps the stable English
    # The download is recorded: who, what, the filters.
    audit = [line for line in logged if line["event"] == "export"]
    assert len(audit) == 1, logged
    fields = ("kind", "format", "since", "until", "complete", "user_id")
    assert {key: audit[0][key] for key in fields} == {
        "kind": "kpis",
        "format": "csv",
        "since": "2026-12-01",
        "until": "2026-12-31",
        "complete": True,
        "user_id": str(_user_id(ctx, "supervisor1")),
    }


@pytest.mark.parametrize("file", ["orders.pdf", "people.csv", "orders"])
def test_an_unknown_export_is_not_found(client: TestClient, file: str) -> None:
    signed_in(client, "dispatcher1")
    response = client.get(f"/console/kpis/exports/{file}")
    assert response.status_code == 404
    assert 'data-code="not_found"' in response.text


@pytest.mark.parametrize("username", ["tech1", "inspector1"])
def test_field_roles_cannot_reach_the_page_or_the_downloads(client: TestClient, username: str) -> None:
    refused = console_login(client, username)
    assert refused.status_code == 403
    assert 'data-code="console_role_refused"' in refused.text
    # Without a console session (and a bearer token does not open /console) nothing is served.
    bearer = auth(login(client, username))
    for url in ("/console/kpis", "/console/kpis/cards", "/console/kpis/exports/orders.csv"):
        response = client.get(url, headers=bearer, follow_redirects=False)
        assert response.status_code == 303, (url, response.status_code)
        assert response.headers["location"].startswith("/console/login?next=")
    fragment = client.get("/console/kpis/cards", headers={"HX-Request": "true"}, follow_redirects=False)
    assert fragment.status_code == 401 and fragment.headers["hx-redirect"] == "/console/login"
    # The API's own export refuses them with the stable code.
    api = client.get("/api/v1/reports/exports/orders.csv", headers=bearer)
    assert api.status_code == 403 and api.json()["code"] == "forbidden"


def test_a_downloaded_period_is_the_pages(client: TestClient, later: ManualClock) -> None:
    signed_in(client, "dispatcher1")
    page = client.get("/console/kpis", params={"period": "last30"})
    href = re.search(r'id="export-kpis-csv" href="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    assert href == "/console/kpis/exports/kpis.csv?since=2026-11-11&until=2026-12-10"
    response = client.get(href)
    assert response.status_code == 200
    assert "2026-11-11" in response.headers["content-disposition"]
