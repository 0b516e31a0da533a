"""Around every HTTP request: its id, its log line and its duration metric.

The request id is the caller's ``X-Request-ID`` when it is a sane token (letters, digits and
``._:-``, at most 128), otherwise a new one; it is bound to the log context for every line the
request writes, and sent back as ``X-Request-ID``. When the request is done, one ``request``
line says route template (never the path: public document references travel in paths), status,
duration, user and device. The bytes of files travelling through ``/api/v1/blobs`` are counted
here too, as they are received and sent.

This wraps the whole application, outside CORS and routing, so refused preflights and 404s have
an id and a line too.
"""

import logging
import re
import time
import uuid
from typing import Any

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from backend import metrics

__all__ = ("REQUEST_ID_HEADER", "with_telemetry")

REQUEST_ID_HEADER = "x-request-id"
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
BLOB_PATHS = "/api/v1/blobs/"

log = logging.getLogger("heatcrew.http")


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            given = value.decode("latin-1")
            if SANE_REQUEST_ID.fullmatch(given):
                return given
            break
    return uuid.uuid4().hex


class _Telemetry:
    __slots__ = ("app",)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        id_header = (b"x-request-id", request_id.encode())
        status = 500
        blobs = scope["path"].startswith(BLOB_PATHS)
        received = sent = 0

        async def sending(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            elif blobs and message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        async def receiving() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receiving if blobs else receive, sending)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("path_template") or metrics.UNMATCHED_ROUTE
            method = scope["method"]
            metrics.observe_request(method, route, status, seconds)
            if blobs:
                metrics.observe_blob_bytes("in", received)
                if 200 <= status < 300 and method == "GET":
                    metrics.observe_blob_bytes("out", sent)
            # A token-only route (the pull) has the token's claims; they name user and device too.
            principal: Any = scope.get("user") or scope.get("auth")
            if log.isEnabledFor(logging.INFO):
                self._log(method, route, status, seconds, principal)
            structlog.contextvars.reset_contextvars(**tokens)

    @staticmethod
    def _log(method: str, route: str, status: int, seconds: float, principal: Any) -> None:
        log.info(
            "request",
            extra={
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "user_id": str(principal.user_id) if principal is not None else None,
                "device_id": principal.device_id if principal is not None else None,
            },
        )


def with_telemetry(asgi_handler: ASGIApp) -> ASGIApp:
    """Wrap the application's handler (outermost, like ``backend.cors.with_cors``)."""
    return _Telemetry(asgi_handler)
