"""Rows written in bulk: the push path's writes skip the ORM unit of work.

``add_row`` keeps a plain dict to insert; ``track`` keeps a plain object standing for a row that is
already in the database (an order locked for a push batch) with a copy of its values, so that
whatever changes in it is written back as an UPDATE. Both reach the database in one ``executemany``
per table (inserts first) before the session runs its next statement (``Session.execute``; not a
statement run on ``session.connection()`` directly), at its next flush, and before it commits, so
queries and the commit see them. Building an ORM object per action costs more than the insert.
Any rollback, a savepoint's too, drops what is pending and the copies: read the rows again.

The statements are compiled once per table and column set, and each distinct timestamp is
converted for the driver once per write (a batch's rows share a handful): per row, only a tuple of
values is built. The conversions are SQLAlchemy's own bind processors, so what lands in a column
is exactly what a Core ``insert`` would have written.
"""

import operator
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, SessionTransaction
from sqlalchemy.orm import Session as OrmSession

__all__ = ("add_row", "discard_rows", "insert_now", "track", "write_rows")

_ROWS = "heatcrew.rows"
_TRACKED = "heatcrew.tracked"


def add_row(session: OrmSession, table: sa.Table, row: dict[str, Any]) -> None:
    """Insert ``row`` into ``table`` with the session's next write."""
    session.info.setdefault(_ROWS, {}).setdefault(table, []).append(row)


def track(session: OrmSession, table: sa.Table, rows: Iterable[Any]) -> None:
    """Write back whatever changes from now on in ``rows``: objects with one attribute per column.

    Their rows must be locked (or the database otherwise held) until the commit, and the object
    must be the transaction's only copy of its row: a column changed in it is written as it is
    there. Assign JSON values anew rather than changing them deep inside (lists and dicts are
    compared one level deep).
    """
    tracked: dict[sa.Table, dict[tuple[Any, ...], tuple[Any, tuple[Any, ...]]]] = session.info.setdefault(
        _TRACKED, {}
    )
    mine = tracked.setdefault(table, {})
    shape = _shape(table)
    for row in rows:
        mine[shape.key(row)] = (row, _snapshot(row, shape))


def insert_now(session: OrmSession, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (all with the same keys) into ``table`` now, as one statement where it can."""
    if not rows:
        return
    connection = session.connection()
    columns = tuple(rows[0])
    recordset = _recordset_insert(connection.dialect, table, columns)
    if recordset is not None:
        recordset.send(connection, rows)
    else:
        _executemany(connection, _insert(connection.dialect, table, columns), rows)


def write_rows(session: OrmSession) -> None:
    """Send what is pending now (the session's events call this; call it before a savepoint ends)."""
    info = session.info
    tracked = info.get(_TRACKED)
    if _ROWS not in info and not tracked:
        return
    pending: dict[sa.Table, list[dict[str, Any]]] = info.pop(_ROWS, {})
    connection = session.connection()
    dialect = connection.dialect
    with _pipelined(connection):
        # Inserts first: a row added and tracked in one batch is updated after it exists.
        for table, inserts in pending.items():
            by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for row in inserts:
                by_columns.setdefault(tuple(row), []).append(row)
            for columns, same in by_columns.items():
                recordset = _recordset_insert(dialect, table, columns)
                if recordset is not None:
                    recordset.send(connection, same)
                else:
                    _executemany(connection, _insert(dialect, table, columns), same)
        for table, rows in (tracked or {}).items():
            shape = _shape(table)
            # Only the columns that changed: whatever else wrote to the row in this transaction stays.
            by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for key, (row, before) in rows.items():
                now = _snapshot(row, shape)
                if now != before:
                    rows[key] = (row, now)
                    changed = {c: v for c, v, b in zip(shape.columns, now, before, strict=True) if v != b}
                    by_columns.setdefault(tuple(changed), []).append({**changed, **shape.key_params(key)})
            for columns, same in by_columns.items():
                recordset = _recordset_update(dialect, table, columns)
                if recordset is not None:
                    recordset.send(connection, same)
                else:
                    _executemany(connection, _update(dialect, table, columns), same)


@contextmanager
def _pipelined(connection: sa.Connection) -> Iterator[None]:
    """On PostgreSQL (psycopg) every statement of a write is sent before any answer is awaited."""
    driver = connection.connection.driver_connection
    pipeline = getattr(driver, "pipeline", None)
    if connection.dialect.name != "postgresql" or pipeline is None:
        yield
        return
    dbapi = connection.dialect.loaded_dbapi
    try:
        with pipeline():
            yield
    except dbapi.Error as exc:
        # An error surfaces when the pipeline ends: wrapped as SQLAlchemy wraps every other one, so
        # that callers (push's retry on serialisation failures) see the usual exception.
        raise sa.exc.DBAPIError.instance(None, None, exc, dbapi.Error, dialect=connection.dialect) from exc


def discard_rows(session: OrmSession) -> None:
    """After a savepoint rollback: the undone work must not be written, nor its rows written back."""
    session.info.pop(_ROWS, None)
    session.info.pop(_TRACKED, None)


# ---------------------------------------------------------------- statements


class _Statement:
    """A statement compiled for one dialect with the driver-level conversion of each parameter."""

    __slots__ = ("defaults", "names", "positional", "sql")

    def __init__(self, compiled: sa.sql.compiler.SQLCompiler, defaults: dict[str, Callable[[], Any]]) -> None:
        self.sql = compiled.string
        self.positional = compiled.positional
        escaped = compiled.escaped_bind_names
        # The executor's own conversions (type decorators, UUID, JSON, SQLite datetimes).
        processors = compiled._bind_processors
        names = list(compiled.positiontup or []) if compiled.positional else list(compiled.binds)
        self.names = tuple((name, escaped.get(name, name), processors.get(name)) for name in names)
        self.defaults = defaults


_STATEMENTS: dict[tuple[Any, ...], _Statement] = {}
_PK = "heatcrew_pk_"


def _insert(dialect: sa.Dialect, table: sa.Table, columns: tuple[str, ...]) -> _Statement:
    cache_key = ("insert", dialect.name, dialect.driver, table, columns)
    statement = _STATEMENTS.get(cache_key)
    if statement is None:
        compiled = sa.insert(table).compile(dialect=dialect, column_keys=list(columns))
        defaults: dict[str, Callable[[], Any]] = {}
        # Columns left out get their Python-side defaults, as a Core insert would give them.
        for column in compiled.insert_prefetch:
            default = column.default
            if default is not None and default.is_scalar:
                value = default.arg  # type: ignore[attr-defined]
                defaults[column.key] = lambda value=value: value
            elif default is not None and default.is_callable:
                defaults[column.key] = lambda fn=default.arg: fn(None)  # type: ignore[attr-defined]
            else:
                raise TypeError(f"{table.name}.{column.key}: only plain defaults can be written in bulk")
        statement = _STATEMENTS[cache_key] = _Statement(compiled, defaults)  # type: ignore[arg-type]
    return statement


def _update(dialect: sa.Dialect, table: sa.Table, columns: tuple[str, ...]) -> _Statement:
    cache_key = ("update", dialect.name, dialect.driver, table, columns)
    statement = _STATEMENTS.get(cache_key)
    if statement is None:
        where = sa.and_(*(table.c[k] == sa.bindparam(_PK + k) for k in _shape(table).keys))
        compiled = sa.update(table).where(where).compile(dialect=dialect, column_keys=list(columns))
        statement = _STATEMENTS[cache_key] = _Statement(compiled, {})  # type: ignore[arg-type]
    return statement


def _executemany(connection: sa.Connection, statement: _Statement, rows: list[dict[str, Any]]) -> None:
    names = statement.names
    defaults = statement.defaults
    memo: dict[tuple[str, Any, Any], Any] = {}
    params: list[Any] = []
    for row in rows:
        values = []
        for name, _, process in names:
            if name in row:
                value = row[name]
            elif name in defaults:
                value = defaults[name]()
            else:
                value = None
            if process is not None:
                if type(value) is datetime:
                    # The same instant in the same zone converts the same: once per write.
                    key = (name, value, value.tzinfo)
                    converted = memo.get(key, memo)
                    if converted is memo:
                        converted = memo[key] = process(value)
                    value = converted
                else:
                    value = process(value)
            values.append(value)
        if statement.positional:
            params.append(tuple(values))
        else:
            params.append({escaped: value for (_, escaped, _), value in zip(names, values, strict=True)})
    connection.exec_driver_sql(statement.sql, params)


class _Recordset:
    """PostgreSQL: a write's rows as one JSON array that the server unpacks into the table's row type.

    One parameter instead of one bind per row: psycopg's per-row work (dumping each value, a
    Bind/Execute message, reading each result) costs more client time than the server's JSON
    parsing. Values are encoded by msgspec: UUIDs, aware datetimes (with their offset), booleans,
    numbers, strings, and JSON columns as nested JSON. A type decorator's own conversion (the UTC
    columns refusing naive datetimes) still runs first. A JSON column's ``None`` lands as SQL NULL.
    """

    __slots__ = ("defaults", "names", "sql")

    def __init__(
        self,
        sql: str,
        names: tuple[tuple[str, str, Callable[[Any], Any] | None], ...],
        defaults: dict[str, Callable[[], Any]],
    ) -> None:
        self.sql = sql
        self.names = names  # (row key, column name, conversion)
        self.defaults = defaults

    def send(self, connection: sa.Connection, rows: list[dict[str, Any]]) -> None:
        names = self.names
        defaults = self.defaults
        memo: dict[tuple[str, Any, Any], Any] = {}
        records = []
        for row in rows:
            record = {}
            for key, name, convert in names:
                if key in row:
                    value = row[key]
                elif key in defaults:
                    value = defaults[key]()
                else:
                    value = None
                if convert is not None and value is not None:
                    if type(value) is datetime:
                        memo_key = (key, value, value.tzinfo)
                        converted = memo.get(memo_key, memo)
                        if converted is memo:
                            converted = memo[memo_key] = convert(value)
                        value = converted
                    else:
                        value = convert(value)
                record[name] = value
            records.append(record)
        connection.exec_driver_sql(self.sql, (_JSON.encode(records).decode(),))


_JSON = msgspec.json.Encoder()
_RECORDSETS: dict[tuple[Any, ...], _Recordset | None] = {}


def _recordset_insert(dialect: sa.Dialect, table: sa.Table, columns: tuple[str, ...]) -> _Recordset | None:
    cache_key = ("insert", dialect.name, dialect.driver, table, columns)
    if cache_key not in _RECORDSETS:
        _RECORDSETS[cache_key] = None
        if dialect.name == "postgresql" and dialect.driver == "psycopg" and _encodable(table):
            defaults = _insert(dialect, table, columns).defaults
            keys = list(columns) + [k for k in defaults if k not in columns]
            quote = dialect.identifier_preparer.quote
            name = dialect.identifier_preparer.format_table(table)
            listed = ", ".join(quote(table.c[k].name) for k in keys)
            sql = (
                f"INSERT INTO {name} ({listed}) SELECT {listed} "
                f"FROM json_populate_recordset(NULL::{name}, %s::json)"
            )
            _RECORDSETS[cache_key] = _Recordset(sql, _conversions(dialect, table, keys), defaults)
    return _RECORDSETS[cache_key]


def _recordset_update(dialect: sa.Dialect, table: sa.Table, columns: tuple[str, ...]) -> _Recordset | None:
    cache_key = ("update", dialect.name, dialect.driver, table, columns)
    if cache_key not in _RECORDSETS:
        _RECORDSETS[cache_key] = None
        if dialect.name == "postgresql" and dialect.driver == "psycopg" and _encodable(table):
            quote = dialect.identifier_preparer.quote
            name = dialect.identifier_preparer.format_table(table)
            keys = _shape(table).keys
            assigned = ", ".join(f"{quote(table.c[k].name)} = v.{quote(table.c[k].name)}" for k in columns)
            matched = " AND ".join(
                f"{name}.{quote(table.c[k].name)} = v.{quote(table.c[k].name)}" for k in keys
            )
            sql = (
                f"UPDATE {name} SET {assigned} "
                f"FROM json_populate_recordset(NULL::{name}, %s::json) AS v WHERE {matched}"
            )
            names = _conversions(dialect, table, list(columns)) + tuple(
                (_PK + k, table.c[k].name, None) for k in keys
            )
            _RECORDSETS[cache_key] = _Recordset(sql, names, {})
    return _RECORDSETS[cache_key]


def _encodable(table: sa.Table) -> bool:
    """Every column's values survive JSON: no bytes (msgspec would write base64)."""
    return not any(isinstance(c.type, sa.LargeBinary) for c in table.columns)


def _conversions(
    dialect: sa.Dialect, table: sa.Table, keys: list[str]
) -> tuple[tuple[str, str, Callable[[Any], Any] | None], ...]:
    names = []
    for key in keys:
        kind = table.c[key].type
        convert = None
        if (
            isinstance(kind, sa.TypeDecorator)
            and type(kind).process_bind_param is not sa.TypeDecorator.process_bind_param
        ):
            convert = lambda value, kind=kind: kind.process_bind_param(value, dialect)  # noqa: E731
        names.append((key, table.c[key].name, convert))
    return tuple(names)


class _Shape:
    """How a tracked row of one table is keyed and copied."""

    __slots__ = ("columns", "json", "key", "keys", "values")

    def __init__(self, table: sa.Table) -> None:
        self.keys = tuple(c.key for c in table.primary_key.columns)
        self.columns = tuple(c.key for c in table.columns if c.key not in self.keys)
        self.key = operator.attrgetter(*self.keys) if len(self.keys) > 1 else _one(self.keys[0])
        self.values = operator.attrgetter(*self.columns) if len(self.columns) > 1 else _one(self.columns[0])
        # Values that can change in place (JSON lists and dicts) are copied into the snapshot.
        self.json = tuple(i for i, c in enumerate(self.columns) if isinstance(table.c[c].type, sa.JSON))

    def key_params(self, key: tuple[Any, ...]) -> dict[str, Any]:
        return {_PK + k: v for k, v in zip(self.keys, key, strict=True)}


def _one(name: str) -> Callable[[Any], tuple[Any, ...]]:
    get = operator.attrgetter(name)
    return lambda row: (get(row),)


_SHAPES: dict[sa.Table, _Shape] = {}


def _shape(table: sa.Table) -> _Shape:
    shape = _SHAPES.get(table)
    if shape is None:
        shape = _SHAPES[table] = _Shape(table)
    return shape


def _snapshot(row: Any, shape: _Shape) -> tuple[Any, ...]:
    values = shape.values(row)
    if not shape.json:
        return values
    copied = list(values)
    for i in shape.json:
        if isinstance(value := copied[i], list | dict):
            copied[i] = value.copy()
    return tuple(copied)


# ---------------------------------------------------------------- when rows are written


@event.listens_for(OrmSession, "do_orm_execute")
def _before_statement(state: ORMExecuteState) -> None:
    write_rows(state.session)


@event.listens_for(OrmSession, "after_flush_postexec")
def _after_flush(session: OrmSession, _context: Any) -> None:
    write_rows(session)


@event.listens_for(OrmSession, "before_commit")
def _before_commit(session: OrmSession) -> None:
    write_rows(session)


@event.listens_for(OrmSession, "after_rollback")
def _after_rollback(session: OrmSession) -> None:
    # Also after a savepoint's rollback: what was written in it is undone, so the copies are stale.
    discard_rows(session)


@event.listens_for(OrmSession, "after_transaction_end")
def _after_transaction_end(session: OrmSession, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        # The row locks are gone with the transaction: nothing is written back from here on.
        discard_rows(session)
