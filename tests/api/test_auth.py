"""Accounts, devices and tokens as a phone and an admin experience them."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from backend.auth.models import AuthSession, LoginAttempt
from backend.auth.passwords import Passwords
from backend.auth.tokens import TokenCodec, hash_refresh_token
from backend.clock import ManualClock
from backend.context import AppContext
from tests.api.helpers import assert_error, auth, counting, login

pytestmark = pytest.mark.usefixtures("demo")


def test_login_registers_the_phone_and_the_token_opens_the_api(client: TestClient) -> None:
    tokens = login(client, "tech1", device_id="phone-tech1-a")
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 900
    assert tokens["user"]["username"] == "tech1"
    assert tokens["user"]["role"] == "technician"
    assert tokens["user"]["timezone"] == "Asia/Shanghai"
    me = client.get("/api/v1/me", headers=auth(tokens))
    assert me.status_code == 200
    assert me.json()["full_name"] == "维修工 张伟"

    admin = login(client, "admin")
    devices = client.get("/api/v1/devices", headers=auth(admin)).json()
    phone = next(d for d in devices if d["id"] == "phone-tech1-a")
    assert phone["username"] == "tech1"
    assert phone["platform"] == "android"
    assert phone["revoked_at"] is None


def test_username_is_case_insensitive(client: TestClient) -> None:
    assert login(client, "TECH1")["user"]["username"] == "tech1"


@pytest.mark.parametrize("username", ["tech1", "nobody"])
def test_wrong_password_or_unknown_user_answer_alike(client: TestClient, username: str) -> None:
    response = client.post(
        "/api/v1/auth/login",
        json={
            "username": username,
            "password": "not-the-password",
            "device": {"id": "phone-xyz-1", "platform": "android", "app_version": "1"},
        },
    )
    assert_error(response, 401, "invalid_credentials")


def test_expired_access_token_is_refused_and_refresh_gives_a_working_one(
    client: TestClient, clock: ManualClock
) -> None:
    tokens = login(client, "tech1")
    clock.advance(seconds=901)
    assert_error(client.get("/api/v1/me", headers=auth(tokens)), 401, "token_expired")
    fresh = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert fresh.status_code == 200, fresh.text
    assert client.get("/api/v1/me", headers=auth(fresh.json())).status_code == 200


def test_a_week_offline_then_refresh_still_works(client: TestClient, clock: ManualClock) -> None:
    tokens = login(client, "tech1")
    clock.advance(days=7)
    fresh = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert fresh.status_code == 200
    assert client.get("/api/v1/me", headers=auth(fresh.json())).status_code == 200


def test_refresh_token_past_its_life_needs_a_new_login(client: TestClient, clock: ManualClock) -> None:
    tokens = login(client, "tech1")
    clock.advance(days=31)
    response = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert_error(response, 401, "refresh_token_expired")


def test_token_presented_by_another_device_is_refused(client: TestClient) -> None:
    tokens = login(client, "tech1", device_id="phone-tech1-a")
    response = client.get("/api/v1/me", headers={**auth(tokens), "X-Device-Id": "phone-tech1-b"})
    assert_error(response, 401, "device_mismatch")
    ok = client.get("/api/v1/me", headers={**auth(tokens), "X-Device-Id": "phone-tech1-a"})
    assert ok.status_code == 200


def test_refresh_from_another_device_ends_the_session(client: TestClient) -> None:
    tokens = login(client, "tech1", device_id="phone-tech1-a")
    stolen = client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"], "device_id": "phone-thief-1"}
    )
    assert_error(stolen, 401, "device_mismatch")
    assert_error(client.get("/api/v1/me", headers=auth(tokens)), 401, "session_revoked")


def test_refresh_rotates_and_reuse_revokes_the_whole_family(client: TestClient, clock: ManualClock) -> None:
    first = login(client, "tech1")
    second = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}).json()
    assert second["refresh_token"] != first["refresh_token"]
    clock.advance(minutes=5)  # past the retry grace: this is a replay, not a lost answer
    replay = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert_error(replay, 401, "refresh_token_reused")
    # Every token of the family is dead: the newest refresh token and the live access token.
    assert_error(
        client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}),
        401,
        "session_revoked",
    )
    assert_error(client.get("/api/v1/me", headers=auth(second)), 401, "session_revoked")
    # A login on another device of the same user is a different family and is untouched.


def test_reuse_revokes_only_that_family(client: TestClient, clock: ManualClock) -> None:
    on_phone = login(client, "tech1", device_id="phone-tech1-a")
    on_tablet = login(client, "tech1", device_id="tablet-tech1-b")
    client.post("/api/v1/auth/refresh", json={"refresh_token": on_phone["refresh_token"]})
    clock.advance(minutes=5)
    client.post("/api/v1/auth/refresh", json={"refresh_token": on_phone["refresh_token"]})
    assert client.get("/api/v1/me", headers=auth(on_tablet)).status_code == 200


def test_refresh_answer_lost_and_resent_at_once_is_not_theft(client: TestClient, clock: ManualClock) -> None:
    first = login(client, "tech1")
    lost = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}).json()
    clock.advance(seconds=10)
    retry = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert retry.status_code == 200, retry.text
    retried = retry.json()
    assert client.get("/api/v1/me", headers=auth(retried)).status_code == 200
    # The pair whose answer was lost never reached the phone; its refresh token is spent.
    clock.advance(minutes=5)
    assert_error(
        client.post("/api/v1/auth/refresh", json={"refresh_token": lost["refresh_token"]}),
        401,
        "refresh_token_reused",
    )


def test_revoked_device_is_locked_out_on_its_next_request(client: TestClient) -> None:
    phone = login(client, "tech1", device_id="lost-phone-0001")
    other = login(client, "tech1", device_id="new-phone-0002")
    supervisor = login(client, "supervisor1")
    revoked = client.post(
        "/api/v1/devices/lost-phone-0001/revoke", json={"reason": "lost on site"}, headers=auth(supervisor)
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    assert revoked.json()["revoke_reason"] == "lost on site"

    assert_error(client.get("/api/v1/me", headers=auth(phone)), 401, "device_revoked")
    assert_error(
        client.post("/api/v1/auth/refresh", json={"refresh_token": phone["refresh_token"]}),
        401,
        "device_revoked",
    )
    again = client.post(
        "/api/v1/auth/login",
        json={
            "username": "tech1",
            "password": "demo-password",
            "device": {"id": "lost-phone-0001", "platform": "android", "app_version": "1.0.0"},
        },
    )
    assert_error(again, 401, "device_revoked")
    # The same person on a new phone carries on.
    assert client.get("/api/v1/me", headers=auth(other)).status_code == 200


def test_disabled_user_is_locked_out_at_once(client: TestClient) -> None:
    tech = login(client, "tech2")
    admin = login(client, "admin")
    users = client.get("/api/v1/users", params={"role": "technician"}, headers=auth(admin)).json()
    tech2 = next(u for u in users if u["username"] == "tech2")
    disabled = client.post(f"/api/v1/users/{tech2['id']}/disable", headers=auth(admin))
    assert disabled.status_code == 200
    assert disabled.json()["is_active"] is False
    assert_error(client.get("/api/v1/me", headers=auth(tech)), 401, "user_disabled")
    assert_error(
        client.post("/api/v1/auth/refresh", json={"refresh_token": tech["refresh_token"]}),
        401,
        "user_disabled",
    )
    response = client.post(
        "/api/v1/auth/login",
        json={
            "username": "tech2",
            "password": "demo-password",
            "device": {"id": "phone-of-tech2", "platform": "android", "app_version": "1.0.0"},
        },
    )
    assert_error(response, 401, "user_disabled")
    client.post(f"/api/v1/users/{tech2['id']}/enable", headers=auth(admin))
    assert login(client, "tech2")["user"]["username"] == "tech2"


def test_logout_ends_the_session(client: TestClient) -> None:
    tokens = login(client, "tech1")
    assert client.post("/api/v1/auth/logout", headers=auth(tokens)).status_code == 200
    assert_error(client.get("/api/v1/me", headers=auth(tokens)), 401, "session_revoked")
    assert_error(
        client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}),
        401,
        "session_revoked",
    )


def test_a_phone_belongs_to_one_user(client: TestClient) -> None:
    login(client, "tech1", device_id="shared-phone-01")
    response = client.post(
        "/api/v1/auth/login",
        json={
            "username": "tech2",
            "password": "demo-password",
            "device": {"id": "shared-phone-01", "platform": "android", "app_version": "1.0.0"},
        },
    )
    assert_error(response, 409, "device_registered_elsewhere")


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "not_authenticated"),
        ("Bearer not-a-token", "invalid_token"),
        ("Basic dGVjaDE6ZGVtbw==", "invalid_token"),
        ("Bearer ", "invalid_token"),
    ],
)
def test_missing_or_malformed_tokens(client: TestClient, header: str | None, code: str) -> None:
    headers = {"Authorization": header} if header is not None else {}
    assert_error(client.get("/api/v1/me", headers=headers), 401, code)


def test_token_signed_with_another_key_is_refused(
    client: TestClient, ctx: AppContext, clock: ManualClock
) -> None:
    real = login(client, "tech1")
    claims = ctx.tokens.read(real["access_token"], now=clock.now())
    forged = TokenCodec("someone-elses-key-0123456789abcdef", 900).issue(
        user_id=claims.user_id, session_id=claims.session_id, device_id=claims.device_id, now=clock.now()
    )
    assert_error(
        client.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"}), 401, "invalid_token"
    )


def test_login_is_rate_limited_per_user(client: TestClient, ctx: AppContext, clock: ManualClock) -> None:
    body = {
        "username": "tech1",
        "password": "guess",
        "device": {"id": "phone-attacker", "platform": "android", "app_version": "1"},
    }
    for _ in range(5):
        assert_error(client.post("/api/v1/auth/login", json=body), 401, "invalid_credentials")
    # Even the right password is refused while the account is cooling down.
    limited = client.post("/api/v1/auth/login", json={**body, "password": "demo-password"})
    error = assert_error(limited, 429, "rate_limited")
    assert error["detail"]["scope"] == "user"
    assert limited.headers["retry-after"] == "900"
    # Another user is not affected by tech1's lock.
    assert login(client, "tech2")["user"]["username"] == "tech2"
    clock.advance(seconds=901)
    assert login(client, "tech1")["user"]["username"] == "tech1"


def test_login_is_rate_limited_per_address(client: TestClient) -> None:
    for i in range(30):
        client.post(
            "/api/v1/auth/login",
            json={
                "username": f"spray{i}",
                "password": "guess",
                "device": {"id": "phone-attacker", "platform": "android", "app_version": "1"},
            },
        )
    limited = client.post(
        "/api/v1/auth/login",
        json={
            "username": "tech1",
            "password": "demo-password",
            "device": {"id": "phone-of-tech1", "platform": "android", "app_version": "1"},
        },
    )
    assert assert_error(limited, 429, "rate_limited")["detail"]["scope"] == "address"


def test_a_successful_login_clears_earlier_failures(
    client: TestClient, ctx: AppContext, clock: ManualClock
) -> None:
    bad = {
        "username": "tech1",
        "password": "guess",
        "device": {"id": "phone-of-tech1", "platform": "android", "app_version": "1"},
    }
    for _ in range(4):
        clock.advance(seconds=5)
        client.post("/api/v1/auth/login", json=bad)
    clock.advance(seconds=5)
    login(client, "tech1")
    for _ in range(4):
        clock.advance(seconds=5)
        assert_error(client.post("/api/v1/auth/login", json=bad), 401, "invalid_credentials")
    with ctx.db.session(readonly=True) as session:
        recorded = session.execute(sa.select(sa.func.count()).select_from(LoginAttempt)).scalar_one()
    assert recorded == 9


def test_refresh_tokens_are_stored_only_as_hashes(client: TestClient, ctx: AppContext) -> None:
    tokens = login(client, "tech1")
    with ctx.db.engine.connect() as conn:
        stored = [row[0] for row in conn.execute(sa.text("SELECT token_hash FROM refresh_token"))]
        sessions = conn.execute(sa.select(sa.func.count()).select_from(AuthSession.__table__)).scalar_one()
    assert tokens["refresh_token"] not in stored
    assert len(stored) == 1 and len(stored[0]) == 64
    assert sessions == 1


def test_production_passwords_use_memory_hard_argon2id() -> None:
    hashed = Passwords().hash("correct horse battery")
    assert hashed.startswith("$argon2id$")
    memory_kib = int(hashed.split("$")[3].split(",")[0].removeprefix("m="))
    assert memory_kib >= 64 * 1024
    assert Passwords().verify(hashed, "correct horse battery")
    assert not Passwords().verify(hashed, "correct horse battery!")


def test_access_token_life_is_short(client: TestClient, clock: ManualClock) -> None:
    tokens = login(client, "tech1")
    clock.advance(timedelta(seconds=899))
    assert client.get("/api/v1/me", headers=auth(tokens)).status_code == 200
    clock.advance(timedelta(seconds=2))
    assert_error(client.get("/api/v1/me", headers=auth(tokens)), 401, "token_expired")


def _refresh(client: TestClient, token: str) -> httpx.Response:
    return client.post("/api/v1/auth/refresh", json={"refresh_token": token})


def test_three_refresh_answers_lost_in_a_row_keep_the_phone_logged_in(
    client: TestClient, clock: ManualClock
) -> None:
    first = login(client, "tech1")
    # Refresh, answer lost; the phone resends the same token; lost again; and again.
    lost_once = _refresh(client, first["refresh_token"])
    assert lost_once.status_code == 200, lost_once.text
    clock.advance(seconds=10)
    lost_twice = _refresh(client, first["refresh_token"])
    assert lost_twice.status_code == 200, lost_twice.text
    clock.advance(seconds=10)
    arrived = _refresh(client, first["refresh_token"])
    assert arrived.status_code == 200, arrived.text
    last = arrived.json()
    issued = {lost_once.json()["refresh_token"], lost_twice.json()["refresh_token"], last["refresh_token"]}
    assert len(issued) == 3
    # The pair that reached the phone works: the API opens and its refresh token rotates.
    assert client.get("/api/v1/me", headers=auth(last)).status_code == 200
    clock.advance(minutes=5)
    after = _refresh(client, last["refresh_token"])
    assert after.status_code == 200, after.text
    assert client.get("/api/v1/me", headers=auth(after.json())).status_code == 200
    # The successors whose answers were lost were replaced, never used: each is dead, and
    # presenting one is a replay that ends the family.
    assert_error(_refresh(client, lost_once.json()["refresh_token"]), 401, "refresh_token_reused")
    assert_error(_refresh(client, lost_twice.json()["refresh_token"]), 401, "session_revoked")
    assert_error(_refresh(client, after.json()["refresh_token"]), 401, "session_revoked")
    assert_error(client.get("/api/v1/me", headers=auth(after.json())), 401, "session_revoked")


def test_only_one_successor_of_a_retried_token_stays_alive(client: TestClient, clock: ManualClock) -> None:
    first = login(client, "tech1")
    lost = _refresh(client, first["refresh_token"]).json()
    clock.advance(seconds=5)
    kept = _refresh(client, first["refresh_token"]).json()
    clock.advance(seconds=5)
    # The replaced successor is refused, and it ends the family: it never reached the phone.
    assert_error(_refresh(client, lost["refresh_token"]), 401, "refresh_token_reused")
    assert_error(_refresh(client, kept["refresh_token"]), 401, "session_revoked")


def test_after_a_successor_is_used_the_old_token_revokes_the_family(
    client: TestClient, clock: ManualClock
) -> None:
    first = login(client, "tech1")
    lost = _refresh(client, first["refresh_token"]).json()
    clock.advance(seconds=5)
    retried = _refresh(client, first["refresh_token"]).json()  # a retry within the grace
    clock.advance(seconds=5)
    used = _refresh(client, retried["refresh_token"])  # the phone moves on with the successor
    assert used.status_code == 200, used.text
    clock.advance(seconds=5)
    # Still within 60 s of the first spending, but a successor has been used: a replay.
    assert_error(_refresh(client, first["refresh_token"]), 401, "refresh_token_reused")
    assert_error(_refresh(client, used.json()["refresh_token"]), 401, "session_revoked")
    assert_error(client.get("/api/v1/me", headers=auth(used.json())), 401, "session_revoked")
    assert lost["refresh_token"] != retried["refresh_token"]


def test_retries_of_a_spent_token_end_with_the_grace_window(client: TestClient, clock: ManualClock) -> None:
    first = login(client, "tech1")
    _refresh(client, first["refresh_token"])
    clock.advance(seconds=30)
    assert _refresh(client, first["refresh_token"]).status_code == 200
    clock.advance(seconds=31)  # 61 s after the token was first spent: retries do not extend the grace
    assert_error(_refresh(client, first["refresh_token"]), 401, "refresh_token_reused")


def test_concurrent_resends_of_one_token_leave_exactly_one_live_successor(
    client: TestClient, ctx: AppContext
) -> None:
    first = login(client, "tech1")
    barrier = threading.Barrier(8)

    def resend(_: int) -> httpx.Response:
        barrier.wait()
        return _refresh(client, first["refresh_token"])

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(resend, range(8)))
    assert [a.status_code for a in answers] == [200] * 8
    with ctx.db.engine.connect() as conn:
        unspent = sa.text("SELECT token_hash FROM refresh_token WHERE spent_at IS NULL")
        live = conn.execute(unspent).scalars().all()
    assert len(live) == 1
    (survivor,) = [a.json() for a in answers if hash_refresh_token(a.json()["refresh_token"]) == live[0]]
    assert client.get("/api/v1/me", headers=auth(survivor)).status_code == 200
    assert _refresh(client, survivor["refresh_token"]).status_code == 200


def test_me_is_one_statement_that_admits_its_caller(client: TestClient, ctx: AppContext) -> None:
    """A phone asks at every start and resume: the admission reads the answer too."""
    tokens = login(client, "tech1", device_id="me-one-statement")
    client.get("/api/v1/me", headers=auth(tokens))  # the last-seen write, if due, is behind us
    with counting(ctx) as seen:
        me = client.get("/api/v1/me", headers=auth(tokens))
    assert me.status_code == 200
    assert me.json()["username"] == "tech1" and me.json()["timezone"] == "Asia/Shanghai"
    work = [s for s in seen if not s.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK"))]
    assert len(work) == 1 and "auth_session" in work[0] and "company" in work[0], work
