"""Maps every exception to the one error body ``{code, message, detail}``, once."""

import logging
import threading
from datetime import datetime, timedelta
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


# The same denial again (caller, device, route, code) within this window is counted, not written: a
# phone or script looping on a 403 must not turn every refusal into a write under the chain's lock.
DENIAL_WINDOW = timedelta(seconds=60)
DENIALS_KEPT = 10_000


class DenialThrottle:
    """Per worker: which denials were recorded when, and how many repeats were left out since."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[Any, ...], tuple[datetime, int]] = {}

    def admit(self, key: tuple[Any, ...], now: datetime) -> int | None:
        """``None``: a repeat within the window (only counted); else the repeats left out before."""
        with self._lock:
            last = self._seen.get(key)
            if last is not None and now - last[0] < DENIAL_WINDOW:
                self._seen[key] = (last[0], last[1] + 1)
                return None
            if len(self._seen) >= DENIALS_KEPT:
                self._seen = {k: v for k, v in self._seen.items() if now - v[0] < DENIAL_WINDOW}
                if len(self._seen) >= DENIALS_KEPT:
                    self._seen.clear()
            self._seen[key] = (now, 0)
            return last[1] if last is not None else 0


def _denied(request: Request, code: str) -> BackgroundTask | None:
    """A 403 for an authenticated caller joins the audit log in a transaction of its own (the
    request's own, if any, rolls back: the refused request leaves no other trace). It runs after
    the answer is sent, in a worker thread, so the event loop never waits for the database. The
    same denial repeated within :data:`DENIAL_WINDOW` is not written again; the next one recorded
    says how many were left out (``repeated``)."""
    principal = request.scope.get("user")
    if not isinstance(principal, Principal):
        return None
    ctx = request.app.state.ctx
    throttle = request.app.state.get("denial_throttle")
    if throttle is None:
        throttle = request.app.state["denial_throttle"] = DenialThrottle()
    route = _route(request)
    key = (principal.user_id, principal.device_id, request.method, route, code)
    repeated = throttle.admit(key, ctx.clock.now())
    if repeated is None:
        return None
    return BackgroundTask(
        _record_denial,
        ctx.db,
        company_id=principal.company_id,
        event=audit.Event.access_denied,
        actor_user_id=principal.user_id,
        actor_device_id=principal.device_id,
        target_type="route",
        target_id=route[:64],
        detail={
            "method": request.method,
            "route": route,
            "role": principal.role.value,
            "code": code,
            **({"repeated": repeated} if repeated else {}),
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
