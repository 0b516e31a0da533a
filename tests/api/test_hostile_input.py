"""No input reaches a 500, and no input blocks a queue.

Each case here was a 500 once (several on every retry, so that phone's queue was stuck for good).
After each refused request the next valid push from the same device still applies.
"""

import base64
import logging
import re
import uuid
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from backend.context import AppContext
from backend.sync.pull import Cursor, decode_cursor, encode_cursor
from tests.api.helpers import assert_error, auth, login

pytestmark = pytest.mark.usefixtures("demo")

SENT = "2026-12-07T00:30:00Z"
OCCURRED = "2026-12-07T00:29:00Z"


class Phone:
    """tech1's phone: pushes actions with the next seq, and checks its queue still moves."""

    def __init__(self, client: TestClient, device_id: str = "hostile-phone") -> None:
        self.client = client
        self.device_id = device_id
        self.tokens = login(client, "tech1", device_id=device_id)
        self.headers = auth(self.tokens)
        self.order_id = client.get("/api/v1/work-orders", headers=self.headers).json()[0]["id"]
        self.seq = 0

    def action(
        self, kind: str, *, seq: int | None = None, occurred_at: str = OCCURRED, v: int = 1, **payload
    ):
        if seq is None:
            self.seq += 1
            seq = self.seq
        return {
            "id": str(uuid.uuid4()),
            "seq": seq,
            "type": kind,
            "v": v,
            "occurred_at": occurred_at,
            "payload": {"work_order_id": self.order_id, **payload},
        }

    def push(self, *actions: dict[str, Any], sent_at: str = SENT) -> Any:
        return self.client.post(
            "/api/v1/sync/push",
            json={"device_id": self.device_id, "sent_at": sent_at, "actions": list(actions)},
            headers=self.headers,
        )

    def note_applies(self) -> None:
        """The queue is not blocked: the next valid action applies."""
        response = self.push(self.action("work_order.note", text="still moving"))
        assert response.status_code == 200, response.text
        assert [r["status"] for r in response.json()["results"]] == ["applied"], response.text
        assert response.json()["last_applied_seq"] == self.seq


@pytest.fixture
def phone(client: TestClient) -> Phone:
    return Phone(client)


@pytest.fixture
def dispatcher(client: TestClient) -> dict[str, str]:
    return auth(login(client, "dispatcher1"))


# ---------------------------------------------------------------- time zones


@pytest.mark.parametrize("field", ["sent_at", "occurred_at"])
def test_a_timezone_less_envelope_time_is_400_invalid_body(phone: Phone, field: str) -> None:
    naive = "2026-12-07T00:29:00"
    if field == "sent_at":
        response = phone.push(phone.action("work_order.note", text="x"), sent_at=naive)
    else:
        response = phone.push(phone.action("work_order.note", text="x", occurred_at=naive))
    error = assert_error(response, 400, "invalid_body")
    assert field in str(error["detail"])
    phone.seq -= 1  # that action was never taken in: resend it properly
    phone.note_applies()


@pytest.mark.parametrize(
    ("kind", "payload"),
    [
        (
            "work_order.appointment",
            {"window_start": "2026-12-08T01:00:00", "window_end": "2026-12-08T03:00:00Z"},
        ),
        (
            "work_order.appointment",
            {"window_start": "2026-12-08T01:00:00Z", "window_end": "2026-12-08T03:00:00"},
        ),
        ("work_order.no_access", {"attempts": [{"method": "knock", "at": "2026-12-07T00:20:00"}]}),
        (
            "work_order.arrive",
            {"outcome": "no_answer", "attempts": [{"method": "ring", "at": "2026-12-07T00:20:00"}]},
        ),
        ("evidence.photo", {"blob": "a" * 64, "purpose": "before", "taken_at": "2026-12-07T00:20:00"}),
    ],
)
def test_a_timezone_less_time_in_a_payload_rejects_that_action_only(
    phone: Phone, kind: str, payload: dict[str, Any]
) -> None:
    response = phone.push(phone.action("work_order.accept"), phone.action(kind, **payload))
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["applied", "rejected"], results
    assert results[1]["code"] == "invalid_payload"
    phone.note_applies()


def test_a_timezone_less_measured_at_rejects_that_action_only(phone: Phone, ctx: AppContext) -> None:
    action = phone.action("measurement.record")
    action["payload"] = {
        "measurement_id": str(uuid.uuid4()),
        "household_id": str(uuid.uuid4()),
        "instrument_id": "TH-1",
        "rooms": [{"name": "卧室", "kind": "bedroom", "readings_c": [18.0]}],
        "measured_at": "2026-12-07T00:20:00",
    }
    response = phone.push(action)
    assert response.status_code == 200, response.text
    assert [(r["status"], r["code"]) for r in response.json()["results"]] == [("rejected", "invalid_payload")]
    phone.note_applies()


def test_a_timezone_less_received_at_is_400(client: TestClient, dispatcher: dict[str, str]) -> None:
    household = client.get("/api/v1/households", headers=dispatcher).json()[0]["id"]
    body = {
        "kind": "repair",
        "household_id": household,
        "source": "hotline",
        "description": "暖气不热",
        "received_at": "2026-12-07T00:10:00",
    }
    error = assert_error(
        client.post("/api/v1/work-orders", json=body, headers=dispatcher), 400, "invalid_body"
    )
    assert "received_at" in str(error["detail"])
    body["received_at"] = "2026-12-07T00:10:00Z"
    assert client.post("/api/v1/work-orders", json=body, headers=dispatcher).status_code == 201


# ---------------------------------------------------------------- datetime arithmetic and storage


@pytest.mark.parametrize(
    ("sent_at", "occurred_at"),
    [
        ("9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"),
        ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"),
        ("9999-12-31T23:59:59Z", OCCURRED),
        (SENT, "0001-01-01T00:00:00Z"),
    ],
)
def test_times_whose_arithmetic_overflows_are_400(phone: Phone, sent_at: str, occurred_at: str) -> None:
    response = phone.push(phone.action("work_order.note", text="x", occurred_at=occurred_at), sent_at=sent_at)
    assert_error(response, 400, "invalid_body")
    phone.seq -= 1
    phone.note_applies()


@pytest.mark.parametrize("sent_at", ["2099-12-31T00:00:00Z", "2000-01-01T00:00:00Z"])
def test_a_phone_clock_decades_off_still_applies(phone: Phone, ctx: AppContext, sent_at: str) -> None:
    # skew_s was a 32-bit column: a clock more than 68 years off was a 500 on PostgreSQL, every retry.
    response = phone.push(
        phone.action("work_order.note", text="far off", occurred_at=sent_at), sent_at=sent_at
    )
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["results"]] == ["applied"]
    phone.note_applies()


def test_an_out_of_range_time_in_a_payload_rejects_that_action_only(phone: Phone) -> None:
    response = phone.push(
        phone.action("work_order.accept"),
        phone.action(
            "work_order.appointment", window_start="0001-01-01T00:00:00Z", window_end="9999-12-31T23:59:59Z"
        ),
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [(r["status"], r.get("code")) for r in results] == [
        ("applied", None),
        ("rejected", "invalid_payload"),
    ]
    phone.note_applies()


# ---------------------------------------------------------------- integers


@pytest.mark.parametrize("path", ["/api/v1/work-orders", "/api/v1/households", "/api/v1/revisits"])
@pytest.mark.parametrize("offset", [2**63, 2**64 + 5, 10**30])
def test_a_huge_offset_is_400(client: TestClient, dispatcher: dict[str, str], path: str, offset: int) -> None:
    assert_error(client.get(path, params={"offset": str(offset)}, headers=dispatcher), 400, "invalid_body")
    assert client.get(path, params={"offset": "10"}, headers=dispatcher).status_code == 200


def test_a_huge_upload_offset_is_400(phone: Phone) -> None:
    response = phone.client.put(
        f"/api/v1/blobs/{'b' * 64}", params={"offset": str(2**63)}, content=b"x", headers=phone.headers
    )
    assert_error(response, 400, "invalid_body")


def test_a_huge_seq_is_400(phone: Phone) -> None:
    response = phone.push(phone.action("work_order.note", text="x", seq=2**63))
    assert_error(response, 400, "invalid_body")
    phone.note_applies()


@pytest.mark.parametrize(
    "field", [("row", 2**63), ("row", 2**64 - 1), ("version", 2**63), ("row", -(2**63)), ("version", -1)]
)
def test_a_crafted_cursor_with_a_huge_position_resets(client: TestClient, field: tuple[str, int]) -> None:
    tokens = login(client, "tech1")
    first = client.get("/api/v1/sync/pull", headers=auth(tokens)).json()
    parsed = decode_cursor(first["cursor"])
    assert parsed is not None
    values = {"epoch": parsed.epoch, "user": parsed.user, "version": parsed.version, "row": parsed.row}
    values[field[0]] = field[1]
    crafted = msgspec.msgpack.encode([values["epoch"], values["user"], values["version"], values["row"]])
    cursor = base64.urlsafe_b64encode(crafted).decode().rstrip("=")
    response = client.get("/api/v1/sync/pull", params={"cursor": cursor}, headers=auth(tokens))
    assert response.status_code == 200, response.text
    assert response.json()["reset"] is True
    # A sound cursor still works.
    good = encode_cursor(Cursor(epoch=parsed.epoch, user=parsed.user, version=parsed.version, row=parsed.row))
    again = client.get("/api/v1/sync/pull", params={"cursor": good}, headers=auth(tokens))
    assert again.status_code == 200 and again.json()["reset"] is False


def test_huge_integers_in_a_payload_reject_that_action_only(phone: Phone) -> None:
    action = phone.action("evidence.signature")
    action["payload"] = {
        "document": {"type": "receipt", "id": str(uuid.uuid4())},
        "signer_name": "住户",
        "signer_role": "resident",
        "content_sha256": "c" * 64,
        "strokes": [[[1.0, 2.0, 2**70]]],
    }
    response = phone.push(action)
    assert response.status_code == 200, response.text
    assert [(r["status"], r["code"]) for r in response.json()["results"]] == [("rejected", "invalid_payload")]
    phone.note_applies()


# ---------------------------------------------------------------- JSON depth


@pytest.mark.parametrize("depth", [33, 1000, 100_000])
def test_deeply_nested_json_is_400_without_a_traceback(
    client: TestClient, caplog: pytest.LogCaptureFixture, depth: int
) -> None:
    body = b'{"username": "tech1", "password": ' + b"[" * depth + b"]" * depth + b"}"
    with caplog.at_level(logging.INFO):
        response = client.post(
            "/api/v1/auth/login", content=body, headers={"Content-Type": "application/json"}
        )
    error = assert_error(response, 400, "json_too_deep")
    assert error["detail"] == {"max_depth": 32}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    # Unclosed, too.
    opened = client.post(
        "/api/v1/auth/login", content=b"[" * depth, headers={"Content-Type": "application/json"}
    )
    assert_error(opened, 400, "json_too_deep")


def test_deep_json_in_a_push_is_400_and_the_queue_moves_on(phone: Phone) -> None:
    deep: Any = "x"
    for _ in range(40):
        deep = [deep]
    response = phone.push(phone.action("work_order.note", text="x", extra=deep))
    assert_error(response, 400, "json_too_deep")
    phone.seq -= 1
    phone.note_applies()


def test_nesting_within_the_limit_and_brackets_in_strings_are_fine(phone: Phone) -> None:
    text = '[[[[{{{{"\\' * 100
    response = phone.push(phone.action("work_order.note", text=text[:2000]))
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["status"] == "applied"


# ---------------------------------------------------------------- media types


def test_a_nul_in_a_text_plain_body_is_415_and_nothing_is_stored(client: TestClient, ctx: AppContext) -> None:
    admin = auth(login(client, "admin"))
    before = client.get("/api/v1/users", headers=admin).json()
    body = msgspec.json.encode(
        {"username": "nul\x00x", "full_name": "N", "role": "technician", "password": "long-enough-password"}
    )
    response = client.post("/api/v1/users", content=body, headers={**admin, "Content-Type": "text/plain"})
    assert_error(response, 415, "unsupported_media_type")
    assert client.get("/api/v1/users", headers=admin).json() == before


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_a_body_that_is_not_json_is_415(client: TestClient, content_type: str) -> None:
    body = b'{"username": "tech1", "password": "demo-password", "device": {"id": "phone-0001",'
    body += b' "platform": "android", "app_version": "1"}}'
    response = client.post("/api/v1/auth/login", content=body, headers={"Content-Type": content_type})
    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8"])
def test_json_bodies_with_or_without_charset_work(client: TestClient, content_type: str) -> None:
    body = b'{"username": "tech1", "password": "demo-password", "device": {"id": "phone-0001",'
    body += b' "platform": "android", "app_version": "1"}}'
    response = client.post("/api/v1/auth/login", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text


# ---------------------------------------------------------------- OPTIONS and CORS preflight


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/revisits",
        "/api/v1/devices",
        "/api/v1/work-orders",
        "/api/v1/sync/push",
        "/api/v1/auth/login",
        f"/api/v1/blobs/{'a' * 64}",
        "/health",
    ],
)
def test_options_and_preflight_answer_on_every_route(client: TestClient, path: str) -> None:
    plain = client.options(path)
    assert 200 <= plain.status_code < 300, plain.text
    preflight = client.options(
        path,
        headers={
            "Origin": "https://console.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert 200 <= preflight.status_code < 300, preflight.text


def test_options_answers_on_every_route_of_the_app(client: TestClient, app: Any) -> None:
    samples = {"uuid": str(uuid.uuid4()), "str": "a" * 64, "path": "favicon-32x32.png", "int": "1"}
    paths = set()
    for route in app.routes:
        path = route.path
        for name, kind in re.findall(r"\{(\w+):(\w+)\}", path):
            path = path.replace(f"{{{name}:{kind}}}", samples[kind])
        paths.add(path)
    assert len(paths) > 30
    for path in sorted(paths):
        plain = client.options(path)
        assert 200 <= plain.status_code < 300, (path, plain.status_code, plain.text)
        preflight = client.options(
            path, headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "PUT"}
        )
        assert 200 <= preflight.status_code < 300, (path, preflight.status_code, preflight.text)
        assert "access-control-allow-origin" not in preflight.headers  # no origin is allowed


# ---------------------------------------------------------------- half an emoji


def test_a_note_cut_in_the_middle_of_an_emoji_is_kept_and_the_queue_moves_on(
    phone: Phone, ctx: AppContext
) -> None:
    """Found by review: JavaScript's JSON.stringify writes a lone surrogate as ``\\ud83d``; the
    decoder refused the whole batch (400) on every resend, so one note blocked the queue for good.
    The half character becomes U+FFFD, as the phone's own UTF-8 encoder makes it."""
    body = msgspec.json.encode(
        {
            "device_id": phone.device_id,
            "sent_at": SENT,
            "actions": [
                phone.action("work_order.note", text="阀门已关 HALF"),
                phone.action("work_order.note", text="pair 😀"),
            ],
        }
    ).replace(b"HALF", b"\\ud83d")
    body = body.replace("😀".encode(), b"\\ud83d\\ude00")
    response = phone.client.post(
        "/api/v1/sync/push", content=body, headers={**phone.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["results"]] == ["applied", "applied"]
    detail = phone.client.get(f"/api/v1/work-orders/{phone.order_id}", headers=phone.headers).json()
    texts = [e["data"]["text"] for e in detail["timeline"] if e["type"] == "note"]
    assert texts[-2:] == ["阀门已关 \ufffd", "pair 😀"]
    phone.note_applies()
