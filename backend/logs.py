"""Logs: one processor chain (structlog) for every line, HeatCrew's own, uvicorn's, SQLAlchemy's.

The code logs through stdlib ``logging.getLogger`` or ``structlog.get_logger``; both end in the
same ``ProcessorFormatter``, which adds the time, level, logger and the request's context (the
request id bound by ``backend.telemetry``) and renders JSON lines (``HEATCREW_LOG_FORMAT=json``)
or coloured console lines (``console``).

What must never reach a log (passwords, tokens, signature strokes and images, residents' phone
numbers, photo GPS, public document references) is kept out at the source: request lines name
the route template, not the path; no body is logged; SQLAlchemy and the AWS SDK (which would log
statement parameters and request bodies at debug level) stay at warning whatever the level.
:func:`redact` is the second line: a field by one of those names, or a value that looks like
a token, is replaced before rendering.
"""

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from backend.settings import Settings

__all__ = ("REDACTED", "configure_logging", "redact")

REDACTED = "[redacted]"
# Field names whose values are never written, wherever they appear in a line.
SENSITIVE_FIELDS = frozenset(
    {
        "password",
        "new_password",
        "access_token",
        "refresh_token",
        "token",
        "authorization",
        "strokes",
        "image",
        "phone",
        "contact_phone",
        "lat",
        "lon",
        "gps",
        "reference",
        "resident_reference",
    }
)
# A JWT (our access tokens), or the long URL-safe strings our refresh tokens and references are.
TOKEN_LIKE = re.compile(r"eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}|\b[\w-]{40,}\b")
# Libraries that log statement parameters or request bodies when verbose.
# HTTP clients (httpx, urllib3) log whole URLs at info, paths with public references included.
QUIET_LOGGERS = (
    "sqlalchemy",
    "botocore",
    "boto3",
    "s3transfer",
    "urllib3",
    "httpx",
    "httpcore",
    "PIL",
    "multipart",
)


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Blank sensitive fields and token-like strings (a structlog processor)."""
    event.pop("color_message", None)  # uvicorn's copy of the message with terminal colours
    for key, value in event.items():
        if key in SENSITIVE_FIELDS:
            event[key] = REDACTED
        elif isinstance(value, str) and len(value) >= 40:
            event[key] = TOKEN_LIKE.sub(REDACTED, value)
    return event


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(settings: Settings, *, stream: TextIO | None = None) -> logging.Handler:
    """Route every logger of the process through one handler on ``stream`` (stdout by default).

    Called once per process by ``heatcrew serve`` and by each worker; returns the handler so a
    test can remove it again."""
    json_lines = settings.log_format == "json"
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=stream is None and sys.stdout.isatty())
    )
    final: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if json_lines:
        # Before redact, so a traceback's text is searched too.
        final.append(structlog.processors.format_exc_info)
    final.append(redact)
    formatter = structlog.stdlib.ProcessorFormatter(
        # Lines from stdlib loggers: their ``extra={...}`` fields become fields of the line.
        foreign_pre_chain=[*_shared_processors(), structlog.stdlib.ExtraAdder()],
        processors=[*final, renderer],
    )
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    level = settings.log_level.upper()
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn's own handlers would print a second, unstructured copy.
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return handler
