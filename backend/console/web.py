"""The console's plumbing: who is signed in, the CSRF check, rendering, error pages.

- :class:`ConsoleSessionMiddleware` resolves the session cookie on every console route except
  those marked ``opt={"console_public": True}`` (sign-in, static files); ``request.user`` is then
  a :class:`~backend.console.sessions.ConsoleUser`, and handlers ask for it as ``viewer: Viewer``.
  Routes marked ``opt={"console_passive": True}`` (the board's polling) do not count as use.
- :func:`check_csrf` (the console router's ``before_request``): every POST carries the session's
  token, as the form field ``csrf_token`` or the ``X-CSRF-Token`` header that htmx sends from
  ``hx-headers`` on ``<body>``; the sign-in form carries a token of its own (double-submit cookie).
- :func:`render` renders a template (a page or an htmx fragment) with the base context.
- :data:`exception_handlers`: a missing session redirects to the sign-in page (an htmx request:
  ``401`` with ``HX-Redirect``); every other error is a page showing its stable code.
"""

import hmac
import json
import uuid
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import quote

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.middleware.authentication import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.response import Redirect, Template
from litestar.utils.sync import sync_to_thread

from backend.console import i18n
from backend.console.sessions import ConsoleUser, resolve
from backend.error_handlers import exception_handlers as api_exception_handlers
from backend.errors import AuthError, Forbidden, HeatCrewError, InvalidInput
from backend.nul_guard import refuse_nul

__all__ = (
    "COOKIE",
    "LOGIN_CSRF_COOKIE",
    "ConsoleSessionMiddleware",
    "CsrfInvalid",
    "Viewer",
    "check_csrf",
    "exception_handlers",
    "render",
    "require_console_roles",
)

COOKIE = "heatcrew_console"
LOGIN_CSRF_COOKIE = "heatcrew_console_login"
COOKIE_PATH = "/console"
LOGIN_PATH = "/console/login"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
STATIC_DIR = Path(__file__).parent / "static"

Viewer: TypeAlias = NamedDependency[ConsoleUser]
"""The signed-in console user of this request."""


class CsrfInvalid(HeatCrewError):
    status = 403
    code = "csrf_token_invalid"
    default_message = "This form has expired or did not come from the console; reload the page and try again."


class ConsoleSessionMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        ctx = connection.app.state.ctx
        passive = bool(connection.route_handler.opt.get("console_passive"))
        user = await sync_to_thread(resolve, ctx, cookie=connection.cookies.get(COOKIE), passive=passive)
        return AuthenticationResult(user=user, auth=None)


async def check_csrf(request: Request) -> None:
    """The console's ``before_request``: NUL in the path or query, then the CSRF token of a POST."""
    await refuse_nul(request)
    if request.method != "POST":
        return
    user = request.scope.get("user")
    expected = user.csrf_token if isinstance(user, ConsoleUser) else request.cookies.get(LOGIN_CSRF_COOKIE)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.content_type[0] in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        sent = (await request.form()).get(CSRF_FIELD)
    if not expected or not isinstance(sent, str) or not hmac.compare_digest(sent, expected):
        raise CsrfInvalid()


def parse_id(value: object, field: str) -> uuid.UUID | None:
    """A form's or query's id; empty is none, anything else not an id is ``400 invalid_input``."""
    if value is None or value == "":
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidInput(f"{field} is not an id.", detail={"field": field}) from None


def require_console_roles(viewer: ConsoleUser, *roles: Any) -> None:
    if not viewer.has_role(*roles):
        raise Forbidden(
            "Your role may not do this.",
            detail={"role": viewer.role.value, "allowed": sorted(r.value for r in roles)},
        )


def is_secure(request: Request) -> bool:
    if request.app.state.ctx.settings.console_trust_forwarded_proto:
        forwarded = request.headers.get("x-forwarded-proto")
        if forwarded:
            return forwarded.split(",")[0].strip().lower() == "https"
    return request.url.scheme == "https"


def static_url(name: str) -> str:
    """``/console/static/<name>?v=<sha256 prefix>``: cached for a year, a new file a new URL."""
    return f"/console/static/{name}?v={_static_versions().get(name, '0')}"


def _static_versions() -> dict[str, str]:
    import hashlib

    if not _VERSIONS:
        for path in STATIC_DIR.iterdir():
            if path.is_file():
                _VERSIONS[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return _VERSIONS


_VERSIONS: dict[str, str] = {}


def base_context(request: Request, viewer: ConsoleUser | None) -> dict[str, Any]:
    from backend.console import nav_entries

    locale = viewer.locale if viewer else request.app.state.console_default_locale
    timezone = viewer.timezone if viewer else request.app.state.ctx.settings.timezone
    callables = i18n.gettext_callables(locale)
    return {
        **callables,
        "viewer": viewer,
        "lang": locale,
        "html_lang": "zh-Hans" if locale == "zh" else locale,
        "csrf_token": viewer.csrf_token if viewer else request.cookies.get(LOGIN_CSRF_COOKIE, ""),
        "csrf_headers": json.dumps({"X-CSRF-Token": viewer.csrf_token}) if viewer else "{}",
        "nav": [e for e in nav_entries() if viewer is not None and viewer.role in e.roles],
        "current_path": request.url.path,
        "static_url": static_url,
        "when": lambda value, format="short": i18n.format_time(
            value, timezone=timezone, locale=locale, format=format
        ),
    }


def render(
    request: Request,
    template: str,
    *,
    status: int = 200,
    viewer: ConsoleUser | None = None,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Template:
    """Render ``template`` (a page extending ``console/base.html``, or a fragment) for ``viewer``."""
    if viewer is None and isinstance(request.scope.get("user"), ConsoleUser):
        viewer = request.scope["user"]
    return Template(
        template_name=template,
        context={**base_context(request, viewer), **context},
        status_code=status,
        headers=headers,
    )


def _sign_in_required(request: Request, exc: AuthError) -> Response:
    response: Response
    if request.headers.get("hx-request") == "true":
        response = Response(b"", status_code=401, headers={"HX-Redirect": LOGIN_PATH})
    else:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response = Redirect(f"{LOGIN_PATH}?next={quote(target)}&why={exc.code}", status_code=303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


def _error_page(request: Request, exc: Exception) -> Response | Template:
    if isinstance(exc, AuthError) and request.scope.get("user") is None and not _is_public(request):
        return _sign_in_required(request, exc)
    if isinstance(exc, HeatCrewError):
        status, code, message = exc.status, exc.code, exc.message
    elif isinstance(exc, ValidationException):
        status, code, message = 400, "invalid_input", "Some of the form's fields are missing or malformed."
    elif isinstance(exc, NotFoundException):
        status, code, message = 404, "not_found", "No such page."
    elif isinstance(exc, HTTPException) and exc.status_code < 500:
        status, code, message = exc.status_code, "invalid_input", str(exc.detail)
    else:
        return api_exception_handlers[Exception](request, exc)
    template = "console/_error.html" if request.headers.get("hx-request") == "true" else "console/error.html"
    return render(request, template, status=status, code=code, message=message)


def _is_public(request: Request) -> bool:
    handler = request.scope.get("route_handler")
    return bool(handler is not None and handler.opt.get("console_public"))


exception_handlers: dict[Any, Any] = {HeatCrewError: _error_page, HTTPException: _error_page}
