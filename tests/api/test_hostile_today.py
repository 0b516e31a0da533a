"""Today's features attacked the way a hostile phone, browser or stranger would (in process, on
SQLite and PostgreSQL). Each test is a finding of that review, kept as its regression test."""

from datetime import timedelta

import pytest
from litestar.testing import TestClient

from backend.clock import ManualClock
from backend.context import AppContext
from backend.error_handlers import DENIAL_WINDOW
from tests.api.helpers import assert_error, auth, login
from tests.api.test_audit import rows

pytestmark = pytest.mark.usefixtures("demo")


def test_a_flood_of_denials_writes_one_audit_row_a_minute_and_counts_the_rest(
    client: TestClient, ctx: AppContext, clock: ManualClock
) -> None:
    tech = login(client, "tech1", device_id="phone-flood")
    for _ in range(40):
        assert_error(client.get("/api/v1/audit/events", headers=auth(tech)), 403, "forbidden")
    assert_error(client.put("/api/v1/sla/policy", json={}, headers=auth(tech)), 403, "forbidden")
    denied = rows(ctx, "access.denied")
    assert [(r.detail["route"], r.detail.get("repeated")) for r in denied] == [
        ("/api/v1/audit/events", None),
        ("/api/v1/sla/policy", None),
    ]
    clock.advance(DENIAL_WINDOW + timedelta(seconds=1))
    assert_error(client.get("/api/v1/audit/events", headers=auth(tech)), 403, "forbidden")
    latest = rows(ctx, "access.denied")[-1]
    assert (latest.detail["route"], latest.detail["repeated"]) == ("/api/v1/audit/events", 39)
    # Another caller's denial is its own.
    other = login(client, "tech2", device_id="phone-other")
    assert_error(client.get("/api/v1/audit/events", headers=auth(other)), 403, "forbidden")
    assert len(rows(ctx, "access.denied")) == 4


@pytest.mark.parametrize("template", ["console/_error.html", "console/_flash.html"])
def test_an_error_message_on_a_console_page_is_escaped_and_never_formatted(app, template: str) -> None:
    """An error's message is shown through the catalogue; what it carries (a detail Litestar took
    from the request, a service's message naming what was sent) must stay text: it was marked
    safe whole (XSS) and formatted (a '%' in it was a 500)."""
    from backend.console import i18n
    from backend.errors import InvalidInput

    message = 'No household "<img src=x onerror=alert(1)>" at 100% <b>'
    page = app.template_engine.get_template(template).render(
        **i18n.gettext_callables("en"),
        code="invalid_input",
        message=message,
        error=InvalidInput(message),
    )
    assert "<img" not in page and "<b>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "100%" in page
    # A message the catalogue knows is still translated.
    known = app.template_engine.get_template(template).render(
        **i18n.gettext_callables("zh"),
        code="invalid_credentials",
        message="Wrong username or password.",
        error=InvalidInput("Wrong username or password."),
    )
    assert "Wrong username" not in known


@pytest.mark.parametrize(
    "period",
    [
        {"since": "9999-12-30", "until": "9999-12-31"},
        {"until": "0001-01-05"},
        {"since": "0001-01-01", "until": "0001-01-02"},
        {"since": "9999-12-31"},
    ],
)
@pytest.mark.parametrize("path", ["/api/v1/reports/kpis", "/api/v1/reports/exports/orders.csv"])
def test_a_period_at_the_ends_of_the_calendar_is_a_clear_400(client: TestClient, period, path) -> None:
    supervisor = login(client, "admin", device_id="desk-dates")
    response = client.get(path, params=period, headers=auth(supervisor))
    assert_error(response, 400, "invalid_input")


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
@pytest.mark.parametrize(
    ("user", "path"),
    [
        ("supervisor1", "/api/v1/review/items"),
        ("supervisor1", "/api/v1/review/counts"),
        ("admin", "/api/v1/audit/events"),
    ],
)
@pytest.mark.parametrize("field", ["since", "until"])
def test_an_instant_at_the_ends_of_the_calendar_in_a_query_is_a_clear_400(
    client: TestClient, moment: str, user: str, path: str, field: str
) -> None:
    office = login(client, user, device_id=f"desk-{user}")
    assert_error(client.get(path, params={field: moment}, headers=auth(office)), 400, "invalid_input")


def test_a_nul_in_a_console_form_is_a_clear_400_and_writes_nothing(
    client: TestClient, ctx: AppContext
) -> None:
    """PostgreSQL text cannot hold U+0000: a console form carrying it failed half-way (a 500)."""
    import re

    from sqlmodel import select

    from backend.work_orders.models import WorkOrder
    from tests.api.test_console import signed_in

    desk = auth(login(client, "dispatcher1", device_id="desk-nul-probe"))
    households = client.get("/api/v1/households", params={"account_number": "100101"}, headers=desk)
    household_id = households.json()[0]["id"]
    with ctx.db.session(readonly=True) as session:
        before = len(session.exec(select(WorkOrder.id)).all())
    token = signed_in(client)
    form = {"household_id": household_id, "kind": "repair", "source": "hotline", "description": "阀门\x00"}
    response = client.post("/console/orders/", data={**form, "csrf_token": token}, follow_redirects=False)
    assert response.status_code == 400
    assert re.findall(r'data-code="([^"]+)"', response.text) == ["text_with_nul"]
    with ctx.db.session(readonly=True) as session:
        assert len(session.exec(select(WorkOrder.id)).all()) == before


def test_a_session_revoked_before_the_worker_started_is_never_answered_from_memory(
    client: TestClient, make_client
) -> None:
    """The hub hears revocations from the moment it listens: a phone logged out before a restart
    (or while the listener was away) was answered from memory, on the head its user's other phone
    kept fresh, until its token expired."""
    import time

    lost = login(client, "tech1", device_id="phone-lost-1")
    assert client.get("/api/v1/sync/pull", headers=auth(lost)).status_code == 200
    assert client.post("/api/v1/auth/logout", headers=auth(lost)).status_code in (200, 204)
    restarted = make_client()
    hub = restarted.app.state.ctx.live
    deadline = time.monotonic() + 10
    while not hub.known:
        assert time.monotonic() < deadline, "the restarted worker's hub never connected"
        time.sleep(0.02)
    kept = login(restarted, "tech1", device_id="phone-kept-1")
    current = restarted.get("/api/v1/sync/pull", headers=auth(kept)).json()["cursor"]
    fresh = restarted.get("/api/v1/sync/pull", params={"cursor": current}, headers=auth(kept))
    assert fresh.status_code == 200  # the user's head is learned, by the phone still signed in
    response = restarted.get("/api/v1/sync/pull", params={"cursor": current}, headers=auth(lost))
    assert_error(response, 401, "session_revoked")
