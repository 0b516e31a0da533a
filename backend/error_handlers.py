"""Maps every exception to the one error body ``{code, message, detail}``, once."""

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    SerializationException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from backend.errors import HeatCrewError

__all__ = ("exception_handlers",)

log = logging.getLogger("heatcrew.errors")


def _body(
    status: int, code: str, message: str, detail: Any = None, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        {"code": code, "message": message, "detail": detail},
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def _heatcrew(_: Request, exc: HeatCrewError) -> Response:
    return _body(exc.status, exc.code, exc.message, exc.detail, exc.headers or None)


def _validation(request: Request, exc: ValidationException) -> Response:
    errors = exc.extra if isinstance(exc.extra, list) else []
    text = " ".join(str(e.get("message", "")) for e in errors if isinstance(e, dict))
    if "malformed" in text.lower() or "truncated" in text.lower():
        return _body(400, "malformed_json", "The request body is not valid JSON.", errors)
    return _body(400, "invalid_body", "The request does not match the expected shape.", errors)


def _too_large(request: Request, exc: HTTPException) -> Response:
    limit = request.route_handler.resolve_request_max_body_size()
    return _body(413, "body_too_large", f"The request body is larger than {limit} bytes.", {"limit": limit})


def _http(_: Request, exc: HTTPException) -> Response:
    if isinstance(exc.__cause__, SerializationException):
        return _body(400, "malformed_json", "The request body is not valid JSON.", {"error": str(exc.detail)})
    if isinstance(exc, NotFoundException):
        return _body(404, "not_found", "No such resource or route.")
    if isinstance(exc, MethodNotAllowedException):
        return _body(405, "method_not_allowed", "This method is not allowed here.", None, exc.headers)
    if isinstance(exc, NotAuthorizedException):
        return _body(401, "not_authenticated", "Authentication is required.")
    if isinstance(exc, PermissionDeniedException):
        return _body(403, "forbidden", "You are not allowed to do this.")
    if exc.status_code >= 500:
        log.error("server error: %s", exc.detail)
        return _body(exc.status_code, "internal_error", "The server failed; the request was not applied.")
    return _body(exc.status_code, "bad_request", str(exc.detail))


def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _body(500, "internal_error", "The server failed; the request was not applied.")


exception_handlers: dict[Any, Any] = {
    HeatCrewError: _heatcrew,
    ValidationException: _validation,
    RequestEntityTooLarge: _too_large,
    HTTPException: _http,
    Exception: _unexpected,
}
