"""Authentication for every route except those that opt out with ``opt={"exclude_from_auth": True}``."""

from litestar.connection import ASGIConnection
from litestar.middleware.authentication import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.utils.sync import sync_to_thread

from backend.auth import service

__all__ = ("AccessTokenMiddleware",)

DEVICE_HEADER = "x-device-id"


class AccessTokenMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        ctx = connection.app.state.ctx
        principal = await sync_to_thread(
            service.authenticate,
            ctx,
            authorization=connection.headers.get("authorization"),
            device_header=connection.headers.get(DEVICE_HEADER),
        )
        return AuthenticationResult(user=principal, auth=None)
