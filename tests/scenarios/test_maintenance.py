"""`heatcrew maintenance`: each retention rule with the clock moved on. What is old goes, what is
still needed stays, a dry run changes nothing, and a device that resends after its action log was
pruned still gets nothing applied twice. Both databases."""

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from litestar.testing import TestClient
from sqlmodel import select

from backend import audit, maintenance
from backend.audit.models import AuditEvent
from backend.audit.verify import verify_chain
from backend.cli import main
from backend.clock import ManualClock
from backend.context import AppContext
from backend.evidence.models import Blob, Photo
from backend.sync import changes
from backend.sync.models import SyncDevice
from tests.api.helpers import assert_error, auth, login
from tests.fixtures.console import signed_in
from tests.fixtures.field import principal
from tests.scenarios.conftest import count, first_order
from tests.scenarios.test_sync_scenarios import _backup, _restore, envelope, jpeg, raw_push, work_a_visit

pytestmark = pytest.mark.usefixtures("demo")


def with_settings(ctx: AppContext, **values: object) -> AppContext:
    """The same database, store and clock, with other retention settings."""
    return dataclasses.replace(ctx, settings=dataclasses.replace(ctx.settings, **values))


def notes(ctx: AppContext, order_id: str) -> list[str]:
    with ctx.db.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT data FROM work_order_event WHERE order_id = :o AND type = 'note'"),
            {"o": uuid.UUID(order_id).hex if ctx.settings.is_sqlite else uuid.UUID(order_id)},
        ).scalars()
        import json

        return sorted(json.loads(r)["text"] if isinstance(r, str) else r["text"] for r in rows)


def table_counts(ctx: AppContext) -> dict[str, int]:
    tables = ("change_log", "sync_action", "sync_device", "login_attempt", "rate_counter", "photo", "blob")
    counts = {t: count(ctx, f"SELECT count(*) FROM {t}") for t in tables}
    counts["removed_originals"] = count(
        ctx, "SELECT count(*) FROM photo WHERE original_removed_at IS NOT NULL"
    )
    counts["pruned_floors"] = count(ctx, "SELECT coalesce(sum(answers_pruned_below), 0) FROM sync_device")
    return counts


def stored_files(ctx: AppContext) -> list[str]:
    root = Path(ctx.settings.blob_dir or "")
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "tmp" not in p.parts)


# ---------------------------------------------------------------- the action log and exactly-once


def test_the_action_log_goes_but_a_resend_is_never_applied_twice(
    client: TestClient, ctx: AppContext, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(maintenance, "KEEP_LATEST_ANSWERS", 2)
    tokens = login(client, "tech1", device_id="raw-phone-m1")
    order_id = str(client.get("/api/v1/work-orders", headers=auth(tokens)).json()[0]["id"])
    first = [
        envelope(seq, "work_order.note", {"work_order_id": order_id, "text": f"note {seq}"})
        for seq in range(1, 6)
    ]
    assert raw_push(client, tokens, "raw-phone-m1", first, clock.now())["last_applied_seq"] == 5
    clock.advance(timedelta(days=91))
    tokens = login(client, "tech1", device_id="raw-phone-m1")
    later = [envelope(6, "work_order.note", {"work_order_id": order_id, "text": "note 6"}, at=clock.now())]
    assert raw_push(client, tokens, "raw-phone-m1", later, clock.now())["last_applied_seq"] == 6

    before = table_counts(ctx)
    dry = maintenance.run(ctx, dry_run=True)
    assert dry.category("action_log").rows == 4  # seq 1-4: old; seq 5 is old but among the latest two
    assert table_counts(ctx) == before

    report = maintenance.run(ctx)
    assert report.category("action_log").rows == 4
    seqs = count(ctx, "SELECT count(*) FROM sync_action WHERE device_id = 'raw-phone-m1'")
    assert seqs == 2
    with ctx.db.session(readonly=True) as session:
        device = session.get(SyncDevice, "raw-phone-m1")
        assert device is not None
        assert (device.last_applied_seq, device.answers_pruned_below) == (6, 5)

    # The phone resends everything it ever sent (a lost answer, a confused app): nothing applies.
    answer = raw_push(client, tokens, "raw-phone-m1", first + later, clock.now())
    assert [(r["status"], r.get("code")) for r in answer["results"]] == [
        ("duplicate", "answer_expired")
    ] * 4 + [("duplicate", None)] * 2
    assert [r.get("original_status") for r in answer["results"]][4:] == ["applied", "applied"]
    assert answer["last_applied_seq"] == 6
    assert notes(ctx, order_id) == sorted(f"note {seq}" for seq in range(1, 7))
    # The next seq is applied as usual, and the log's id guard still holds for the kept answers.
    nxt = [envelope(7, "work_order.note", {"work_order_id": order_id, "text": "note 7"}, at=clock.now())]
    assert raw_push(client, tokens, "raw-phone-m1", nxt, clock.now())["results"][0]["status"] == "applied"
    again = {**later[0], "seq": 8}
    refused = raw_push(client, tokens, "raw-phone-m1", [again], clock.now())["results"][0]
    assert (refused["status"], refused["original_status"]) == ("duplicate", "applied")
    assert len(notes(ctx, order_id)) == 7
    # seq 5 is no longer among the latest two (7 and 8): the next run takes it, then nothing more.
    assert maintenance.run(ctx).category("action_log").rows == 1
    assert maintenance.run(ctx).category("action_log").rows == 0


def test_a_restore_of_a_pruned_server_then_a_new_epoch_loses_and_doubles_nothing(
    make_phone, ctx: AppContext, clock: ManualClock, database_url: str, tmp_path: Path, monkeypatch
) -> None:
    """Extends ``test_a_server_restored_from_backup``: the backup holds an action log already
    pruned by maintenance, and the epoch is changed by the documented command."""
    monkeypatch.setattr(maintenance, "KEEP_LATEST_ANSWERS", 1)
    phone = make_phone("tech1")
    phone.pull()
    order_id = first_order(phone)
    work_a_visit(phone, order_id)  # seq 1-5
    phone.sync()
    clock.advance(timedelta(days=10))
    phone.enqueue("work_order.note", {"work_order_id": order_id, "text": "day ten"})  # seq 6
    phone.sync()
    fortnight = with_settings(ctx, action_log_retention_days=14)
    assert maintenance.run(fortnight).category("action_log").rows == 0  # nothing is 14 days old yet
    clock.advance(timedelta(days=5))
    assert maintenance.run(fortnight).category("action_log").rows == 5  # seq 1-5; seq 6 is the latest
    backup = _backup(ctx, database_url, tmp_path)
    phone.enqueue("work_order.note", {"work_order_id": order_id, "text": "lost in the restore"})  # seq 7
    phone.sync()
    _restore(ctx, database_url, backup)
    env = {
        "HEATCREW_DATABASE_URL": database_url,
        "HEATCREW_VAR_DIR": str(tmp_path / "cli-var"),
        "HEATCREW_SECRET_KEY": ctx.settings.secret_key,
    }
    result = CliRunner().invoke(main, ["sync", "new-epoch"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    pull = phone.pull()
    assert pull.resets == 1
    assert [a["seq"] for a in phone.pending()] == [7]
    assert phone.push().applied == 1
    texts = notes(ctx, order_id)
    assert texts == sorted(["更换排气阀", "day ten", "lost in the restore"])
    assert count(ctx, "SELECT count(*) FROM work_order_event WHERE type = 'accepted'") == 1
    with ctx.db.session(readonly=True) as session:
        device = session.get(SyncDevice, phone.device_id)
        assert device is not None
        assert (device.last_applied_seq, device.answers_pruned_below) == (7, 6)


# ---------------------------------------------------------------- the change feed


def test_the_change_feed_is_cut_and_a_phone_offline_longer_gets_a_reset(
    make_phone, client: TestClient, ctx: AppContext, clock: ManualClock
) -> None:
    tablet = make_phone("tech1", device="tech1-tablet")
    tablet.pull()  # then it stays in a drawer
    phone = make_phone("tech1")
    phone.pull()
    order_id = first_order(phone)
    phone.enqueue("work_order.accept", {"work_order_id": order_id})
    phone.sync()
    clock.advance(timedelta(days=8))
    phone.enqueue("work_order.note", {"work_order_id": order_id, "text": "a week later"})
    phone.sync()
    kept_before = changes_since(ctx, clock.now() - timedelta(days=1))
    assert kept_before > 0
    weekly = with_settings(ctx, change_feed_retention_days=7)
    dry = maintenance.run(weekly, dry_run=True)
    report = maintenance.run(weekly)
    assert report.category("change_feed").rows == dry.category("change_feed").rows > 0
    assert changes_since(ctx, clock.now() - timedelta(days=1)) == kept_before  # the recent ones stay
    assert phone.pull().resets == 0  # it has everything since
    assert tablet.pull().resets == 1  # it needed what was pruned: a full snapshot
    assert tablet.local("work_order")[order_id]["state"] == "accepted"


def changes_since(ctx: AppContext, since) -> int:
    with ctx.db.session(readonly=True) as session:
        from backend.sync.models import ChangeLog

        return len(session.exec(select(ChangeLog.id).where(ChangeLog.at >= since)).all())


# ---------------------------------------------------------------- login records and rate counters


def test_old_login_attempts_and_rate_counters_go_and_recent_ones_stay(
    client: TestClient, ctx: AppContext, clock: ManualClock
) -> None:
    tokens = login(client, "tech1")
    assert refresh(client, tokens) == 200
    client.post("/api/v1/auth/login", json={"username": "tech1", "password": "wrong", "device": _device()})
    old_attempts = count(ctx, "SELECT count(*) FROM login_attempt")
    assert old_attempts >= 2 and count(ctx, "SELECT count(*) FROM rate_counter") >= 1
    clock.advance(timedelta(days=31))
    fresh = login(client, "tech2")
    # A scope's counter is replaced by its next window's; one that saw no request since stays.
    report = maintenance.run(ctx)
    assert report.category("login_attempts").rows == old_attempts
    assert count(ctx, "SELECT count(*) FROM login_attempt") == 1
    assert report.category("rate_counters").rows == 1
    assert count(ctx, "SELECT count(*) FROM rate_counter") == 0
    assert refresh(client, fresh) == 200  # counting goes on
    assert maintenance.run(ctx).category("rate_counters").rows == 0
    assert count(ctx, "SELECT count(*) FROM rate_counter") == 1


def refresh(client: TestClient, tokens: dict) -> int:
    return client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code


def _device() -> dict[str, str]:
    return {"id": "phone-of-tech1", "platform": "android", "app_version": "1.0.0"}


# ---------------------------------------------------------------- unfinished uploads


def test_unfinished_uploads_past_the_expiry_go(ctx: AppContext, clock: ManualClock, tmp_path: Path) -> None:
    staging = ctx.blobs.uploads
    for name, age in (("old", timedelta(days=2)), ("new", timedelta(hours=1))):
        part = ctx.blobs.scratch_dir / f"upload.{name}"
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(name.encode() * 100)
        staging.save("u1", _sha(name), part, touched_at=clock.now() - age)
    dry = maintenance.run(ctx, dry_run=True)
    assert (dry.category("unfinished_uploads").rows, dry.category("unfinished_uploads").bytes) == (1, 300)
    assert staging.stat("u1", _sha("old")) is not None
    report = maintenance.run(ctx)
    assert (report.category("unfinished_uploads").rows, report.category("unfinished_uploads").bytes) == (
        1,
        300,
    )
    assert staging.stat("u1", _sha("old")) is None
    assert staging.stat("u1", _sha("new")) is not None


def _sha(name: str) -> str:
    import hashlib

    return hashlib.sha256(name.encode()).hexdigest()


# ---------------------------------------------------------------- photo originals


def test_photo_originals_go_after_the_order_closed_and_their_copies_stay(
    make_phone, client: TestClient, ctx: AppContext, clock: ManualClock, database_url: str, tmp_path: Path
) -> None:
    phone = make_phone("tech1")
    phone.pull()
    orders = sorted(phone.local("work_order"))
    closing, staying = orders[0], orders[1]
    only_here = phone.attach_file(jpeg(color=(10, 20, 30)))
    shared = phone.attach_file(jpeg(color=(200, 100, 0)))
    for order_id, sha in ((closing, only_here), (closing, shared), (staying, shared)):
        phone.enqueue("evidence.photo", {"work_order_id": order_id, "blob": sha, "purpose": "before"})
    phone.sync()
    assert count(ctx, "SELECT count(*) FROM photo") == 3
    dispatcher = auth(login(client, "dispatcher1"))
    cancel = client.post(
        f"/api/v1/work-orders/{closing}/cancel", json={"reason": "重复工单"}, headers=dispatcher
    )
    assert cancel.status_code == 200, cancel.text
    env = {
        "HEATCREW_DATABASE_URL": database_url,
        "HEATCREW_VAR_DIR": str(tmp_path / "cli-var"),
        "HEATCREW_SECRET_KEY": ctx.settings.secret_key,
    }
    result = CliRunner().invoke(main, ["companies", "photo-retention", "demo", "--days", "30"], env=env)
    assert result.exit_code == 0, result.output

    clock.advance(timedelta(days=29))
    assert maintenance.run(ctx).category("photo_originals").rows == 0  # not yet
    clock.advance(timedelta(days=2))
    with ctx.db.session(readonly=True) as session:
        blob = session.get(Blob, (principal(ctx, "tech1").company_id, only_here))
        assert blob is not None
        size, copies = blob.size, dict(blob.variants)
    before_files = stored_files(ctx)
    dry = maintenance.run(ctx, dry_run=True)
    assert stored_files(ctx) == before_files
    report = maintenance.run(ctx)
    removed = report.category("photo_originals")
    assert (removed.rows, removed.bytes) == (dry.category("photo_originals").rows, size) == (1, size)
    assert not ctx.blobs.exists(only_here)
    assert all(ctx.blobs.exists(copy) for copy in copies.values())
    assert ctx.blobs.exists(shared)  # an open order's photo still needs it
    with ctx.db.session(readonly=True) as session:
        marks = {(p.blob_sha256, p.order_id.hex): p.original_removed_at for p in session.exec(select(Photo))}
    assert marks[(only_here, uuid.UUID(closing).hex)] == clock.now()
    assert marks[(shared, uuid.UUID(closing).hex)] is None
    supervisor = auth(login(client, "supervisor1"))
    assert_error(client.get(f"/api/v1/blobs/{only_here}/original", headers=supervisor), 404, "blob_not_found")
    assert client.get(f"/api/v1/blobs/{only_here}/display", headers=supervisor).status_code == 200
    evidence = client.get(f"/api/v1/work-orders/{closing}", headers=supervisor).json()["evidence"]["photos"]
    assert sorted((p["sha256"], p["original_removed_at"] is not None) for p in evidence) == sorted(
        [(only_here, True), (shared, False)]
    )
    assert maintenance.run(ctx).category("photo_originals").rows == 0


# ---------------------------------------------------------------- all at once


def test_a_dry_run_changes_nothing_and_reports_what_the_run_then_removes(
    make_phone, client: TestClient, ctx: AppContext, clock: ManualClock
) -> None:
    phone = make_phone("tech1")
    phone.pull()
    order_id = first_order(phone)
    work_a_visit(phone, order_id)
    phone.sync()
    client.post("/api/v1/auth/login", json={"username": "tech1", "password": "wrong", "device": _device()})
    clock.advance(timedelta(days=120))
    short = with_settings(ctx, change_feed_retention_days=1, action_log_retention_days=14)
    monkey = maintenance.KEEP_LATEST_ANSWERS
    try:
        maintenance.KEEP_LATEST_ANSWERS = 1
        before, files = table_counts(ctx), stored_files(ctx)
        dry = maintenance.run(short, dry_run=True)
        assert dry.dry_run and table_counts(ctx) == before and stored_files(ctx) == files
        real = maintenance.run(short)
    finally:
        maintenance.KEEP_LATEST_ANSWERS = monkey
    assert {c.category: c.rows for c in dry.categories} == {c.category: c.rows for c in real.categories}
    assert real.category("action_log").rows == 4 and real.category("change_feed").rows > 0
    assert real.category("login_attempts").rows >= 2
    assert real.category("audit_log").rows == 0  # nothing in it is three years old
    assert table_counts(ctx) != before


def test_the_audit_log_loses_only_what_is_past_three_years_and_still_verifies(
    ctx: AppContext, clock: ManualClock
) -> None:
    # The installation's chain (failed logins of unknown usernames) starts empty in a new database;
    # a company's would start with the demo's own events, younger than these.
    company = audit.INSTALLATION
    now = clock.now()
    for moment, events in ((datetime(2020, 1, 10, tzinfo=UTC), 3), (now - timedelta(days=2 * 365), 2)):
        clock.set(moment)
        for _ in range(events):
            audit.record_alone(ctx.db, company_id=company, event=audit.Event.login, target_type="user")
    clock.set(now)

    def in_chain() -> int:
        with ctx.db.session(readonly=True) as session:
            return session.execute(
                sa.select(sa.func.count()).select_from(AuditEvent).where(AuditEvent.company_id == company)
            ).scalar_one()

    held, before = in_chain(), table_counts(ctx)
    dry = maintenance.run(ctx, dry_run=True)
    assert dry.category("audit_log").rows == 3 and table_counts(ctx) == before
    assert maintenance.run(ctx).category("audit_log").rows == 3
    with ctx.db.session(readonly=True) as session:
        chain = verify_chain(session, company_id=company)
    assert chain.ok and chain.anchor_seq == 3
    assert in_chain() == held - 3 + 1  # the pruning is recorded too


# ---------------------------------------------------------------- console sign-ins


def test_console_sign_ins_nobody_can_use_go_and_the_one_in_use_stays(
    client: TestClient, ctx: AppContext, clock: ManualClock
) -> None:
    """A sign-in left open in a browser nobody came back to stays a row until maintenance ends it;
    one signed out of is gone already; the one in use is not touched."""
    sessions = "SELECT count(*) FROM console_session"
    before = count(ctx, sessions)
    signed_in(client, "supervisor1")  # then the browser is closed: nobody comes back to it
    abandoned = count(ctx, "SELECT count(*) FROM auth_session WHERE revoked_at IS NULL")
    other = TestClient(client.app)
    with other:
        token = signed_in(other, "admin")
        out = other.post("/console/logout", data={"csrf_token": token}, follow_redirects=False)
        assert out.status_code == 303
    signed_in(client, "dispatcher1")  # this browser's cookie now names the dispatcher's sign-in
    assert count(ctx, sessions) == before + 2

    idle = ctx.settings.console_idle_timeout
    clock.advance(seconds=idle - 60)
    assert client.get("/console/orders").status_code == 200  # the dispatcher is at work
    clock.advance(seconds=120)  # the supervisor's sign-in is past the idle timeout
    dry = maintenance.run(ctx, dry_run=True).category("console_sessions")
    assert dry.rows == 1 and count(ctx, sessions) == before + 2
    assert maintenance.run(ctx).category("console_sessions").rows == 1
    assert count(ctx, sessions) == before + 1
    ended = count(ctx, "SELECT count(*) FROM auth_session WHERE revoke_reason = 'console_idle'")
    assert ended == 1
    assert count(ctx, "SELECT count(*) FROM auth_session WHERE revoked_at IS NULL") == abandoned
    assert client.get("/console/orders").status_code == 200  # still signed in
    assert maintenance.run(ctx).category("console_sessions").rows == 0


def test_the_command_prints_its_report_and_a_dry_run_as_json(
    ctx: AppContext, database_url: str, tmp_path: Path
) -> None:
    import json

    env = {
        "HEATCREW_DATABASE_URL": database_url,
        "HEATCREW_VAR_DIR": str(tmp_path / "cli-var"),
        "HEATCREW_SECRET_KEY": ctx.settings.secret_key,
        "HEATCREW_BLOB_DIR": str(ctx.settings.blob_dir),
    }
    result = CliRunner().invoke(main, ["maintenance", "--dry-run", "--json"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["dry_run"] is True
    assert [c["category"] for c in report["categories"]] == [
        "change_feed",
        "action_log",
        "login_attempts",
        "rate_counters",
        "console_sessions",
        "unfinished_uploads",
        "photo_originals",
        "audit_log",
    ]
    plain = CliRunner().invoke(main, ["maintenance"], env=env, catch_exceptions=False)
    assert plain.exit_code == 0 and "removed" in plain.output
    behind = CliRunner().invoke(main, ["maintenance"], env={**env, "HEATCREW_AUTO_MIGRATE": "false"})
    assert behind.exit_code == 0  # the schema is at the newest revision: it runs


def test_two_runs_at_once_on_postgresql_one_waits_out(ctx: AppContext) -> None:
    if ctx.settings.is_sqlite:
        pytest.skip("SQLite: one writer; every step is idempotent")
    with maintenance._run_lock(ctx) as first:
        assert first
        skipped = maintenance.run(ctx)
        assert skipped.skipped and skipped.categories == []
    assert maintenance.run(ctx).skipped is None


def test_after_a_new_epoch_the_feed_has_nothing_old_to_prune(ctx: AppContext) -> None:
    with ctx.db.session() as session:
        changes.bump_epoch(session, principal(ctx, "tech1").company_id)
    assert maintenance.run(ctx).category("change_feed").rows == 0


def test_runs_side_by_side_share_the_work_and_remove_each_row_once(
    client: TestClient, ctx: AppContext, clock: ManualClock
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    for name in ("tech1", "tech2", "inspector1", "supervisor1", "dispatcher1", "nobody"):
        client.post("/api/v1/auth/login", json={"username": name, "password": "wrong", "device": _device()})
    old = count(ctx, "SELECT count(*) FROM login_attempt")
    assert old == 6
    clock.advance(timedelta(days=31))
    one_by_one = with_settings(ctx, maintenance_batch_rows=1)  # many short transactions, interleaved
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda _: maintenance.run(one_by_one), range(2)))
    assert sum(r.category("login_attempts").rows for r in reports if r.skipped is None) == old
    assert count(ctx, "SELECT count(*) FROM login_attempt") == 0
