"""The server's logs: JSON lines with a request id, route, status, duration, user and device for
every request, and none of what must never be written, over a whole visit logged at debug level."""

import base64
import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import structlog
from litestar.testing import TestClient
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from backend.demo import DEMO_PASSWORD
from backend.logs import configure_logging
from backend.settings import Settings
from mobile_contract.documents import content_sha256
from tests.api.helpers import auth, login
from tests.fixtures.field import receipt
from tests.scenarios.conftest import first_order
from tests.scenarios.test_documents import signature_png

pytestmark = pytest.mark.usefixtures("demo")

KNOCK = [{"method": "knock", "at": "2026-12-07T00:40:00Z"}]
STROKES = [[[17, 93, 0], [141, 27, 40], [263, 88, 90]], [[31, 61, 120], [222, 64, 160]]]
# Where the arrival was checked in, and where the photo says it was taken (EXIF GPS).
ARRIVAL = (41.7968137, 123.4245291)
PHOTO_GPS = {
    1: "N",
    2: (IFDRational(39, 1), IFDRational(54, 1), IFDRational(2718, 100)),
    3: "E",
    4: (IFDRational(116, 1), IFDRational(23, 1), IFDRational(4455, 100)),
}
REQUEST_FIELDS = {"request_id", "method", "route", "status", "duration_ms", "user_id", "device_id"}


class Captured:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines()]

    def requests(self) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line["event"] == "request"]


@pytest.fixture
def logs(settings: Settings) -> Iterator[Captured]:
    """The process's logging routed as ``heatcrew serve`` routes it, at debug, into a buffer."""
    stream = io.StringIO()
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    handler = configure_logging(replace(settings, log_level="debug", log_format="json"), stream=stream)
    yield Captured(stream)
    root.removeHandler(handler)
    for old in before[0]:
        root.addHandler(old)
    root.setLevel(before[1])
    structlog.reset_defaults()


def photo_with_gps() -> bytes:
    exif = Image.Exif()
    exif.get_ifd(0x8825).update(PHOTO_GPS)
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (180, 40, 40)).save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def test_a_whole_visit_is_logged_without_secrets_or_personal_data(
    logs: Captured, make_phone, client: TestClient
) -> None:
    tech = make_phone("tech1")
    tech.pull()
    order_id = first_order(tech)
    household = tech.local("work_order")[order_id]["household_id"]
    tech.enqueue("work_order.accept", {"work_order_id": order_id})
    tech.enqueue("work_order.depart", {"work_order_id": order_id})
    tech.enqueue(
        "work_order.arrive",
        {
            "work_order_id": order_id,
            "attempts": KNOCK,
            "outcome": "admitted",
            "badge_shown": True,
            "lat": ARRIVAL[0],
            "lon": ARRIVAL[1],
            "accuracy_m": 8,
        },
    )
    tech.enqueue("work_order.start", {"work_order_id": order_id})
    for purpose in ("before", "after"):
        sha = tech.attach_file(photo_with_gps())
        tech.enqueue("evidence.photo", {"work_order_id": order_id, "blob": sha, "purpose": purpose})
    content = receipt(order_id)
    doc = str(uuid.uuid4())
    tech.enqueue("document.issue", {"document": {"type": "receipt", "id": doc}, "content": content})
    signature = signature_png()
    signed = {"document": {"type": "receipt", "id": doc}, "content_sha256": content_sha256(content)}
    resident, _ = tech.enqueue(
        "evidence.signature",
        {**signed, "signer_name": "赵建国", "signer_role": "resident", "strokes": STROKES},
    )
    own, _ = tech.enqueue(
        "evidence.signature",
        {**signed, "signer_name": "张伟", "signer_role": "technician", "blob": tech.attach_file(signature)},
    )
    done, _ = tech.enqueue("work_order.complete", {"work_order_id": order_id, "result": "fixed"})
    tech.sync()
    assert [tech.outcome(i)["status"] for i in (resident, own, done)] == ["applied"] * 3

    supervisor = login(client, "supervisor1")
    verified = client.get(f"/api/v1/documents/{doc}/verify", headers=auth(supervisor))
    assert verified.status_code == 200 and verified.json()["status"] == "valid"
    household_seen = client.get(f"/api/v1/households/{household}", headers=auth(supervisor))
    assert household_seen.status_code == 200
    reference = client.get(f"/api/v1/documents/{doc}", headers=auth(supervisor)).json()["resident_reference"]
    check = client.get(f"/api/v1/public/documents/{reference}")
    assert check.status_code == 200 and check.json()["status"] == "valid"

    # Every line is one JSON object with the same envelope.
    lines = logs.lines()
    assert lines and all({"event", "level", "logger", "timestamp"} <= line.keys() for line in lines)
    requests = logs.requests()
    assert all(line.keys() >= REQUEST_FIELDS for line in requests)
    assert len({line["request_id"] for line in requests}) == len(requests)
    routes = {(line["method"], line["route"], line["status"]) for line in requests}
    assert {
        ("POST", "/api/v1/auth/login", 200),
        ("GET", "/api/v1/sync/pull", 200),
        ("POST", "/api/v1/sync/push", 200),
        ("PUT", "/api/v1/blobs/{sha256}", 201),
        ("GET", "/api/v1/documents/{document_id}/verify", 200),
        ("GET", "/api/v1/public/documents/{reference}", 200),
    } <= routes
    pushes = [line for line in requests if line["route"] == "/api/v1/sync/push"]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {tech._get('access_token')}"})
    assert {(line["user_id"], line["device_id"]) for line in pushes} == {(me.json()["id"], tech.device_id)}
    assert all(isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0 for line in requests)

    # Nothing of what must never be logged, in any form it travelled in.
    text = logs.text
    phone_numbers = re.findall(r"1391234\d{4}", text)
    assert phone_numbers == []
    never = {
        "password": DEMO_PASSWORD,
        "access token": tech._get("access_token"),
        "refresh token": tech._get("refresh_token"),
        "supervisor's access token": supervisor["access_token"],
        "supervisor's refresh token": supervisor["refresh_token"],
        "strokes": json.dumps(STROKES, separators=(",", ":")),
        "strokes, spaced": json.dumps(STROKES),
        "signature image": base64.b64encode(signature[:48]).decode(),
        "arrival latitude": str(ARRIVAL[0]),
        "arrival longitude": str(ARRIVAL[1]),
        "photo latitude": "39.9075",
        "photo longitude": "116.3957",
        "public reference": reference,
    }
    leaked = {name for name, value in never.items() if value and value in text}
    assert leaked == set()


def test_a_sane_request_id_is_kept_and_anything_else_replaced(logs: Captured, client: TestClient) -> None:
    kept = client.get("/health", headers={"X-Request-ID": "phone-7f3a:retry.2"})
    assert kept.headers["x-request-id"] == "phone-7f3a:retry.2"
    for insane in ("has spaces in it", "x" * 129, "<script>", "-leading-dash"):
        answer = client.get("/health", headers={"X-Request-ID": insane})
        assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["x-request-id"]), insane
    made = client.get("/health")
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    missing = client.get("/no/such/route", headers={"X-Request-ID": "lost-1"})
    assert missing.status_code == 404 and missing.headers["x-request-id"] == "lost-1"

    requests = logs.requests()
    assert [line["request_id"] for line in requests[:1]] == ["phone-7f3a:retry.2"]
    assert requests[-1]["request_id"] == "lost-1"
    # A path no route took is not logged as such: paths can carry references.
    assert (requests[-1]["route"], requests[-1]["status"]) == ("unmatched", 404)
    assert "/no/such/route" not in logs.text
    assert requests[0]["user_id"] is None and requests[0]["device_id"] is None


def test_stdlib_and_structlog_lines_go_through_one_chain(logs: Captured) -> None:
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 4242)
    structlog.get_logger("heatcrew.sync").info("pushed", actions=3, refresh_token="eyJhbGciOiJIUzI1NiJ9.x")
    with structlog.contextvars.bound_contextvars(request_id="r-1"):
        logging.getLogger("heatcrew.errors").warning("database unavailable", extra={"route": "/ready"})
    started, pushed, warned = logs.lines()[-3:]
    assert (started["logger"], started["level"], started["event"]) == (
        "uvicorn.error",
        "info",
        "Started server process [4242]",
    )
    assert (pushed["logger"], pushed["actions"], pushed["refresh_token"]) == (
        "heatcrew.sync",
        3,
        "[redacted]",
    )
    assert (warned["request_id"], warned["route"], warned["level"]) == ("r-1", "/ready", "warning")
    assert "request_id" not in started and "request_id" not in pushed


def test_a_traceback_is_one_field_and_tokens_in_it_are_blanked(logs: Captured) -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0ZWNoMSJ9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
    try:
        raise ValueError(f"could not decode {token}")
    except ValueError:
        logging.getLogger("heatcrew.errors").exception("unhandled error on %s %s", "GET", "/api/v1/me")
    line = logs.lines()[-1]
    assert line["event"] == "unhandled error on GET /api/v1/me"
    assert "ValueError: could not decode [redacted]" in line["exception"]
    assert token not in logs.text
