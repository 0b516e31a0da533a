"""Per-address limits on public endpoints, counted in the database so every worker shares them.

One row per scope, key and fixed window (``rate_counter``), bumped by one atomic upsert in its own
committed transaction before the request is served: several workers on one PostgreSQL enforce
one limit, and a request that then fails (a wrong token, an unknown reference) is still counted.
"""

import math
from datetime import datetime

import sqlalchemy as sa
from litestar.connection import ASGIConnection
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col

from backend.auth.models import RateCounter
from backend.context import AppContext
from backend.errors import RateLimited

__all__ = ("client_address", "count_request")


def client_address(connection: ASGIConnection, ctx: AppContext) -> str:
    """The caller's address: the peer, or behind a trusted proxy the last ``X-Forwarded-For`` hop,
    the one the proxy appended (what comes before it is whatever the client wrote)."""
    if ctx.settings.trust_forwarded_for:
        forwarded = connection.headers.get("x-forwarded-for")
        if forwarded and forwarded.split(",")[-1].strip():
            return forwarded.split(",")[-1].strip()[:64]
    return (connection.client.host if connection.client else "unknown")[:64]


def count_request(ctx: AppContext, *, scope: str, key: str, limit: int, window: int) -> None:
    """Count one request of ``key`` in the current ``window``-second window; past ``limit``
    answer ``429 rate_limited`` with the seconds until the window ends as ``Retry-After``."""
    now = ctx.clock.now()
    start = _window_start(now, window)
    with ctx.db.session() as session:
        insert = postgresql.insert if ctx.db.dialect == "postgresql" else sqlite.insert
        statement = insert(RateCounter).values(scope=scope, key=key[:64], window_start=start, hits=1)
        statement = statement.on_conflict_do_update(
            index_elements=["scope", "key", "window_start"],
            set_={"hits": statement.table.c.hits + 1},
        ).returning(statement.table.c.hits)
        hits = session.execute(statement).scalar_one()
        if hits == 1:
            # A new window of this scope: the rows of its earlier windows are dead.
            session.execute(
                sa.delete(RateCounter).where(
                    col(RateCounter.scope) == scope, col(RateCounter.window_start) < start
                )
            )
    if hits > limit:
        retry_after = max(1, math.ceil(start + window - now.timestamp()))
        raise RateLimited(
            "Too many requests from this address; wait before trying again.",
            detail={"limit": limit, "window_s": window, "scope": "address"},
            headers={"Retry-After": str(retry_after)},
        )


def _window_start(now: datetime, window: int) -> int:
    return int(now.timestamp()) // window * window
