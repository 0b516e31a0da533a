"""Console sign-in and the check of every console request, on the auth service's own records.

A console sign-in is a login (rate limits, Argon2 through the worker's gate, the attempt
recorded) of a ``console`` device, refused to roles that do not use the console. It opens an
auth session; the browser holds an opaque cookie whose SHA-256 names a ``console_session`` row.
Every request reads the row, its auth session, device and user: a revoked device, a disabled
user, a logout, an idle or too old session end it at once.
"""

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import col, select

from backend.auth import service
from backend.auth.models import AuthSession, Device, Role, User
from backend.auth.principal import Principal
from backend.console.models import ConsoleSession
from backend.context import AppContext
from backend.errors import AuthError, InvalidInput
from backend.org.models import Company
from mobile_contract.auth import DeviceInfo, LoginRequest

__all__ = (
    "CONSOLE_ROLES",
    "LOCALES",
    "ConsoleUser",
    "resolve",
    "set_locale",
    "sign_in",
    "sign_out",
)

CONSOLE_ROLES = frozenset({Role.supervisor, Role.dispatcher, Role.admin})
LOCALES = ("zh", "en")
DEFAULT_LOCALE = "zh"
CONSOLE_PLATFORM = "console"
# Writing last_active_at on every request would turn every page view into two writes.
ACTIVE_RESOLUTION = timedelta(seconds=10)


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    """The signed-in person of one console request (``request.user`` on console routes)."""

    principal: Principal
    locale: str
    timezone: str
    company_name: str
    csrf_token: str

    @property
    def user_id(self) -> uuid.UUID:
        return self.principal.user_id

    @property
    def device_id(self) -> str:
        """The console device (what the request log line and the API's device list show)."""
        return self.principal.device_id

    @property
    def role(self) -> Role:
        return self.principal.role

    def has_role(self, *roles: Role) -> bool:
        return self.principal.role in roles


def hash_cookie(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def sign_in(ctx: AppContext, *, username: str, password: str, address: str) -> str:
    """Log in through the auth service as a new ``console`` device; the cookie's value."""
    device_id = f"console-{secrets.token_hex(12)}"
    request = LoginRequest(
        username=username,
        password=password,
        device=DeviceInfo(id=device_id, platform=CONSOLE_PLATFORM, app_version="console"),
    )
    await service.login_gated(ctx, request=request, address=address, allowed_roles=CONSOLE_ROLES)
    token = secrets.token_urlsafe(32)
    now = ctx.clock.now()
    with ctx.db.session() as session:
        auth_session_id = session.exec(select(AuthSession.id).where(AuthSession.device_id == device_id)).one()
        session.add(
            ConsoleSession(
                token_hash=hash_cookie(token),
                auth_session_id=auth_session_id,
                csrf_token=secrets.token_urlsafe(32),
                created_at=now,
                last_active_at=now,
            )
        )
    return token


def resolve(ctx: AppContext, *, cookie: str | None, passive: bool = False) -> ConsoleUser:
    """The signed-in user of this cookie, checked against the database now. ``passive``: a
    request the page makes by itself (the board's refresh), which does not count as use."""
    if not cookie:
        raise AuthError("Sign in to the console.")
    now = ctx.clock.now()
    settings = ctx.settings
    with ctx.db.session(readonly=True) as session:
        row = session.exec(
            select(ConsoleSession, AuthSession, Device, User, Company)
            .join(AuthSession, col(AuthSession.id) == ConsoleSession.auth_session_id)
            .join(Device, col(Device.id) == AuthSession.device_id)
            .join(User, col(User.id) == AuthSession.user_id)
            .join(Company, col(Company.id) == User.company_id)
            .where(ConsoleSession.token_hash == hash_cookie(cookie))
        ).first()
    if row is None:
        raise AuthError("Sign in to the console.", code="session_revoked")
    console, auth_session, device, user, company = row
    if device.revoked_at is not None:
        raise AuthError("This console sign-in has been revoked.", code="device_revoked")
    if not user.is_active:
        raise AuthError("This account is disabled.", code="user_disabled")
    if auth_session.revoked_at is not None:
        raise AuthError("This session has ended; sign in again.", code="session_revoked")
    if user.role not in CONSOLE_ROLES:
        raise AuthError("This role does not use the web console.", code="session_revoked")
    idle = now - console.last_active_at > timedelta(seconds=settings.console_idle_timeout)
    old = now - console.created_at >= timedelta(seconds=settings.console_session_lifetime)
    if idle or old:
        with ctx.db.session() as session:
            service._revoke_session(
                session, auth_session.id, now=now, reason="console_idle" if idle else "console_lifetime"
            )
        raise AuthError("The console session has expired; sign in again.", code="session_revoked")
    if not passive and now - console.last_active_at >= ACTIVE_RESOLUTION:
        with ctx.db.session() as session:
            session.exec(
                sa.update(ConsoleSession)
                .where(col(ConsoleSession.token_hash) == console.token_hash)
                .values(last_active_at=now)
            )
            session.exec(sa.update(Device).where(col(Device.id) == device.id).values(last_seen_at=now))
    return ConsoleUser(
        principal=Principal(
            user_id=user.id,
            company_id=user.company_id,
            role=Role(user.role),
            username=user.username,
            full_name=user.full_name,
            device_id=device.id,
            session_id=auth_session.id,
        ),
        locale=user.locale if user.locale in LOCALES else DEFAULT_LOCALE,
        timezone=company.timezone,
        company_name=company.name,
        csrf_token=console.csrf_token,
    )


def sign_out(ctx: AppContext, *, user: ConsoleUser) -> None:
    """End the auth session (the API's logout) and forget the cookie."""
    service.logout(ctx, principal=user.principal)
    with ctx.db.session() as session:
        session.exec(
            sa.delete(ConsoleSession).where(col(ConsoleSession.auth_session_id) == user.principal.session_id)
        )


def set_locale(ctx: AppContext, *, user_id: uuid.UUID, locale: str) -> None:
    if locale not in LOCALES:
        raise InvalidInput(
            "Unknown language.", code="invalid_input", detail={"locale": locale, "allowed": list(LOCALES)}
        )
    with ctx.db.session() as session:
        session.exec(sa.update(User).where(col(User.id) == user_id).values(locale=locale))
