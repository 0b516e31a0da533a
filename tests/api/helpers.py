"""Small steps the API tests share: logging a phone in, asserting an error body."""

from typing import Any

from litestar.testing import TestClient

from backend.demo import DEMO_PASSWORD

__all__ = ("assert_error", "auth", "login")


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
