"""Login, refresh, logout, per-request authentication, users and devices.

Plain functions over a session and typed arguments; the HTTP layer and the CLI both call them.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select

from backend import audit
from backend.auth.models import AuthSession, Device, LoginAttempt, RefreshToken, Role, User
from backend.auth.principal import Principal
from backend.auth.tokens import AccessClaims, hash_refresh_token, new_refresh_token
from backend.context import AppContext
from backend.errors import (
    AuthError,
    Conflict,
    Forbidden,
    HeatCrewError,
    InvalidInput,
    LoginBusy,
    NotFound,
    RateLimited,
)
from backend.ids import new_id
from backend.org.models import Company
from backend.sync import live
from mobile_contract.auth import DeviceInfo, LoginRequest, RefreshRequest, TokenPair, UserSummary

__all__ = (
    "ADMIT",
    "ADMIT_COLUMNS",
    "LoginStart",
    "abandon_login",
    "admission",
    "admit",
    "admit_reading",
    "admitted",
    "authenticate",
    "create_user",
    "disable_user",
    "enable_user",
    "finish_login",
    "login",
    "login_gated",
    "logout",
    "read_token",
    "record_seen",
    "record_seen_later",
    "refresh",
    "revoke_device",
    "start_login",
)

log = logging.getLogger("heatcrew.auth")

# A phone whose refresh answer was lost resends the same token moments later; within this
# window (from the token's first use) and while its successor is unused, that is a retry, not
# theft, and must not throw a crew member out of the app, however many answers are lost.
REFRESH_RETRY_GRACE = timedelta(seconds=60)
MIN_PASSWORD_LENGTH = 10
# Writing last_seen_at on every request would turn every read into a write.
LAST_SEEN_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class LoginStart:
    """A login whose attempt is recorded (pending) and counted: it may now check the password."""

    attempt_id: int
    username: str
    user: User | None
    now: datetime

    @property
    def password_hash(self) -> str | None:
        return self.user.password_hash if self.user else None


def login(ctx: AppContext, *, request: LoginRequest, address: str) -> TokenPair:
    """The whole login in the calling thread; the HTTP layer uses :func:`login_gated`."""
    start = start_login(ctx, request=request, address=address)
    ok = ctx.passwords.verify(start.password_hash, request.password)
    return finish_login(ctx, start=start, request=request, ok=ok)


async def login_gated(
    ctx: AppContext,
    *,
    request: LoginRequest,
    address: str,
    allowed_roles: frozenset[Role] | None = None,
) -> TokenPair:
    """A login whose password check waits for one of the worker's slots (``ctx.login_gate``);
    past the wait it answers ``503 login_busy`` and the attempt is withdrawn, not counted.
    ``allowed_roles`` (the web console's): another role is refused, ``403 console_role_refused``,
    after the password check, with no device registered and no session opened."""
    start = await anyio.to_thread.run_sync(partial(start_login, ctx, request=request, address=address))
    try:
        ok = await ctx.login_gate.run(partial(ctx.passwords.verify, start.password_hash, request.password))
    except LoginBusy:
        await anyio.to_thread.run_sync(partial(abandon_login, ctx, start=start))
        raise
    return await anyio.to_thread.run_sync(
        partial(finish_login, ctx, start=start, request=request, ok=ok, allowed_roles=allowed_roles)
    )


def start_login(ctx: AppContext, *, request: LoginRequest, address: str) -> LoginStart:
    """Count the attempt and record it as pending, in one transaction serialised per username and
    per address, before the password is checked: concurrent guesses cannot all pass the count."""
    now = ctx.clock.now()
    username = request.username.strip().lower()
    address = address[:64]
    with ctx.db.session() as session:
        _serialise_login(session, username=username, address=address)
        _check_login_rate(ctx, session, username=username, address=address, now=now)
        attempt = LoginAttempt(username=username, address=address, at=now, succeeded=None)
        session.add(attempt)
        user = session.exec(select(User).where(User.username == username)).first()
        session.flush()
        assert attempt.id is not None
        attempt_id = attempt.id
    return LoginStart(attempt_id=attempt_id, username=username, user=user, now=now)


def abandon_login(ctx: AppContext, *, start: LoginStart) -> None:
    """The password was never checked (the server was busy): the attempt does not count."""
    with ctx.db.session() as session:
        session.exec(
            sa.delete(LoginAttempt).where(
                col(LoginAttempt.id) == start.attempt_id, col(LoginAttempt.succeeded).is_(None)
            )
        )


def finish_login(
    ctx: AppContext,
    *,
    start: LoginStart,
    request: LoginRequest,
    ok: bool,
    allowed_roles: frozenset[Role] | None = None,
) -> TokenPair:
    """Judge the pending attempt by the password check's result; on success open the session."""
    user = start.user
    now = ctx.clock.now()
    failure: HeatCrewError | None = None
    with ctx.db.session() as session:
        session.exec(
            sa.update(LoginAttempt).where(col(LoginAttempt.id) == start.attempt_id).values(succeeded=ok)
        )
        if not ok or user is None:
            failure = AuthError("Wrong username or password.", code="invalid_credentials")
        elif not user.is_active:
            failure = AuthError("This account is disabled.", code="user_disabled")
        elif allowed_roles is not None and user.role not in allowed_roles:
            failure = Forbidden(
                "This role does not use the web console; sign in on the phone app.",
                code="console_role_refused",
                detail={"role": user.role, "allowed": sorted(r.value for r in allowed_roles)},
            )
        else:
            try:
                _register_device(session, user=user, device=request.device, now=now)
            except HeatCrewError as exc:
                failure = exc
        if failure is not None:
            # Kept with the attempt's verdict: this transaction commits, the request then fails.
            _record_login_failure(session, start=start, device_id=request.device.id, code=failure.code)
    if failure is not None:
        raise failure
    assert user is not None
    with ctx.db.session() as session:
        auth_session = AuthSession(id=new_id(), user_id=user.id, device_id=request.device.id, created_at=now)
        session.add(auth_session)
        session.flush()
        refresh_token = _issue_refresh_token(ctx, session, session_id=auth_session.id, now=now)
        company = session.get(Company, user.company_id)
        audit.record(
            session,
            company_id=user.company_id,
            event=audit.Event.login,
            actor_user_id=user.id,
            actor_device_id=request.device.id,
            target_type="user",
            target_id=user.id,
            detail={"session_id": str(auth_session.id)},
        )
        if ctx.passwords.needs_rehash(user.password_hash):
            session.exec(
                sa.update(User)
                .where(col(User.id) == user.id)
                .values(password_hash=ctx.passwords.hash(request.password))
            )
    return _token_pair(
        ctx, user=user, company=company, auth_session=auth_session, refresh_token=refresh_token, now=now
    )


def refresh(ctx: AppContext, *, request: RefreshRequest) -> TokenPair:
    now = ctx.clock.now()
    token_hash = hash_refresh_token(request.refresh_token)
    failure: HeatCrewError | None = None
    with ctx.db.session() as session:
        session_id = session.exec(
            select(RefreshToken.session_id).where(RefreshToken.token_hash == token_hash)
        ).first()
        if session_id is None:
            raise AuthError("Unknown refresh token; log in again.", code="refresh_token_invalid")
        # One refresh of a family at a time: the session row is the family's lock (on SQLite the
        # writing transaction's BEGIN IMMEDIATE already serialises). Tokens are read after it.
        auth_session, device, user = session.exec(
            select(AuthSession, Device, User)
            .join(Device, col(Device.id) == AuthSession.device_id)
            .join(User, col(User.id) == AuthSession.user_id)
            .where(AuthSession.id == session_id)
            .with_for_update(of=AuthSession)
            .execution_options(populate_existing=True)
        ).one()
        token = session.exec(
            select(RefreshToken)
            .where(RefreshToken.token_hash == token_hash)
            .execution_options(populate_existing=True)
        ).one()
        if device.revoked_at is not None:
            failure = AuthError("This device has been revoked.", code="device_revoked")
        elif not user.is_active:
            failure = AuthError("This account is disabled.", code="user_disabled")
        elif auth_session.revoked_at is not None:
            failure = AuthError("This session has ended; log in again.", code="session_revoked")
        elif request.device_id is not None and request.device_id != device.id:
            _revoke_session(session, auth_session.id, now=now, reason="device_mismatch")
            _record_family_revoked(session, audit.Event.refresh_device_mismatch, auth_session, user)
            failure = AuthError("This refresh token belongs to another device.", code="device_mismatch")
        elif token.expires_at <= now:
            failure = AuthError("The refresh token has expired; log in again.", code="refresh_token_expired")
        elif token.spent_at is not None and not _is_retry_within_grace(session, token, now=now):
            _revoke_session(session, auth_session.id, now=now, reason="refresh_token_reused")
            _record_family_revoked(session, audit.Event.refresh_reused, auth_session, user)
            failure = AuthError(
                "This refresh token was already used; the session has been ended for safety.",
                code="refresh_token_reused",
            )
        if failure is None:
            # Spends the token itself, or on a retry the successor it was given before (whose
            # answer was lost): exactly one live token remains, the one issued now.
            _spend_refresh_tokens(session, auth_session.id, now=now)
            new_token = _issue_refresh_token(
                ctx, session, session_id=auth_session.id, parent_id=token.id, now=now
            )
            company = session.get(Company, user.company_id)
    if failure is not None:
        raise failure
    return _token_pair(
        ctx, user=user, company=company, auth_session=auth_session, refresh_token=new_token, now=now
    )


def logout(ctx: AppContext, *, principal: Principal) -> None:
    with ctx.db.session() as session:
        _revoke_session(session, principal.session_id, now=ctx.clock.now(), reason="logout")


def read_token(ctx: AppContext, *, authorization: str | None, device_header: str | None) -> AccessClaims:
    """The access token's claims, checked in memory (signature, expiry by ``ctx.clock``, the
    device header). Who it names is not yet known to be let in: see :func:`admit`."""
    if not authorization:
        raise AuthError("Send an access token: 'Authorization: Bearer <token>'.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("The Authorization header must be 'Bearer <token>'.", code="invalid_token")
    claims = ctx.tokens.read(token.strip(), now=ctx.clock.now())
    if device_header is not None and device_header != claims.device_id:
        raise AuthError("This access token was issued to another device.", code="device_mismatch")
    return claims


def authenticate(ctx: AppContext, *, authorization: str | None, device_header: str | None) -> Principal:
    """Resolve the caller of one request; every revocation takes effect here, at once."""
    return admit(ctx, read_token(ctx, authorization=authorization, device_header=device_header))


def admit(ctx: AppContext, claims: AccessClaims) -> Principal:
    """Whether the session, device and user the token names may still come in: one query."""
    return admit_reading(ctx, claims, ADMIT)[0]


def admit_reading(
    ctx: AppContext, claims: AccessClaims, statement: sa.Select[Any]
) -> tuple[Principal, tuple[Any, ...]]:
    """:func:`admit` by ``statement``, built by :func:`admission`: the caller, and the columns the
    statement reads after the admission's (one query for a route that needs no more)."""
    row = ctx.db.fetch_one(
        statement,
        {"session_id": claims.session_id, "user_id": claims.user_id, "device_id": claims.device_id},
    )
    if row is None:
        raise AuthError("The access token is not valid.", code="invalid_token")
    principal, seen_due = admitted(ctx.clock.now(), claims, tuple(row))
    if seen_due:
        with ctx.db.session() as session:
            record_seen(session, claims.device_id, ctx.clock.now())
    return principal, tuple(row[ADMIT_COLUMNS:])


ADMIT_COLUMNS = 8
"""The columns of an admission, first in any statement that admits a caller (``sync.push`` locks
the device's counter in the same statement): company, role, username, full name, user active,
device revoked, session revoked, device last seen."""

_SESSIONS, _DEVICES, _USERS = AuthSession.__table__, Device.__table__, User.__table__


def admission(*columns: Any) -> sa.Select[Any]:
    """A statement that admits the caller as it reads ``columns``: the admission's columns first
    (:func:`admitted` reads them), from the token's session joined to its device and user. Its
    parameters are ``session_id``, ``user_id`` and ``device_id``; join what ``columns`` need to it."""
    return (
        sa.select(
            _USERS.c.company_id,
            _USERS.c.role,
            _USERS.c.username,
            _USERS.c.full_name,
            _USERS.c.is_active,
            _DEVICES.c.revoked_at,
            _SESSIONS.c.revoked_at,
            _DEVICES.c.last_seen_at,
            *columns,
        )
        .select_from(_SESSIONS)
        .join(_DEVICES, _DEVICES.c.id == _SESSIONS.c.device_id)
        .join(_USERS, _USERS.c.id == _SESSIONS.c.user_id)
        .where(
            _SESSIONS.c.id == sa.bindparam("session_id"),
            _SESSIONS.c.user_id == sa.bindparam("user_id"),
            _SESSIONS.c.device_id == sa.bindparam("device_id"),
        )
    )


# The admission alone: every request but a push or a database pull (they admit in a statement of
# their own); one small statement, prepared by psycopg after five runs on a connection.
ADMIT = admission()


def admitted(now: datetime, claims: AccessClaims, row: tuple[Any, ...]) -> tuple[Principal, bool]:
    """The caller of an admission row (its first ``ADMIT_COLUMNS``), or the refusal; and whether the
    device's last-seen time is due a write (:func:`record_seen`)."""
    company_id, role, username, full_name, is_active, device_revoked_at, session_revoked_at, last_seen = row[
        :ADMIT_COLUMNS
    ]
    if device_revoked_at is not None:
        raise AuthError("This device has been revoked.", code="device_revoked")
    if not is_active:
        raise AuthError("This account is disabled.", code="user_disabled")
    if session_revoked_at is not None:
        raise AuthError("This session has ended; log in again.", code="session_revoked")
    principal = Principal(
        user_id=claims.user_id,
        company_id=company_id,
        role=Role(role),
        username=username,
        full_name=full_name,
        device_id=claims.device_id,
        session_id=claims.session_id,
    )
    return principal, now - last_seen > LAST_SEEN_RESOLUTION


def record_seen(session: Session, device_id: str, now: datetime) -> None:
    """The device was seen now (written at most once per ``LAST_SEEN_RESOLUTION``)."""
    session.exec(sa.update(Device).where(col(Device.id) == device_id).values(last_seen_at=now))


def record_seen_later(ctx: AppContext, device_id: str) -> None:
    """The device's last-seen time, in a transaction of its own once the request's work is done (a
    push's batch committed, a pull read): written under a push's locks it would hold up the phone's
    every other request until the batch commits, and in a pull's read-only snapshot it cannot be.
    A failure is logged, not answered: the phone keeps its answer, and its next request writes it."""
    try:
        with ctx.db.session() as session:
            record_seen(session, device_id, ctx.clock.now())
    except (DBAPIError, sa.exc.TimeoutError) as exc:  # the database, or a pool with no connection free
        cause = exc.orig if isinstance(exc, DBAPIError) else exc
        log.warning("last-seen time of %s not written: %s", device_id, type(cause).__name__)


def create_user(
    ctx: AppContext,
    session: Session,
    *,
    company_id: uuid.UUID,
    username: str,
    full_name: str,
    role: Role,
    password: str,
    staff_number: str | None = None,
    phone: str | None = None,
    is_demo: bool = False,
    actor: Principal | None = None,
) -> User:
    """A new account; recorded in the audit log with its role (``actor``: the admin, None for the
    command line, an import or the demo). Roles are given here only: no path changes them."""
    username = username.strip().lower()
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"The password must have at least {MIN_PASSWORD_LENGTH} characters.",
            code="password_too_short",
            detail={"min_length": MIN_PASSWORD_LENGTH},
        )
    if session.exec(select(User.id).where(User.username == username)).first() is not None:
        raise Conflict(f"The username {username!r} is taken.", code="username_taken")
    user = User(
        id=new_id(),
        company_id=company_id,
        username=username,
        full_name=full_name.strip(),
        staff_number=staff_number,
        role=role.value,
        phone=phone,
        password_hash=ctx.passwords.hash(password),
        is_demo=is_demo,
        created_at=ctx.clock.now(),
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        company_id=company_id,
        event=audit.Event.user_created,
        **_actor(actor),
        target_type="user",
        target_id=user.id,
        detail={"role": role.value},
    )
    return user


def disable_user(ctx: AppContext, session: Session, *, user: User, actor: Principal | None = None) -> User:
    """The account stops working on its next request; all its sessions end."""
    audit.record(
        session,
        company_id=user.company_id,
        event=audit.Event.user_disabled,
        **_actor(actor),
        target_type="user",
        target_id=user.id,
        detail={"was_active": user.is_active},
    )
    now = ctx.clock.now()
    user.is_active = False
    user.disabled_at = now
    session.add(user)
    session.exec(
        sa.update(AuthSession)
        .where(col(AuthSession.user_id) == user.id, col(AuthSession.revoked_at).is_(None))
        .values(revoked_at=now, revoke_reason="user_disabled")
    )
    live.notify_after_commit(session, ("u", str(user.id)))
    return user


def enable_user(session: Session, *, user: User, actor: Principal | None = None) -> User:
    audit.record(
        session,
        company_id=user.company_id,
        event=audit.Event.user_enabled,
        **_actor(actor),
        target_type="user",
        target_id=user.id,
        detail={"was_active": user.is_active},
    )
    user.is_active = True
    user.disabled_at = None
    session.add(user)
    return user


def revoke_device(
    ctx: AppContext,
    session: Session,
    *,
    device: Device,
    by: uuid.UUID | None,
    reason: str | None,
    by_device: str | None = None,
) -> Device:
    """A lost phone: locked out on its next request, its refresh tokens dead, login refused.
    The audit log keeps who did it and whether a reason was given, not the reason's words."""
    now = ctx.clock.now()
    owner = session.get(User, device.user_id)
    assert owner is not None
    audit.record(
        session,
        company_id=owner.company_id,
        event=audit.Event.device_revoked,
        actor_user_id=by,
        actor_device_id=by_device,
        target_type="device",
        target_id=device.id,
        detail={
            "owner_id": str(owner.id),
            "was_revoked": device.revoked_at is not None,
            "reason_given": bool(reason),
        },
    )
    if device.revoked_at is None:
        device.revoked_at = now
        device.revoked_by = by
        device.revoke_reason = reason
        session.add(device)
    session.exec(
        sa.update(AuthSession)
        .where(col(AuthSession.device_id) == device.id, col(AuthSession.revoked_at).is_(None))
        .values(revoked_at=now, revoke_reason="device_revoked")
    )
    live.notify_after_commit(session, ("d", device.id))
    return device


def _actor(principal: Principal | None) -> dict[str, object]:
    if principal is None:
        return {}
    return {"actor_user_id": principal.user_id, "actor_device_id": principal.device_id}


def _record_login_failure(session: Session, *, start: LoginStart, device_id: str, code: str) -> None:
    """The refused login: the user when the username is theirs, else the username's keyed hash
    (the installation's chain: it belongs to no company). Never the password."""
    user = start.user
    if user is not None:
        company_id, target_type, target_id = user.company_id, "user", str(user.id)
    else:
        company_id, target_type = audit.INSTALLATION, "username"
        target_id = audit.username_digest(session, start.username)
    audit.record(
        session,
        company_id=company_id,
        event=audit.Event.login_failed,
        actor_device_id=device_id,
        target_type=target_type,
        target_id=target_id,
        detail={"code": code},
    )


def _record_family_revoked(
    session: Session, event: audit.Event, auth_session: AuthSession, user: User
) -> None:
    """A refresh token came back where it should not: the family is revoked, and recorded as done
    by whoever holds the token (in the name of its user and device)."""
    audit.record(
        session,
        company_id=user.company_id,
        event=event,
        actor_user_id=user.id,
        actor_device_id=auth_session.device_id,
        target_type="session",
        target_id=auth_session.id,
        detail={"family_revoked": True},
    )


# Advisory-lock classes (PostgreSQL's two-key form); any fixed numbers, the same in every worker.
LOGIN_LOCK_USERNAME = 7_001
LOGIN_LOCK_ADDRESS = 7_002


def _serialise_login(session: Session, *, username: str, address: str) -> None:
    """Until commit, no other login of this username or from this address counts or records.
    PostgreSQL: transaction-scoped advisory locks, always username first (no deadlock); SQLite:
    the writing transaction's BEGIN IMMEDIATE already serialises every writer."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for lock_class, key in ((LOGIN_LOCK_USERNAME, username), (LOGIN_LOCK_ADDRESS, address)):
        session.execute(
            sa.text("SELECT pg_advisory_xact_lock(:class, hashtext(:key))"), {"class": lock_class, "key": key}
        )


def _check_login_rate(
    ctx: AppContext, session: Session, *, username: str, address: str, now: datetime
) -> None:
    settings = ctx.settings
    since = now - timedelta(seconds=settings.login_window)
    last_success = session.exec(
        select(sa.func.max(LoginAttempt.at)).where(
            LoginAttempt.username == username, col(LoginAttempt.succeeded).is_(True), LoginAttempt.at >= since
        )
    ).one()
    # A successful login wipes the slate: only failures after it count, and attempts whose
    # password check is still running (pending), which may yet fail.
    counted = LoginAttempt.at > last_success if last_success else LoginAttempt.at >= since
    failures = session.exec(
        select(sa.func.count())
        .select_from(LoginAttempt)
        .where(
            LoginAttempt.username == username,
            sa.or_(col(LoginAttempt.succeeded).is_(False), col(LoginAttempt.succeeded).is_(None)),
            counted,
        )
    ).one()
    retry_after = str(settings.login_window)
    if failures >= settings.login_max_failures_per_user:
        raise RateLimited(
            "Too many failed logins for this account; wait before trying again.",
            detail={
                "limit": settings.login_max_failures_per_user,
                "window_s": settings.login_window,
                "scope": "user",
            },
            headers={"Retry-After": retry_after},
        )
    attempts = session.exec(
        select(sa.func.count())
        .select_from(LoginAttempt)
        .where(LoginAttempt.address == address, LoginAttempt.at >= since)
    ).one()
    if attempts >= settings.login_max_attempts_per_address:
        raise RateLimited(
            "Too many login attempts from this address; wait before trying again.",
            detail={
                "limit": settings.login_max_attempts_per_address,
                "window_s": settings.login_window,
                "scope": "address",
            },
            headers={"Retry-After": retry_after},
        )


def _register_device(session: Session, *, user: User, device: DeviceInfo, now: datetime) -> Device:
    known = session.get(Device, device.id, with_for_update=True)
    if known is None:
        known = Device(
            id=device.id,
            user_id=user.id,
            platform=device.platform,
            app_version=device.app_version,
            registered_at=now,
            last_seen_at=now,
        )
    elif known.revoked_at is not None:
        raise AuthError("This device has been revoked; ask your supervisor.", code="device_revoked")
    elif known.user_id != user.id:
        raise Conflict(
            "This phone is registered to another user; an admin must release it first.",
            code="device_registered_elsewhere",
        )
    else:
        known.platform = device.platform
        known.app_version = device.app_version
        known.last_seen_at = now
    session.add(known)
    return known


def _issue_refresh_token(
    ctx: AppContext,
    session: Session,
    *,
    session_id: uuid.UUID,
    now: datetime,
    parent_id: uuid.UUID | None = None,
) -> str:
    token = new_refresh_token()
    session.add(
        RefreshToken(
            id=new_id(),
            session_id=session_id,
            token_hash=hash_refresh_token(token),
            issued_at=now,
            expires_at=now + timedelta(seconds=ctx.settings.refresh_token_ttl),
            parent_id=parent_id,
        )
    )
    return token


def _spend_refresh_tokens(session: Session, session_id: uuid.UUID, *, now: datetime) -> None:
    session.exec(
        sa.update(RefreshToken)
        .where(col(RefreshToken.session_id) == session_id, col(RefreshToken.spent_at).is_(None))
        .values(spent_at=now)
    )


def _is_retry_within_grace(session: Session, token: RefreshToken, *, now: datetime) -> bool:
    """A spent token is a retry while it was first spent within the grace and the family's one
    live token is its own unused successor (the answer that carried it was lost)."""
    if token.spent_at is None or now - token.spent_at > REFRESH_RETRY_GRACE:
        return False
    live = session.exec(
        select(RefreshToken)
        .where(RefreshToken.session_id == token.session_id, col(RefreshToken.spent_at).is_(None))
        .execution_options(populate_existing=True)
    ).first()
    if live is None:
        return False
    if live.parent_id is not None:
        return live.parent_id == token.id
    # Issued before successors named their parent: the successor was issued as the token was spent.
    return live.issued_at == token.spent_at


def _revoke_session(session: Session, session_id: uuid.UUID, *, now: datetime, reason: str) -> None:
    session.exec(
        sa.update(AuthSession)
        .where(col(AuthSession.id) == session_id, col(AuthSession.revoked_at).is_(None))
        .values(revoked_at=now, revoke_reason=reason)
    )
    live.notify_after_commit(session, ("s", str(session_id)))


def _token_pair(
    ctx: AppContext,
    *,
    user: User,
    company: Company | None,
    auth_session: AuthSession,
    refresh_token: str,
    now: datetime,
) -> TokenPair:
    return TokenPair(
        access_token=ctx.tokens.issue(
            user_id=user.id, session_id=auth_session.id, device_id=auth_session.device_id, now=now
        ),
        refresh_token=refresh_token,
        expires_in=ctx.tokens.ttl,
        refresh_expires_in=ctx.settings.refresh_token_ttl,
        user=user_summary(user, company),
        device_id=auth_session.device_id,
    )


def user_summary(user: User, company: Company | None) -> UserSummary:
    return UserSummary(
        id=user.id,
        username=user.username,
        full_name=user.full_name,
        role=user.role,
        staff_number=user.staff_number,
        company_id=user.company_id,
        timezone=company.timezone if company else "Asia/Shanghai",
    )


def get_device(session: Session, *, device_id: str, company_id: uuid.UUID) -> Device:
    """Devices of other companies are invisible, not forbidden: their existence is not leaked."""
    row = session.exec(
        select(Device)
        .join(User, col(User.id) == Device.user_id)
        .where(Device.id == device_id, User.company_id == company_id)
    ).first()
    if row is None:
        raise NotFound("No such device.")
    return row


def get_user(session: Session, *, user_id: uuid.UUID, company_id: uuid.UUID) -> User:
    user = session.get(User, user_id)
    if user is None or user.company_id != company_id:
        raise NotFound("No such user.")
    return user
