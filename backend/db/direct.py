"""The push and pull paths' fixed statements, run on PostgreSQL straight on the driver's cursor.

SQLAlchemy runs a compiled, cached Core statement at a cost: an execution context, its
parameters processed, a ``CursorResult`` and its row processors. For the few statements every
push runs (the admission with the device's lock, the orders' lock, the bulk writes) and every
database pull runs (the admission with the feed's reach, the feed, the changed orders, their
clocks and appointments) that cost 45–70 µs of CPU more per statement than psycopg's own
``execute`` and ``fetchall``. Here they go to the pooled connection's cursor as text compiled once.

What this gives up, and why that is safe for the statements it is used on:

- parameter processing: only plain values are sent (UUIDs, strings, numbers, lists of them, and
  the bulk writes' JSON, converted by ``db.buffer``);
- result processing: psycopg's own types are what SQLAlchemy would return on this engine, since
  every connection runs with ``TimeZone=UTC`` (``backend.db.engine``; checked on each call), so
  timestamps come back as aware UTC as ``UTCDateTime`` makes them; ``tests/unit/test_direct.py``
  compares each statement's rows with SQLAlchemy's, value and type;
- events: the engine's ``before_cursor_execute`` listeners are called as SQLAlchemy calls them
  (with no execution context); nothing else of SQLAlchemy's execution runs;
- error handling: SQLAlchemy's own (``Connection._handle_dbapi_exception``, checked by
  ``tests/unit/test_sqlalchemy_internals.py``): a driver error is raised as its ``DBAPIError``
  (the push's retries and ``db.failures`` read it as they read any other), parameters hidden, and
  a lost connection is invalidated with the pool's older ones.

A connection whose session is not in UTC (a pooler that drops startup options, a ``SET TIME
ZONE``) runs these through SQLAlchemy, which converts.

Elsewhere than PostgreSQL with psycopg each call runs through SQLAlchemy as usual.
"""

from typing import Any

import sqlalchemy as sa
from psycopg.rows import namedtuple_row

__all__ = ("execute", "first", "rows")

_SQL: dict[Any, str] = {}


def rows(
    connection: sa.Connection, statement: sa.Executable, params: dict[str, Any], *, named: bool = False
) -> list[Any]:
    """The rows of ``statement``: tuples on PostgreSQL, or with ``named`` tuples whose fields are
    the columns' names (which must differ); SQLAlchemy's rows elsewhere."""
    if not _direct(connection):
        return connection.execute(statement, params).all()
    sql = _SQL.get(statement)
    if sql is None:
        sql = str(statement.compile(dialect=connection.dialect))
        if "POSTCOMPILE" in sql:  # a list SQLAlchemy expands at each run: not for this path
            raise TypeError("db.direct takes no expanding parameters; use db.lists.one_of")
        _SQL[statement] = sql
    return _run(connection, sql, params, fetch=True, named=named)  # type: ignore[return-value]


def first(connection: sa.Connection, statement: sa.Executable, params: dict[str, Any]) -> Any | None:
    """The first row of ``statement``, or None."""
    found = rows(connection, statement, params)
    return found[0] if found else None


def execute(connection: sa.Connection, sql: str, params: Any) -> None:
    """A write given as the driver's text: one execution for a tuple or dict of parameters, one per
    row for a list of them."""
    if not _direct(connection):
        connection.exec_driver_sql(sql, params)
        return
    _run(connection, sql, params, fetch=False)


def _direct(connection: sa.Connection) -> bool:
    dialect = connection.dialect
    if dialect.name != "postgresql" or dialect.driver != "psycopg":
        return False
    # Rows carry the session's zone: UTC unless a pooler dropped the startup option or something
    # ran SET TIME ZONE; then SQLAlchemy's own path, which converts.
    pgconn = connection.connection.driver_connection.pgconn
    return pgconn.parameter_status(b"TimeZone") in _UTC_NAMES


_UTC_NAMES = frozenset({b"UTC", b"Etc/UTC"})


def _run(
    connection: sa.Connection, sql: str, params: Any, *, fetch: bool, named: bool = False
) -> list[tuple[Any, ...]] | None:
    if not connection.in_transaction():
        connection.begin()  # as SQLAlchemy's autobegin: its commit() then commits this too
    dbapi_connection = connection.connection
    cursor = None
    many = isinstance(params, list)
    try:
        cursor = dbapi_connection.cursor(row_factory=namedtuple_row) if named else dbapi_connection.cursor()
        # Listeners of the engine (statement counts, fault injection in tests) see these too.
        if connection.dispatch.before_cursor_execute:
            connection.dispatch.before_cursor_execute(connection, cursor, sql, params, None, many)
        if many:
            cursor.executemany(sql, params)
            return None
        cursor.execute(sql, params)
        return cursor.fetchall() if fetch else None
    except BaseException as exc:
        # SQLAlchemy's own handling, as for any statement it runs: the error wrapped as its
        # DBAPIError (parameters hidden by the engine), a lost connection invalidated with the
        # pool's older ones, the handle_error events called.
        connection._handle_dbapi_exception(exc, sql, params, cursor, None)
        raise  # not reached: it raises
    finally:
        if cursor is not None:
            cursor.close()
