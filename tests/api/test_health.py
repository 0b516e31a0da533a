"""Liveness, readiness and the published API description."""

import shutil
from dataclasses import replace
from pathlib import Path

from litestar.testing import TestClient
from sqlalchemy.engine import make_url

from backend.app import create_app
from backend.context import AppContext
from backend.settings import Settings
from tests.api.helpers import assert_error


def test_health_answers_without_a_token(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_checks_database_and_blob_store(client: TestClient) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "blob_store": "ok"}


def test_not_ready_when_the_blob_store_is_gone(client: TestClient, ctx: AppContext) -> None:
    root = ctx.settings.blob_dir
    assert root is not None
    shutil.rmtree(root)
    root.write_text("the disk was replaced by a file")
    body = assert_error(client.get("/ready"), 503, "not_ready")
    assert body["detail"]["status"] == "not_ready"
    assert body["detail"]["failed"] == ["blob_store"]
    assert body["detail"]["checks"]["database"] == "ok"
    assert body["detail"]["checks"]["blob_store"].startswith("unavailable")


def test_not_ready_when_the_database_is_gone(settings: Settings, tmp_path: Path) -> None:
    url = settings.effective_database_url
    if url.startswith("postgresql"):
        gone = make_url(url).set(database="heatcrew_no_such_database").render_as_string(hide_password=False)
    else:
        (tmp_path / "a-directory").mkdir()
        gone = f"sqlite:///{tmp_path / 'a-directory'}"
    app = create_app(replace(settings, database_url=gone))
    with TestClient(app) as client:
        response = client.get("/ready")
    body = assert_error(response, 503, "not_ready")
    assert body["detail"]["failed"] == ["database"]
    assert body["detail"]["checks"]["database"].startswith("unavailable")
    assert body["detail"]["checks"]["blob_store"] == "ok"


def test_openapi_lists_the_endpoints_and_error_shape(client: TestClient) -> None:
    document = client.get("/schema/openapi.json").json()
    paths = document["paths"]
    for path in (
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/devices/{device_id}/revoke",
        "/health",
        "/ready",
    ):
        assert path in paths, path
    assert "TokenPair" in document["components"]["schemas"]
    assert "bearer" in document["components"]["securitySchemes"]


def test_docs_page_uses_local_assets_only(client: TestClient) -> None:
    page = client.get("/schema/swagger")
    assert page.status_code == 200
    assert "/schema/assets/swagger-ui-bundle.js" in page.text
    assert "unpkg.com" not in page.text and "cdn." not in page.text
    assert client.get("/schema/assets/swagger-ui-bundle.js").status_code == 200
