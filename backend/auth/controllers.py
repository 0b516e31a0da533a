"""HTTP layer of accounts and devices: thin, every call delegates to ``backend.auth.service``."""

import uuid

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlmodel import col, select

from backend.auth import service
from backend.auth.guards import require_roles
from backend.auth.limits import client_address, count_request
from backend.auth.models import Device, Role, User
from backend.auth.schemas import DeviceRead, RevokeDevice, UserCreate, UserRead
from backend.contract.answers import answers
from backend.deps import Caller, Ctx
from backend.errors import HeatCrewError
from backend.metrics import observe_login_failure
from backend.org.models import Company
from mobile_contract.auth import LoggedOut, LoginRequest, RefreshRequest, TokenPair, UserSummary
from mobile_contract.errors import ErrorCode

__all__ = ("AuthController", "DeviceController", "UserController")

PUBLIC = {"exclude_from_auth": True}
LOGIN_ANSWERS = answers(
    ErrorCode.invalid_credentials,
    ErrorCode.user_disabled,
    ErrorCode.device_revoked,
    ErrorCode.device_registered_elsewhere,
    ErrorCode.rate_limited,
    ErrorCode.login_busy,
)
REFRESH_ANSWERS = answers(
    ErrorCode.refresh_token_invalid,
    ErrorCode.refresh_token_reused,
    ErrorCode.refresh_token_expired,
    ErrorCode.session_revoked,
    ErrorCode.device_revoked,
    ErrorCode.device_mismatch,
    ErrorCode.user_disabled,
    ErrorCode.rate_limited,
)
FORBIDDEN = {"answers": answers(ErrorCode.forbidden)}


class AuthController(Controller):
    path = "/api/v1/auth"
    tags = ["auth"]

    @post("/login", opt={**PUBLIC, "answers": LOGIN_ANSWERS}, status_code=HTTP_200_OK)
    async def login(self, request: Request, ctx: Ctx, data: JSONBody[LoginRequest]) -> TokenPair:
        """Log in on a device; registers the device to the user on first login. `429 rate_limited`
        when the account's or the address's attempts are spent; `503 login_busy` (retryable,
        `Retry-After`) when the server's password checks stay taken for too long."""
        try:
            return await service.login_gated(ctx, request=data, address=client_address(request, ctx))
        except HeatCrewError as refused:
            observe_login_failure(refused.code)
            raise

    @post(
        "/refresh", opt={**PUBLIC, "answers": REFRESH_ANSWERS}, status_code=HTTP_200_OK, sync_to_thread=True
    )
    def refresh(self, request: Request, ctx: Ctx, data: JSONBody[RefreshRequest]) -> TokenPair:
        """Trade a refresh token for a new pair. The token is spent; reusing it ends the session,
        except a resend within 60 s while its successor is unused (a lost answer). Limited per
        client address (`429 rate_limited`, `Retry-After`)."""
        settings = ctx.settings
        count_request(
            ctx,
            scope="refresh",
            key=client_address(request, ctx),
            limit=settings.refresh_max_per_address,
            window=settings.refresh_window,
        )
        return service.refresh(ctx, request=data)

    @post("/logout", status_code=HTTP_200_OK, sync_to_thread=True)
    def logout(self, ctx: Ctx, principal: Caller) -> LoggedOut:
        """End this device's session: its refresh token stops working."""
        service.logout(ctx, principal=principal)
        return LoggedOut(ok=True)


class MeController(Controller):
    path = "/api/v1/me"
    tags = ["auth"]

    # The token is checked in memory only: the caller is admitted by the statement that reads the
    # answer (a phone asks at every start and resume).
    @get("/", sync_to_thread=True, opt={"token_only": True})
    def me(self, ctx: Ctx, request: Request) -> UserSummary:
        """Who you are: name, role, team and company, for the phone's header and its rules."""
        principal, (staff_number, timezone) = service.admit_reading(ctx, request.auth, _ME)
        request.scope["user"] = principal
        return UserSummary(
            id=principal.user_id,
            username=principal.username,
            full_name=principal.full_name,
            role=principal.role.value,
            staff_number=staff_number,
            company_id=principal.company_id,
            timezone=timezone,
        )


_ME = service.admission(User.__table__.c.staff_number, Company.__table__.c.timezone).join(
    Company.__table__, Company.__table__.c.id == User.__table__.c.company_id
)


class UserController(Controller):
    path = "/api/v1/users"
    tags = ["users"]

    @get(
        "/",
        guards=[require_roles(Role.admin, Role.supervisor, Role.dispatcher)],
        sync_to_thread=True,
    )
    def list_users(self, ctx: Ctx, principal: Caller, role: FromQuery[Role | None] = None) -> list[UserRead]:
        """The company's staff, e.g. the technicians a dispatcher can assign."""
        with ctx.db.session(readonly=True) as session:
            query = select(User).where(User.company_id == principal.company_id).order_by(col(User.username))
            if role is not None:
                query = query.where(User.role == role.value)
            return [_user_read(user) for user in session.exec(query)]

    @post(
        "/",
        guards=[require_roles(Role.admin)],
        status_code=HTTP_201_CREATED,
        sync_to_thread=True,
        opt={
            "answers": answers(ErrorCode.password_too_short, ErrorCode.username_taken, ErrorCode.unknown_team)
        },
    )
    def create_user(self, ctx: Ctx, principal: Caller, data: JSONBody[UserCreate]) -> UserRead:
        """Create an account in your company (admin). The password is checked for length only."""
        with ctx.db.session() as session:
            user = service.create_user(
                ctx,
                session,
                company_id=principal.company_id,
                username=data.username,
                full_name=data.full_name,
                role=data.role,
                password=data.password,
                staff_number=data.staff_number,
                phone=data.phone,
                actor=principal,
            )
            return _user_read(user)

    @post(
        "/{user_id:uuid}/disable",
        guards=[require_roles(Role.admin)],
        status_code=HTTP_200_OK,
        sync_to_thread=True,
    )
    def disable_user(self, ctx: Ctx, principal: Caller, user_id: FromPath[uuid.UUID]) -> UserRead:
        """Locks the account out at once, on every device."""
        with ctx.db.session() as session:
            user = service.get_user(session, user_id=user_id, company_id=principal.company_id)
            return _user_read(service.disable_user(ctx, session, user=user, actor=principal))

    @post(
        "/{user_id:uuid}/enable",
        guards=[require_roles(Role.admin)],
        status_code=HTTP_200_OK,
        sync_to_thread=True,
    )
    def enable_user(self, ctx: Ctx, principal: Caller, user_id: FromPath[uuid.UUID]) -> UserRead:
        """Let a disabled account log in again; its old sessions stay ended."""
        with ctx.db.session() as session:
            user = service.get_user(session, user_id=user_id, company_id=principal.company_id)
            return _user_read(service.enable_user(session, user=user, actor=principal))


class DeviceController(Controller):
    path = "/api/v1/devices"
    tags = ["devices"]
    guards = [require_roles(Role.admin, Role.supervisor)]

    @get("/", sync_to_thread=True)
    def list_devices(self, ctx: Ctx, principal: Caller) -> list[DeviceRead]:
        """The company's registered phones, with their user and whether they are revoked."""
        with ctx.db.session(readonly=True) as session:
            rows = session.exec(
                select(Device, User)
                .join(User, col(User.id) == Device.user_id)
                .where(User.company_id == principal.company_id)
                .order_by(col(Device.last_seen_at).desc())
            )
            return [_device_read(device, user) for device, user in rows]

    @post("/{device_id:str}/revoke", status_code=HTTP_200_OK, sync_to_thread=True, opt=FORBIDDEN)
    def revoke(
        self,
        ctx: Ctx,
        principal: Caller,
        device_id: FromPath[str],
        data: JSONBody[RevokeDevice | None] = None,
    ) -> DeviceRead:
        """Lock a lost or stolen phone out at once; its queued work stays on the phone."""
        with ctx.db.session() as session:
            device = service.get_device(session, device_id=device_id, company_id=principal.company_id)
            service.revoke_device(
                ctx,
                session,
                device=device,
                by=principal.user_id,
                by_device=principal.device_id,
                reason=data.reason if data else None,
            )
            user = session.get(User, device.user_id)
            assert user is not None
            return _device_read(device, user)


def _user_read(user: User) -> UserRead:
    return msgspec.convert(user, UserRead, from_attributes=True)


def _device_read(device: Device, user: User) -> DeviceRead:
    return DeviceRead(
        id=device.id,
        user_id=device.user_id,
        username=user.username,
        platform=device.platform,
        app_version=device.app_version,
        registered_at=device.registered_at,
        last_seen_at=device.last_seen_at,
        revoked_at=device.revoked_at,
        revoke_reason=device.revoke_reason,
    )
