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
