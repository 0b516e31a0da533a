"""``heatcrew``: serve, db, users, devices, demo, contract."""

import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click
from sqlmodel import col, select

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

    from backend.logs import configure_logging
    from backend.metrics import serve_on_port

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
    host = host or settings.host
    port = port or settings.port
    click.echo(f"HeatCrew on http://{host}:{port}  (docs: http://{host}:{port}/schema/swagger)")
    if settings.metrics_port:
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


@main.group("blobs")
def blobs_group() -> None:
    """The blob store's upkeep."""


@blobs_group.command("sweep")
def blobs_sweep() -> None:
    """Remove unfinished uploads untouched for longer than HEATCREW_UPLOAD_EXPIRY."""
    from backend.evidence.blobs import sweep_unfinished

    removed = sweep_unfinished(_context(), force=True)
    click.echo(f"{removed} unfinished uploads removed")


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
    from backend.demo import DEMO_PASSWORD, DEMO_USERS, seed_demo

    ctx = _context()
    with ctx.db.session() as session:
        company = seed_demo(ctx, session)
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


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
