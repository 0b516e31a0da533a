"""Every golden example sent again to a live server (``heatcrew demo``), on SQLite and PostgreSQL.

The story that recorded the examples (``backend/contract/scenes.py``) runs again over real HTTP
against a server started as its own process, with its own random ids, tokens and clock. For each
example the request the story sends must be the file's request, except for values that differ
between runs, and the live answer must have the file's status, the same push results (status and
code of each action, the counter) and fit the same OpenAPI schemas.

What may differ between runs, and how it is substituted: a string the server made (an order id,
a token, a cursor: it appeared in one of the live server's earlier answers) stands for the
recorded one, consistently for the whole run (a recorded value always maps to the same live
value, and two recorded values never to one); and two values the phone derives from such ids, the
receipt's ``order_ref`` and a signature's ``content_sha256``. Everything else the phone makes
(device, action, document and measurement ids, photo bytes, times) must be equal.
"""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from backend.contract import scenes
from backend.contract.recording import Example, Recorder
from backend.contract.story import Story
from tests.contract.examples_files import example_names, load
from tests.contract.openapi_check import CONTRACT
from tests.fixtures.databases import ADMIN_URL, REQUIRE_POSTGRES, postgres_reachable
from tests.fixtures.live_server import start_server, stop_server

# Computed by the phone from server-made ids (the order's short reference, a hash over content
# that names the order): they differ exactly when those ids do.
DERIVED = {"order_ref", "content_sha256"}


class LiveHttp:
    """httpx against the live server, remembering every string its answers carried."""

    def __init__(self, base: str) -> None:
        self.client = httpx.Client(base_url=base, timeout=30)
        self.server_made: set[str] = set()

    def request(
        self, method: str, url: str, *, headers: dict[str, str], content: bytes | None
    ) -> httpx.Response:
        response = self.client.request(method, url, headers=headers, content=content)
        if response.headers.get("content-type", "").startswith("application/json") and response.content:
            _strings(response.json(), self.server_made)
        return response


def _strings(value: Any, into: set[str]) -> None:
    if isinstance(value, str):
        into.add(value)
    elif isinstance(value, dict):
        for item in value.values():
            _strings(item, into)
    elif isinstance(value, list):
        for item in value:
            _strings(item, into)


class Replay:
    """The sink of the replayed story: compares each example with the file of the same name."""

    def __init__(self, http: LiveHttp) -> None:
        self.http = http
        self.recorded_to_live: dict[str, str] = {}
        self.live_to_recorded: dict[str, str] = {}
        self.seen: list[str] = []

    def __call__(self, example: Example, live: dict[str, Any]) -> None:
        self.seen.append(example.name)
        recorded = load(example.name)
        assert live["title"] == recorded["title"], example.name
        self.same_request(recorded["request"], live["request"], example.name)
        want, got = recorded["response"], live["response"]
        assert got["status"] == want["status"], f"{example.name}: {got['status']} {got.get('body')}"
        if live["request"]["path"] == "/api/v1/sync/push" and got["status"] == 200:
            assert _results(got["body"]) == _results(want["body"]), example.name
        if "breaks_contract" not in recorded:
            CONTRACT.check_request(live["request"])
        CONTRACT.check_response(live["request"], got)

    def same_request(self, recorded: dict[str, Any], live: dict[str, Any], name: str) -> None:
        assert recorded.keys() == live.keys(), name
        self.same(recorded["path"].split("/"), live["path"].split("/"), f"{name} path")
        for key in ("method", "query", "body", "body_base64"):
            self.same(recorded.get(key), live.get(key), f"{name} {key}")
        assert recorded["headers"].keys() == live["headers"].keys(), name
        for header, value in recorded["headers"].items():
            self.same(value.split(" "), live["headers"][header].split(" "), f"{name} {header}")

    def same(self, recorded: Any, live: Any, where: str, key: str | None = None) -> None:
        assert type(recorded) is type(live), f"{where}: {recorded!r} / {live!r}"
        if isinstance(recorded, dict):
            assert recorded.keys() == live.keys(), where
            for k in recorded:
                self.same(recorded[k], live[k], f"{where}.{k}", k)
        elif isinstance(recorded, list):
            assert len(recorded) == len(live), where
            for i, (r, item) in enumerate(zip(recorded, live, strict=True)):
                self.same(r, item, f"{where}[{i}]", key)
        elif isinstance(recorded, str) and recorded != live:
            if key in DERIVED:
                return
            assert live in self.http.server_made, (
                f"{where}: {recorded!r} became {live!r}, not a server-made value"
            )
            assert self.recorded_to_live.setdefault(recorded, live) == live, (
                f"{where}: {recorded!r} maps twice"
            )
            assert self.live_to_recorded.setdefault(live, recorded) == recorded, (
                f"{where}: {live!r} maps twice"
            )
        else:
            assert recorded == live, f"{where}: {recorded!r} / {live!r}"


def _results(body: dict[str, Any]) -> tuple[int, list[tuple[int, str, str | None]]]:
    return body["last_applied_seq"], [(r["seq"], r["status"], r.get("code")) for r in body["results"]]


@pytest.fixture(params=["sqlite", "postgresql"])
def live_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    env = {
        "HEATCREW_VAR_DIR": str(tmp_path / "var"),
        # The story logs in some thirty phones from one address.
        "HEATCREW_LOGIN_MAX_ATTEMPTS_PER_ADDRESS": "1000",
        "PATH": os.environ.get("PATH", ""),
    }
    if request.param == "sqlite":
        process, base = start_server(tmp_path, ["demo"], env)
        yield base
        stop_server(process)
        return
    if not postgres_reachable():
        if REQUIRE_POSTGRES:
            pytest.fail(f"PostgreSQL is required but {ADMIN_URL} is unreachable")
        pytest.skip(f"no PostgreSQL server at {ADMIN_URL}")
    name = f"heatcrew_replay_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    env["HEATCREW_DATABASE_URL"] = (
        make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    )
    process, base = start_server(tmp_path, ["demo"], env)
    try:
        yield base
    finally:
        stop_server(process)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_every_example_answers_the_same_on_a_live_server(live_server: str) -> None:
    http = LiveHttp(live_server)
    replay = Replay(http)
    with http.client:
        scenes.run(Story(Recorder(http, replay)))
    assert replay.seen == example_names(), "the story and the checked-in examples differ"
