"""The sync scenarios the server must survive, each through HTTP with the reference client."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from sqlmodel import col, select

from backend.clock import ManualClock
from backend.context import AppContext
from backend.db import buffer
from backend.evidence.models import Measurement, Photo
from backend.sync import changes, handlers
from backend.sync.models import SyncDevice
from backend.work_orders.models import WorkOrder, WorkOrderEvent
from mobile_contract.client import LockedOut, Offline
from tests.api.helpers import auth, login
from tests.fixtures.field import principal
from tests.scenarios.conftest import first_order

pytestmark = pytest.mark.usefixtures("demo")

KNOCK = [{"method": "knock", "at": "2026-12-07T00:40:00Z"}]


def jpeg(color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(out, "JPEG")
    return out.getvalue()


def events(ctx: AppContext, order_id: str, event_type: str | None = None) -> list[WorkOrderEvent]:
    with ctx.db.session(readonly=True) as session:
        query = select(WorkOrderEvent).where(WorkOrderEvent.order_id == uuid.UUID(order_id))
        if event_type:
            query = query.where(WorkOrderEvent.type == event_type)
        return list(session.exec(query.order_by(col(WorkOrderEvent.received_at), col(WorkOrderEvent.id))))


def order_state(ctx: AppContext, order_id: str) -> WorkOrder:
    with ctx.db.session(readonly=True) as session:
        order = session.get(WorkOrder, uuid.UUID(order_id))
        assert order is not None
        return order


def last_applied(ctx: AppContext, device_id: str) -> int:
    with ctx.db.session(readonly=True) as session:
        device = session.get(SyncDevice, device_id)
        return device.last_applied_seq if device else 0


def work_a_visit(phone, order_id: str) -> list[str]:
    ids = [
        phone.enqueue("work_order.accept", {"work_order_id": order_id})[0],
        phone.enqueue("work_order.depart", {"work_order_id": order_id})[0],
        phone.enqueue(
            "work_order.arrive",
            {"work_order_id": order_id, "attempts": KNOCK, "outcome": "admitted", "badge_shown": True},
        )[0],
        phone.enqueue("work_order.start", {"work_order_id": order_id})[0],
        phone.enqueue("work_order.note", {"work_order_id": order_id, "text": "更换排气阀"})[0],
    ]
    return ids


# ---------------------------------------------------------------- lost answers, gaps, reordering


def test_the_same_batch_twice_after_a_lost_answer(make_phone, ctx: AppContext) -> None:
    phone = make_phone("tech1")
    phone.pull()
    order_id = first_order(phone, kind="leak")
    work_a_visit(phone, order_id)
    phone.network.lose_answers = 1
    with pytest.raises(Offline):
        phone.push()
    assert last_applied(ctx, phone.device_id) == 5  # the server did apply it
    assert all(not o["synced"] for o in map(phone.outcome, [a["id"] for a in phone.pending()]))
    report = phone.push()  # the phone never heard back: it sends the same batch again
    assert report.duplicates == 5 and report.applied == 0
    assert phone.pending() == []
    assert [e.type for e in events(ctx, order_id)][-5:] == [
        "accepted",
        "departed",
        "arrived",
        "started",
        "note",
    ]
    assert len(events(ctx, order_id, "note")) == 1
    assert order_state(ctx, order_id).state == "in_progress"


def test_a_duplicate_answers_with_the_original_result(make_phone, client: TestClient) -> None:
    phone = make_phone("tech1")
    phone.pull()
    order_id = first_order(phone)
    start_id, _ = phone.enqueue("work_order.start", {"work_order_id": order_id})  # not accepted yet
    phone.network.lose_answers = 1
    with pytest.raises(Offline):
        phone.push()
    phone.push()
    outcome = phone.outcome(start_id)
    assert outcome["status"] == "conflict"  # the first answer, not "duplicate"
    assert outcome["code"] == "illegal_transition"
    assert outcome["current"]["state"] == "assigned"


def raw_push(
    client: TestClient, tokens: dict, device_id: str, actions: list[dict], sent_at: datetime
) -> dict:
    response = client.post(
        "/api/v1/sync/push",
        json={"device_id": device_id, "sent_at": sent_at.isoformat(), "actions": actions},
        headers=auth(tokens),
    )
    assert response.status_code == 200, response.text
    return response.json()


def envelope(seq: int, action_type: str, payload: dict, *, v: int = 1, at: datetime | None = None) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "seq": seq,
        "type": action_type,
        "v": v,
        "occurred_at": (at or datetime(2026, 12, 7, 0, 35, tzinfo=UTC)).isoformat(),
        "payload": payload,
    }


def test_a_gap_is_not_applied_and_a_reordered_batch_is(
    client: TestClient, ctx: AppContext, clock: ManualClock
) -> None:
    tokens = login(client, "tech1", device_id="raw-phone-01")
    order_id = str(next(o["id"] for o in client.get("/api/v1/work-orders", headers=auth(tokens)).json()))
    accept = envelope(1, "work_order.accept", {"work_order_id": order_id})
    note2 = envelope(2, "work_order.note", {"work_order_id": order_id, "text": "二"})
    note3 = envelope(3, "work_order.note", {"work_order_id": order_id, "text": "三"})
    answer = raw_push(client, tokens, "raw-phone-01", [note2, note3], clock.now())
    assert answer["last_applied_seq"] == 0
    assert [r["status"] for r in answer["results"]] == ["out_of_order", "out_of_order"]
    assert answer["results"][0]["retryable"] is True
    assert "Resend from seq 1" in answer["results"][0]["message"]
    assert events(ctx, order_id, "note") == []
    answer = raw_push(client, tokens, "raw-phone-01", [note3, accept, note2], clock.now())
    assert answer["last_applied_seq"] == 3
    assert [(r["seq"], r["status"]) for r in answer["results"]] == [
        (1, "applied"),
        (2, "applied"),
        (3, "applied"),
    ]
    assert [e.data["text"] for e in events(ctx, order_id, "note")] == ["二", "三"]


def test_a_crash_mid_batch_leaves_all_or_nothing(
    make_phone, ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server dies after applying three of five actions, before its commit (see also the kill -9 test)."""
    from backend.sync import push

    phone = make_phone("tech1")
    phone.pull()
    order_id = first_order(phone)
    work_a_visit(phone, order_id)
    real_remember = push._remember
    calls = {"n": 0}

    def dies_on_the_fourth(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("power cut")
        return real_remember(*args, **kwargs)

    monkeypatch.setattr(push, "_remember", dies_on_the_fourth)
    with pytest.raises(Offline):
        phone.push()
    assert calls["n"] == 4
    assert last_applied(ctx, phone.device_id) == 0
    assert [e.type for e in events(ctx, order_id) if e.actor_id == principal(ctx, "tech1").user_id] == []
    assert order_state(ctx, order_id).state == "assigned"
    monkeypatch.setattr(push, "_remember", real_remember)  # the server is back
    report = phone.push()
    assert report.applied == 5
    assert len(events(ctx, order_id, "accepted")) == 1
    assert order_state(ctx, order_id).state == "in_progress"


def _fields(handler: handlers.Handler) -> dict:
    return {name: getattr(handler, name) for name in handlers.Handler.__slots__}


# ---------------------------------------------------------------- the order moved on while offline


def test_reassigned_while_offline_facts_kept_intents_conflict(
    make_phone, client: TestClient, ctx: AppContext
) -> None:
    phone = make_phone("tech1")
    phone.pull()
    order_id = first_order(phone, kind="leak")
    phone.network.offline = True
    phone.enqueue("work_order.accept", {"work_order_id": order_id})
    phone.enqueue(
        "work_order.arrive",
        {"work_order_id": order_id, "attempts": KNOCK, "outcome": "admitted", "badge_shown": True},
    )
    note_id, _ = phone.enqueue("work_order.note", {"work_order_id": order_id, "text": "阀门已关"})
    start_id, _ = phone.enqueue("work_order.start", {"work_order_id": order_id})
    with pytest.raises(Offline):
        phone.sync()
    # Meanwhile the dispatcher gave the order to tech2.
    dispatcher = auth(login(client, "dispatcher1"))
    tech2 = str(principal(ctx, "tech2").user_id)
    assert (
        client.post(
            f"/api/v1/work-orders/{order_id}/assign", json={"user_id": tech2}, headers=dispatcher
        ).status_code
        == 200
    )
    phone.network.offline = False
    phone.push()
    assert phone.outcome(note_id)["status"] == "applied"  # facts are never refused
    start = phone.outcome(start_id)
    assert start["status"] == "conflict"
    assert start["current"] == {
        "work_order_id": order_id,
        "state": "assigned",
        "assigned_to_you": False,
        "version": start["current"]["version"],
        "allowed_moves": [],
    }
    order = order_state(ctx, order_id)
    assert "after_reassignment" in order.review_flags
    assert order.state == "assigned"
    phone.pull()
    assert order_id not in phone.local("work_order")  # it left the phone's scope


def test_cancelled_while_offline(make_phone, client: TestClient, ctx: AppContext) -> None:
    phone = make_phone("tech1")
    phone.pull()
    order_id = first_order(phone)
    phone.enqueue("work_order.accept", {"work_order_id": order_id})
    phone.push()
    client.post(
        f"/api/v1/work-orders/{order_id}/cancel",
        json={"reason": "住户已自行修好"},
        headers=auth(login(client, "dispatcher1")),
    )
    arrive_id, _ = phone.enqueue(
        "work_order.arrive",
        {"work_order_id": order_id, "attempts": KNOCK, "outcome": "admitted", "badge_shown": True},
    )
    complete_id, _ = phone.enqueue("work_order.complete", {"work_order_id": order_id, "result": "fixed"})
    phone.sync()
    assert phone.outcome(arrive_id)["status"] == "applied"
    assert phone.outcome(complete_id)["status"] == "conflict"
    assert phone.outcome(complete_id)["current"]["state"] == "cancelled"
    assert events(ctx, order_id, "arrived")[0].flags == ["after_cancelled"]
    assert order_id not in phone.local("work_order")


# ---------------------------------------------------------------- failures that must not block the queue


def test_an_action_that_always_fails_does_not_block_the_queue(
    make_phone, ctx: AppContext, monkeypatch
) -> None:
    phone = make_phone("tech1")
    phone.pull()
    order_id = first_order(phone)
    real = handlers.CATALOGUE[("work_order.note", 1)]

    def broken(applying, payload):
        raise RuntimeError("a bug in the note handler")

    monkeypatch.setitem(
        handlers.CATALOGUE, ("work_order.note", 1), handlers.Handler(**{**_fields(real), "apply": broken})
    )
    phone.enqueue("work_order.accept", {"work_order_id": order_id})
    note_id, _ = phone.enqueue("work_order.note", {"work_order_id": order_id, "text": "poison"})
    bad_id, _ = phone.enqueue("work_order.contact", {"work_order_id": order_id, "outcome": "maybe"})
    phone.enqueue("work_order.depart", {"work_order_id": order_id})
    report = phone.push()
    assert report.applied == 2 and report.rejected == 2
    assert phone.outcome(note_id)["code"] == "server_error"
    assert phone.outcome(bad_id)["code"] == "invalid_payload"
    assert phone.pending() == []
    assert order_state(ctx, order_id).state == "en_route"
    assert events(ctx, order_id, "note") == []  # the failed action left nothing half-written
    # The refused actions stay readable for the device, payload included.
    status = phone.http.request(
        "GET", "/api/v1/sync/status", headers={"Authorization": f"Bearer {phone._get('access_token')}"}
    )
    refused = {r["id"]: r for r in status.json()["refused"]}
    assert refused[note_id]["code"] == "server_error"
    assert refused[bad_id]["message"].startswith("Invalid enum value 'maybe'")


def test_a_write_the_database_refuses_fails_that_action_only(
    make_phone, ctx: AppContext, monkeypatch
) -> None:
    # Rows are written in bulk, part of them while the batch goes on (every 50 actions): a row the
    # database refuses (here a bug writes an event for an order that does not exist) surfaces after
    # its handler returned, and must still cost only its own action, not the batch.
    phone = make_phone("tech1")
    phone.pull()
    order_id = first_order(phone)
    real = handlers.CATALOGUE[("work_order.note", 1)]

    def writes_a_bad_row(applying, payload):
        real.apply(applying, payload)
        if payload.text == "poison":
            when = applying.when
            row = {
                "id": uuid.uuid4(),
                "order_id": uuid.uuid4(),  # no such order: the foreign key refuses it
                "type": "note",
                "actor_id": applying.actor.user_id,
                "occurred_at": when.occurred_at,
                "received_at": when.received_at,
                "corrected_at": when.corrected_at,
                "data": {},
                "flags": [],
            }
            buffer.add_row(applying.session, WorkOrderEvent.__table__, row)

    monkeypatch.setitem(
        handlers.CATALOGUE,
        ("work_order.note", 1),
        handlers.Handler(**{**_fields(real), "apply": writes_a_bad_row}),
    )
    phone.enqueue("work_order.accept", {"work_order_id": order_id})
    texts = [f"读数 {n}" for n in range(1, 80)]
    texts[60] = "poison"
    note_ids = [phone.enqueue("work_order.note", {"work_order_id": order_id, "text": t})[0] for t in texts]
    report = phone.push()
    assert report.requests == 1 and report.applied == 79 and report.rejected == 1
    assert phone.outcome(note_ids[60])["code"] == "server_error"
    assert phone.pending() == []
    assert last_applied(ctx, phone.device_id) == 80
    kept = [e.data["text"] for e in events(ctx, order_id, "note")]
    assert sorted(kept) == sorted(t for t in texts if t != "poison")
    assert order_state(ctx, order_id).state == "accepted"


@pytest.mark.parametrize("skew", [timedelta(days=3), timedelta(days=-2), timedelta(minutes=-4)])
def test_clock_skew(make_phone, ctx: AppContext, clock: ManualClock, skew: timedelta) -> None:
    phone = make_phone("tech1", skew=skew)
    phone.pull()
    order_id = first_order(phone, kind="leak")  # called in 10 min ago: 20 min left on the arrive clock
    phone.enqueue("work_order.accept", {"work_order_id": order_id})
    clock.advance(minutes=15)
    phone.enqueue(
        "work_order.arrive",
        {"work_order_id": order_id, "attempts": KNOCK, "outcome": "admitted", "badge_shown": True},
    )
    arrived_at = clock.now()
    clock.advance(minutes=45)  # synced from the street long after the 30 minutes
    phone.sync()
    arrived = events(ctx, order_id, "arrived")[0]
    assert arrived.occurred_at == arrived_at + skew  # the phone's own clock is kept
    assert abs(arrived.corrected_at - arrived_at) < timedelta(seconds=2)  # and corrected
    assert arrived.received_at == clock.now()
    assert ("clock_skew" in arrived.flags) is (abs(skew) > timedelta(minutes=5))
    detail = phone.http.request(
        "GET",
        f"/api/v1/work-orders/{order_id}",
        headers={"Authorization": f"Bearer {phone._get('access_token')}"},
    ).json()
    arrive_clock = next(c for c in detail["order"]["clocks"] if c["clock"] == "arrive")
    assert arrive_clock["status"] == "met"  # field time, not sync time


def test_two_devices_of_one_user(make_phone, ctx: AppContext) -> None:
    phone = make_phone("tech1", device="tech1-phone")
    tablet = make_phone("tech1", device="tech1-tablet")
    phone.pull()
    tablet.pull()
    order_id = first_order(phone, kind="leak")
    phone.enqueue("work_order.accept", {"work_order_id": order_id})
    tablet.enqueue("work_order.note", {"work_order_id": order_id, "text": "平板记录"})
    accept_again, _ = tablet.enqueue("work_order.accept", {"work_order_id": order_id})
    phone.enqueue("work_order.note", {"work_order_id": order_id, "text": "手机记录"})
    tablet.push()
    phone.push()
    assert last_applied(ctx, "tech1-phone") == 2 and last_applied(ctx, "tech1-tablet") == 2
    assert sorted(e.data["text"] for e in events(ctx, order_id, "note")) == ["平板记录", "手机记录"]
    assert len(events(ctx, order_id, "accepted")) == 1
    assert tablet.outcome(accept_again)["status"] == "applied"  # the tablet was first
    phone.pull()
    tablet.pull()
    assert phone.local("work_order")[order_id] == tablet.local("work_order")[order_id]
    assert phone.local("work_order")[order_id]["state"] == "accepted"


def test_an_app_upgrade_with_old_version_actions_queued(make_phone, ctx: AppContext) -> None:
    phone = make_phone("tech1")
    phone.pull()
    order_id = first_order(phone)
    for action_id in work_a_visit(phone, order_id)[:4]:
        assert action_id
    for shade, purpose in enumerate(("before", "after")):
        sha = phone.attach_file(jpeg(color=(60 * shade, 90, 120)))
        phone.enqueue("evidence.photo", {"work_order_id": order_id, "blob": sha, "purpose": purpose})
    old, _ = phone.enqueue(
        "work_order.complete", {"work_order_id": order_id, "result": "fixed", "satisfaction": 5}, v=1
    )
    future, _ = phone.enqueue("work_order.note", {"work_order_id": order_id, "text": "v9"}, v=9)
    current, _ = phone.enqueue(
        "work_order.note", {"work_order_id": order_id, "text": "after the upgrade", "mood": "new field"}
    )
    phone.push()
    assert phone.outcome(old)["status"] == "applied"
    assert order_state(ctx, order_id).state == "revisit_due"
    refused = phone.outcome(future)
    assert refused["status"] == "rejected" and refused["code"] == "unsupported_action_version"
    assert "v1" in refused["message"]
    assert phone.outcome(current)["status"] == "applied"  # unknown extra fields are tolerated


def test_a_misspelled_action_type_is_told_apart_from_an_old_version(make_phone, ctx: AppContext) -> None:
    phone = make_phone("tech1")
    phone.pull()
    order_id = first_order(phone)
    typo, _ = phone.enqueue("work_order.notes", {"work_order_id": order_id, "text": "多了个 s"})
    after, _ = phone.enqueue("work_order.note", {"work_order_id": order_id, "text": "正确的"})
    phone.push()
    assert (phone.outcome(typo)["status"], phone.outcome(typo)["code"]) == ("rejected", "unknown_action_type")
    assert phone.outcome(after)["status"] == "applied"


def test_a_token_expired_after_a_week_offline(make_phone, ctx: AppContext, clock: ManualClock) -> None:
    phone = make_phone("tech1")
    phone.pull()
    order_id = first_order(phone)
    phone.network.offline = True
    queued = work_a_visit(phone, order_id)
    clock.advance(days=7)
    phone.network.offline = False
    push, _ = phone.sync()
    assert push.applied == 5
    assert [phone.outcome(i)["status"] for i in queued] == ["applied"] * 5
    assert "POST /api/v1/auth/refresh" in phone.network.requests


def test_refresh_answers_lost_three_times_in_a_row_the_phone_stays_logged_in(
    make_phone, clock: ManualClock
) -> None:
    phone = make_phone("tech1")
    phone.pull()
    queued = work_a_visit(phone, first_order(phone))
    clock.advance(minutes=16)  # the access token has expired: the next push refreshes first
    phone.network.lose_only = "/api/v1/auth/refresh"
    phone.network.lose_answers = 3
    for _ in range(3):
        with pytest.raises(Offline):
            phone.push()  # the server rotated the token, the answer never came back
        clock.advance(seconds=10)
    report = phone.push()  # the same old token a fourth time: still a retry, not theft
    assert report.applied == 5
    assert [phone.outcome(i)["status"] for i in queued] == ["applied"] * 5
    assert phone.network.requests.count("POST /api/v1/auth/refresh") == 4


def test_a_rate_limited_refresh_leaves_the_phone_logged_in(
    make_phone, client: TestClient, clock: ManualClock
) -> None:
    phone = make_phone("tech1")
    phone.pull()
    queued = work_a_visit(phone, first_order(phone))
    clock.advance(minutes=16)
    for _ in range(60):  # the address's refreshes for this minute are spent (the crew shares a NAT)
        client.post("/api/v1/auth/refresh", json={"refresh_token": uuid.uuid4().hex})
    with pytest.raises(Offline):
        phone.push()  # 429: try again later, the queue and the login are kept
    clock.advance(seconds=60)
    assert phone.push().applied == 5
    assert [phone.outcome(i)["status"] for i in queued] == ["applied"] * 5


# ---------------------------------------------------------------- photos travel apart


def test_a_photo_uploaded_but_its_action_lost(make_phone, ctx: AppContext) -> None:
    phone = make_phone("tech1")
    phone.pull()
    order_id = first_order(phone)
    sha = phone.attach_file(jpeg())
    photo_id, _ = phone.enqueue("evidence.photo", {"work_order_id": order_id, "blob": sha, "purpose": "leak"})
    phone.network.lose_answers = 1
    with pytest.raises(Offline):
        phone.push()
    phone.push()
    assert phone.outcome(photo_id)["status"] == "applied"
    with ctx.db.session(readonly=True) as session:
        photos = session.exec(select(Photo).where(Photo.blob_sha256 == sha)).all()
    assert len(photos) == 1
    assert ctx.blobs.exists(sha)
    assert sum(r.startswith("PUT /api/v1/blobs/") for r in phone.network.requests) == 1


def test_an_action_before_its_photo_waits(client: TestClient, ctx: AppContext, clock: ManualClock) -> None:
    tokens = login(client, "tech1", device_id="raw-phone-02")
    order_id = str(client.get("/api/v1/work-orders", headers=auth(tokens)).json()[0]["id"])
    content = jpeg(color=(10, 200, 30))
    import hashlib

    sha = hashlib.sha256(content).hexdigest()
    batch = [
        envelope(1, "work_order.note", {"work_order_id": order_id, "text": "before the photo"}),
        envelope(2, "evidence.photo", {"work_order_id": order_id, "blob": sha, "purpose": "before"}),
        envelope(3, "work_order.note", {"work_order_id": order_id, "text": "after the photo"}),
    ]
    answer = raw_push(client, tokens, "raw-phone-02", batch, clock.now())
    assert answer["last_applied_seq"] == 1
    waiting = answer["results"][1]
    assert waiting["status"] == "waiting" and waiting["code"] == "blob_missing"
    assert waiting["missing"] == [sha] and waiting["retryable"] is True
    assert answer["results"][2]["status"] == "out_of_order"
    upload = client.put(f"/api/v1/blobs/{sha}", content=content, headers=auth(tokens))
    assert upload.status_code == 201
    answer = raw_push(client, tokens, "raw-phone-02", batch, clock.now())
    assert [r["status"] for r in answer["results"]] == ["duplicate", "applied", "applied"]
    assert answer["last_applied_seq"] == 3


# ---------------------------------------------------------------- the feed's edges


def test_offline_longer_than_the_change_log_is_kept(make_phone, client: TestClient, ctx: AppContext) -> None:
    phone = make_phone("tech1")
    phone.pull()
    order_id = first_order(phone)
    dispatcher = auth(login(client, "dispatcher1"))
    client.post(f"/api/v1/work-orders/{order_id}/cancel", json={"reason": "重复工单"}, headers=dispatcher)
    with ctx.db.session() as session:
        company_id = principal(ctx, "tech1").company_id
        changes.prune(session, company_id=company_id, below_version=changes.head(session, company_id) + 1)
    report = phone.pull()
    assert report.resets == 1
    assert order_id not in phone.local("work_order")  # the snapshot no longer has it
    assert len(phone.local("work_order")) == 2


def test_a_server_restored_from_backup(make_phone, ctx: AppContext, database_url: str, tmp_path) -> None:
    phone = make_phone("tech1")
    phone.pull()
    order_id = first_order(phone)
    phone.enqueue("work_order.accept", {"work_order_id": order_id})
    phone.push()
    backup = _backup(ctx, database_url, tmp_path)
    phone.enqueue("work_order.note", {"work_order_id": order_id, "text": "lost in the restore"})
    phone.enqueue("work_order.depart", {"work_order_id": order_id})
    phone.sync()
    assert last_applied(ctx, phone.device_id) == 3
    _restore(ctx, database_url, backup)
    with ctx.db.session() as session:  # the operator's step after a restore: heatcrew sync new-epoch
        changes.bump_epoch(session, principal(ctx, "tech1").company_id)
    assert last_applied(ctx, phone.device_id) == 1
    pull = phone.pull()
    assert pull.resets == 1  # the new epoch tells the phone its copy is stale
    # The server had forgotten seq 2 and 3; the phone kept them and gives them again.
    assert [a["seq"] for a in phone.pending()] == [2, 3]
    assert phone.push().applied == 2
    assert last_applied(ctx, phone.device_id) == 3
    assert [e.data.get("text") for e in events(ctx, order_id, "note")] == ["lost in the restore"]
    assert order_state(ctx, order_id).state == "en_route"


def _backup(ctx: AppContext, database_url: str, tmp_path) -> str:
    ctx.db.dispose()
    if database_url.startswith("sqlite"):
        import sqlite3

        # SQLite's online backup (the `.backup` of the docs): it includes what is still in the WAL.
        source = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        target = sqlite3.connect(tmp_path / "backup.db")
        with source, target:
            source.backup(target)
        source.close()
        target.close()
        return str(tmp_path / "backup.db")
    name = sa.engine.make_url(database_url).database
    admin = sa.create_engine(database_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}_bak" WITH (FORCE)'))
        # A template must have no connections: the live hub's listener (which reconnects) is ended.
        for attempt in range(50):
            conn.execute(
                sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                {"name": name},
            )
            try:
                conn.execute(sa.text(f'CREATE DATABASE "{name}_bak" TEMPLATE "{name}"'))
                break
            except sa.exc.OperationalError:
                if attempt == 49:
                    raise
    admin.dispose()
    return f"{name}_bak"


def _restore(ctx: AppContext, database_url: str, backup: str) -> None:
    ctx.db.dispose()
    ctx.live.release_database()  # every connection to the file is let go before it is replaced
    if database_url.startswith("sqlite"):
        import os
        import shutil

        target = database_url.removeprefix("sqlite:///")
        for suffix in ("-wal", "-shm"):
            if os.path.exists(target + suffix):
                os.remove(target + suffix)
        shutil.copyfile(backup, target)
        return
    name = sa.engine.make_url(database_url).database
    admin = sa.create_engine(database_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{backup}"'))
        conn.execute(sa.text(f'DROP DATABASE "{backup}" WITH (FORCE)'))
    admin.dispose()


def test_access_revoked_keeps_the_queue(make_phone, client: TestClient, ctx: AppContext) -> None:
    phone = make_phone("tech1")
    phone.pull()
    order_id = first_order(phone)
    queued = work_a_visit(phone, order_id)
    client.post(
        f"/api/v1/devices/{phone.device_id}/revoke",
        json={"reason": "lost"},
        headers=auth(login(client, "supervisor1")),
    )
    with pytest.raises(LockedOut) as locked:
        phone.sync()
    assert locked.value.code == "device_revoked"
    assert [a["id"] for a in phone.pending()] == queued  # nothing dropped on the phone
    assert events(ctx, order_id, "accepted") == []


def test_a_residents_record_created_on_two_devices(make_phone, ctx: AppContext) -> None:
    phone = make_phone("inspector1", device="inspector-phone")
    tablet = make_phone("inspector1", device="inspector-tablet")
    phone.pull()
    order_id = first_order(phone, kind="temperature_complaint")
    household_id = phone.local("work_order")[order_id]["household_id"]
    record = {
        "measurement_id": str(uuid.uuid4()),
        "household_id": household_id,
        "work_order_id": order_id,
        "instrument_id": "TH-0042",
        "rooms": [{"name": "主卧", "kind": "bedroom", "readings_c": [18.4, 18.5, 18.4], "height_m": 1.3}],
        "outdoor_c": -12.5,
        "closed_minutes": 35,
    }
    # The same record was copied to both devices (say, the tablet resent it after a hand-over).
    phone.enqueue("measurement.record", record)
    same, _ = tablet.enqueue("measurement.record", record)
    changed, _ = tablet.enqueue(
        "measurement.record", {**record, "rooms": [{**record["rooms"][0], "readings_c": [25.0, 25.0, 25.0]}]}
    )
    other, _ = tablet.enqueue("measurement.record", {**record, "measurement_id": str(uuid.uuid4())})
    phone.push()
    tablet.push()
    assert tablet.outcome(same)["status"] == "applied"
    assert tablet.outcome(changed)["code"] == "document_frozen"  # a signed-to-be record is never edited
    assert tablet.outcome(other)["status"] == "applied"
    with ctx.db.session(readonly=True) as session:
        records = session.exec(
            select(Measurement).where(Measurement.household_id == uuid.UUID(household_id))
        ).all()
    assert len(records) == 2
    assert {tuple(r.rooms[0]["readings_c"]) for r in records} == {(18.4, 18.5, 18.4)}
    assert {r.result for r in records} == {"pass"}  # computed by the server: 18.4 °C by day


def test_a_refused_photo_does_not_block_the_queue(make_phone, ctx: AppContext) -> None:
    phone = make_phone("tech1")
    phone.pull()
    order_id = first_order(phone)
    sha = phone.attach_file(b"%PDF-1.4 not a photo at all")
    photo_id, _ = phone.enqueue(
        "evidence.photo", {"work_order_id": order_id, "blob": sha, "purpose": "before"}
    )
    note_id, _ = phone.enqueue("work_order.note", {"work_order_id": order_id, "text": "after the bad photo"})
    phone.push()
    assert phone.outcome(photo_id)["status"] == "rejected"
    assert phone.outcome(photo_id)["code"] == "blob_refused"
    assert "unsupported_image_format" in phone.outcome(photo_id)["message"]
    assert phone.outcome(note_id)["status"] == "applied"
    assert not ctx.blobs.exists(sha)
