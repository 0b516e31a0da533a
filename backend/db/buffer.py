"""Rows written in bulk: hot-path inserts (timeline events, sync answers) skip the ORM unit of work.

``add_row`` keeps a plain dict; the rows go to the database in one ``executemany`` per table right
after the session's next flush, so any query (which autoflushes first) and the commit see them.
Building an ORM object per action costs more than the whole insert; a dict costs almost nothing.
"""

from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession

__all__ = ("add_row", "discard_rows", "write_rows")

_ROWS = "heatcrew.rows"


def add_row(session: OrmSession, table: sa.Table, row: dict[str, Any]) -> None:
    session.info.setdefault(_ROWS, {}).setdefault(table, []).append(row)


def write_rows(session: OrmSession) -> None:
    pending: dict[sa.Table, list[dict[str, Any]]] | None = session.info.pop(_ROWS, None)
    if not pending:
        return
    connection = session.connection()
    for table, rows in pending.items():
        connection.execute(sa.insert(table), rows)


def discard_rows(session: OrmSession) -> None:
    """After a savepoint rollback: the rows of the undone work must not be written."""
    session.info.pop(_ROWS, None)


@event.listens_for(OrmSession, "after_flush_postexec")
def _after_flush(session: OrmSession, _context: Any) -> None:
    write_rows(session)


@event.listens_for(OrmSession, "before_commit")
def _before_commit(session: OrmSession) -> None:
    write_rows(session)


@event.listens_for(OrmSession, "after_rollback")
def _after_rollback(session: OrmSession) -> None:
    session.info.pop(_ROWS, None)
