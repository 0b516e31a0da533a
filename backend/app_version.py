"""``X-App-Version``: which phone app is asking, and what an app older than the minimum may still do.

The phone sends its version (a semantic version, ``2.3.1``) on every request. When
``HEATCREW_MIN_APP_VERSION`` is set, an older app gets ``426 app_upgrade_required`` on reads and on
the online API, but keeps what carries its queued facts to the server: log in, refresh, log out,
upload files, push, and read its own sync status. In a push its facts are applied as usual and its
intents are answered ``rejected`` / ``app_upgrade_required`` (``sync.push``): nothing done in the
field is lost because an app was old, and a request that may always be refused is refused.

A request without the header (a browser, curl, the office console) is not checked: the header is
how a phone says it is one. A header that is not a semantic version is ``400 invalid_app_version``
on every route that checks it, so a build that sends garbage is found on the first request.
"""

from typing import Any

from litestar import Request
from semver import Version

from backend.errors import HeatCrewError

__all__ = (
    "APP_VERSION_HEADER",
    "KEPT_FOR_OLD_APPS",
    "UNCHECKED_PREFIXES",
    "AppUpgradeRequired",
    "InvalidAppVersion",
    "is_outdated",
    "require_supported_app",
)

APP_VERSION_HEADER = "x-app-version"
# What an outdated app may still call, as (method, route template): its queue's way to the server.
KEPT_FOR_OLD_APPS = frozenset(
    {
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/refresh"),
        ("POST", "/api/v1/auth/logout"),
        ("PUT", "/api/v1/blobs/{sha256}"),
        ("HEAD", "/api/v1/blobs/{sha256}"),
        ("POST", "/api/v1/blobs/{sha256}/presign"),
        ("POST", "/api/v1/blobs/{sha256}/complete"),
        ("POST", "/api/v1/sync/push"),  # checked action by action
        ("GET", "/api/v1/sync/status"),
    }
)
# Never checked: probes and the API documents, which no phone queue depends on.
UNCHECKED_PREFIXES = ("/health", "/ready", "/schema")
_OUTDATED = "heatcrew.app_outdated"


class InvalidAppVersion(HeatCrewError):
    status = 400
    code = "invalid_app_version"
    default_message = "X-App-Version must be a semantic version such as 2.3.1."


class AppUpgradeRequired(HeatCrewError):
    status = 426
    code = "app_upgrade_required"


def _version(request: Request[Any, Any, Any]) -> Version | None:
    raw = request.headers.get(APP_VERSION_HEADER)
    if raw is None:
        return None
    try:
        return Version.parse(raw.strip())
    except (ValueError, TypeError):
        raise InvalidAppVersion(detail={"header": "X-App-Version", "got": raw[:64]}) from None


def is_outdated(request: Request[Any, Any, Any]) -> bool:
    """Whether the caller is a phone app older than the configured minimum (False without one)."""
    state = request.scope.setdefault("state", {})
    if _OUTDATED not in state:
        minimum = request.app.state.ctx.settings.min_app_version
        version = _version(request)
        state[_OUTDATED] = minimum is not None and version is not None and version < Version.parse(minimum)
    return state[_OUTDATED]


async def require_supported_app(request: Request[Any, Any, Any]) -> None:
    """``before_request``: 400 for a malformed header, 426 for an outdated app outside its queue's way."""
    if request.url.path.startswith(UNCHECKED_PREFIXES):
        return
    if not is_outdated(request):
        return
    if (request.method, request.scope.get("path_template")) in KEPT_FOR_OLD_APPS:
        return
    minimum = request.app.state.ctx.settings.min_app_version
    raise AppUpgradeRequired(
        f"This app is too old: version {minimum} or later is required. Update the app; queued work "
        "still syncs meanwhile.",
        detail={"minimum": minimum, "yours": request.headers.get(APP_VERSION_HEADER)},
    )
