"""``heatcrew``: serve, db, users, devices, sync, blobs, maintenance, pipl, companies, audit, demo,
contract."""

import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click
import msgspec
from sqlmodel import col, select

from backend import slim  # noqa: F401  # first: PyJWT and structlog without their extras (a worker imports this module)
from backend.auth import service as auth_service
from backend.auth.models import Device, Role, User
from backend.context import AppContext, build_context
from backend.db import migrate
from backend.errors import HeatCrewError
from backend.ids import new_id
from backend.org.models import Company
from backend.settings import Settings, SettingsError

__all__ = ("main",)


def _fail(message: str, code: int = 2) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        _fail(str(exc))
        raise  # unreachable; keeps type checkers calm


def _context(*, upgrade: bool = True) -> AppContext:
    ctx = build_context(_settings())
    if upgrade:
        migrate.upgrade(ctx.db.engine)
    return ctx


def _friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Domain errors become one red line and exit code 1, not a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HeatCrewError as exc:
            _fail(f"{exc.message} ({exc.code})", code=1)

    return wrapper


@click.group()
def main() -> None:
    """HeatCrew: the backend of the field crews' phone app."""


@main.command()
@click.option("--host", default=None, help="Listen address (HEATCREW_HOST).")
@click.option("--port", type=int, default=None, help="Port (HEATCREW_PORT).")
@click.option("--workers", type=int, default=None, help="Worker processes (HEATCREW_WORKERS).")
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the API; upgrades the schema first unless HEATCREW_AUTO_MIGRATE=false."""
    _serve(host=host, port=port, workers=workers)


SHUTDOWN_GRACE_SECONDS = 10


def _serve(*, host: str | None, port: int | None, workers: int | None) -> None:
    settings = _settings()
    workers = workers or settings.workers
    if workers > 1:
        # Before prometheus_client is imported anywhere: the workers (new processes) find the
        # variable and write their samples to files there, which a scrape adds up.
        from backend.metrics import prepare_multiprocess

        prepare_multiprocess(settings.var_dir)
    import uvicorn

    from backend.clock import SystemClock
    from backend.logs import configure_logging
    from backend.metrics import serve_on_port, watch_devices

    configure_logging(settings)
    if settings.auto_migrate:
        ctx = build_context(settings)
        migrate.upgrade(ctx.db.engine)
        ctx.db.dispose()
    if workers > 1 and settings.is_sqlite:
        click.secho(
            "warning: several workers on SQLite serialise on its one writer; use PostgreSQL", fg="yellow"
        )
    # Each worker reads it (backend.sync.live: on SQLite a worker hears only its own writes).
    os.environ["HEATCREW_WORKERS"] = str(workers)
    # glibc gives every thread that allocates (the thread pool of sync handlers, uploads) an arena
    # of its own, each holding freed memory apart: two keep a worker's RSS under load down by
    # several MiB. The workers are new processes (spawned), so they read it at their start.
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    host = host or settings.host
    port = port or settings.port
    click.echo(f"HeatCrew on http://{host}:{port}  (docs: http://{host}:{port}/schema/swagger)")
    if settings.metrics_port:
        if workers > 1:
            # This process serves the metrics port and builds no app (with one worker, the app
            # in this process tells the collector): the devices' waiting actions are read here.
            watch_devices(settings.effective_database_url, SystemClock())
        serve_on_port(host, settings.metrics_port)
        click.echo(f"metrics on http://{host}:{settings.metrics_port}/metrics")
    uvicorn.run(
        "backend.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        # Each worker routes uvicorn's loggers through HeatCrew's (backend.logs); the request
        # lines are HeatCrew's own, which name the route and not the path.
        log_config=None,
        access_log=False,
        proxy_headers=settings.trust_forwarded_for,
        # Event streams never finish on their own: at shutdown they get this long, then are cut
        # (the phones reconnect to another worker).
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )


@main.group()
def db() -> None:
    """Schema migrations."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    ctx = _context(upgrade=False)
    migrate.upgrade(ctx.db.engine, revision)
    click.echo(f"schema at {migrate.current_revision(ctx.db.engine)}")


@db.command("current")
@click.option(
    "--wait",
    "wait_seconds",
    type=click.FloatRange(min=0),
    default=None,
    help="Wait up to this many seconds for the schema to reach the newest revision; exit 1 if it does not.",
)
def db_current(wait_seconds: float | None) -> None:
    """Print the schema revision of the database and the newest one known.

    With ``--wait`` (a Kubernetes init container's command): come back only when the migration
    has run, so new workers never serve an old schema; an unreachable database is waited for too.
    """
    import time

    from sqlalchemy.exc import DBAPIError

    from backend.db.failures import is_unavailable

    ctx = _context(upgrade=False)
    newest = migrate.head_revision()
    deadline = time.monotonic() + (wait_seconds or 0)
    while True:
        try:
            current: str | None = migrate.current_revision(ctx.db.engine)
        except DBAPIError as exc:
            if wait_seconds is None or not is_unavailable(exc):
                raise
            current = "unreachable"
        if wait_seconds is None or current == newest:
            click.echo(f"database: {current}  newest: {newest}")
            return
        if time.monotonic() >= deadline:
            _fail(f"the schema is at {current}, not {newest}, after {wait_seconds:g} s", code=1)
        time.sleep(1)


@main.group()
def users() -> None:
    """Accounts."""


@users.command("add")
@click.option("--username", required=True)
@click.option("--full-name", required=True)
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--staff-number", default=None)
@click.option("--phone", default=None)
@click.option("--company", "company_code", default="main", show_default=True, help="Company code.")
@click.option("--company-name", default=None, help="Creates the company when it does not exist yet.")
@click.password_option(envvar="HEATCREW_NEW_PASSWORD")
@_friendly
def users_add(
    username: str,
    full_name: str,
    role: str,
    staff_number: str | None,
    phone: str | None,
    company_code: str,
    company_name: str | None,
    password: str,
) -> None:
    """Add a user (the password is asked for, or read from HEATCREW_NEW_PASSWORD)."""
    ctx = _context()
    with ctx.db.session() as session:
        company = session.exec(select(Company).where(Company.code == company_code)).first()
        if company is None:
            if not company_name:
                _fail(f"no company {company_code!r}; give --company-name to create it")
            company = Company(
                id=new_id(),
                code=company_code,
                name=company_name,
                timezone=ctx.settings.timezone,
                created_at=ctx.clock.now(),
            )
            session.add(company)
            session.flush()
        user = auth_service.create_user(
            ctx,
            session,
            company_id=company.id,
            username=username,
            full_name=full_name,
            role=Role(role),
            password=password,
            staff_number=staff_number,
            phone=phone,
        )
    click.echo(f"added {user.username} ({user.role}) to {company.code}")


@users.command("disable")
@click.argument("username")
@_friendly
def users_disable(username: str) -> None:
    """Lock a user out at once, on every device."""
    ctx = _context()
    with ctx.db.session() as session:
        user = session.exec(select(User).where(User.username == username.lower())).first()
        if user is None:
            _fail(f"no user {username!r}", code=1)
        auth_service.disable_user(ctx, session, user=user)
    click.echo(f"disabled {username}")


@users.command("list")
def users_list() -> None:
    """List users with role and state."""
    ctx = _context()
    with ctx.db.session(readonly=True) as session:
        rows = session.exec(
            select(User, Company).join(Company).order_by(col(Company.code), col(User.username))
        )
        for user, company in rows:
            state = "active" if user.is_active else "disabled"
            click.echo(f"{company.code:10} {user.username:16} {user.role:11} {state:8} {user.full_name}")


@main.group()
def devices() -> None:
    """Phones registered to users."""


@devices.command("list")
def devices_list() -> None:
    ctx = _context()
    with ctx.db.session(readonly=True) as session:
        rows = session.exec(
            select(Device, User)
            .join(User, col(User.id) == Device.user_id)
            .order_by(col(Device.last_seen_at).desc())
        )
        for device, user in rows:
            state = f"revoked {device.revoked_at:%Y-%m-%d %H:%M}" if device.revoked_at else "active"
            click.echo(
                f"{device.id:40} {user.username:16} {device.platform:8} {device.app_version:8} "
                f"seen {device.last_seen_at:%Y-%m-%d %H:%M} {state}"
            )


@devices.command("revoke")
@click.argument("device_id")
@click.option("--reason", default=None)
def devices_revoke(device_id: str, reason: str | None) -> None:
    """Lock a lost phone out at once."""
    ctx = _context()
    with ctx.db.session() as session:
        device = session.get(Device, device_id)
        if device is None:
            _fail(f"no device {device_id!r}", code=1)
        auth_service.revoke_device(ctx, session, device=device, by=None, reason=reason)
    click.echo(f"revoked {device_id}")


@main.command()
@click.option(
    "--url", default="http://127.0.0.1:8000", show_default=True, help="A running server with the demo data."
)
@click.option("--phones", default=4, show_default=True)
@click.option("--orders-per-user", default=3, show_default=True)
@click.option("--rounds", default=12, show_default=True, help="Sync attempts per phone during the day.")
@click.option("--offline-rate", default=0.2, show_default=True)
@click.option(
    "--loss-rate", default=0.2, show_default=True, help="Share of push answers lost on the way back."
)
@click.option("--seed", default=1, show_default=True)
def simulate(
    url: str, phones: int, orders_per_user: int, rounds: int, offline_rate: float, loss_rate: float, seed: int
) -> None:
    """Simulated phones work a day against a running server over a bad network, then it is audited."""
    from rich.console import Console

    from backend.simulate import print_summary
    from backend.simulate import simulate as run_simulation

    console = Console()
    result = run_simulation(
        url,
        phones=phones,
        orders_per_user=orders_per_user,
        rounds=rounds,
        offline_rate=offline_rate,
        loss_rate=loss_rate,
        seed=seed,
        console=console,
    )
    print_summary(result, console)
    sys.exit(0 if result.ok else 1)


@main.group("sync")
def sync_group() -> None:
    """The change feed's upkeep."""


@sync_group.command("new-epoch")
@click.option("--company", "company_code", default=None, help="One company; default all.")
def sync_new_epoch(company_code: str | None) -> None:
    """After restoring a backup: every phone's next pull is a full snapshot, and it resends what was lost."""
    from backend.sync import changes

    ctx = _context()
    with ctx.db.session() as session:
        query = select(Company)
        if company_code:
            query = query.where(Company.code == company_code)
        for company in session.exec(query):
            click.echo(f"{company.code}: epoch {changes.bump_epoch(session, company.id)}")


@sync_group.command("prune")
@click.option("--keep-days", default=30, show_default=True, help="Keep this many days of the change feed.")
def sync_prune(keep_days: int) -> None:
    """Drop old change-feed rows; a phone offline for longer gets a full snapshot."""
    from datetime import timedelta

    from backend.sync import changes

    ctx = _context()
    cutoff = ctx.clock.now() - timedelta(days=keep_days)
    with ctx.db.session() as session:
        for company in session.exec(select(Company)):
            removed = changes.prune_before(session, company_id=company.id, before=cutoff)
            click.echo(f"{company.code}: {removed} change rows removed")


@main.group("audit")
def audit_group() -> None:
    """The audit log of security events."""


@audit_group.command("verify")
@click.option("--company", "company", default=None, help="A company's code or id; default every chain.")
def audit_verify(company: str | None) -> None:
    """Walk each company's chain from its anchor; exit 1 at the first broken link (a row edited,
    deleted or moved). The head printed is worth keeping elsewhere: a cut tail shows only against it."""
    import uuid

    from backend.audit.service import INSTALLATION
    from backend.audit.verify import companies, verify_chain

    ctx = _context()
    broken = 0
    with ctx.db.session(readonly=True) as session:
        codes = {c.id: c.code for c in session.exec(select(Company))}
        codes[INSTALLATION] = "(installation)"
        if company is None:
            chains = companies(session)
        else:
            found = next((cid for cid, code in codes.items() if code == company or str(cid) == company), None)
            if found is None:
                try:
                    found = uuid.UUID(company)
                except ValueError:
                    _fail(f"no company {company!r}", code=2)
            chains = [found]
        for company_id in chains:
            report = verify_chain(session, company_id=company_id)
            name = codes.get(company_id, str(company_id))
            if report.broken is None:
                click.echo(
                    f"{name}: ok, {report.events} events after anchor {report.anchor_seq}, "
                    f"head {report.head_seq} {report.head_hash}"
                )
            else:
                broken += 1
                click.secho(
                    f"{name}: BROKEN at {report.broken.seq} ({report.broken.kind}): {report.broken.message}",
                    fg="red",
                )
    sys.exit(1 if broken else 0)


@main.group("blobs")
def blobs_group() -> None:
    """The blob store's upkeep."""


@blobs_group.command("sweep")
def blobs_sweep() -> None:
    """Remove unfinished uploads untouched for longer than HEATCREW_UPLOAD_EXPIRY."""
    from backend.evidence.blobs import sweep_unfinished

    removed = sweep_unfinished(_context(), force=True)
    click.echo(f"{removed} unfinished uploads removed")


@blobs_group.command("lifecycle")
@click.option("--dry-run", is_flag=True, help="Show the configuration that would be written; write nothing.")
@_friendly
def blobs_lifecycle(dry_run: bool) -> None:
    """Apply the bucket's lifecycle rules (S3): unfinished uploads expire after HEATCREW_UPLOAD_EXPIRY,
    incomplete multipart uploads are aborted; the bucket's other rules are kept."""
    import json

    from backend.storage import lifecycle
    from backend.storage.s3 import S3BlobStore

    ctx = _context(upgrade=False)
    if not isinstance(ctx.blobs, S3BlobStore):
        _fail(
            "the blob store is a local directory: its unfinished uploads are removed by heatcrew maintenance",
            code=1,
        )
    plan = lifecycle.apply(ctx.blobs, upload_expiry_seconds=ctx.settings.upload_expiry, dry_run=dry_run)
    click.echo(json.dumps(msgspec.to_builtins(plan), indent=2, ensure_ascii=False))
    state = "would change" if dry_run and plan.changed else "applied" if plan.applied else "unchanged"
    click.echo(f"bucket {plan.bucket}: lifecycle {state}", err=True)


@main.command()
@click.option("--dry-run", is_flag=True, help="Count what would be removed; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def maintenance(dry_run: bool, as_json: bool) -> None:
    """Enforce every retention rule: change feed, action log, login records, unfinished uploads,
    photo originals, audit log. Safe to run from several places at once (nightly CronJob)."""
    from backend import maintenance as upkeep

    ctx = _context(upgrade=False)
    if ctx.settings.auto_migrate:
        migrate.upgrade(ctx.db.engine)
    else:  # a CronJob of a new release may start before its migration Job ran
        current, newest = migrate.current_revision(ctx.db.engine), migrate.head_revision()
        if current != newest:
            _fail(f"the schema is at {current}, not {newest}: run heatcrew db upgrade first", code=1)
    report = upkeep.run(ctx, dry_run=dry_run)
    if as_json:
        click.echo(msgspec.json.encode(report).decode())
        return
    if report.skipped:
        click.echo(f"skipped: {report.skipped}")
        return
    verb = "would remove" if dry_run else "removed"
    for item in report.categories:
        note = f"  ({item.note})" if item.note else ""
        click.echo(f"{item.category:20} {verb} {item.rows:>9} rows {item.bytes:>14} bytes{note}")


@main.group("pipl")
def pipl_group() -> None:
    """A resident's personal-data request (PIPL): export or erase one household."""


def _household_company(ctx: AppContext, household: str) -> tuple[Any, Any]:
    import uuid

    from backend.org.models import Household

    try:
        household_id = uuid.UUID(household)
    except ValueError:
        _fail(f"not a household id: {household!r}")
    with ctx.db.session(readonly=True) as session:
        row = session.get(Household, household_id)
        if row is None:
            _fail(f"no household {household}", code=1)
        return row.id, row.company_id


@pipl_group.command("export")
@click.option("--household", required=True, help="The household's id.")
@_friendly
def pipl_export(household: str) -> None:
    """Print everything held about the household as one JSON document."""
    from backend.org import pipl

    ctx = _context()
    household_id, company_id = _household_company(ctx, household)
    with ctx.db.session(readonly=True) as session:
        data = pipl.export(ctx, session, company_id=company_id, household_id=household_id)
    click.echo(msgspec.json.format(msgspec.json.encode(data), indent=2).decode())


@pipl_group.command("erase")
@click.option("--household", required=True, help="The household's id.")
@click.option("--reason", required=True, help="The resident's request and its reference, for the record.")
@_friendly
def pipl_erase(household: str, reason: str) -> None:
    """Blank the household's personal data in the live tables; signed documents are kept as records."""
    from backend.org import pipl

    ctx = _context()
    household_id, company_id = _household_company(ctx, household)
    erased = pipl.erase(ctx, principal=None, company_id=company_id, household_id=household_id, reason=reason)
    click.echo(msgspec.json.encode(erased).decode())


@main.group("companies")
def companies_group() -> None:
    """Per-company settings."""


@companies_group.command("photo-retention")
@click.argument("company_code")
@click.option(
    "--days", type=click.IntRange(min=0), default=None, help="Days after an order closed; 0: for ever."
)
@click.option("--default", "use_default", is_flag=True, help="Follow HEATCREW_PHOTO_ORIGINAL_RETENTION_DAYS.")
def companies_photo_retention(company_code: str, days: int | None, use_default: bool) -> None:
    """Set how long photo originals (with GPS) are kept after their order closed; copies stay."""
    if (days is None) == (not use_default):
        _fail("give either --days N or --default")
    ctx = _context()
    with ctx.db.session() as session:
        company = session.exec(select(Company).where(Company.code == company_code)).first()
        if company is None:
            _fail(f"no company {company_code!r}", code=1)
        company.photo_original_retention_days = None if use_default else days
        session.add(company)
    shown = "the default" if use_default else f"{days} days"
    click.echo(f"{company_code}: photo originals kept {shown} after an order closed")


@main.group("import")
def import_group() -> None:
    """Bulk import from CSV: every row is checked first; any error and nothing is written."""


def _run_import(kind: str, path: str, company_code: str) -> None:
    from pathlib import Path

    from backend.org import importer

    ctx = _context()
    run = importer.import_households if kind == "households" else importer.import_staff
    try:
        with ctx.db.session() as session:
            company = session.exec(select(Company).where(Company.code == company_code)).first()
            if company is None:
                _fail(f"no company {company_code!r}", code=1)
            report = run(ctx, session, company_id=company.id, path=Path(path))
            if not report.ok:
                raise importer.ImportRejected(detail=[str(e) for e in report.errors])
    except importer.ImportRejected as exc:
        click.secho(f"{path}: {exc.message}", fg="red", err=True)
        detail = exc.detail if isinstance(exc.detail, list) else [exc.detail]
        for line in detail:
            click.echo(f"  {line}", err=True)
        sys.exit(1)
    click.echo(f"{kind}: {report.created} created, {report.updated} updated")


@import_group.command("households")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--company", "company_code", required=True)
def import_households(path: str, company_code: str) -> None:
    """Households by account number (created or updated), with their buildings and stations."""
    _run_import("households", path, company_code)


@import_group.command("staff")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--company", "company_code", required=True)
def import_staff(path: str, company_code: str) -> None:
    """Staff accounts with their teams (columns include initial_password)."""
    _run_import("staff", path, company_code)


@main.command()
@click.option("--serve/--no-serve", "then_serve", default=True, help="Start the server after seeding.")
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
@_friendly
def demo(then_serve: bool, host: str | None, port: int | None) -> None:
    """Seed the demo company (users share the password 'demo-password') and serve it."""
    from backend.demo import DEMO_PASSWORD, DEMO_USERS, seed_demo, seed_review_demo

    ctx = _context()
    with ctx.db.session() as session:
        company = seed_demo(ctx, session)
        seed_review_demo(ctx, session, company)
    ctx.db.dispose()
    names = ", ".join(username for username, *_ in DEMO_USERS)
    click.echo(f"demo company {company.code!r} ready: users {names}; password {DEMO_PASSWORD!r}")
    if then_serve:
        _serve(host=host, port=port, workers=None)


@main.group()
def contract() -> None:
    """The published mobile contract under mobile_contract/."""


@contract.command("build")
@click.option("--no-typescript", is_flag=True, help="Skip the TypeScript types (they need npm).")
def contract_build(no_typescript: bool) -> None:
    """Regenerate openapi.json, the JSON Schemas, the TypeScript types and the examples."""
    from backend.contract.build import CONTRACT_ROOT, build

    written = build(CONTRACT_ROOT, typescript=not no_typescript)
    for path in written:
        click.echo(path.relative_to(CONTRACT_ROOT.parent))
    click.echo(f"{len(written)} files written under {CONTRACT_ROOT}")


@main.group("console")
def console_group() -> None:
    """The web console at /console."""


@console_group.command("messages")
@click.option("--init", "new_locale", default=None, help="Start the catalogue of a new language (e.g. ja).")
def console_messages(new_locale: str | None) -> None:
    """Extract the console's messages (babel.cfg) and update every catalogue under
    backend/console/locale; the app reads the .po files directly, no compile step."""
    from pathlib import Path

    from babel.messages.frontend import CommandLineInterface

    from backend.console.i18n import LOCALE_DIRS

    root = Path(__file__).resolve().parent.parent
    locale_dir = LOCALE_DIRS[0]
    template = locale_dir / "messages.pot"
    pybabel = CommandLineInterface()
    pybabel.run(
        ["pybabel", "extract", "-F", str(root / "babel.cfg"), "-k", "N_", "--no-location", "--sort-output",
         "--omit-header", "-o", str(template), str(root / "backend")]
    )  # fmt: skip
    if new_locale:
        pybabel.run(["pybabel", "init", "-i", str(template), "-d", str(locale_dir), "-l", new_locale])
    pybabel.run(["pybabel", "update", "-i", str(template), "-d", str(locale_dir), "--no-fuzzy-matching"])
    click.echo(f"catalogues updated under {locale_dir}; translate the empty msgstr entries")


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
