"""``heatcrew maintenance``: every retention rule, enforced in one run, reported per category.

Each category deletes what is past its retention (settings in ``backend.settings``, one per
company for photo originals) in short transactions of at most ``HEATCREW_MAINTENANCE_BATCH_ROWS``
rows, so the field's pushes never wait long behind it. Every delete is idempotent: two runs at
once (two CronJob pods, a person at a terminal) only share the work. On PostgreSQL a run also
takes a session advisory lock, and a second run finds it taken and does nothing. ``dry_run``
counts what would go and changes nothing, in the database or the blob store.

Categories (see docs/ARCHITECTURE.md, "Data lifecycle"):

- ``change_feed``: ``change_log`` rows older than the feed's retention (``changes.prune_before``);
- ``action_log``: answers to pushed actions (``sync_action``) older than their retention, but
  never a device's latest ``KEEP_LATEST_ANSWERS``, and never ``sync_device`` itself;
- ``login_attempts`` and ``rate_counters``: past the login records' retention;
- ``console_sessions``: console sign-ins that can no longer be used (idle, past their lifetime,
  or their auth session ended); an auth session still open is ended with them;
- ``unfinished_uploads``: partials past ``HEATCREW_UPLOAD_EXPIRY`` (as ``heatcrew blobs sweep``);
- ``photo_originals``: originals of photos on orders closed longer ago than the company's retention,
  and of photos taken before their resident's erasure that arrived after it (queued offline);
- ``audit_log``: through :func:`prune_audit_log`, the audit log's own ``prune_before``;

Not a retention rule, so not a category: a real run then folds the KPI rollup's delta rows into
one per key (``reports.rollup.compact``), reported as ``kpi_rows_folded``.
"""

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlmodel import Session, col, select

from backend import audit
from backend.auth.models import AuthSession, LoginAttempt, RateCounter
from backend.console.models import ConsoleSession
from backend.context import AppContext
from backend.evidence.models import Blob, Measurement, MeterReading, Photo, Signature
from backend.org.models import Company, Household
from backend.sync import changes, live
from backend.sync.models import ChangeLog, SyncAction, SyncDevice
from backend.work_orders.models import WorkOrder

__all__ = (
    "KEEP_LATEST_ANSWERS",
    "MaintenanceReport",
    "Removed",
    "prune_audit_log",
    "remove_photo_originals",
    "run",
)

log = logging.getLogger("heatcrew.maintenance")

KEEP_LATEST_ANSWERS = 500
"""A device's newest answers kept whatever their age: at least one whole batch (``MAX_BATCH``)."""

# PostgreSQL advisory lock key of a maintenance run (any constant; this one spells "HCMAINT").
_LOCK_KEY = 0x48434D41494E54


class Removed(msgspec.Struct):
    """What one category removed (or, in a dry run, would remove)."""

    category: str
    rows: int = 0
    bytes: int = 0
    note: str | None = None


class MaintenanceReport(msgspec.Struct):
    dry_run: bool
    at: datetime
    categories: list[Removed] = msgspec.field(default_factory=list)
    skipped: str | None = None
    """Set when nothing ran: another run holds the lock."""
    kpi_rows_folded: int = 0
    """The KPI rollup's delta rows folded away (a real run)."""

    def category(self, name: str) -> Removed:
        return next(c for c in self.categories if c.category == name)


def run(ctx: AppContext, *, dry_run: bool = False) -> MaintenanceReport:
    """Enforce every retention rule now (by ``ctx.clock``)."""
    now = ctx.clock.now()
    report = MaintenanceReport(dry_run=dry_run, at=now)
    with _run_lock(ctx) as got:
        if not got:
            report.skipped = "another maintenance run holds the lock"
            return report
        settings = ctx.settings
        steps = [
            lambda: _change_feed(ctx, now - timedelta(days=settings.change_feed_retention_days), dry_run),
            lambda: _action_log(ctx, now - timedelta(days=settings.action_log_retention_days), dry_run),
            lambda: _login_attempts(ctx, now - timedelta(days=settings.login_record_retention_days), dry_run),
            lambda: _rate_counters(ctx, now - timedelta(days=settings.login_record_retention_days), dry_run),
            lambda: _console_sessions(ctx, now, dry_run),
            lambda: _unfinished_uploads(ctx, now - timedelta(seconds=settings.upload_expiry), dry_run),
            lambda: _photo_originals(ctx, now, dry_run),
            # The setting counts days, the log keeps three calendar years: never ask for younger rows.
            lambda: _audit_log(
                ctx,
                min(now - timedelta(days=settings.audit_retention_days), audit.retention_cutoff(now)),
                dry_run,
            ),
        ]
        for step in steps:
            removed = step()
            log.info("maintenance %s: %s rows, %s bytes", removed.category, removed.rows, removed.bytes)
            report.categories.append(removed)
        if not dry_run:
            report.kpi_rows_folded = _kpi_rollup(ctx)
            log.info("maintenance kpi_rollup: %s delta rows folded", report.kpi_rows_folded)
    return report


@contextmanager
def _run_lock(ctx: AppContext) -> Iterator[bool]:
    """PostgreSQL: one run at a time, by a session advisory lock on a connection of its own.
    SQLite has one writer anyway, and every step is idempotent."""
    engine = ctx.db.engine
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as conn:
        got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": _LOCK_KEY}).scalar_one()
        conn.commit()
        try:
            yield bool(got)
        finally:
            if got:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
                conn.commit()


def _companies(ctx: AppContext) -> list[Company]:
    with ctx.db.session(readonly=True) as session:
        return list(session.exec(select(Company).order_by(col(Company.code))))


def _kpi_rollup(ctx: AppContext) -> int:
    """Fold the KPI rollup's deltas: one statement on PostgreSQL, which pushes never wait for
    (they only insert)."""
    from backend.reports import rollup  # the rollup's tables and rules, only for this step

    with ctx.db.engine.begin() as conn:
        return rollup.compact(conn)


# ---------------------------------------------------------------- the change feed


def _change_feed(ctx: AppContext, before: datetime, dry_run: bool) -> Removed:
    removed = Removed("change_feed")
    for company in _companies(ctx):
        if dry_run:
            with ctx.db.session(readonly=True) as session:
                removed.rows += _feed_rows_before(session, company.id, before)
            continue
        with ctx.db.session() as session:  # one statement per company, on the feed's index
            removed.rows += changes.prune_before(session, company_id=company.id, before=before)
    return removed


def _feed_rows_before(session: Session, company_id: uuid.UUID, before: datetime) -> int:
    """What ``changes.prune_before`` would delete: whole versions before ``before``, below the horizon."""
    newest_old = session.execute(
        sa.select(sa.func.max(ChangeLog.version)).where(
            col(ChangeLog.company_id) == company_id, col(ChangeLog.at) < before
        )
    ).scalar_one_or_none()
    if newest_old is None:
        return 0
    below = min(newest_old + 1, changes.horizon(session, company_id) + 1)
    return session.execute(
        sa.select(sa.func.count()).where(
            col(ChangeLog.company_id) == company_id, col(ChangeLog.version) < below
        )
    ).scalar_one()


# ---------------------------------------------------------------- the action log


def _action_log(ctx: AppContext, before: datetime, dry_run: bool) -> Removed:
    """Old answers go; exactly-once does not depend on them.

    An action is applied only when its seq is the device's ``last_applied_seq + 1``; any seq at or
    below the counter is answered from the log and never applied again. Maintenance never touches
    the counter (``sync_device`` rows are kept) and deletes only answers with
    ``seq < floor <= last_applied_seq - KEEP_LATEST_ANSWERS + 1``, then records the floor in
    ``answers_pruned_below``: a resend of such a seq is answered ``duplicate / answer_expired``.
    The action-id index is a second guard for an id sent again under a *new* seq; phones assign
    id and seq together once and keep them, and the log is kept at least as long as they keep
    acknowledged actions (14 days), so no phone still holds an id whose answer is gone but under
    its own seq, which the counter answers.
    """
    removed = Removed("action_log")
    batch_rows = ctx.settings.maintenance_batch_rows
    with ctx.db.session(readonly=True) as session:
        old = dict(
            session.execute(
                sa.select(SyncAction.device_id, sa.func.max(SyncAction.seq))
                .where(col(SyncAction.received_at) < before)
                .group_by(col(SyncAction.device_id))
            ).all()
        )
        devices = (
            {
                device_id: (last, pruned)
                for device_id, last, pruned in session.execute(
                    sa.select(
                        SyncDevice.device_id, SyncDevice.last_applied_seq, SyncDevice.answers_pruned_below
                    ).where(col(SyncDevice.device_id).in_(sorted(old)))
                ).all()
            }
            if old
            else {}
        )
    for device_id in sorted(devices):
        last, pruned = devices[device_id]
        floor = min(old[device_id] + 1, last - KEEP_LATEST_ANSWERS + 1)
        if floor <= pruned:
            continue
        if dry_run:
            with ctx.db.session(readonly=True) as session:
                removed.rows += _answers_below(session, device_id, floor)
            continue
        low = pruned
        while low < floor:
            upper = min(floor, low + batch_rows)
            with ctx.db.session() as session:
                result = session.execute(
                    sa.delete(SyncAction).where(
                        col(SyncAction.device_id) == device_id, col(SyncAction.seq) < upper
                    )
                )
                removed.rows += result.rowcount or 0
                # Never lowered, never above the counter: the floor is at most last - 499.
                session.execute(
                    sa.update(SyncDevice)
                    .where(
                        col(SyncDevice.device_id) == device_id, col(SyncDevice.answers_pruned_below) < upper
                    )
                    .values(answers_pruned_below=upper)
                )
            low = upper
    return removed


def _answers_below(session: Session, device_id: str, floor: int) -> int:
    return session.execute(
        sa.select(sa.func.count()).where(col(SyncAction.device_id) == device_id, col(SyncAction.seq) < floor)
    ).scalar_one()


# ---------------------------------------------------------------- login records


def _delete_batched(
    ctx: AppContext, category: str, table: Any, keys: list[Any], where: Any, dry_run: bool
) -> Removed:
    """Delete rows matching ``where`` a batch at a time, each batch its own short transaction."""
    removed = Removed(category)
    if dry_run:
        with ctx.db.session(readonly=True) as session:
            removed.rows = session.execute(
                sa.select(sa.func.count()).select_from(table).where(where)
            ).scalar_one()
        return removed
    while True:
        with ctx.db.session() as session:
            batch = session.execute(
                sa.select(*keys).where(where).limit(ctx.settings.maintenance_batch_rows)
            ).all()
            if not batch:
                return removed
            key = keys[0] if len(keys) == 1 else sa.tuple_(*keys)
            values = [row[0] for row in batch] if len(keys) == 1 else [tuple(row) for row in batch]
            result = session.execute(sa.delete(table).where(key.in_(values)))
            removed.rows += result.rowcount or 0


def _login_attempts(ctx: AppContext, before: datetime, dry_run: bool) -> Removed:
    table = LoginAttempt.__table__
    return _delete_batched(ctx, "login_attempts", table, [table.c.id], table.c.at < before, dry_run)


def _rate_counters(ctx: AppContext, before: datetime, dry_run: bool) -> Removed:
    table = RateCounter.__table__
    return _delete_batched(
        ctx,
        "rate_counters",
        table,
        [table.c.scope, table.c.key, table.c.window_start],
        table.c.window_start < int(before.timestamp()),
        dry_run,
    )


def _console_sessions(ctx: AppContext, now: datetime, dry_run: bool) -> Removed:
    """Console sign-ins no request can use any more: idle past the timeout, older than the
    lifetime, or their auth session ended (a logout deletes its own row; an expiry a request
    meets ends the auth session and leaves the row). A sign-in nobody came back to has ended only
    by the clock: its auth session is ended here, with the reason a request would have given."""
    settings = ctx.settings
    table = ConsoleSession.__table__
    auth = AuthSession.__table__
    idle = table.c.last_active_at < now - timedelta(seconds=settings.console_idle_timeout)
    old = table.c.created_at <= now - timedelta(seconds=settings.console_session_lifetime)
    ended = sa.exists().where(auth.c.id == table.c.auth_session_id, auth.c.revoked_at.is_not(None))
    where = sa.or_(idle, old, ended)
    removed = Removed("console_sessions")
    if dry_run:
        with ctx.db.session(readonly=True) as session:
            count = sa.select(sa.func.count()).select_from(table).where(where)
            removed.rows = session.execute(count).scalar_one()
        return removed
    while True:
        with ctx.db.session() as session:
            batch = (
                session.execute(
                    sa.select(table.c.token_hash).where(where).limit(settings.maintenance_batch_rows)
                )
                .scalars()
                .all()
            )
            if not batch:
                return removed
            # Deleted only if still past use (a request may have used one since it was read).
            gone = session.execute(
                sa.delete(table)
                .where(table.c.token_hash.in_(batch), where)
                .returning(table.c.auth_session_id, idle.label("idle"))
            ).all()
            removed.rows += len(gone)
            for reason, is_idle in (("console_idle", True), ("console_lifetime", False)):
                ids = [row.auth_session_id for row in gone if bool(row.idle) is is_idle]
                if not ids:
                    continue
                ending = session.execute(
                    sa.update(auth)
                    .where(auth.c.id.in_(ids), auth.c.revoked_at.is_(None))
                    .values(revoked_at=now, revoke_reason=reason)
                    .returning(auth.c.id)
                ).scalars()
                for session_id in ending:
                    live.notify_after_commit(session, ("s", str(session_id)))


# ---------------------------------------------------------------- unfinished uploads


def _unfinished_uploads(ctx: AppContext, before: datetime, dry_run: bool) -> Removed:
    """Partials past ``HEATCREW_UPLOAD_EXPIRY``: what ``heatcrew blobs sweep`` removes, counted."""
    removed = Removed("unfinished_uploads")
    staging = ctx.blobs.uploads
    for owner, partial in staging.expired(touched_before=before):
        removed.rows += 1
        removed.bytes += partial.size
        if not dry_run:
            staging.discard(owner, partial.sha256)
    if not dry_run:
        staging.sweep(touched_before=before)  # and whatever a crashed worker left in its scratch
    return removed


# ---------------------------------------------------------------- photo originals


def _photo_originals(ctx: AppContext, now: datetime, dry_run: bool) -> Removed:
    removed = Removed("photo_originals")
    default_days = ctx.settings.photo_original_retention_days
    for company in _companies(ctx):
        days = company.photo_original_retention_days
        days = default_days if days is None else days
        with ctx.db.session(readonly=True) as session:
            photo_ids = set(session.execute(_ERASED_RESIDENTS_PHOTOS, {"company_id": company.id}).scalars())
            if days:
                closed_before = now - timedelta(days=days)
                photo_ids.update(
                    session.execute(
                        sa.select(Photo.id)
                        .join(WorkOrder, col(WorkOrder.id) == Photo.order_id)
                        .where(
                            col(Photo.company_id) == company.id,
                            col(Photo.original_removed_at).is_(None),
                            col(WorkOrder.closed_at).is_not(None),
                            col(WorkOrder.closed_at) < closed_before,
                        )
                    ).scalars()
                )
        rows, size = remove_photo_originals(
            ctx, company_id=company.id, photo_ids=sorted(photo_ids), dry_run=dry_run
        )
        removed.rows += rows
        removed.bytes += size
    return removed


# A photo taken before its resident's erasure that reached the server after it (queued offline):
# its original goes as the erasure's own would have, whatever the company's retention. From the
# company's erased households (few) to their orders' and measurements' photos, by their indexes.
def _erased_residents_photos(through: Any, key: Any) -> sa.Select[Any]:
    return (
        sa.select(Photo.id)
        .select_from(Household)
        .join(through, through.household_id == Household.id)
        .join(Photo, key == through.id)
        .where(
            col(Household.company_id) == sa.bindparam("company_id"),
            col(Household.erased_at).is_not(None),
            col(Photo.original_removed_at).is_(None),
            col(Photo.corrected_at) <= Household.erased_at,
        )
    )


_ERASED_RESIDENTS_PHOTOS = sa.union(
    _erased_residents_photos(WorkOrder, Photo.order_id),
    _erased_residents_photos(Measurement, Photo.measurement_id),
)


def remove_photo_originals(
    ctx: AppContext, *, company_id: uuid.UUID, photo_ids: list[uuid.UUID], dry_run: bool = False
) -> tuple[int, int]:
    """Remove the originals (with GPS and EXIF) of these photos from the blob store; the
    metadata-free copies, the blob row and every hash stay, and each photo records
    ``original_removed_at``. An original is removed only when nothing else still needs its
    bytes: another photo not in this set, a signature image, a meter reading, or another
    company holding the same file (the store is shared by hash). Returns (photos, bytes).

    The bytes go first and the rows are marked after: a run cut short in between is finished by
    the next one (deleting an absent object is no error)."""
    if not photo_ids:
        return 0, 0
    wanted = set(photo_ids)
    with ctx.db.session(readonly=True) as session:
        photos = session.exec(select(Photo).where(col(Photo.id).in_(sorted(wanted)))).all()
        by_hash: dict[str, list[uuid.UUID]] = {}
        for photo in photos:
            if photo.company_id == company_id and photo.original_removed_at is None:
                by_hash.setdefault(photo.blob_sha256, []).append(photo.id)
        removable: dict[str, int] = {}
        for sha256 in sorted(by_hash):
            if _still_needed(session, company_id, sha256, set(by_hash[sha256])):
                continue
            blob = session.get(Blob, (company_id, sha256))
            removable[sha256] = blob.size if blob is not None else 0
    count = sum(len(by_hash[h]) for h in removable)
    size = sum(removable.values())
    if dry_run or not removable:
        return count, size
    now = ctx.clock.now()
    for sha256 in removable:
        ctx.blobs.delete(sha256)
        with ctx.db.session() as session:
            session.execute(
                sa.update(Photo)
                .where(col(Photo.id).in_(by_hash[sha256]), col(Photo.original_removed_at).is_(None))
                .values(original_removed_at=now)
            )
    return count, size


def _still_needed(session: Session, company_id: uuid.UUID, sha256: str, leaving: set[uuid.UUID]) -> bool:
    checks = (
        sa.select(Photo.id).where(
            col(Photo.company_id) == company_id,
            col(Photo.blob_sha256) == sha256,
            col(Photo.original_removed_at).is_(None),
            col(Photo.id).not_in(sorted(leaving)),
        ),
        sa.select(Signature.id).where(col(Signature.blob_sha256) == sha256),
        sa.select(MeterReading.id).where(col(MeterReading.blob_sha256) == sha256),
        sa.select(Blob.sha256).where(col(Blob.sha256) == sha256, col(Blob.company_id) != company_id),
    )
    return any(session.execute(check.limit(1)).first() is not None for check in checks)


# ---------------------------------------------------------------- the audit log


def _audit_log(ctx: AppContext, before: datetime, dry_run: bool) -> Removed:
    with ctx.db.session(readonly=dry_run) as session:
        return prune_audit_log(session, before=before, dry_run=dry_run)


def prune_audit_log(session: Session, *, before: datetime, dry_run: bool) -> Removed:
    """The audit log's retention (``HEATCREW_AUDIT_RETENTION_DAYS``, at least three years): each
    company's chain, and the installation's (failed logins of unknown usernames), loses its prefix
    older than ``before``; the chain's anchor keeps the rest verifiable (``backend.audit``)."""
    chains = [audit.INSTALLATION, *session.exec(select(Company.id).order_by(Company.id))]
    rows = sum(
        audit.prune_before(session, company_id=chain, before=before, dry_run=dry_run) for chain in chains
    )
    return Removed("audit_log", rows=rows)
