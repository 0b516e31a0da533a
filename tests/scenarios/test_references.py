"""Every object an action or a request names is one the caller may touch.

The rules, one test each: a file is attached only by whoever uploaded it (or a supervisor); a
photo goes on a measurement only from its inspector or the order's assignee; a record is
superseded only by its issuer or a supervisor; and a file the caller may not see does not exist
for them, whatever they ask (HEAD, a copy, the original).
"""

import hashlib
import uuid
from typing import Any

import pytest
from litestar.testing import TestClient

from backend.context import AppContext
from backend.evidence.models import Document
from backend.work_orders.models import Revisit, WorkOrder
from tests.api.helpers import assert_error, auth, login
from tests.fixtures.field import new_order
from tests.fixtures.pushing import Phone

pytestmark = pytest.mark.usefixtures("demo")


def record(ctx: AppContext, *, order_id: uuid.UUID | None, household: uuid.UUID, **extra: Any) -> dict:
    return {
        "measurement_id": str(uuid.uuid4()),
        "household_id": str(household),
        "work_order_id": str(order_id) if order_id else None,
        "instrument_id": "TH-0042",
        "rooms": [{"name": "客厅", "kind": "living_room", "readings_c": [17.1, 17.2, 17.1], "height_m": 1.3}],
        "outdoor_c": -9.0,
        "closed_minutes": 40,
        **extra,
    }


def inspection(ctx: AppContext) -> WorkOrder:
    return new_order(ctx, kind="temperature_complaint", account="100103", assignee="inspector1")


def test_a_hash_is_no_licence_to_someone_elses_photo(client: TestClient, ctx: AppContext) -> None:
    tech1, tech2 = Phone(client, ctx, "tech1"), Phone(client, ctx, "tech2")
    sha = tech1.upload_photo()
    mine = str(new_order(ctx).id)
    assert (
        tech1.push("evidence.photo", 1, {"work_order_id": mine, "blob": sha, "purpose": "before"})["status"]
        == "applied"
    )
    snoop = auth(tech2.tokens)
    # Whether the company holds the file is not tech2's to learn.
    assert tech2.client.head(f"/api/v1/blobs/{sha}", headers=snoop).status_code == 404
    for variant in ("thumb", "display", "original"):
        assert_error(client.get(f"/api/v1/blobs/{sha}/{variant}", headers=snoop), 404, "blob_not_found")
    # Attaching the hash to tech2's own order would have opened the copies to tech2. It answers as
    # for a file nobody holds: tech2 must send the bytes first.
    theirs = str(new_order(ctx, assignee="tech2", account="200101").id)
    nobody = hashlib.sha256(b"no such photo").hexdigest()
    tablet = Phone(client, ctx, "tech2")
    unknown = tablet.push("evidence.photo", 1, {"work_order_id": theirs, "blob": nobody, "purpose": "after"})
    answer = tech2.push("evidence.photo", 1, {"work_order_id": theirs, "blob": sha, "purpose": "before"})
    assert (
        (answer["status"], answer["code"])
        == (unknown["status"], unknown["code"])
        == ("waiting", "blob_missing")
    )
    assert_error(client.get(f"/api/v1/blobs/{sha}/display", headers=snoop), 404, "blob_not_found")
    # Its uploader and the office still see it; only supervisors get the original.
    assert client.head(f"/api/v1/blobs/{sha}", headers=auth(tech1.tokens)).status_code == 200
    assert client.get(f"/api/v1/blobs/{sha}/display", headers=auth(tech1.tokens)).status_code == 200
    assert_error(client.get(f"/api/v1/blobs/{sha}/original", headers=auth(tech1.tokens)), 403, "forbidden")
    supervisor = auth(login(client, "supervisor1"))
    assert client.get(f"/api/v1/blobs/{sha}/original", headers=supervisor).status_code == 200


def test_the_new_assignee_sees_the_photos_of_a_reassigned_order(client: TestClient, ctx: AppContext) -> None:
    tech1 = Phone(client, ctx, "tech1")
    sha = tech1.upload_photo()
    order_id = str(new_order(ctx).id)
    tech1.push("evidence.photo", 1, {"work_order_id": order_id, "blob": sha, "purpose": "leak"})
    dispatcher = auth(login(client, "dispatcher1"))
    tech2 = Phone(client, ctx, "tech2")
    tech2_id = client.get("/api/v1/me", headers=auth(tech2.tokens)).json()["id"]
    reassigned = client.post(
        f"/api/v1/work-orders/{order_id}/assign", json={"user_id": tech2_id}, headers=dispatcher
    )
    assert reassigned.status_code == 200, reassigned.text
    assert client.get(f"/api/v1/blobs/{sha}/display", headers=auth(tech2.tokens)).status_code == 200


def test_only_its_inspector_or_the_assignee_adds_photos_to_a_measurement(
    client: TestClient, ctx: AppContext
) -> None:
    order = inspection(ctx)
    inspector = Phone(client, ctx, "inspector1")
    taken = record(ctx, order_id=order.id, household=order.household_id)
    assert inspector.push("measurement.record", 1, taken)["status"] == "applied"
    tech1 = Phone(client, ctx, "tech1")
    own_upload = tech1.upload_photo()
    photo = {"measurement_id": taken["measurement_id"], "blob": own_upload, "purpose": "thermometer"}
    answer = tech1.push("evidence.photo", 1, photo)
    assert (answer["status"], answer["code"]) == ("rejected", "unknown_measurement")
    inspectors = {**photo, "blob": inspector.upload_photo()}
    assert inspector.push("evidence.photo", 1, inspectors)["status"] == "applied"


def test_a_record_is_superseded_only_by_its_issuer_or_a_supervisor(
    client: TestClient, ctx: AppContext
) -> None:
    order = inspection(ctx)
    inspector = Phone(client, ctx, "inspector1")
    # A round without an order: the inspector measures at a household where they hold one.
    original = record(ctx, order_id=None, household=order.household_id)
    assert inspector.push("measurement.record", 1, original)["status"] == "applied"
    # tech1 also has an order at this household: that is no right to void the inspector's record.
    new_order(ctx, account="100103", assignee="tech1")
    tech1 = Phone(client, ctx, "tech1")
    voiding = record(
        ctx,
        order_id=None,
        household=order.household_id,
        supersedes=original["measurement_id"],
        supersede_reason="重测",
    )
    answer = tech1.push("measurement.record", 1, voiding)
    assert (answer["status"], answer["code"]) == ("rejected", "unknown_document")
    with ctx.db.session(readonly=True) as session:
        kept = session.get(Document, uuid.UUID(original["measurement_id"]))
        assert kept is not None and kept.superseded_by_id is None
        assert session.get(Document, uuid.UUID(voiding["measurement_id"])) is None
    correction = {**voiding, "measurement_id": str(uuid.uuid4())}
    assert inspector.push("measurement.record", 1, correction)["status"] == "applied"
    with ctx.db.session(readonly=True) as session:
        assert session.get(Document, uuid.UUID(original["measurement_id"])).superseded_by_id == uuid.UUID(
            correction["measurement_id"]
        )


def test_meter_readings_reach_the_order_with_their_photo_and_flags(
    client: TestClient, ctx: AppContext
) -> None:
    """A meter swap: the reading before and after, the second with its photo, the last one late."""
    tech1 = Phone(client, ctx, "tech1")
    order_id = str(new_order(ctx, kind="meter_service", account="100201").id)
    sha = tech1.upload_photo()
    before = {"work_order_id": order_id, "meter_id": "HM-2231", "value": 1234.5, "phase": "before"}
    after = {"work_order_id": order_id, "meter_id": "HM-9001", "value": 0.0, "phase": "after", "blob": sha}
    assert tech1.push("meter.reading", 1, before)["status"] == "applied"
    assert tech1.push("meter.reading", 1, after)["status"] == "applied"
    office = auth(login(client, "supervisor1"))
    dispatcher = auth(login(client, "dispatcher1"))
    cancelled = client.post(
        f"/api/v1/work-orders/{order_id}/cancel", json={"reason": "重复工单"}, headers=dispatcher
    )
    assert cancelled.status_code == 200, cancelled.text
    # A fact is never refused: a reading taken before the phone heard of the cancellation is kept, flagged.
    late = {"work_order_id": order_id, "meter_id": "HM-9001", "value": 0.4, "phase": "single"}
    assert tech1.push("meter.reading", 1, late)["status"] == "applied"
    readings = client.get(f"/api/v1/work-orders/{order_id}", headers=office).json()["evidence"][
        "meter_readings"
    ]
    assert [(r["meter_id"], r["value"], r["phase"], r["photo_sha256"]) for r in readings] == [
        ("HM-2231", 1234.5, "before", None),
        ("HM-9001", 0.0, "after", sha),
        ("HM-9001", 0.4, "single", None),
    ]
    assert [r["flags"] for r in readings] == [[], [], ["after_cancelled"]]


def test_bytes_sent_by_a_second_user_are_theirs_to_attach(client: TestClient, ctx: AppContext) -> None:
    """Found by review: the same bytes from two phones (a forwarded picture) were answered 200 and
    then refused to the second for good. Sending the bytes is what makes a file one's own."""
    tech1, tech2 = Phone(client, ctx, "tech1"), Phone(client, ctx, "tech2")
    data, sha = tech1.photo_bytes()
    assert client.put(f"/api/v1/blobs/{sha}", content=data, headers=auth(tech1.tokens)).status_code == 201
    theirs = str(new_order(ctx, assignee="tech2", account="200101").id)
    photo = {"work_order_id": theirs, "blob": sha, "purpose": "before"}
    assert tech2.push("evidence.photo", 1, photo)["status"] == "waiting"
    assert client.head(f"/api/v1/blobs/{sha}", headers=auth(tech2.tokens)).status_code == 404
    assert client.put(f"/api/v1/blobs/{sha}", content=data, headers=auth(tech2.tokens)).status_code == 200
    assert client.head(f"/api/v1/blobs/{sha}", headers=auth(tech2.tokens)).status_code == 200
    assert tech2.resend()["status"] == "applied"
    assert client.get(f"/api/v1/blobs/{sha}/display", headers=auth(tech2.tokens)).status_code == 200


def test_a_household_without_an_order_there_does_not_exist_for_field_staff(
    client: TestClient, ctx: AppContext
) -> None:
    """Found by review: a household of the company where tech2 holds no order answered forbidden,
    one that does not exist unknown_household: the id was confirmed."""
    order = inspection(ctx)  # 100103: inspector1's, not tech2's
    tech2 = Phone(client, ctx, "tech2")
    answers = [
        tech2.push("measurement.record", 1, record(ctx, order_id=None, household=household))
        for household in (order.household_id, uuid.uuid4())
    ]
    assert [(a["status"], a["code"], a["message"]) for a in answers] == [
        ("rejected", "unknown_household", "No such household.")
    ] * 2


def test_a_revisit_not_yours_answers_as_one_that_does_not_exist(client: TestClient, ctx: AppContext) -> None:
    order = new_order(ctx, assignee="tech2", account="200101")
    with ctx.db.session() as session:
        revisit = Revisit(
            id=uuid.uuid4(),
            company_id=order.company_id,
            order_id=order.id,
            household_id=order.household_id,
            due_at=ctx.clock.now(),
            state="due",
            created_at=ctx.clock.now(),
        )
        session.add(revisit)
    tech1 = Phone(client, ctx, "tech1")
    answers = [
        tech1.push("revisit.outcome", 1, {"revisit_id": str(r), "channel": "phone", "outcome": "satisfied"})
        for r in (revisit.id, uuid.uuid4())
    ]
    assert [(a["status"], a["code"], a["message"]) for a in answers] == [
        ("rejected", "not_found", "No such revisit.")
    ] * 2
