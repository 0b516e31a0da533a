"""A resident's personal-data request (PIPL): the export holds everything, the erasure blanks the
live tables while every signed document still verifies by its hash, phones get the blanked
household, and only the company's admins may do either. Both databases."""

import uuid
from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlmodel import select

from backend.auth import service as auth_service
from backend.auth.models import Role
from backend.clock import ManualClock
from backend.context import AppContext
from backend.ids import new_id
from backend.org.models import Company
from tests.api.helpers import assert_error, auth, login
from tests.fixtures.field import principal
from tests.scenarios.conftest import make_phone  # noqa: F401  (the fixture)
from tests.scenarios.test_documents import measurement, sign
from tests.scenarios.test_sync_scenarios import jpeg

pytestmark = pytest.mark.usefixtures("demo")

RESIDENT = "李秀兰"


@pytest.fixture
def visited(make_phone) -> dict[str, Any]:  # noqa: F811
    """An inspector's visit: an appointment, a note naming the resident, a photo, a measurement
    record signed by the inspector and by the resident."""
    phone = make_phone("inspector1")
    phone.pull()
    record = measurement(phone)
    order_id = record["work_order_id"]
    phone.enqueue("work_order.accept", {"work_order_id": order_id})
    phone.enqueue(
        "work_order.appointment",
        {
            "work_order_id": order_id,
            "window_start": "2026-12-07T06:00:00Z",
            "window_end": "2026-12-07T08:00:00Z",
            "reason": f"{RESIDENT}下午在家",
        },
    )
    phone.enqueue("work_order.note", {"work_order_id": order_id, "text": f"{RESIDENT}说卧室冷"})
    sha = phone.attach_file(jpeg(color=(5, 60, 200)))
    phone.enqueue("evidence.photo", {"work_order_id": order_id, "blob": sha, "purpose": "before"})
    phone.enqueue("measurement.record", record)
    sign(phone, "measurement", record["measurement_id"], record, "inspector", "刘明")
    sign(phone, "measurement", record["measurement_id"], record, "resident", RESIDENT)
    push = phone.push()
    assert push.rejected == 0 and push.conflicts == 0, phone.pending()
    phone.pull()
    return {
        "phone": phone,
        "order_id": order_id,
        "household_id": record["household_id"],
        "document_id": record["measurement_id"],
        "record": record,
        "photo": sha,
    }


def admin(client: TestClient) -> dict[str, str]:
    return auth(login(client, "admin"))


def personal_data(client: TestClient, household_id: str, headers: dict[str, str]) -> Any:
    return client.get(f"/api/v1/admin/households/{household_id}/personal-data", headers=headers)


def erase(client: TestClient, household_id: str, headers: dict[str, str], body: Any = None) -> Any:
    return client.post(
        f"/api/v1/admin/households/{household_id}/erase",
        json={"reason": "住户申请 2026-12-01 第 17 号"} if body is None else body,
        headers=headers,
    )


def test_the_export_holds_everything_about_the_household(client: TestClient, visited: dict) -> None:
    response = personal_data(client, visited["household_id"], admin(client))
    assert response.status_code == 200, response.text
    data = response.json()
    household = data["household"]
    assert household["id"] == visited["household_id"]
    assert household["resident_name"] and household["resident_phone"]
    assert household["erased_at"] is None
    (order,) = [o for o in data["orders"] if o["id"] == visited["order_id"]]
    kinds = [e["type"] for e in order["timeline"]]
    assert "note" in kinds and "appointment_set" in kinds
    assert f"{RESIDENT}说卧室冷" in [e["data"].get("text") for e in order["timeline"]]
    assert [a["reason"] for a in data["appointments"]] == [f"{RESIDENT}下午在家"]
    (document,) = data["documents"]
    assert document["id"] == visited["document_id"] and document["type"] == "measurement"
    assert document["content"]["rooms"] == visited["record"]["rooms"]
    assert len(document["content_sha256"]) == 64
    assert sorted((s["signer_role"], s["signer_name"]) for s in data["signatures"]) == [
        ("inspector", "刘明"),
        ("resident", RESIDENT),
    ]
    assert all(
        "strokes" not in s and s["content_sha256"] == document["content_sha256"] for s in data["signatures"]
    )
    (measured,) = data["measurements"]
    assert measured["id"] == visited["document_id"]
    (photo,) = data["photos"]
    assert photo["blob_sha256"] == visited["photo"] and set(photo["copies"]) == {"thumb", "display"}
    assert photo["original_removed_at"] is None
    assert data["revisits"] == []


def test_erasure_blanks_the_live_tables_and_signed_documents_still_verify(
    client: TestClient, ctx: AppContext, visited: dict
) -> None:
    headers = admin(client)
    household_id = visited["household_id"]
    with ctx.db.session(readonly=True) as session:
        from backend.evidence.models import Blob

        blob = session.get(Blob, (_company(ctx), visited["photo"]))
        assert blob is not None
        copies = dict(blob.variants)
    answer = erase(client, household_id, headers)
    assert answer.status_code == 200, answer.text
    erased = answer.json()
    assert erased["already_erased"] is False and erased["fields_blanked"] >= 5
    assert erased["photo_originals_removed"] == 1 and erased["kept_signed_documents"] == 1

    data = personal_data(client, household_id, headers).json()
    household = data["household"]
    assert (household["resident_name"], household["resident_phone"]) == ("", None)
    assert household["erased_at"] and household["erase_reason"] == "住户申请 2026-12-01 第 17 号"
    (order,) = [o for o in data["orders"] if o["id"] == visited["order_id"]]
    assert order["description"] == "[erased]"
    assert [e["data"]["text"] for e in order["timeline"] if e["type"] == "note"] == ["[erased]"]
    assert [a["reason"] for a in data["appointments"]] == ["[erased]"]
    assert RESIDENT not in _text(household) + _text(order) + _text(data["appointments"])
    # The action log's raw payloads (a note, a reason, the resident's signature) are blanked too.
    payloads = _payloads(ctx)
    assert payloads and not any(RESIDENT in payload for payload in payloads)
    # The signed record is kept byte for byte: hash and seals hold.
    verified = client.get(f"/api/v1/documents/{visited['document_id']}/verify", headers=headers).json()
    assert (verified["status"], verified["intact"]) == ("valid", True)
    assert verified["computed_sha256"] == verified["content_sha256"] == data["documents"][0]["content_sha256"]
    # The photo's original (GPS, EXIF) is gone; its metadata-free copies and its hash stay.
    assert not ctx.blobs.exists(visited["photo"])
    assert all(ctx.blobs.exists(copy) for copy in copies.values())
    assert data["photos"][0]["blob_sha256"] == visited["photo"] and data["photos"][0]["original_removed_at"]
    # The office sees the blanked household too.
    office = client.get(f"/api/v1/households/{household_id}", headers=headers).json()
    assert (office["resident_name"], office["resident_phone"]) == ("", None)


def test_erasure_is_idempotent(client: TestClient, visited: dict) -> None:
    headers = admin(client)
    first = erase(client, visited["household_id"], headers).json()
    # The phone sends its whole queue again (a lost answer): every action answers as before.
    phone = visited["phone"]
    phone.db.execute("UPDATE outbox SET done = 0")
    again_push = phone.push()
    assert again_push.duplicates == again_push.sent > 0 and again_push.rejected == 0
    again = erase(client, visited["household_id"], headers, {"reason": "重复提交"})
    assert again.status_code == 200
    body = again.json()
    assert body["already_erased"] is True and body["fields_blanked"] == 0
    assert body["photo_originals_removed"] == 0 and body["erased_at"] == first["erased_at"]
    household = personal_data(client, visited["household_id"], headers).json()["household"]
    assert household["erase_reason"] == "住户申请 2026-12-01 第 17 号"  # the first request's


def test_phones_get_the_blanked_household_and_orders(client: TestClient, visited: dict) -> None:
    phone = visited["phone"]
    assert phone.local("household")[visited["household_id"]]["resident_name"]
    assert erase(client, visited["household_id"], admin(client)).status_code == 200
    report = phone.pull()
    assert report.resets == 0 and report.changes >= 2  # an upsert of each, not a snapshot
    household = phone.local("household")[visited["household_id"]]
    assert (household["resident_name"], household["resident_phone"]) == ("", None)
    assert phone.local("work_order")[visited["order_id"]]["description"] == "[erased]"


def test_the_command_line_exports_and_erases(
    ctx: AppContext, visited: dict, database_url: str, tmp_path
) -> None:
    import json

    from click.testing import CliRunner

    from backend.cli import main

    env = {
        "HEATCREW_DATABASE_URL": database_url,
        "HEATCREW_VAR_DIR": str(tmp_path / "cli-var"),
        "HEATCREW_BLOB_DIR": str(ctx.settings.blob_dir),
        "HEATCREW_SECRET_KEY": ctx.settings.secret_key,
    }
    household = visited["household_id"]
    exported = CliRunner().invoke(main, ["pipl", "export", "--household", household], env=env)
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.output)["household"]["resident_name"]
    erased = CliRunner().invoke(
        main, ["pipl", "erase", "--household", household, "--reason", "申请"], env=env
    )
    assert erased.exit_code == 0, erased.output
    assert json.loads(erased.output)["already_erased"] is False
    again = CliRunner().invoke(main, ["pipl", "export", "--household", household], env=env)
    assert json.loads(again.output)["household"]["resident_name"] == ""
    unknown = CliRunner().invoke(main, ["pipl", "export", "--household", str(uuid.uuid4())], env=env)
    assert unknown.exit_code == 1


@pytest.mark.parametrize("username", ["dispatcher1", "supervisor1", "tech1", "inspector1"])
def test_only_admins_may_export_or_erase(client: TestClient, visited: dict, username: str) -> None:
    headers = auth(login(client, username))
    assert_error(personal_data(client, visited["household_id"], headers), 403, "forbidden")
    assert_error(erase(client, visited["household_id"], headers), 403, "forbidden")
    kept = personal_data(client, visited["household_id"], admin(client)).json()["household"]
    assert kept["resident_name"] and kept["erased_at"] is None


def test_another_companys_household_does_not_exist(
    client: TestClient, ctx: AppContext, visited: dict
) -> None:
    with ctx.db.session() as session:
        company = Company(id=new_id(), code="north", name="North Heat", created_at=ctx.clock.now())
        session.add(company)
        session.flush()
        auth_service.create_user(
            ctx,
            session,
            company_id=company.id,
            username="north-admin",
            full_name="North Admin",
            role=Role.admin,
            password="north-password-1",
        )
    north = auth(login(client, "north-admin", password="north-password-1"))
    assert_error(personal_data(client, visited["household_id"], north), 404, "not_found")
    assert_error(erase(client, visited["household_id"], north), 404, "not_found")
    assert_error(personal_data(client, str(uuid.uuid4()), admin(client)), 404, "not_found")
    household = personal_data(client, visited["household_id"], admin(client)).json()["household"]
    assert household["erased_at"] is None


def test_an_erasure_needs_a_reason(client: TestClient, visited: dict) -> None:
    headers = admin(client)
    assert_error(erase(client, visited["household_id"], headers, {}), 400, "invalid_body")
    assert_error(erase(client, visited["household_id"], headers, {"reason": "   "}), 400, "invalid_input")
    assert_error(
        erase(client, visited["household_id"], headers, {"reason": "x", "more": 1}), 400, "invalid_body"
    )
    household = personal_data(client, visited["household_id"], headers).json()["household"]
    assert household["erased_at"] is None and household["resident_name"]


def test_actions_queued_offline_across_the_erasure_arrive_blanked(
    client: TestClient, ctx: AppContext, clock: ManualClock, visited: dict
) -> None:
    """The inspector writes about the resident in a basement with no signal; the office erases the
    household meanwhile. When the phone reaches the server, what it wrote before the erasure is
    kept as the erasure would have left it, and the queue still moves: nothing is refused."""
    phone, order_id = visited["phone"], visited["order_id"]
    phone.skew = timedelta(hours=3)  # its clock runs fast: what counts is when it really happened
    before = [
        phone.enqueue("work_order.note", {"work_order_id": order_id, "text": f"{RESIDENT}的电话13912345678"}),
        phone.enqueue(
            "work_order.contact", {"work_order_id": order_id, "outcome": "reached", "note": RESIDENT}
        ),
        phone.enqueue(
            "work_order.appointment",
            {
                "work_order_id": order_id,
                "window_start": "2026-12-08T06:00:00Z",
                "window_end": "2026-12-08T08:00:00Z",
                "reason": f"{RESIDENT}周二在家",
            },
        ),
        phone.enqueue(
            "work_order.return_request", {"work_order_id": order_id, "reason": f"{RESIDENT}拒绝入户"}
        ),
    ]
    clock.advance(minutes=40)
    assert erase(client, visited["household_id"], admin(client)).status_code == 200
    clock.advance(minutes=40)
    after = phone.enqueue("work_order.note", {"work_order_id": order_id, "text": "新的一次上门：阀门已换"})
    report = phone.push()
    assert report.rejected == 0 and report.conflicts == 0, phone.pending()
    assert [phone.outcome(action_id)["status"] for action_id, _ in [*before, after]] == ["applied"] * 5

    data = personal_data(client, visited["household_id"], admin(client)).json()
    (order,) = [o for o in data["orders"] if o["id"] == order_id]
    notes = [e["data"]["text"] for e in order["timeline"] if e["type"] == "note"]
    assert notes == ["[erased]", "[erased]", "新的一次上门：阀门已换"]
    assert order["return_reason"] == "[erased]"
    assert {a["reason"] for a in data["appointments"]} == {"[erased]"}
    assert RESIDENT not in _text(data["orders"]) + _text(data["appointments"])
    payloads = _payloads(ctx)
    assert not any(RESIDENT in payload for payload in payloads)
    assert any("阀门已换" in payload for payload in payloads)  # the new visit's note is kept
    # Lost answers: the phone sends its queue again, and every action is answered as before.
    phone.db.execute("UPDATE outbox SET done = 0")
    again = phone.push()
    assert again.duplicates == again.sent > 0 and again.rejected == 0


def test_a_blanked_action_sent_again_under_another_seq_is_still_a_duplicate(
    client: TestClient, ctx: AppContext, clock: ManualClock, visited: dict
) -> None:
    """A phone that queued one note twice (in one batch, then once more later): the erasure blanked
    what the first delivery carried, and the resends are answered as the same action, not as an
    id used for something else."""
    phone, order_id = visited["phone"], visited["order_id"]
    occurred = phone.clock().isoformat()
    clock.advance(minutes=10)
    assert erase(client, visited["household_id"], admin(client)).status_code == 200
    clock.advance(minutes=10)
    seq, action_id = phone.last_applied_seq + 1, str(uuid.uuid4())
    note = {"work_order_id": order_id, "text": f"{RESIDENT}说卧室冷"}

    def push(*seqs: int) -> list[tuple[str, str | None]]:
        actions = [
            {
                "id": action_id,
                "seq": n,
                "type": "work_order.note",
                "v": 1,
                "occurred_at": occurred,
                "payload": note,
            }
            for n in seqs
        ]
        body = {"device_id": phone.device_id, "sent_at": phone.clock().isoformat(), "actions": actions}
        response = phone._send("POST", "/api/v1/sync/push", json=body)
        assert response.status_code == 200, response.text
        return [(r["status"], r.get("code")) for r in response.json()["results"]]

    assert push(seq, seq + 1) == [("applied", None), ("duplicate", None)]
    assert push(seq + 2) == [("duplicate", None)]
    assert not any(RESIDENT in payload for payload in _payloads(ctx))


def test_actions_refused_across_the_erasure_keep_no_personal_text(
    client: TestClient, ctx: AppContext, clock: ManualClock, visited: dict
) -> None:
    """Refused before any handler looked at them (an outdated app, a payload that does not fit), or
    about a household rather than an order: the action log keeps none of their text."""
    phone, order_id, household_id = visited["phone"], visited["order_id"], visited["household_id"]
    phone.enqueue("work_order.note", {"work_order_id": order_id, "text": RESIDENT + "冷" * 2001})
    record = {**visited["record"], "measurement_id": str(uuid.uuid4()), "work_order_id": None}
    phone.enqueue("measurement.record", {**record, "note": f"{RESIDENT}家卧室冷"})
    clock.advance(minutes=10)
    assert erase(client, household_id, admin(client)).status_code == 200
    clock.advance(minutes=10)
    report = phone.push()
    assert report.rejected == 1 and report.applied == 1, phone.pending()
    assert not any(RESIDENT in payload for payload in _payloads(ctx))


def test_a_photo_taken_before_the_erasure_loses_its_original_at_the_next_maintenance(
    client: TestClient, ctx: AppContext, clock: ManualClock, visited: dict
) -> None:
    """Its GPS and EXIF go as the erasure's would have; the retention of the company's other
    photos is not touched, and a photo of a visit after the erasure keeps its original."""
    from backend import maintenance

    phone, order_id = visited["phone"], visited["order_id"]
    queued = phone.attach_file(jpeg(color=(200, 10, 10)))
    phone.enqueue("evidence.photo", {"work_order_id": order_id, "blob": queued, "purpose": "after"})
    clock.advance(minutes=30)
    assert erase(client, visited["household_id"], admin(client)).status_code == 200
    clock.advance(minutes=30)
    later = phone.attach_file(jpeg(color=(10, 200, 10)))
    phone.enqueue("evidence.photo", {"work_order_id": order_id, "blob": later, "purpose": "damage"})
    assert phone.push().rejected == 0, phone.pending()
    assert ctx.blobs.exists(queued) and ctx.blobs.exists(later)

    assert maintenance.run(ctx, dry_run=True).category("photo_originals").rows == 1
    assert ctx.blobs.exists(queued)
    assert maintenance.run(ctx).category("photo_originals").rows == 1
    assert not ctx.blobs.exists(queued) and ctx.blobs.exists(later)
    photos = {
        p["blob_sha256"]: p
        for p in personal_data(client, visited["household_id"], admin(client)).json()["photos"]
    }
    assert photos[queued]["original_removed_at"] and set(photos[queued]["copies"]) == {"thumb", "display"}
    assert all(ctx.blobs.exists(copy) for copy in photos[queued]["copies"].values())
    assert photos[later]["original_removed_at"] is None
    assert maintenance.run(ctx).category("photo_originals").rows == 0


def test_erasure_blanks_reasons_and_what_the_review_wrote(
    client: TestClient, ctx: AppContext, visited: dict
) -> None:
    """The return reason the phone gave, the supervisor's decision and what they asked to be done
    again, and the phone's answer to it: all written about the visit, all blanked."""
    from backend.review.models import RedoRequest, ReviewItem

    phone, order_id = visited["phone"], visited["order_id"]
    phone.enqueue("work_order.return_request", {"work_order_id": order_id, "reason": f"{RESIDENT}拒绝入户"})
    assert phone.push().rejected == 0, phone.pending()
    now = ctx.clock.now()
    supervisor = principal(ctx, "supervisor1").user_id
    with ctx.db.session() as session:
        item = ReviewItem(
            id=new_id(),
            company_id=_company(ctx),
            order_id=uuid.UUID(order_id),
            kind="inspection",
            status="redo_answered",
            entered_at=now,
            queued_at=now,
            decision_reason=f"{RESIDENT}的签名不清",
        )
        session.add(item)
        session.flush()
        session.add(
            RedoRequest(
                id=new_id(),
                company_id=item.company_id,
                order_id=item.order_id,
                review_item_id=item.id,
                requested_by=supervisor,
                assignee_id=principal(ctx, "inspector1").user_id,
                items=[{"kind": "other", "text": f"请{RESIDENT}重签"}, {"kind": "photo", "purpose": "after"}],
                due_at=now,
                status="answered",
                response={"note": f"{RESIDENT}已重签", "photos": []},
                created_at=now,
                updated_at=now,
            )
        )
    erased = erase(client, visited["household_id"], admin(client)).json()
    assert erased["fields_blanked"] >= 8
    with ctx.db.session(readonly=True) as session:
        (order,) = [o for o in personal_data(client, visited["household_id"], admin(client)).json()["orders"]]
        assert order["return_reason"] == "[erased]"
        reviewed = session.get(ReviewItem, item.id)
        assert reviewed is not None and reviewed.decision_reason == "[erased]"
        (redo,) = session.exec(select(RedoRequest).where(RedoRequest.review_item_id == item.id)).all()
        assert redo.items == [{"kind": "other", "text": "[erased]"}, {"kind": "photo", "purpose": "after"}]
        assert redo.response == {"note": "[erased]", "photos": []}


def _company(ctx: AppContext) -> uuid.UUID:
    return principal(ctx, "admin").company_id


def _payloads(ctx: AppContext) -> list[str]:
    import sqlalchemy as sa

    with ctx.db.engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT payload FROM sync_action")).scalars())


def _text(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)
