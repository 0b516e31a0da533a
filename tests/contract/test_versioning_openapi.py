"""The document says what the versioning does: X-App-Version, 426, and the retirement headers."""

from typing import Any

from litestar.testing import TestClient

from backend.app_version import KEPT_FOR_OLD_APPS


def _document(client: TestClient) -> dict[str, Any]:
    return client.get("/schema/openapi.json").json()


def _codes(operation: dict[str, Any], status: int) -> set[str]:
    response = operation["responses"].get(str(status))
    if response is None:
        return set()
    if "content" not in response:  # HEAD: no body; the codes a GET would give are listed
        return set(response["x-heatcrew-codes"])
    return set(response["content"]["application/json"]["schema"]["allOf"][1]["properties"]["code"]["enum"])


def test_every_checked_operation_takes_x_app_version_and_declares_its_answers(client: TestClient) -> None:
    document = _document(client)
    for path, item in document["paths"].items():
        for method, operation in item.items():
            names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
            if path.startswith(("/health", "/ready", "/schema")):
                assert "X-App-Version" not in names, (method, path)
                continue
            assert "X-App-Version" in names, (method, path)
            assert "invalid_app_version" in _codes(operation, 400), (method, path)
            kept = (method.upper(), path) in KEPT_FOR_OLD_APPS
            assert ("app_upgrade_required" in _codes(operation, 426)) is not kept, (method, path)


def test_the_push_declares_the_retirement_headers(client: TestClient) -> None:
    headers = _document(client)["paths"]["/api/v1/sync/push"]["post"]["responses"]["200"]["headers"]
    assert set(headers) == {"Deprecation", "Sunset", "Link"}
    assert all(h["schema"] == {"type": "string"} and h["description"] for h in headers.values())
