"""Small steps the API tests share: logging a phone in, asserting an error body."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from litestar.testing import TestClient

from backend.context import AppContext
from backend.demo import DEMO_PASSWORD

__all__ = ("assert_error", "auth", "counting", "login")


@contextmanager
def counting(ctx: AppContext) -> Iterator[list[str]]:
    """Every statement the app's engines send meanwhile."""
    sent: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    for engine in ctx.db.engines:
        sa.event.listen(engine, "before_cursor_execute", note)
    try:
        yield sent
    finally:
        for engine in ctx.db.engines:
            sa.event.remove(engine, "before_cursor_execute", note)


def login(
    client: TestClient, username: str, *, device_id: str | None = None, password: str = DEMO_PASSWORD
) -> dict[str, Any]:
    response = client.post(
        "/api/v1/auth/login",
        json={
            "username": username,
            "password": password,
            "device": {
                "id": device_id or f"phone-of-{username}",
                "platform": "android",
                "app_version": "1.0.0",
            },
        },
    )
    assert response.status_code == 200, response.text
    return response.json()


def auth(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "detail"}, body
    assert body["code"] == code, body
    assert body["message"]
    return body
