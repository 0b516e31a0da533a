"""The served OpenAPI document says what the server does: types, answers, security, media types.

Each test takes real answers of the server (a push, a pull, an error) and judges them by the
document with a JSON Schema 2020-12 validator, so a schema that is too loose or too strict fails.
"""

import uuid
from typing import Any

import pytest
from litestar.testing import TestClient
from openapi_spec_validator import validate

from backend.context import AppContext
from backend.contract.openapi import envelope_name
from mobile_contract.actions import ACTION_TYPES
from mobile_contract.errors import ErrorCode
from tests.api.helpers import auth, login
from tests.fixtures.contract import Published
from tests.fixtures.pushing import Phone

pytestmark = pytest.mark.usefixtures("demo")

PUBLIC = {
    ("get", "/health"),
    ("get", "/ready"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("get", "/api/v1/public/documents/{reference}"),
    ("get", "/api/v1/public/documents/{reference}/pdf"),
}


@pytest.fixture
def published(client: TestClient) -> Published:
    response = client.get("/schema/openapi.json")
    assert response.status_code == 200
    return Published(response.json())


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, item in document["paths"].items() for m, op in item.items()]


def _first_order(client: TestClient, tokens: dict[str, Any]) -> dict[str, Any]:
    pulled = client.get("/api/v1/sync/pull", headers=auth(tokens)).json()
    return next(c for c in pulled["changes"] if c["entity"] == "work_order")


def test_document_is_valid_openapi_3_1(published: Published) -> None:
    assert published.document["openapi"].startswith("3.1")
    validate(published.document)  # raises on any violation of the OpenAPI 3.1 schema


def test_every_operation_is_described_named_and_secured(published: Published) -> None:
    operations = _operations(published.document)
    assert len(operations) >= 48
    ids = [op["operationId"] for _, _, op in operations]
    assert len(ids) == len(set(ids)), "operationIds repeat"
    assert all(i[0].islower() and i.isidentifier() for i in ids), ids
    for method, path, op in operations:
        assert op.get("description", "").strip(), f"{method} {path} has no description"
        expected = [] if (method, path) in PUBLIC else [{"bearer": []}]
        assert op["security"] == expected, f"{method} {path}"


def test_every_error_status_has_the_error_schema_and_lists_its_codes(published: Published) -> None:
    known = {c.value for c in ErrorCode}
    for method, path, op in _operations(published.document):
        errors = {s: r for s, r in op["responses"].items() if int(s) >= 400}
        assert "400" in errors and "500" in errors, f"{method} {path}"
        if (method, path) not in PUBLIC:
            assert "401" in errors, f"{method} {path} needs a token but declares no 401"
        for status, answer in errors.items():
            if method == "head":
                assert "content" not in answer, f"HEAD {path} {status} promises a body"
                assert answer["x-heatcrew-codes"]
                continue
            schema = answer["content"]["application/json"]["schema"]
            assert schema["allOf"][0] == {"$ref": "#/components/schemas/Error"}
            codes = schema["allOf"][1]["properties"]["code"]["enum"]
            assert codes and set(codes) <= known, f"{method} {path} {status}: {codes}"
    # Litestar's own error shape is gone: the server never sends {status_code, detail, extra}.
    assert "status_code" not in str(published.document["paths"])


def test_a_real_error_answer_fits_its_operation(client: TestClient, published: Published) -> None:
    tokens = login(client, "tech1")
    missing = client.get(f"/api/v1/work-orders/{uuid.uuid4()}", headers=auth(tokens))
    assert missing.status_code == 404
    published.check_answer("GET", "/api/v1/work-orders/{order_id}", 404, missing.json())
    unauthenticated = client.get("/api/v1/sync/pull")
    assert unauthenticated.status_code == 401
    published.check_answer("GET", "/api/v1/sync/pull", 401, unauthenticated.json())
    # A code outside those declared for the status does not fit.
    assert published.errors(
        published.response_schema("GET", "/api/v1/sync/pull", 401),
        {"code": "photos_missing", "message": "x", "detail": None},
    )


def test_push_envelope_is_one_arm_per_action_type_and_version(published: Published) -> None:
    schemas = published.document["components"]["schemas"]
    arms = schemas["ActionEnvelope"]["oneOf"]
    assert len(arms) == len(ACTION_TYPES)
    for (action_type, version), payload in ACTION_TYPES.items():
        arm = schemas[envelope_name(action_type, version)]
        assert arm["properties"]["type"] == {"const": action_type}
        assert arm["properties"]["v"] == {"const": version}
        assert arm["properties"]["payload"] == {"$ref": f"#/components/schemas/{payload.__name__}"}
    order = str(uuid.uuid4())
    envelope = {
        "id": str(uuid.uuid4()),
        "seq": 1,
        "type": "work_order.complete",
        "v": 2,
        "occurred_at": "2026-12-07T08:30:00+08:00",
        "payload": {"work_order_id": order, "result": "fixed"},
    }
    published.check("ActionEnvelope", envelope)
    # The payload is judged by its (type, v): an ill-typed one fits no arm.
    assert published.errors("ActionEnvelope", {**envelope, "payload": {"workOrderId": 42}})
    assert published.errors(
        "ActionEnvelope", {**envelope, "payload": {"work_order_id": order, "result": "done"}}
    )
    assert published.errors("ActionEnvelope", {**envelope, "v": 7})


def test_push_answers_fit_the_document(
    client: TestClient, ctx: AppContext, published: Published, make_client: Any
) -> None:
    phone = Phone(client, ctx, "tech1")
    order = _first_order(client, phone.tokens)
    applied = phone.push("work_order.note", 1, {"work_order_id": order["id"], "text": "门口有狗"})
    assert applied["status"] == "applied"
    conflict = phone.push("work_order.complete", 2, {"work_order_id": order["id"], "result": "fixed"})
    assert conflict["status"] == "conflict"
    assert conflict["current"]["work_order_id"] == order["id"]
    rejected = phone.push("work_order.teleport", 1, {"work_order_id": order["id"]})
    assert rejected["code"] == "unknown_action_type"
    # Waiting holds its seq (the queue stops there): the last one pushed.
    waiting = phone.push(
        "evidence.photo", 1, {"work_order_id": order["id"], "blob": "ab" * 32, "purpose": "before"}
    )
    assert waiting["status"] == "waiting"
    for result in (applied, conflict, waiting, rejected):
        published.check("ActionResult", result)
    published.check("PushRequest", phone.last_batch)
    status = client.get("/api/v1/sync/status", headers=auth(phone.tokens))
    published.check_answer("GET", "/api/v1/sync/status", 200, status.json())
    assert {r["code"] for r in status.json()["refused"]} >= {"unknown_action_type"}


def test_pull_changes_are_typed_by_entity(client: TestClient, published: Published) -> None:
    tokens = login(client, "tech1")
    pulled = client.get("/api/v1/sync/pull", headers=auth(tokens)).json()
    entities = {(c["entity"], c["id"] if c["entity"] == "reference" else "*") for c in pulled["changes"]}
    assert {("work_order", "*"), ("household", "*"), ("reference", "sla_policy")} <= entities
    published.check_answer("GET", "/api/v1/sync/pull", 200, pulled)
    order = next(c for c in pulled["changes"] if c["entity"] == "work_order")
    # A work order's data is a WorkOrderView: a household's data in its place does not fit.
    household = next(c for c in pulled["changes"] if c["entity"] == "household")
    assert published.errors("Change", {**order, "data": household["data"]})


def test_health_ready_and_logout_declare_their_bodies(client: TestClient, published: Published) -> None:
    published.check_answer("GET", "/health", 200, client.get("/health").json())
    published.check_answer("GET", "/ready", 200, client.get("/ready").json())
    tokens = login(client, "tech2")
    out = client.post("/api/v1/auth/logout", headers=auth(tokens))
    published.check_answer("POST", "/api/v1/auth/logout", 200, out.json())
    for path, method in (("/health", "get"), ("/ready", "get"), ("/api/v1/auth/logout", "post")):
        schema = published.document["paths"][path][method]["responses"]["200"]["content"]["application/json"]
        assert "$ref" in schema["schema"], path  # a named struct, not an empty object


def test_binary_bodies_and_media_types_are_declared(published: Published) -> None:
    paths = published.document["paths"]
    upload = paths["/api/v1/blobs/{sha256}"]["put"]
    assert list(upload["requestBody"]["content"]) == ["application/octet-stream"]
    view = paths["/api/v1/blobs/{sha256}/{variant}"]["get"]
    variant = next(p for p in view["parameters"] if p["name"] == "variant")
    assert variant["schema"]["enum"] == ["thumb", "display", "original"]
    assert "image/jpeg" in view["responses"]["200"]["content"]
    sha = next(p for p in upload["parameters"] if p["name"] == "sha256")
    assert sha["schema"]["pattern"] == "^[0-9a-f]{64}$"
    for path in ("/api/v1/documents/{document_id}/pdf", "/api/v1/public/documents/{reference}/pdf"):
        assert list(paths[path]["get"]["responses"]["200"]["content"]) == ["application/pdf"]


def test_an_instrument_put_answers_only_statuses_it_declares(
    client: TestClient, published: Published
) -> None:
    admin = auth(login(client, "admin"))
    body = {"certificate_no": "JJG-TH-9001", "calibration_expires": "2027-06-30"}
    created = client.put("/api/v1/instruments/TH-9001", json=body, headers=admin)
    again = client.put("/api/v1/instruments/TH-9001", json=body, headers=admin)
    assert (created.status_code, again.status_code) == (201, 200)
    for answer in (created, again):
        published.check_answer(
            "PUT", "/api/v1/instruments/{instrument_id}", answer.status_code, answer.json()
        )
