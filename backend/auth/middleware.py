"""Authentication for every route except those that opt out with ``opt={"exclude_from_auth": True}``.

Every route finds the token's checked claims in ``request.auth`` and the admitted caller in
``request.user``. A route with ``opt={"token_only": True}`` gets the claims only, ``request.user``
left ``None``, and admits the caller itself before anything that could return or change data: the
delta pull answers an empty page from memory on them (it reveals and changes nothing) and calls
``service.admit`` for any other; the push admits in its transaction's first statement; ``GET /me``
admits in the statement that reads its answer (``service.admit_reading``).
"""

from litestar.connection import ASGIConnection
from litestar.middleware.authentication import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.utils.sync import sync_to_thread

from backend.auth import service

__all__ = ("AccessTokenMiddleware",)

DEVICE_HEADER = "x-device-id"


class AccessTokenMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        ctx = connection.app.state.ctx
        headers = connection.headers
        if connection.scope["route_handler"].opt.get("token_only"):
            claims = service.read_token(
                ctx, authorization=headers.get("authorization"), device_header=headers.get(DEVICE_HEADER)
            )
            return AuthenticationResult(user=None, auth=claims)
        claims = service.read_token(
            ctx, authorization=headers.get("authorization"), device_header=headers.get(DEVICE_HEADER)
        )
        principal = await sync_to_thread(service.admit, ctx, claims)
        return AuthenticationResult(user=principal, auth=claims)
