"""A field day of the demo company, over HTTP only: the phones and the office of the golden examples.

Everything goes through the API (no database access, no service call), so the same story runs
against a live server when the examples are replayed. Values the server makes (ids of orders,
tokens, cursors) are read from its answers; values a phone makes (device, action, document and
measurement ids, photo bytes) are derived from names, so they are the same on every run. Each
step checks the answer it expects, so a description can never drift from what the server does.
"""

import hashlib
import io
import uuid
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from backend.contract.recording import Answer, Example, Recorder

__all__ = (
    "ACTION_TIME",
    "APP_VERSION",
    "ARRIVED",
    "PHONE_TIME",
    "STARTED",
    "ExpectationFailed",
    "Phone",
    "Story",
    "expect",
    "phone_made",
    "photo",
)

PASSWORD = "demo-password"
# The phone's clock when it sends, and when the actions happened: the generator's server clock is
# the same moment, so no skew is flagged.
PHONE_TIME = "2026-12-07T08:30:00+08:00"
ACTION_TIME = "2026-12-07T08:29:30+08:00"
APP_VERSION = "1.4.2"
_NAMES = uuid.UUID("5b0c4a52-3f0e-4a57-9d0a-6c1f0c7e2d11")


class ExpectationFailed(AssertionError):
    """The server did not answer what the scene (and so the example's description) says."""


def phone_made(name: str) -> str:
    """An id the phone makes (action, document, measurement), the same on every run."""
    return str(uuid.uuid5(_NAMES, name))


def photo(name: str) -> bytes:
    """A small JPEG, different for every name and the same on every run."""
    digest = hashlib.sha256(name.encode()).digest()
    gradient = Image.linear_gradient("L").resize((160, 120))
    tint = Image.new("RGB", (160, 120), tuple(digest[:3]))
    picture = Image.composite(tint, Image.new("RGB", (160, 120), tuple(digest[3:6])), gradient)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=80)
    return out.getvalue()


def expect(answer: Answer, status: int, what: str) -> Answer:
    if answer.status != status:
        raise ExpectationFailed(f"{what}: expected {status}, got {answer.status}: {answer.body}")
    return answer


@dataclass
class Phone:
    """One logged-in device of one user, with its own queue counter."""

    story: "Story"
    username: str
    device_id: str
    tokens: dict[str, Any] = field(default_factory=dict)
    seq: int = 0
    last_batch: dict[str, Any] | None = None

    @property
    def token(self) -> str:
        return self.tokens["access_token"]

    @property
    def user_id(self) -> str:
        return self.tokens["user"]["id"]

    def login(self, example: Example | None = None) -> Answer:
        answer = self.story.http.send(
            "POST",
            "/api/v1/auth/login",
            body={
                "username": self.username,
                "password": PASSWORD,
                "device": {"id": self.device_id, "platform": "android", "app_version": APP_VERSION},
            },
            example=example,
        )
        self.tokens = expect(answer, 200, f"login of {self.username}").body
        return answer

    def action(
        self, type_: str, v: int, payload: dict[str, Any], *, seq: int | None = None
    ) -> dict[str, Any]:
        if seq is None:
            self.seq += 1
            seq = self.seq
        return {
            "id": phone_made(f"{self.device_id}/{seq}"),
            "seq": seq,
            "type": type_,
            "v": v,
            "occurred_at": ACTION_TIME,
            "payload": payload,
        }

    def push(self, *actions: dict[str, Any], example: Example | None = None) -> Answer:
        self.last_batch = {"device_id": self.device_id, "sent_at": PHONE_TIME, "actions": list(actions)}
        return self.resend(example=example)

    def resend(self, example: Example | None = None) -> Answer:
        """The last batch again, untouched, as a phone sends it when the answer was lost."""
        answer = self.story.http.send(
            "POST", "/api/v1/sync/push", token=self.token, body=self.last_batch, example=example
        )
        return expect(answer, 200, "push")

    def push_one(self, type_: str, v: int, payload: dict[str, Any], example: Example | None = None) -> dict:
        answer = self.push(self.action(type_, v, payload), example=example)
        (result,) = answer["results"]
        return result

    def upload(self, name: str) -> str:
        data = photo(name)
        sha = hashlib.sha256(data).hexdigest()
        expect(
            self.story.http.send("PUT", f"/api/v1/blobs/{sha}", token=self.token, content=data),
            201,
            f"upload of {name}",
        )
        return sha


class Story:
    """The demo company's office and the phones taking part, and the orders made for the examples."""

    def __init__(self, http: Recorder) -> None:
        self.http = http
        self.office = Phone(self, "dispatcher1", "office-dispatcher1")
        self.office.login()
        self._households: dict[str, str] = {}
        self._helpers: dict[str, Phone] = {}
        self._users: dict[str, str] = {}
        self.pending: dict[str, str] = {}  # sha256 -> name of a photo taken but not uploaded yet
        self.notes: dict[str, Any] = {}  # what a later scene looks at (a signed document, a measurement)
        self.phones: dict[tuple[str, int], Phone] = {}
        self._made = 0

    def name(self, kind: str) -> str:
        """A fresh name for something the phone makes (a photo, a document id): never derived from
        a server-made id, so it is the same when the story runs against another server."""
        self._made += 1
        return f"{kind}-{self._made}"

    def phone(self, username: str, device_id: str, example: Example | None = None) -> Phone:
        phone = Phone(self, username, device_id)
        phone.login(example)
        self._users[username] = phone.user_id
        return phone

    def helper(self, username: str) -> Phone:
        """A second phone of the same user: it moves orders into the state a scene needs, so that
        the featured phone's queue starts at seq 1."""
        if username not in self._helpers:
            self._helpers[username] = self.phone(username, f"setup-{username}")
        return self._helpers[username]

    def household(self, account: str) -> str:
        if account not in self._households:
            answer = self.http.send(
                "GET", "/api/v1/households", token=self.office.token, query={"account_number": account}
            )
            (household,) = expect(answer, 200, "household search").body
            self._households[account] = household["id"]
        return self._households[account]

    def order(
        self, *, assignee: str = "tech1", kind: str = "repair", account: str = "100101", steps: tuple = ()
    ) -> str:
        """A new order from a hotline call, assigned, and moved by its assignee through ``steps``."""
        assignee_id = self._users.get(assignee) or self.helper(assignee).user_id
        answer = self.http.send(
            "POST",
            "/api/v1/work-orders",
            token=self.office.token,
            body={
                "kind": kind,
                "household_id": self.household(account),
                "source": "hotline",
                "description": "暖气片不热，需排气",
                "assignee_id": assignee_id,
            },
        )
        order_id = expect(answer, 201, "order creation").body["order"]["id"]
        for step in steps:
            self.move(order_id, step, user=assignee)
        return order_id

    def move(self, order_id: str, step: str, *, user: str = "tech1") -> None:
        type_, extra = STEPS[step]
        result = self.helper(user).push_one(type_, 1, {"work_order_id": order_id, **extra})
        if result["status"] != "applied":
            raise ExpectationFailed(f"{step} on {order_id}: {result}")

    def review_always(self, kind: str) -> None:
        """The supervisor sends every completed order of ``kind`` to review (the company's policy)."""
        body = {"always_kinds": [kind], "flags": [], "sample_percent": 0, "own_team_only": False}
        answer = self.http.send(
            "PUT", "/api/v1/review/policy", token=self.helper("supervisor1").token, body=body
        )
        expect(answer, 200, "review policy")

    def redo_request(self, order_id: str, purpose: str) -> str:
        """The supervisor asks the assignee to take a photo again; the phone pulls it as ``redo_request``."""
        supervisor = self.helper("supervisor1")
        answer = self.http.send("GET", "/api/v1/review/items", token=supervisor.token)
        (item,) = [i for i in expect(answer, 200, "review queue").body["items"] if i["order_id"] == order_id]
        answer = self.http.send(
            "POST",
            f"/api/v1/review/items/{item['id']}/redo",
            token=supervisor.token,
            body={"items": [{"kind": "photo", "purpose": purpose}], "due_at": "2099-12-31T00:00:00Z"},
        )
        return expect(answer, 201, "redo request").body["id"]

    def office_does(self, order_id: str, move: str, body: dict[str, Any]) -> None:
        answer = self.http.send(
            "POST", f"/api/v1/work-orders/{order_id}/{move}", token=self.office.token, body=body
        )
        expect(answer, 200, f"office {move}")


STEPS: dict[str, tuple[str, dict[str, Any]]] = {
    "accept": ("work_order.accept", {}),
    "depart": ("work_order.depart", {}),
    "arrive": ("work_order.arrive", {"outcome": "admitted", "badge_shown": True}),
    "start": ("work_order.start", {}),
    "complete_not_fixed": ("work_order.complete", {"result": "not_fixed", "satisfaction": 4}),
}
ARRIVED = ("accept", "depart", "arrive")
STARTED = (*ARRIVED, "start")
