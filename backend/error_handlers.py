"""Maps every exception to the one error body ``{code, message, detail}``, once."""

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.background_tasks import BackgroundTask
from litestar.exceptions import (
    HTTPException,
    InternalServerException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    SerializationException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from backend import audit
from backend.auth.principal import Principal
from backend.db.failures import RETRY_AFTER_SECONDS, is_unavailable
from backend.errors import ClientDisconnected, DatabaseUnavailable, HeatCrewError

__all__ = ("exception_handlers",)

log = logging.getLogger("heatcrew.errors")


def _body(
    status: int,
    code: str,
    message: str,
    detail: Any = None,
    headers: dict[str, str] | None = None,
    background: BackgroundTask | None = None,
) -> Response:
    return Response(
        {"code": code, "message": message, "detail": detail},
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
        background=background,
    )


def _heatcrew(request: Request, exc: HeatCrewError) -> Response:
    background = _denied(request, exc.code) if exc.status == 403 else None
    return _body(exc.status, exc.code, exc.message, exc.detail, exc.headers or None, background)


def _record_denial(db: Any, **event: Any) -> None:
    try:
        audit.record_alone(db, **event)
    except Exception:
        # The answer is already sent; the log says so (with the route, never who or what).
        log.exception("audit: a permission denial on %s could not be recorded", event["detail"]["route"])


def _denied(request: Request, code: str) -> BackgroundTask | None:
    """A 403 for an authenticated caller joins the audit log in a transaction of its own (the
    request's own, if any, rolls back: the refused request leaves no other trace). It runs after
    the answer is sent, in a worker thread, so the event loop never waits for the database."""
    principal = request.scope.get("user")
    if not isinstance(principal, Principal):
        return None
    ctx = request.app.state.ctx
    return BackgroundTask(
        _record_denial,
        ctx.db,
        company_id=principal.company_id,
        event=audit.Event.access_denied,
        actor_user_id=principal.user_id,
        actor_device_id=principal.device_id,
        target_type="route",
        target_id=_route(request)[:64],
        detail={
            "method": request.method,
            "route": _route(request),
            "role": principal.role.value,
            "code": code,
        },
    )


def _validation(request: Request, exc: ValidationException) -> Response:
    errors = exc.extra if isinstance(exc.extra, list) else []
    text = " ".join(str(e.get("message", "")) for e in errors if isinstance(e, dict))
    if "malformed" in text.lower() or "truncated" in text.lower():
        return _body(400, "malformed_json", "The request body is not valid JSON.", errors)
    return _body(400, "invalid_body", "The request does not match the expected shape.", errors)


def _too_large(request: Request, exc: HTTPException) -> Response:
    limit = request.route_handler.resolve_request_max_body_size()
    return _body(413, "body_too_large", f"The request body is larger than {limit} bytes.", {"limit": limit})


# What Litestar raises when the client closes the connection while its body is being read.
_CLIENT_GONE = "client disconnected prematurely"


def _http(request: Request, exc: HTTPException) -> Response:
    if isinstance(exc, InternalServerException) and exc.detail == _CLIENT_GONE:
        # A phone that lost its signal mid-request: nothing failed here and nobody reads the answer.
        log.info("client disconnected before its request arrived: %s %s", request.method, _route(request))
        gone = ClientDisconnected()
        return _body(gone.status, gone.code, gone.message)
    if isinstance(exc.__cause__, SerializationException):
        return _body(400, "malformed_json", "The request body is not valid JSON.", {"error": str(exc.detail)})
    if isinstance(exc, NotFoundException):
        return _body(404, "not_found", "No such resource or route.")
    if isinstance(exc, MethodNotAllowedException):
        return _body(405, "method_not_allowed", "This method is not allowed here.", None, exc.headers)
    if isinstance(exc, NotAuthorizedException):
        return _body(401, "not_authenticated", "Authentication is required.")
    if isinstance(exc, PermissionDeniedException):
        return _body(
            403, "forbidden", "You are not allowed to do this.", background=_denied(request, "forbidden")
        )
    if exc.status_code >= 500:
        log.error("server error: %s", exc.detail)
        return _body(exc.status_code, "internal_error", "The server failed; the request was not applied.")
    return _body(exc.status_code, "bad_request", str(exc.detail))


def _database_unavailable(request: Request, exc: Exception) -> Response:
    # One line, no traceback: an outage would otherwise flood the log with the same stack.
    log.warning("database unavailable on %s %s: %s", request.method, _route(request), _first_line(exc))
    error = DatabaseUnavailable(detail={"retryable": True}, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    return _heatcrew(request, error)


def _route(request: Request) -> str:
    """The route template: a path may carry what logs must not hold (public document references)."""
    return request.scope.get("path_template") or "unmatched"


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _unexpected(request: Request, exc: Exception) -> Response:
    # Database trouble reaches here from any endpoint (SQLAlchemy's and the drivers' errors are
    # not HeatCrewErrors): mapped once, so no handler has to catch it.
    if is_unavailable(exc):
        return _database_unavailable(request, exc)
    log.exception("unhandled error on %s %s", request.method, _route(request))
    return _body(500, "internal_error", "The server failed; the request was not applied.")


exception_handlers: dict[Any, Any] = {
    HeatCrewError: _heatcrew,
    ValidationException: _validation,
    RequestEntityTooLarge: _too_large,
    HTTPException: _http,
    Exception: _unexpected,
}
