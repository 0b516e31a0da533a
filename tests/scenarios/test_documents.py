"""Signed documents from phones to paper: bound to their content, frozen, corrected, verified, printed."""

import io
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from PIL import Image, ImageDraw
from pypdf import PdfReader

from backend.context import AppContext
from backend.evidence.documents import DocumentFrozen
from backend.evidence.models import Document, Signature
from mobile_contract.documents import canonical, content_sha256
from tests.api.helpers import auth, login
from tests.fixtures.field import receipt
from tests.scenarios.conftest import first_order

pytestmark = pytest.mark.usefixtures("demo")


def signature_png() -> bytes:
    img = Image.new("RGBA", (300, 100), (255, 255, 255, 0))
    ImageDraw.Draw(img).line([(10, 80), (80, 20), (150, 70), (290, 30)], fill=(0, 0, 80, 255), width=4)
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def measurement(phone, **changes: Any) -> dict[str, Any]:
    order_id = first_order(phone, kind="temperature_complaint")
    record = {
        "measurement_id": str(uuid.uuid4()),
        "household_id": phone.local("work_order")[order_id]["household_id"],
        "work_order_id": order_id,
        "instrument_id": "TH-0042",
        "rooms": [
            {"name": "主卧", "kind": "bedroom", "readings_c": [18.4, 18.5, 18.4], "height_m": 1.3},
            {"name": "客厅", "kind": "living_room", "readings_c": [19.0, 19.1, 19.0], "height_m": 1.4},
        ],
        "outdoor_c": -12.5,
        "closed_minutes": 35,
    }
    return {**record, **changes}


def sign(phone, doc_type: str, doc_id: str, content: dict, role: str, name: str, **extra: Any) -> str:
    payload = {
        "document": {"type": doc_type, "id": doc_id},
        "signer_name": name,
        "signer_role": role,
        "content_sha256": content_sha256(content),
        **extra,
    }
    if "blob" not in extra and "refused_reason" not in extra:
        payload["strokes"] = [[[0, 0, 0], [40, 12, 30], [80, 4, 60]], [[10, 30, 90], [70, 30, 120]]]
    return phone.enqueue("evidence.signature", payload)[0]


def office(client: TestClient, path: str, user: str = "supervisor1") -> Any:
    response = client.get(path, headers=auth(login(client, user)))
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def inspector(make_phone):
    phone = make_phone("inspector1")
    phone.pull()
    return phone


def test_a_measurement_is_valid_once_inspector_and_resident_sign(inspector, client: TestClient) -> None:
    record = measurement(inspector)
    doc = record["measurement_id"]
    inspector.enqueue("measurement.record", record)
    own = sign(inspector, "measurement", doc, record, "inspector", "刘明")
    inspector.push()
    assert inspector.outcome(own)["status"] == "applied"
    half = office(client, f"/api/v1/measurements/{doc}")
    assert half["evaluation"]["result"] == "pass"  # 18.4 °C in a bedroom by day, computed by the server
    assert (half["valid"], half["document"]["status"], half["document"]["missing"]) == (
        False,
        "awaiting_signatures",
        ["resident"],
    )
    resident = sign(inspector, "measurement", doc, record, "resident", "李秀兰")
    inspector.push()
    assert inspector.outcome(resident)["status"] == "applied"
    full = office(client, f"/api/v1/measurements/{doc}")
    assert full["valid"] is True
    verified = office(client, f"/api/v1/documents/{doc}/verify")
    assert verified["intact"] is True and verified["status"] == "valid"
    # The hash the phone computed over what it sent is the one the server holds.
    assert verified["content_sha256"] == verified["computed_sha256"] == content_sha256(record)
    assert [s["signer_role"] for s in verified["signatures"]] == ["inspector", "resident"]


def test_a_resident_who_refuses_leaves_a_valid_record_with_the_reason(inspector, client: TestClient) -> None:
    record = measurement(inspector)
    doc = record["measurement_id"]
    inspector.enqueue("measurement.record", record)
    sign(inspector, "measurement", doc, record, "inspector", "刘明")
    sign(inspector, "measurement", doc, record, "resident", "李秀兰", refused_reason="认为测量时间不合适")
    inspector.push()
    body = office(client, f"/api/v1/documents/{doc}")
    assert body["verification"]["status"] == "valid"
    assert [s["refused_reason"] for s in body["signatures"]] == [None, "认为测量时间不合适"]
    # Only a resident may refuse; the inspector's own refusal means nothing.
    again = measurement(inspector)
    inspector.enqueue("measurement.record", again)
    bad = sign(
        inspector, "measurement", again["measurement_id"], again, "inspector", "刘明", refused_reason="x"
    )
    inspector.push()
    assert inspector.outcome(bad)["code"] == "invalid_refusal"


def test_a_signature_over_other_content_is_refused_and_nothing_is_kept(
    inspector, client: TestClient, ctx: AppContext
) -> None:
    record = measurement(inspector)
    doc = record["measurement_id"]
    inspector.enqueue("measurement.record", record)
    shown = {**record, "rooms": [{**record["rooms"][0], "readings_c": [21.0, 21.0, 21.0]}]}
    wrong = sign(inspector, "measurement", doc, shown, "resident", "李秀兰")
    inspector.push()
    outcome = inspector.outcome(wrong)
    assert (outcome["status"], outcome["code"]) == ("rejected", "content_mismatch")
    with ctx.db.session(readonly=True) as session:
        assert session.exec(sa.select(Signature).where(Signature.document_id == uuid.UUID(doc))).all() == []
    assert office(client, f"/api/v1/measurements/{doc}")["valid"] is False


def test_an_issued_document_is_frozen_and_a_correction_supersedes_it(
    inspector, client: TestClient, ctx: AppContext
) -> None:
    first = measurement(inspector)
    doc = first["measurement_id"]
    inspector.enqueue("measurement.record", first)
    sign(inspector, "measurement", doc, first, "inspector", "刘明")
    sign(inspector, "measurement", doc, first, "resident", "李秀兰")
    edited = {**first, "outdoor_c": -8.0}
    edit = inspector.enqueue("measurement.record", edited)[0]
    inspector.push()
    assert inspector.outcome(edit)["code"] == "document_frozen"

    # Nor can any code path change it in the database session.
    with pytest.raises(DocumentFrozen), ctx.db.session() as session:
        row = session.get(Document, uuid.UUID(doc))
        assert row is not None
        row.content = row.content.replace("-12.5", "-8")
        session.flush()

    correction = measurement(
        inspector, outdoor_c=-8.0, supersedes=doc, supersede_reason="室外温度抄错 outdoor reading misread"
    )
    new_doc = correction["measurement_id"]
    inspector.enqueue("measurement.record", correction)
    sign(inspector, "measurement", new_doc, correction, "inspector", "刘明")
    sign(inspector, "measurement", new_doc, correction, "resident", "李秀兰")
    twice = inspector.enqueue(
        "measurement.record", measurement(inspector, supersedes=doc, supersede_reason="again")
    )[0]
    inspector.push()
    assert inspector.outcome(twice)["code"] == "already_superseded"
    old, new = office(client, f"/api/v1/documents/{doc}"), office(client, f"/api/v1/documents/{new_doc}")
    assert (old["verification"]["status"], old["superseded_by"]) == ("superseded", new_doc)
    assert (new["verification"]["status"], new["supersedes"]) == ("valid", doc)
    assert new["supersede_reason"] == "室外温度抄错 outdoor reading misread"
    both = office(client, f"/api/v1/documents?household_id={first['household_id']}")
    assert {d["id"] for d in both} == {doc, new_doc}  # both stay visible
    assert office(client, f"/api/v1/measurements/{doc}")["valid"] is False


def test_tampering_in_the_database_is_detected(inspector, client: TestClient, ctx: AppContext) -> None:
    record = measurement(inspector)
    doc = record["measurement_id"]
    inspector.enqueue("measurement.record", record)
    sign(inspector, "measurement", doc, record, "inspector", "刘明")
    sign(inspector, "measurement", doc, record, "resident", "李秀兰")
    inspector.push()
    assert office(client, f"/api/v1/documents/{doc}/verify")["intact"] is True
    key = uuid.UUID(doc).hex if ctx.db.dialect == "sqlite" else doc

    def tamper(sql: str) -> dict:
        with ctx.db.engine.begin() as conn:
            conn.execute(sa.text(sql), {"id": key})
        return office(client, f"/api/v1/documents/{doc}/verify")

    # 1. The measured values are edited: the row no longer says what was signed.
    edited = "REPLACE(CAST(rooms AS TEXT), '18.4', '20.4')"
    if ctx.db.dialect == "postgresql":
        edited = f"CAST({edited} AS JSON)"
    seen = tamper(f"UPDATE measurement SET rooms = {edited} WHERE id = :id")
    assert (seen["intact"], seen["status"]) == (False, "tampered")
    assert seen["problems"] == ["the measurement's rooms differs from the signed record"]
    assert office(client, f"/api/v1/measurements/{doc}")["valid"] is False
    restored = edited.replace("'18.4', '20.4'", "'20.4', '18.4'")
    tamper(f"UPDATE measurement SET rooms = {restored} WHERE id = :id")
    assert office(client, f"/api/v1/documents/{doc}/verify")["intact"] is True  # put back: intact again

    # 2. The signed document itself is edited.
    seen = tamper("UPDATE document SET content = REPLACE(content, '-12.5', '-22.5') WHERE id = :id")
    assert "the stored content no longer hashes to the issued hash" in seen["problems"]
    assert seen["computed_sha256"] != seen["content_sha256"]
    assert [s["intact"] for s in seen["signatures"]] == [False, False]
    tamper("UPDATE document SET content = REPLACE(content, '-22.5', '-12.5') WHERE id = :id")

    # 3. Someone else's name is put on a signature.
    seen = tamper(
        "UPDATE signature SET signer_name = '王五' WHERE document_id = :id AND signer_role = 'resident'"
    )
    assert [(s["signer_name"], s["intact"]) for s in seen["signatures"]] == [("刘明", True), ("王五", False)]
    assert seen["status"] == "tampered"


def test_rewriting_content_and_every_hash_together_is_still_detected_by_the_seal(
    inspector, client: TestClient, ctx: AppContext
) -> None:
    record = measurement(inspector)
    doc = record["measurement_id"]
    inspector.enqueue("measurement.record", record)
    sign(inspector, "measurement", doc, record, "inspector", "刘明")
    inspector.push()
    forged = {**record, "outdoor_c": -25.0}
    body = canonical(forged).decode()
    sha = content_sha256(forged)
    key = uuid.UUID(doc).hex if ctx.db.dialect == "sqlite" else doc
    with ctx.db.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE document SET content = :body, content_sha256 = :sha WHERE id = :id"),
            {"body": body, "sha": sha, "id": key},
        )
        conn.execute(
            sa.text("UPDATE signature SET content_sha256 = :sha WHERE document_id = :id"),
            {"sha": sha, "id": key},
        )
        conn.execute(sa.text("UPDATE measurement SET outdoor_c = -25.0 WHERE id = :id"), {"id": key})
    seen = office(client, f"/api/v1/documents/{doc}/verify")
    assert seen["computed_sha256"] == seen["content_sha256"]  # the hashes agree with each other…
    assert seen["intact"] is False  # …but the server's seal on the signature does not
    assert [s["intact"] for s in seen["signatures"]] == [False]


def test_instruments_out_of_calibration_are_refused_until_renewed(inspector, client: TestClient) -> None:
    expired = inspector.enqueue("measurement.record", measurement(inspector, instrument_id="TH-0007"))[0]
    unknown = inspector.enqueue("measurement.record", measurement(inspector, instrument_id="TH-9999"))[0]
    inspector.push()
    assert inspector.outcome(expired)["code"] == "instrument_expired"
    assert inspector.outcome(unknown)["code"] == "unknown_instrument"
    renewal = {"certificate_no": "JJG-2026-118", "calibration_expires": "2027-12-31", "model": "TES-1310"}
    refused = client.put(
        "/api/v1/instruments/TH-0007", json=renewal, headers=auth(login(client, "inspector1"))
    )
    assert refused.status_code == 403
    renewed = client.put("/api/v1/instruments/TH-0007", json=renewal, headers=auth(login(client, "admin")))
    assert renewed.status_code == 200 and renewed.json()["calibration_expires"] == "2027-12-31"
    bad = client.put(
        "/api/v1/instruments/TH-0008",
        json={**renewal, "accuracy_c": 2.0},
        headers=auth(login(client, "admin")),
    )
    assert bad.status_code == 400
    inspector.pull()
    instruments = inspector.local("reference")["instruments"]["instruments"]
    assert {i["id"]: i["calibration_expires"] for i in instruments}["TH-0007"] == "2027-12-31"
    again = inspector.enqueue("measurement.record", measurement(inspector, instrument_id="TH-0007"))[0]
    inspector.push()
    assert inspector.outcome(again)["status"] == "applied"


def test_a_signed_receipt_prints_with_its_chinese_text_hash_and_signature(
    make_phone, client: TestClient, ctx: AppContext
) -> None:
    tech = make_phone("tech1")
    tech.pull()
    order_id = first_order(tech)
    content = receipt(order_id)
    doc = str(uuid.uuid4())
    tech.enqueue("document.issue", {"document": {"type": "receipt", "id": doc}, "content": content})
    image = tech.attach_file(signature_png())
    resident = sign(tech, "receipt", doc, content, "resident", "赵建国", blob=image)
    own = sign(tech, "receipt", doc, content, "technician", "张伟")
    impostor = sign(tech, "receipt", doc, content, "inspector", "张伟")
    tech.push()
    assert [tech.outcome(i)["status"] for i in (resident, own)] == ["applied", "applied"]
    assert tech.outcome(impostor)["code"] == "signer_role_mismatch"

    detail = office(client, f"/api/v1/documents/{doc}")
    assert detail["verification"]["status"] == "valid"
    # The supervisor reviewing the order sees the paper and what evidence is still owed.
    evidence = office(client, f"/api/v1/work-orders/{order_id}")["evidence"]
    assert [(d["id"], d["type"], d["status"]) for d in evidence["documents"]] == [(doc, "receipt", "valid")]
    kind = tech.local("work_order")[order_id]["kind"]
    assert evidence["photos_missing"] == {"leak": ["before", "after"], "repair": ["before", "after"]}.get(
        kind, evidence["photos_missing"]
    )
    pdf = client.get(f"/api/v1/documents/{doc}/pdf", headers=auth(login(client, "supervisor1")))
    assert pdf.status_code == 200 and pdf.headers["content-type"].startswith("application/pdf")
    reader = PdfReader(io.BytesIO(pdf.content))
    text = "".join(page.extract_text() for page in reader.pages)
    for expected in ("供热维修服务回执", "赵建国", "更换排气阀，试压正常", "T0301", detail["content_sha256"]):
        assert expected in text
    images = [img for page in reader.pages for img in page.images]
    assert len(images) == 2  # the uploaded signature and the one drawn from strokes

    # A technician does not download it; the resident opens their copy with the printed reference.
    assert client.get(f"/api/v1/documents/{doc}/pdf", headers=auth(login(client, "tech1"))).status_code == 403
    reference = detail["resident_reference"]
    copy = client.get(f"/api/v1/public/documents/{reference}/pdf")
    assert copy.status_code == 200 and copy.content[:5] == b"%PDF-"
    check = client.get(f"/api/v1/public/documents/{reference}").json()
    assert (check["intact"], check["signed_by"], check["status"]) == (
        True,
        ["resident", "technician"],
        "valid",
    )
    forged = reference[:-4] + ("0000" if not reference.endswith("0000") else "1111")
    assert client.get(f"/api/v1/public/documents/{forged}").status_code == 404


def test_a_receipt_that_does_not_fit_its_form_is_refused(make_phone) -> None:
    tech = make_phone("tech1")
    tech.pull()
    order_id = first_order(tech)
    doc = str(uuid.uuid4())
    incomplete = receipt(order_id)
    del incomplete["found"]
    sneaky = {**receipt(order_id), "liability_waiver": "住户放弃索赔"}
    bad = tech.enqueue("document.issue", {"document": {"type": "receipt", "id": doc}, "content": incomplete})[
        0
    ]
    hidden = tech.enqueue(
        "document.issue", {"document": {"type": "receipt", "id": str(uuid.uuid4())}, "content": sneaky}
    )[0]
    borrowed = tech.enqueue(
        "document.issue",
        {
            "document": {"type": "receipt", "id": str(uuid.uuid4())},
            "content": receipt(order_id, staff_number="T0302"),  # a colleague's number
        },
    )[0]
    tech.push()
    assert tech.outcome(bad)["code"] == "invalid_document"
    assert tech.outcome(hidden)["code"] == "invalid_document"  # nothing signed that the form cannot show
    assert tech.outcome(borrowed)["code"] == "content_disagrees"  # the order is not theirs
    assert "staff_number" in tech.outcome(borrowed)["message"]


def test_a_measurement_record_prints_its_rooms_and_result(inspector, client: TestClient) -> None:
    record = measurement(inspector)
    doc = record["measurement_id"]
    inspector.enqueue("measurement.record", record)
    sign(inspector, "measurement", doc, record, "inspector", "陈静")
    sign(inspector, "measurement", doc, record, "resident", "孙立新", refused_reason="不同意测量结果")
    inspector.push()
    pdf = client.get(f"/api/v1/documents/{doc}/pdf", headers=auth(login(client, "supervisor1")))
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    for expected in (
        "室内温度测量记录",
        "主卧",
        "18.4 / 18.5 / 18.4",
        "达标",
        "TH-0042",
        "不同意测量结果",
        "有效",
    ):
        assert expected in text


def test_a_signature_keeps_when_the_resident_signed_by_the_phone_and_by_the_server(
    make_phone, client: TestClient, clock
) -> None:
    """Signed in a basement two hours before the phone found a signal, on a phone ten minutes fast."""
    from datetime import timedelta

    tech = make_phone("tech1", skew=timedelta(minutes=10))
    tech.pull()
    order_id = first_order(tech)
    content = receipt(order_id)
    doc = str(uuid.uuid4())
    signed_at = clock.now()
    tech.enqueue("document.issue", {"document": {"type": "receipt", "id": doc}, "content": content})
    sign(tech, "receipt", doc, content, "resident", "赵建国")
    clock.advance(hours=2)
    tech.push()
    (check,) = office(client, f"/api/v1/documents/{doc}/verify")["signatures"]
    as_sent = (signed_at + timedelta(minutes=10)).isoformat().replace("+00:00", "")
    assert check["phone_signed_at"].startswith(as_sent)
    assert check["signed_at"].startswith(signed_at.isoformat().replace("+00:00", ""))
    assert check["received_at"].startswith(clock.now().isoformat().replace("+00:00", ""))


def test_a_signature_made_on_a_phone_in_china_time_verifies_as_valid(
    client: TestClient, ctx: AppContext
) -> None:
    """Found by the golden examples: the seal covered the phone's time with its own offset (+08:00),
    the database gives it back in UTC, so every signature from a phone in China verified as
    tampered."""
    from tests.fixtures.field import new_order

    order_id = str(new_order(ctx, assignee="tech1").id)
    device = "china-time-phone-1"
    tokens = login(client, "tech1", device_id=device)
    content = receipt(order_id)
    document = {"type": "receipt", "id": str(uuid.uuid4())}
    local = ctx.clock.now().astimezone(ZoneInfo("Asia/Shanghai")).isoformat()
    payloads = [
        ("document.issue", {"document": document, "content": content}),
        (
            "evidence.signature",
            {
                "document": document,
                "signer_name": "赵建国",
                "signer_role": "resident",
                "content_sha256": content_sha256(content),
                "strokes": [[[0, 0, 0], [40, 12, 30]]],
            },
        ),
    ]
    batch = {
        "device_id": device,
        "sent_at": local,
        "actions": [
            {
                "id": str(uuid.uuid4()),
                "seq": seq,
                "type": type_,
                "v": 1,
                "occurred_at": local,
                "payload": payload,
            }
            for seq, (type_, payload) in enumerate(payloads, start=1)
        ],
    }
    response = client.post("/api/v1/sync/push", json=batch, headers=auth(tokens))
    assert [r["status"] for r in response.json()["results"]] == ["applied", "applied"], response.text
    verified = office(client, f"/api/v1/documents/{document['id']}/verify")
    assert (verified["status"], verified["intact"], verified["problems"]) == ("valid", True, [])
