"""The console's KPI page in a real headless Chromium against the demo server, on both databases:
the charts are drawn with their target line, the filter form reloads only the cards (htmx; the
window survives and the address bar follows), exports download through the browser in both
formats and parse, and axe-core finds nothing serious at 1366×768 and 1024×768."""

import csv
import io
import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import DESKTOP, TABLET, Server, shot, sign_in

pytestmark = pytest.mark.browser


def _today() -> datetime:
    return datetime.now(ZoneInfo("Asia/Shanghai"))


def _open_kpis(page_at, viewport=DESKTOP):
    page = page_at(viewport)
    sign_in(page, "supervisor1")
    page.goto("/console/kpis")
    page.wait_for_selector("svg.kpi-chart")
    return page


def test_chromium_kpi_charts_render_with_their_target_line(page_at, console_server: Server) -> None:
    page = _open_kpis(page_at)
    assert page.locator("h1").inner_text() == "绩效指标"
    cards = page.locator("li.kpi-card")
    assert cards.count() == 14
    chart = page.locator('svg.kpi-chart[data-kpi="on_time_arrive"]')
    assert chart.is_visible()
    box = chart.bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 30
    line = chart.locator("line.target-line")
    line_box = line.bounding_box()
    assert line_box is not None and line_box["width"] > 100  # a horizontal line: its width spans the plot
    assert box["y"] <= line_box["y"] <= box["y"] + box["height"]
    label = chart.get_attribute("aria-label")
    assert label and "目标" in label
    # The definition is there on demand.
    details = page.locator('li.kpi-card[data-kpi="on_time_arrive"] details')
    expect(details.locator("p")).to_be_hidden()
    details.locator("summary").click()
    expect(details.locator("p")).to_be_visible()
    shot(page, f"kpis-{console_server.database}")


def test_chromium_changing_the_period_reloads_only_the_cards(page_at, console_server: Server) -> None:
    page = _open_kpis(page_at)
    page.evaluate("() => { window.kpiMarker = 'still here'; }")
    today = _today().date()
    since, until = today - timedelta(days=6), today
    page.fill("#since", since.isoformat())
    page.fill("#until", until.isoformat())
    with page.expect_response(lambda r: "/console/kpis/cards" in r.url) as answer:
        page.click("#kpi-apply")
    assert answer.value.status == 200
    # The response comes before htmx swaps it in: wait for the DOM, as a reader would.
    expect(page.locator("#kpi-scope")).to_have_attribute("data-since", since.isoformat())
    expect(page.locator("#kpi-scope")).to_have_attribute("data-until", until.isoformat())
    assert page.evaluate("() => window.kpiMarker") == "still here"  # no page load
    expect(page).to_have_url(
        re.compile(rf"/console/kpis\?since={since.isoformat()}&until={until.isoformat()}$")
    )
    # The downloads follow the filters.
    expect(page.locator("#export-orders-csv")).to_have_attribute(
        "href", f"/console/kpis/exports/orders.csv?since={since.isoformat()}&until={until.isoformat()}"
    )
    # A quick choice: this month, still without a reload.
    with page.expect_response(lambda r: "/console/kpis/cards" in r.url) as month:
        page.click("#period-month")
    assert "period=month" in month.value.url
    expect(page.locator("#kpi-scope")).to_have_attribute("data-since", today.replace(day=1).isoformat())
    expect(page.locator("#since")).to_have_value(today.replace(day=1).isoformat())
    assert page.evaluate("() => window.kpiMarker") == "still here"
    # A bad period shows its error in place, at its status.
    page.fill("#since", until.isoformat())
    page.fill("#until", since.isoformat())
    with page.expect_response(lambda r: "/console/kpis/cards" in r.url) as bad:
        page.click("#kpi-apply")
    assert bad.value.status == 400
    expect(page.locator('#kpi-report [data-code="invalid_input"]')).to_be_visible()
    assert page.evaluate("() => window.kpiMarker") == "still here"
    # The shared address opens the same period in a fresh page.
    page.goto(f"/console/kpis?since={since.isoformat()}&until={until.isoformat()}")
    expect(page.locator("#kpi-scope")).to_have_attribute("data-since", since.isoformat())
    shot(page, f"kpis-week-{console_server.database}")


def _download(page, selector: str) -> tuple[str, bytes]:
    with page.expect_download() as info:
        page.click(selector)
    download = info.value
    assert download.failure() is None
    return download.suggested_filename, Path(download.path()).read_bytes()


def test_chromium_exports_download_in_both_formats_and_parse(page_at, console_server: Server) -> None:
    page = _open_kpis(page_at)
    name, body = _download(page, "#export-orders-csv")
    assert name.startswith("heatcrew-orders-") and name.endswith(".csv")
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    orders = console_server.api("GET", "/api/v1/work-orders", username="dispatcher1").json()
    assert len(rows) >= 2 and len(rows[0]) > 3  # the header and the demo's orders
    assert len(rows) - 1 <= max(len(orders), 1) * 10
    name, body = _download(page, "#export-kpis-xlsx")
    assert name.startswith("heatcrew-kpis-") and name.endswith(".xlsx")
    book = openpyxl.load_workbook(io.BytesIO(body), read_only=True)
    values = list(book.active.iter_rows(values_only=True))
    assert values[0][0] == "kpi" and {row[0] for row in values[1:]} >= {"on_time_arrive", "temperature_pass"}
    name, body = _download(page, "#export-measurements-xlsx")
    assert name.endswith(".xlsx")
    openpyxl.load_workbook(io.BytesIO(body), read_only=True)
    # The download left the page as it was.
    assert page.url.endswith("/console/kpis")


@pytest.mark.parametrize("viewport", [DESKTOP, TABLET], ids=["1366x768", "1024x768"])
def test_chromium_kpi_page_passes_axe(page_at, console_server: Server, check_axe, viewport) -> None:
    page = _open_kpis(page_at, viewport)
    size = f"{viewport['width']}x{viewport['height']}"
    page.locator("li.kpi-card details summary").first.click()
    check_axe(page, f"kpis-axe-{size}-{console_server.database}")
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= viewport["width"], width
    with page.expect_response(lambda r: "/console/kpis/cards" in r.url):
        page.click("#period-last30")
    last30 = (_today().date() - timedelta(days=29)).isoformat()
    expect(page.locator("#kpi-scope")).to_have_attribute("data-since", last30)
    check_axe(page, f"kpis-axe-last30-{size}-{console_server.database}")
