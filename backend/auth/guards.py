"""Role guards. Object-level checks (own company, own orders) live in the services."""

from collections.abc import Callable

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from backend.auth.models import Role
from backend.auth.principal import Principal
from backend.errors import Forbidden

__all__ = ("require_roles",)

Guard = Callable[[ASGIConnection, BaseRouteHandler], None]


def require_roles(*roles: Role) -> Guard:
    allowed = frozenset(roles)

    def guard(connection: ASGIConnection, _handler: BaseRouteHandler) -> None:
        if connection.scope.get("method") == "OPTIONS":
            # A class-level guard covers the route's generated OPTIONS handler too, which is not
            # authenticated (nor is a CORS preflight): it reveals nothing, so it always answers.
            return
        principal: Principal = connection.user
        if principal.role not in allowed:
            raise Forbidden(
                "Your role may not do this.",
                detail={"role": principal.role.value, "allowed": sorted(r.value for r in allowed)},
            )

    return guard
