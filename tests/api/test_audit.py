"""The audit log as an admin, a supervisor and an auditor meet it: each security event recorded by
doing the real thing through the API, with the right actor and target and nothing personal; the
read endpoint's filters, pages and who may read; the chain's verification."""

import itertools
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from sqlmodel import select

from backend import audit
from backend.audit.models import AuditEvent
from backend.auth import service as auth_service
from backend.auth.models import Role, User
from backend.clock import ManualClock
from backend.context import AppContext
from backend.demo import DEMO_PASSWORD, DEMO_USERS
from backend.ids import new_id
from backend.org.models import Company
from tests.api.helpers import assert_error, auth, login
from tests.fixtures.field import new_order
from tests.fixtures.pushing import Phone

pytestmark = pytest.mark.usefixtures("demo")


def rows(
    ctx: AppContext, event: str | None = None, *, company_id: uuid.UUID | None = None
) -> list[AuditEvent]:
    with ctx.db.session(readonly=True) as session:
        query = select(AuditEvent).order_by(AuditEvent.company_id, AuditEvent.seq)
        if event is not None:
            query = query.where(AuditEvent.event == event)
        if company_id is not None:
            query = query.where(AuditEvent.company_id == company_id)
        return list(session.exec(query))


def user_id(ctx: AppContext, username: str) -> uuid.UUID:
    with ctx.db.session(readonly=True) as session:
        user = session.exec(select(User).where(User.username == username)).one()
        return user.id


def company_of(ctx: AppContext, username: str) -> uuid.UUID:
    with ctx.db.session(readonly=True) as session:
        return session.exec(select(User.company_id).where(User.username == username)).one()


def failed_login(client: TestClient, username: str, device: str = "phone-x-1") -> None:
    response = client.post(
        "/api/v1/auth/login",
        json={
            "username": username,
            "password": "not-the-password-123",
            "device": {"id": device, "platform": "android", "app_version": "1.0.0"},
        },
    )
    assert_error(response, 401, "invalid_credentials")


PERSONAL = [name for _, name, _, _ in DEMO_USERS] + [
    "13800000000",
    DEMO_PASSWORD,
    "not-the-password-123",
    "nobody-here",
]


def assert_nothing_personal(ctx: AppContext, *secrets: str) -> None:
    """No detail or target holds a name, phone, password, username, token or GPS."""
    for row in rows(ctx):
        text = json.dumps({"detail": row.detail, "target": row.target_id}, ensure_ascii=False)
        for value in [*PERSONAL, *secrets]:
            assert value not in text, (row.event, text)
        for key in ("lat", "lon", "gps", "phone", "password", "token", "full_name", "username"):
            assert f'"{key}"' not in text, (row.event, text)
        for username, *_ in DEMO_USERS:
            if username not in Role.__members__:  # "admin" is a role too
                assert f'"{username}"' not in text, (row.event, text)


# ---------------------------------------------------------------- what is recorded


def test_logins_and_failures_are_recorded_without_a_password_or_a_username(
    client: TestClient, ctx: AppContext
) -> None:
    tokens = client.post(
        "/api/v1/auth/login",
        headers={"X-Request-ID": "req-login-1"},
        json={
            "username": "tech1",
            "password": DEMO_PASSWORD,
            "device": {"id": "phone-a-0001", "platform": "android", "app_version": "1.0.0"},
        },
    ).json()
    failed_login(client, "tech1", device="phone-b-0001")
    failed_login(client, "nobody-here", device="phone-c-0001")
    failed_login(client, "Nobody-Here", device="phone-d-0001")
    tech1 = user_id(ctx, "tech1")
    (ok,) = rows(ctx, "auth.login")
    assert (ok.actor_user_id, ok.actor_device_id, ok.target_type, ok.target_id) == (
        tech1,
        "phone-a-0001",
        "user",
        str(tech1),
    )
    assert ok.company_id == company_of(ctx, "tech1")
    assert ok.request_id == "req-login-1"
    assert ok.at == ctx.clock.now()
    assert set(ok.detail) == {"session_id"}
    failures = rows(ctx, "auth.login_failed")
    (known,) = [r for r in failures if r.target_type == "user"]
    unknown = [r for r in failures if r.target_type != "user"]
    assert (known.company_id, known.target_type, known.target_id, known.actor_user_id) == (
        company_of(ctx, "tech1"),
        "user",
        str(tech1),
        None,
    )
    assert known.detail == {"code": "invalid_credentials"} and known.actor_device_id == "phone-b-0001"
    # A username nobody has belongs to no company: the installation's chain, as a keyed hash that
    # recognises the same guess again (usernames are case-insensitive) without holding it.
    assert [(r.company_id, r.target_type) for r in unknown] == [(audit.INSTALLATION, "username")] * 2
    assert unknown[0].target_id == unknown[1].target_id and len(unknown[0].target_id or "") == 64
    assert_nothing_personal(ctx, tokens["refresh_token"], tokens["access_token"])


def test_a_disabled_account_failing_to_log_in_is_recorded_with_its_code(
    client: TestClient, ctx: AppContext
) -> None:
    admin = login(client, "admin")
    tech2 = user_id(ctx, "tech2")
    assert client.post(f"/api/v1/users/{tech2}/disable", headers=auth(admin)).status_code == 200
    response = client.post(
        "/api/v1/auth/login",
        json={
            "username": "tech2",
            "password": DEMO_PASSWORD,
            "device": {"id": "phone-t2-0001", "platform": "android", "app_version": "1.0.0"},
        },
    )
    assert_error(response, 401, "user_disabled")
    (failure,) = rows(ctx, "auth.login_failed")
    assert (failure.target_id, failure.detail) == (str(tech2), {"code": "user_disabled"})


def test_refresh_token_reuse_records_the_revoked_family(
    client: TestClient, ctx: AppContext, clock: ManualClock
) -> None:
    tokens = login(client, "tech1", device_id="phone-r-0001")
    first = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert first.status_code == 200
    clock.advance(seconds=61)
    reused = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert_error(reused, 401, "refresh_token_reused")
    # Presented again, the family is already ended: nothing more to record.
    assert_error(
        client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}),
        401,
        "session_revoked",
    )
    (event,) = rows(ctx, "auth.refresh_reused")
    login_event = rows(ctx, "auth.login")[-1]
    assert event.target_type == "session" and event.target_id == login_event.detail["session_id"]
    assert (event.actor_user_id, event.actor_device_id) == (user_id(ctx, "tech1"), "phone-r-0001")
    assert event.detail == {"family_revoked": True}
    assert_nothing_personal(ctx, tokens["refresh_token"], first.json()["refresh_token"])


def test_revocations_account_changes_and_creation_are_recorded_with_their_actor(
    client: TestClient, ctx: AppContext
) -> None:
    login(client, "tech1", device_id="phone-lost")
    supervisor = login(client, "supervisor1", device_id="console-s")
    admin = login(client, "admin", device_id="console-a")
    revoked = client.post(
        "/api/v1/devices/phone-lost/revoke",
        json={"reason": "张伟 lost it, 13900000000"},
        headers=auth(supervisor),
    )
    assert revoked.status_code == 200
    created = client.post(
        "/api/v1/users",
        json={
            "username": "newtech",
            "full_name": "新人 赵六",
            "role": "technician",
            "password": "a-long-password",
            "phone": "13911112222",
        },
        headers=auth(admin),
    )
    assert created.status_code == 201, created.text
    new = uuid.UUID(created.json()["id"])
    assert client.post(f"/api/v1/users/{new}/disable", headers=auth(admin)).status_code == 200
    assert client.post(f"/api/v1/users/{new}/enable", headers=auth(admin)).status_code == 200

    (revoke,) = rows(ctx, "device.revoked")
    assert (revoke.actor_user_id, revoke.actor_device_id) == (user_id(ctx, "supervisor1"), "console-s")
    assert (revoke.target_type, revoke.target_id) == ("device", "phone-lost")
    assert revoke.detail == {
        "owner_id": str(user_id(ctx, "tech1")),
        "was_revoked": False,
        "reason_given": True,
    }
    created_row = rows(ctx, "user.created")[-1]
    assert (created_row.actor_user_id, created_row.target_id, created_row.detail) == (
        user_id(ctx, "admin"),
        str(new),
        {"role": "technician"},
    )
    for name, was_active in (("user.disabled", True), ("user.enabled", False)):
        (row,) = rows(ctx, name)
        assert (row.actor_user_id, row.actor_device_id, row.target_id) == (
            user_id(ctx, "admin"),
            "console-a",
            str(new),
        )
        assert row.detail == {"was_active": was_active}
    # The demo's own accounts were recorded as they were made, by nobody (the seeding).
    assert {r.target_id for r in rows(ctx, "user.created") if r.actor_user_id is None} == {
        str(user_id(ctx, u)) for u, *_ in DEMO_USERS
    }
    assert_nothing_personal(ctx, "13900000000", "13911112222", "新人 赵六", "newtech", "lost it")


def test_a_permission_denial_is_recorded_though_the_request_leaves_nothing(
    client: TestClient, ctx: AppContext
) -> None:
    tech = login(client, "tech1", device_id="phone-d1")
    before = client.get("/api/v1/sla/policy", headers=auth(tech)).json()
    refused = client.put(
        "/api/v1/sla/policy",
        json={**before, "revisit_minutes": 60},
        headers={**auth(tech), "X-Request-ID": "req-denied-1"},
    )
    assert_error(refused, 403, "forbidden")
    assert_error(client.get("/api/v1/audit/events", headers=auth(tech)), 403, "forbidden")
    denied = rows(ctx, "access.denied")
    assert [(r.detail["method"], r.detail["route"]) for r in denied] == [
        ("PUT", "/api/v1/sla/policy"),
        ("GET", "/api/v1/audit/events"),
    ]
    first = denied[0]
    assert (first.actor_user_id, first.actor_device_id, first.request_id) == (
        user_id(ctx, "tech1"),
        "phone-d1",
        "req-denied-1",
    )
    assert first.detail == {
        "method": "PUT",
        "route": "/api/v1/sla/policy",
        "role": "technician",
        "code": "forbidden",
    }
    assert rows(ctx, "sla_policy.changed") == []
    assert client.get("/api/v1/sla/policy", headers=auth(tech)).json() == before
    # Not authenticated is no denial: nobody to name.
    assert_error(client.get("/api/v1/audit/events"), 401, "not_authenticated")
    assert len(rows(ctx, "access.denied")) == 2


def test_viewing_an_original_photo_is_recorded_and_its_copies_are_not(
    client: TestClient, ctx: AppContext
) -> None:
    tech = Phone(client, ctx, "tech1")
    sha = tech.upload_photo()
    order = str(new_order(ctx).id)
    assert (
        tech.push("evidence.photo", 1, {"work_order_id": order, "blob": sha, "purpose": "before"})["status"]
        == "applied"
    )
    supervisor = login(client, "supervisor1", device_id="console-p")
    assert client.get(f"/api/v1/blobs/{sha}/display", headers=auth(supervisor)).status_code == 200
    assert rows(ctx, "photo.original_viewed") == []
    assert_error(client.get(f"/api/v1/blobs/{sha}/original", headers=auth(tech.tokens)), 403, "forbidden")
    assert rows(ctx, "photo.original_viewed") == []
    original = client.get(f"/api/v1/blobs/{sha}/original", headers=auth(supervisor))
    assert original.status_code == 200
    (view,) = rows(ctx, "photo.original_viewed")
    assert (view.actor_user_id, view.actor_device_id, view.target_type, view.target_id) == (
        user_id(ctx, "supervisor1"),
        "console-p",
        "blob",
        sha,
    )
    assert view.detail == {}
    # The technician's attempt is a denial of its own.
    (denial,) = rows(ctx, "access.denied")
    assert denial.detail["route"] == "/api/v1/blobs/{sha256}/{variant}"


def test_a_policy_change_records_what_changed_before_and_after(client: TestClient, ctx: AppContext) -> None:
    admin = login(client, "admin", device_id="console-a")
    before = client.get("/api/v1/sla/policy", headers=auth(admin)).json()
    after = {**before, "revisit_minutes": 24 * 60, "arrival_radius_m": 300}
    after["kinds"] = {**before["kinds"], "leak": {**before["kinds"]["leak"]}}
    clock_name = sorted(after["kinds"]["leak"])[0]
    target = dict(after["kinds"]["leak"][clock_name])
    old_minutes = target["minutes"]
    target["minutes"] = old_minutes + 15
    after["kinds"]["leak"][clock_name] = target
    assert client.put("/api/v1/sla/policy", json=after, headers=auth(admin)).status_code == 200
    (change,) = rows(ctx, "sla_policy.changed")
    assert (change.actor_user_id, change.target_type) == (user_id(ctx, "admin"), "sla_policy")
    assert change.detail == {
        "changed": {
            f"kinds.leak.{clock_name}.minutes": {"before": old_minutes, "after": old_minutes + 15},
            "revisit_minutes": {"before": before["revisit_minutes"], "after": 24 * 60},
            "arrival_radius_m": {"before": before["arrival_radius_m"], "after": 300},
        }
    }


def test_a_supersede_is_recorded_and_a_refused_one_leaves_no_event(
    client: TestClient, ctx: AppContext
) -> None:
    order = new_order(ctx, kind="temperature_complaint", account="100103", assignee="inspector1")
    inspector = Phone(client, ctx, "inspector1")

    def record(**extra: Any) -> dict[str, Any]:
        return {
            "measurement_id": str(uuid.uuid4()),
            "household_id": str(order.household_id),
            "work_order_id": None,
            "instrument_id": "TH-0042",
            "rooms": [
                {"name": "客厅", "kind": "living_room", "readings_c": [17.1, 17.2, 17.1], "height_m": 1.3}
            ],
            "outdoor_c": -9.0,
            "closed_minutes": 40,
            **extra,
        }

    original = record()
    assert inspector.push("measurement.record", 1, original)["status"] == "applied"
    new_order(ctx, account="100103", assignee="tech1")
    tech1 = Phone(client, ctx, "tech1")
    voiding = record(supersedes=original["measurement_id"], supersede_reason="张伟 says 重测")
    answer = tech1.push("measurement.record", 1, voiding)
    assert (answer["status"], answer["code"]) == ("rejected", "unknown_document")
    assert rows(ctx, "document.superseded") == []
    correction = record(supersedes=original["measurement_id"], supersede_reason="重测 by 陈静")
    assert inspector.push("measurement.record", 1, correction)["status"] == "applied"
    (event,) = rows(ctx, "document.superseded")
    assert (event.actor_user_id, event.actor_device_id) == (user_id(ctx, "inspector1"), inspector.device)
    assert (event.target_type, event.target_id) == ("document", original["measurement_id"])
    assert event.detail == {"type": "measurement", "superseded_by": correction["measurement_id"]}
    assert_nothing_personal(ctx, "重测", "客厅")


def test_a_supersede_among_kept_action_scopes_joins_the_chain_once_at_the_commit(
    client: TestClient, ctx: AppContext
) -> None:
    """Three refusals put every later action of the batch in its own savepoint; the savepoints kept
    after the supersede are no commit: its event is written once, the chain's lock is taken only
    after the last of them, and the chain still verifies."""
    order = new_order(ctx, kind="temperature_complaint", account="100103", assignee="inspector1")
    inspector = Phone(client, ctx, "inspector1")
    original = {
        "measurement_id": str(uuid.uuid4()),
        "household_id": str(order.household_id),
        "work_order_id": None,
        "instrument_id": "TH-0042",
        "rooms": [{"name": "客厅", "kind": "living_room", "readings_c": [17.1, 17.2, 17.1], "height_m": 1.3}],
        "outdoor_c": -9.0,
        "closed_minutes": 40,
    }
    assert inspector.push("measurement.record", 1, original)["status"] == "applied"
    correction = {
        **original,
        "measurement_id": str(uuid.uuid4()),
        "supersedes": original["measurement_id"],
        "supersede_reason": "重测",
    }
    refused = ("work_order.note", 1, {"work_order_id": str(uuid.uuid4()), "text": "没有这张工单"})
    note = ("work_order.note", 1, {"work_order_id": str(order.id), "text": "复测完成"})
    actions = [refused, ("measurement.record", 1, correction), refused, note, refused, note]
    now = ctx.clock.now()
    envelopes = [
        {"id": str(uuid.uuid4()), "seq": inspector.seq + n, "type": type_, "v": v, "payload": payload}
        | {"occurred_at": now.isoformat()}
        for n, (type_, v, payload) in enumerate(actions, start=1)
    ]
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()).upper())

    sa.event.listen(ctx.db.engine, "before_cursor_execute", seen)
    try:
        response = client.post(
            "/api/v1/sync/push",
            json={"device_id": inspector.device, "sent_at": now.isoformat(), "actions": envelopes},
            headers=auth(inspector.tokens),
        )
    finally:
        sa.event.remove(ctx.db.engine, "before_cursor_execute", seen)
    assert response.status_code == 200, response.text
    answers = [(r["status"], r.get("code")) for r in response.json()["results"]]
    assert answers == [("rejected", "not_found"), ("applied", None)] * 3
    (event,) = rows(ctx, "document.superseded")
    assert event.target_id == original["measurement_id"]
    assert event.detail == {"type": "measurement", "superseded_by": correction["measurement_id"]}
    released = [i for i, s in enumerate(statements) if s.startswith("RELEASE SAVEPOINT")]
    chained = [i for i, s in enumerate(statements) if "AUDIT_EVENT" in s or "PG_ADVISORY_XACT_LOCK" in s]
    assert len(released) == 3 and chained and min(chained) > max(released), (released, chained)
    verified = client.get("/api/v1/audit/verify", headers=auth(login(client, "admin")))
    assert verified.status_code == 200, verified.text
    assert verified.json()["ok"] is True


# ---------------------------------------------------------------- verify


def test_the_chain_verifies_and_only_an_admin_may_ask(client: TestClient, ctx: AppContext) -> None:
    admin = login(client, "admin")
    failed_login(client, "tech1")
    login(client, "tech1")
    answer = client.get("/api/v1/audit/verify", headers=auth(admin))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    company = company_of(ctx, "admin")
    chain = rows(ctx, company_id=company)
    assert [r.seq for r in chain] == list(range(1, len(chain) + 1))
    assert body == {
        "company_id": str(company),
        "ok": True,
        "events": len(chain),
        "anchor_seq": 0,
        "head_seq": len(chain),
        "head_hash": chain[-1].hash,
        "broken": None,
    }
    assert chain[0].prev_hash == audit.GENESIS
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(chain))
    for username in ("supervisor1", "tech1", "dispatcher1"):
        assert_error(
            client.get("/api/v1/audit/verify", headers=auth(login(client, username))), 403, "forbidden"
        )


# ---------------------------------------------------------------- reading


@pytest.fixture
def other_company(ctx: AppContext) -> uuid.UUID:
    """A second company with an admin of its own, and a login there."""
    with ctx.db.session() as session:
        company = Company(
            id=new_id(), code="north", name="North Heat", timezone="Asia/Shanghai", created_at=ctx.clock.now()
        )
        session.add(company)
        session.flush()
        auth_service.create_user(
            ctx,
            session,
            company_id=company.id,
            username="northadmin",
            full_name="North Admin",
            role=Role.admin,
            password="north-password-1",
        )
        return company.id


def test_supervisors_and_admins_read_their_own_company_only(
    client: TestClient, ctx: AppContext, other_company: uuid.UUID
) -> None:
    north = login(client, "northadmin", password="north-password-1")
    admin, supervisor = login(client, "admin"), login(client, "supervisor1")
    mine = company_of(ctx, "admin")
    for tokens in (admin, supervisor):
        page = client.get("/api/v1/audit/events", params={"limit": 500}, headers=auth(tokens))
        assert page.status_code == 200, page.text
        seqs = [e["seq"] for e in page.json()["events"]]
        assert seqs == [r.seq for r in reversed(rows(ctx, company_id=mine))]
    theirs = client.get("/api/v1/audit/events", params={"limit": 500}, headers=auth(north)).json()["events"]
    assert {e["target_id"] for e in theirs} == {str(user_id(ctx, "northadmin"))}
    assert [e["event"] for e in theirs] == ["auth.login", "user.created"]
    # An id from the other company finds nothing, it does not say it exists.
    tech1 = user_id(ctx, "tech1")
    found = client.get("/api/v1/audit/events", params={"actor": str(tech1)}, headers=auth(north)).json()
    assert found == {"events": [], "next_cursor": None}
    for username in ("tech1", "inspector1", "dispatcher1"):
        assert_error(
            client.get("/api/v1/audit/events", headers=auth(login(client, username))), 403, "forbidden"
        )
    # Nothing edits the log through the API.
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert client.request(method, "/api/v1/audit/events", headers=auth(admin)).status_code == 405


def test_the_filters_and_the_pages(client: TestClient, ctx: AppContext, clock: ManualClock) -> None:
    start = clock.now()
    for _ in range(3):
        clock.advance(minutes=10)
        login(client, "tech1", device_id="phone-f-0001")
    clock.advance(minutes=10)
    failed_login(client, "tech1")
    tech1 = str(user_id(ctx, "tech1"))
    headers = auth(login(client, "admin", device_id="console-a"))

    def get(**params: Any) -> dict[str, Any]:
        answer = client.get("/api/v1/audit/events", params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        return answer.json()

    logins = get(event="auth.login", actor=tech1)["events"]
    assert len(logins) == 3 and all(e["actor_device_id"] == "phone-f-0001" for e in logins)
    assert [e["seq"] for e in logins] == sorted((e["seq"] for e in logins), reverse=True)
    assert [e["event"] for e in get(target_type="user", target_id=tech1)["events"]] == [
        "auth.login_failed",
        "auth.login",
        "auth.login",
        "auth.login",
        "user.created",
    ]
    window = get(
        event="auth.login",
        since=(start + timedelta(minutes=15)).isoformat(),
        until=(start + timedelta(minutes=30)).isoformat(),
    )["events"]
    assert [e["at"] for e in window] == [(start + timedelta(minutes=20)).isoformat().replace("+00:00", "Z")]
    # Pages of two, newest first, until the end; together they are the whole log.
    seen: list[int] = []
    cursor: int | None = None
    while True:
        page = get(limit=2, **({"cursor": cursor} if cursor else {}))
        assert len(page["events"]) <= 2
        seen += [e["seq"] for e in page["events"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    company = company_of(ctx, "admin")
    assert seen == [r.seq for r in reversed(rows(ctx, company_id=company))]
    one = get(limit=1)["events"][0]
    assert set(one) == {
        "seq", "at", "event", "actor_user_id", "actor_device_id", "target_type", "target_id",
        "request_id", "detail", "prev_hash", "hash",
    }  # fmt: skip
    assert_error(
        client.get("/api/v1/audit/events", params={"since": "2026-12-07T08:00:00"}, headers=headers),
        400,
        "invalid_input",
    )
    assert_error(
        client.get("/api/v1/audit/events", params={"limit": 0}, headers=headers), 400, "invalid_body"
    )
    assert_error(
        client.get("/api/v1/audit/events", params={"cursor": 0}, headers=headers), 400, "invalid_body"
    )
    assert_error(
        client.get("/api/v1/audit/events", params={"actor": "not-a-uuid"}, headers=headers),
        400,
        "invalid_body",
    )


def test_an_export_hook_records_what_was_exported(ctx: AppContext) -> None:
    company = company_of(ctx, "admin")
    admin = user_id(ctx, "admin")
    with ctx.db.session() as session:
        audit.record_export(
            session,
            company_id=company,
            actor_user_id=admin,
            actor_device_id="console-a",
            export="households.xlsx",
            rows=120,
            filters={"station": "S1"},
        )
    (row,) = rows(ctx, "export.personal_data")
    assert (row.actor_user_id, row.target_type, row.target_id) == (admin, "export", "households.xlsx")
    assert row.detail == {"rows": 120, "filters": {"station": "S1"}}
    with ctx.db.session() as session, pytest.raises(ValueError, match="personal data"):
        audit.record(session, company_id=company, event="x", detail={"filters": {"phone": "13800000000"}})


def test_an_event_is_gone_with_the_transaction_that_recorded_it(ctx: AppContext) -> None:
    company = company_of(ctx, "admin")
    count = len(rows(ctx))
    with pytest.raises(RuntimeError), ctx.db.session() as session:
        audit.record(
            session, company_id=company, event=audit.Event.user_enabled, target_type="user", target_id="x"
        )
        raise RuntimeError("the request failed")
    assert len(rows(ctx)) == count
    with ctx.db.session() as session:
        audit.record(
            session, company_id=company, event=audit.Event.user_enabled, target_type="user", target_id="x"
        )
        audit.record(
            session, company_id=company, event=audit.Event.user_disabled, target_type="user", target_id="x"
        )
    last_two = rows(ctx, company_id=company)[-2:]
    assert [r.event for r in last_two] == ["user.enabled", "user.disabled"]
    assert last_two[1].seq == last_two[0].seq + 1 and last_two[1].prev_hash == last_two[0].hash
    with ctx.db.session(readonly=True) as session:
        assert session.execute(sa.select(sa.func.count()).select_from(AuditEvent)).scalar() == count + 2
