"""Phones for the scenario suite: the reference client over HTTP, with a network that misbehaves."""

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from backend.clock import ManualClock
from backend.context import AppContext
from mobile_contract.client import OutboxClient


class Network:
    """Between one phone and the server: can be down, or lose the answer after the server acted."""

    def __init__(self, http: TestClient) -> None:
        self.http = http
        self.offline = False
        self.lose_answers = 0
        self.lose_only: str | None = "/api/v1/sync/push"
        self.requests: list[str] = []

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        if self.offline:
            raise httpx.ConnectError("no signal in the basement")
        response = self.http.request(method, url, **kwargs)
        self.requests.append(f"{method} {url}")
        if self.lose_answers and (self.lose_only is None or url.startswith(self.lose_only)):
            self.lose_answers -= 1
            raise httpx.ReadError("the answer was lost on the way back")
        return response


class Phone(OutboxClient):
    network: Network
    skew: timedelta


@pytest.fixture
def make_phone(client: TestClient, clock: ManualClock, tmp_path: Path) -> Iterator[Callable[..., Phone]]:
    phones: list[Phone] = []

    def make(
        username: str, *, device: str | None = None, skew: timedelta = timedelta(0), login: bool = True
    ) -> Phone:
        network = Network(client)
        name = device or f"{username}-phone-{len(phones) + 1}"

        def phone_clock() -> datetime:
            return clock.now() + phone.skew

        phone = Phone(network, tmp_path / f"{name}.sqlite", device_id=name, clock=phone_clock)
        phone.network = network
        phone.skew = skew
        if login:
            phone.login(username, "demo-password")
        phones.append(phone)
        return phone

    yield make
    for phone in phones:
        phone.close()


def first_order(phone: OutboxClient, kind: str | None = None, state: str | None = None) -> str:
    for order_id, order in sorted(phone.local("work_order").items()):
        if (kind is None or order["kind"] == kind) and (state is None or order["state"] == state):
            return order_id
    raise AssertionError(f"the phone has no {kind or ''} order in state {state}")


def count(ctx: AppContext, sql: str, **params: Any) -> int:
    import sqlalchemy as sa

    with ctx.db.engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar_one()
