"""A browser page on an allowed origin (the office's console) can call the API and resume an
upload: CORS lets it read the upload headers; any other origin gets no CORS answer at all."""

import hashlib
import io
from collections.abc import Callable

import pytest
from litestar.testing import TestClient
from PIL import Image

from backend.evidence import pdf, pdf_layout
from tests.api.helpers import auth, login

pytestmark = pytest.mark.usefixtures("demo")

CONSOLE = "https://console.heating.example"
EXPOSED = {"upload-offset", "upload-length", "upload-expires", "retry-after", "x-request-id", "location"}


def exposed(answer) -> set[str]:
    return {
        name.strip().lower() for name in answer.headers.get("access-control-expose-headers", "").split(",")
    }


def test_an_allowed_origin_may_resume_an_upload_and_read_where_to_go_on(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(cors_allow_origins=f"{CONSOLE}, https://other.heating.example:8443")
    preflight = client.options(
        "/api/v1/blobs/" + "a" * 64,
        headers={
            "Origin": CONSOLE,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization, content-type, upload-length, x-request-id",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == CONSOLE
    assert "access-control-allow-credentials" not in preflight.headers
    allowed = {h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "upload-length", "x-request-id"} <= allowed

    tokens = login(client, "tech1")
    out = io.BytesIO()
    Image.new("RGB", (400, 300), (10, 200, 90)).save(out, "JPEG")
    photo = out.getvalue()
    sha = hashlib.sha256(photo).hexdigest()
    head = client.head(f"/api/v1/blobs/{sha}", headers={**auth(tokens), "Origin": CONSOLE})
    assert head.status_code == 404
    assert head.headers["access-control-allow-origin"] == CONSOLE
    assert head.headers["Upload-Offset"] == "0"
    assert exposed(head) >= EXPOSED
    stored = client.put(f"/api/v1/blobs/{sha}", content=photo, headers={**auth(tokens), "Origin": CONSOLE})
    assert stored.status_code == 201
    assert exposed(stored) >= EXPOSED


def test_any_other_origin_gets_no_cors_answer(make_client: Callable[..., TestClient]) -> None:
    client = make_client(cors_allow_origins=CONSOLE)
    for origin in ("https://evil.example", "https://console.heating.example.evil.example", "null"):
        preflight = client.options(
            "/api/v1/sync/push",
            headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 204
        assert "access-control-allow-origin" not in preflight.headers
        answer = client.get("/health", headers={"Origin": origin})
        assert "access-control-allow-origin" not in answer.headers


def test_the_pdf_font_waits_for_a_workers_first_document(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Parsed, the CJK font costs every worker ~19 MiB: only one that prints a document holds it.
    monkeypatch.setattr(pdf_layout, "_REGISTERED", {})
    make_client()
    assert pdf_layout._REGISTERED == {}
    document = pdf.PdfDocument(
        title="入户测温记录",
        company="Test Heat",
        reference="WO-1/测温-1",
        fields=[("住户", "张三")],
        content_sha256="0" * 64,
        verify_hint="heatcrew verify",
        issued_at="2026-12-02 08:00",
    )
    assert pdf.render_pdf(document).startswith(b"%PDF")
    assert pdf.find_font().regular.resolve() in pdf_layout._REGISTERED


def test_a_missing_font_does_not_stop_the_start(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch, tmp_path, caplog
) -> None:
    monkeypatch.setenv(pdf.FONT_ENV_VAR, str(tmp_path / "no-such-font.ttf"))
    with caplog.at_level("WARNING", logger="heatcrew.pdf"):
        client = make_client()
    assert client.get("/health").status_code == 200
    assert pdf.check_font() is False
    assert "no font for PDFs" in caplog.text


@pytest.mark.parametrize("start", [b"OTTO", b"<htm"], ids=["PostScript OpenType", "not a font"])
def test_a_font_reportlab_cannot_embed_is_told_at_the_start(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch, tmp_path, caplog, start: bytes
) -> None:
    """Found is not enough: a font ReportLab refuses is logged when the worker starts, not first
    heard of when someone asks for a document (which then answers pdf_font_missing)."""
    font = tmp_path / "NotoSansCJK-Regular.otf"
    font.write_bytes(start + b"\x00" * 64)
    monkeypatch.setenv(pdf.FONT_ENV_VAR, str(font))
    with caplog.at_level("WARNING", logger="heatcrew.pdf"):
        client = make_client()
    assert client.get("/health").status_code == 200
    assert pdf.check_font() is False
    assert "no font for PDFs" in caplog.text and str(font) in caplog.text
