"""Tells a database that cannot answer right now (retry later: 503) from a request or a bug (500).

Unavailable: the connection failed, was closed or terminated, timed out (connect, statement or
pool), the server is shutting down or out of resources, or SQLite is still locked after its busy
timeout. Not unavailable: constraint violations, bad SQL, missing tables, bad data: sending the
same request again cannot help, so they stay errors of the server.
"""

import sqlite3

import psycopg
import sqlalchemy as sa

__all__ = ("RETRYABLE_SQLSTATES", "RETRY_AFTER_SECONDS", "is_unavailable")

RETRY_AFTER_SECONDS = 5
"""What a 503 ``database_unavailable`` tells the client to wait (``Retry-After``)."""
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
"""A serialisation failure or a deadlock: PostgreSQL ended the transaction, which may simply run
again (a push batch, an erasure)."""

# SQLSTATE classes of psycopg's OperationalError that say "not now": connection exception (08),
# transaction rollback (40: serialisation, deadlock), insufficient resources (53), operator
# intervention (57: statement timeout, cancel, admin shutdown, pg_terminate_backend), system error
# (58). Class 54 (program limit exceeded) is left out: the same statement fails again.
_PG_TRANSIENT_CLASSES = ("08", "40", "53", "57", "58")
_PG_TRANSIENT_STATES = ("55P03",)  # lock_not_available
_SQLITE_TRANSIENT = (
    "database is locked",
    "database table is locked",
    "database is busy",
    "unable to open database",
    "disk i/o error",
    "database or disk is full",
)


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` (or what it was raised from) says the database cannot answer right now."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 5:
        if _unavailable(current):
            return True
        current = current.__cause__
        seen += 1
    return False


def _unavailable(exc: BaseException) -> bool:
    if isinstance(exc, sa.exc.TimeoutError):  # no pooled connection came free in time
        return True
    if isinstance(exc, sa.exc.DBAPIError):
        if exc.connection_invalidated:  # SQLAlchemy saw a disconnect
            return True
        return exc.orig is not None and _driver_unavailable(exc.orig)
    return _driver_unavailable(exc)


def _driver_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, psycopg.OperationalError):
        state = getattr(exc, "sqlstate", None)
        if state is None:  # raised by the client: connect failed or timed out, connection lost
            return True
        return state[:2] in _PG_TRANSIENT_CLASSES or state in _PG_TRANSIENT_STATES
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return any(marker in text for marker in _SQLITE_TRANSIENT)
    return False
