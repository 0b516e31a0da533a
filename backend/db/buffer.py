"""Rows written in bulk: the push path's writes skip the ORM unit of work.

``add_row`` keeps a plain dict to insert; ``track`` keeps a plain object standing for a row that is
already in the database (an order locked for a push batch) with a copy of its values, so that
whatever changes in it is written back as an UPDATE. Both reach the database, on SQLite in one
``executemany`` per table, on PostgreSQL as JSON recordsets in one statement for all tables (see
:class:`_Combined`) (inserts first, a table's before those whose foreign keys refer to it, whatever
order the rows were added in) before the session runs its next statement (``Session.execute``; not a
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
from contextlib import contextmanager, nullcontext
from datetime import datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, SessionTransaction
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session as SqlModelSession

from backend.db import direct

__all__ = (
    "BufferedSession",
    "abandon",
    "add_row",
    "discard_rows",
    "insert_now",
    "send_rows",
    "track",
    "watch",
    "write_rows",
)

_ROWS = "heatcrew.rows"
_TRACKED = "heatcrew.tracked"
_OPEN = "heatcrew.pipeline"


Watcher = Callable[[OrmSession, list[Any], list[dict[str, Any]]], None]
_WATCHERS: dict[sa.Table, Watcher] = {}


def watch(table: sa.Table, watcher: Watcher) -> None:
    """Call ``watcher(session, rows, old)`` whenever rows of ``table`` are written from here: the
    inserted row dicts (``old`` empty), or the tracked rows that changed (objects) with their
    values before as dicts. It runs as the rows are sent and must not run statements."""
    _WATCHERS[table] = watcher


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
    _insert_rows(_Combined(session.connection(), together=False), table, tuple(rows[0]), rows)


def write_rows(session: OrmSession) -> None:
    """Send what is pending and wait until the database has done all of it, raising what failed.

    BufferedSession calls this before each statement, flush and commit; call it before a
    savepoint ends.
    """
    _send_pending(session, keep_open=False)
    _collect(session)


def send_rows(session: OrmSession) -> None:
    """Send what is pending and go on at once: the database works on it while Python prepares more.

    On PostgreSQL (psycopg) the writes go into a pipeline that stays open; the next statement,
    flush or commit through the session waits for their answers (and raises a failure there). Only
    writes may run while it is open, so nothing else may reach the connection except through the
    session; and only in a session from ``Database.session``, which closes the pipeline before a
    rollback (SQLAlchemy's own end-of-transaction events come after the connection went back to
    the pool). Elsewhere this is :func:`write_rows`.
    """
    connection = session.connection()
    driver = connection.connection.driver_connection
    if connection.dialect.name != "postgresql" or getattr(driver, "pipeline", None) is None:
        write_rows(session)
        return
    _send_pending(session, keep_open=True)


def _send_pending(session: OrmSession, *, keep_open: bool) -> None:
    info = session.info
    tracked = info.get(_TRACKED)
    if _ROWS not in info and not tracked:
        return
    # What changed in the tracked rows is found first: before most statements nothing has, and then
    # the connection is not touched at all (no pipeline opened and closed for nothing).
    updates = _tracked_changes(tracked) if tracked else []
    pending: dict[sa.Table, list[dict[str, Any]]] = info.pop(_ROWS, {})
    if not pending and not updates:
        return
    connection = session.connection()
    dialect = connection.dialect
    if keep_open and _OPEN not in info:
        pipeline = connection.connection.driver_connection.pipeline()
        pipeline.__enter__()
        info[_OPEN] = (pipeline, connection)
    # PostgreSQL: the send's JSON recordsets go as one statement, each in a WITH of the next, so
    # that the client's cost of a statement is paid once. All of them see the same snapshot: an
    # update of a table that this send also inserts into would not find the new rows, so then
    # each goes apart, in order.
    together = dialect.name == "postgresql" and not any(table in pending for table, *_ in updates)
    # A send that comes to one statement (the common case on PostgreSQL) runs it plainly; only
    # several go through a pipeline, all sent before any answer is awaited. In a pipeline left open
    # (``send_rows``) each goes at once.
    combined = _Combined(connection, together=together, queued=[] if _OPEN not in info else None)
    # Inserts first: a row added and tracked in one batch is updated after it exists. Tables in
    # the order of their foreign keys, not of their first row: a statement run between two
    # add_row calls sends what came before it, so a child's table can open the next write
    # (a review item's new flag) ahead of its parent's (another order's new item).
    for table in sorted(pending, key=_rank) if len(pending) > 1 else pending:
        inserts = pending[table]
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in inserts:
            by_columns.setdefault(tuple(row), []).append(row)
        for columns, same in by_columns.items():
            _insert_rows(combined, table, columns, same)
        watcher = _WATCHERS.get(table)
        if watcher is not None:
            watcher(session, inserts, [])
    for table, changes, seen, old in updates:
        shape = _shape(table)
        for columns, same in changes.items():
            recordset = _recordset_update(dialect, table, columns)
            if recordset is not None:
                rows = [{**changed, **dict(zip(shape.keys, key, strict=True))} for changed, key in same]
                combined.add(recordset, rows)
            else:
                params = [{**changed, **shape.key_params(key)} for changed, key in same]
                combined.executemany(_update(dialect, table, columns), params)
        if seen:
            _WATCHERS[table](session, seen, old)
    combined.send()
    combined.run_queued()


_Changes = dict[tuple[str, ...], list[tuple[dict[str, Any], tuple[Any, ...]]]]


def _tracked_changes(
    tracked: dict[sa.Table, dict[tuple[Any, ...], tuple[Any, tuple[Any, ...]]]],
) -> list[tuple[sa.Table, _Changes, list[Any], list[dict[str, Any]]]]:
    """Per table, the tracked rows that changed since last written, by the columns that changed
    (only those are written: whatever else wrote to the row in this transaction stays), with the
    rows and their old values for the table's watcher. Each one found is taken as written."""
    found = []
    for table, rows in tracked.items():
        shape = _shape(table)
        watched = table in _WATCHERS
        changes: _Changes = {}
        seen: list[Any] = []
        old: list[dict[str, Any]] = []
        for key, (row, before) in rows.items():
            now = _snapshot(row, shape)
            if now != before:
                rows[key] = (row, now)
                if watched:
                    seen.append(row)
                    old.append(dict(zip(shape.columns, before, strict=True)))
                changed = {c: v for c, v, b in zip(shape.columns, now, before, strict=True) if v != b}
                changes.setdefault(tuple(changed), []).append((changed, key))
        if changes:
            found.append((table, changes, seen, old))
    return found


_RANKS: dict[sa.Table, int] = {}


def _rank(table: sa.Table) -> int:
    """The table's place in its metadata's foreign-key order: every table it refers to comes first."""
    rank = _RANKS.get(table)
    if rank is None:
        _RANKS.update({t: i for i, t in enumerate(table.metadata.sorted_tables)})
        rank = _RANKS[table]
    return rank


def _insert_rows(
    combined: "_Combined", table: sa.Table, columns: tuple[str, ...], rows: list[dict[str, Any]]
) -> None:
    """A JSON recordset on PostgreSQL (a part of ``combined``), an executemany elsewhere."""
    connection = combined.connection
    recordset = _recordset_insert(connection.dialect, table, columns)
    if recordset is not None:
        combined.add(recordset, rows)
    else:
        combined.executemany(_insert(connection.dialect, table, columns), rows)


class _Combined:
    """JSON recordset writes gathered into one statement: ``WITH w0 AS (…), w1 AS (…) <last>``;
    or, not ``together``, each sent as it comes.

    PostgreSQL runs every data-modifying part of a WITH, each once, in one snapshot, and checks
    foreign keys at the end of the statement. The text is the same for the same writes in the same
    order, so the driver prepares it like any other repeated statement.

    With ``queued`` (a list) the statements wait there for :meth:`run_queued`: one runs plainly,
    several in a pipeline."""

    __slots__ = ("connection", "params", "parts", "queued", "together")

    def __init__(
        self, connection: sa.Connection, *, together: bool, queued: list[tuple[str, Any]] | None = None
    ) -> None:
        self.connection = connection
        self.together = together
        self.parts: list[str] = []
        self.params: list[Any] = []
        self.queued = queued

    def add(self, recordset: "_Recordset", rows: list[dict[str, Any]]) -> None:
        """Write ``rows`` (keyed by column, all with the same keys; filled in and converted in
        place) with the next :meth:`send`, or now when not ``together``."""
        self.parts.append(recordset.sql)
        self.params.extend(recordset.params(rows))
        if not self.together:
            self.send()

    def executemany(self, statement: "_Statement", rows: list[dict[str, Any]]) -> None:
        """A write that is no recordset: after what was gathered, one execution per row."""
        self.send()
        self._run(statement.sql, _executemany_params(statement, rows))

    def send(self) -> None:
        if not self.parts:
            return
        *first, last = self.parts
        key = tuple(self.parts)
        sql = _COMBINED.get(key)
        if sql is None:
            heads = ", ".join(f"w{i} AS ({part})" for i, part in enumerate(first))
            sql = f"WITH {heads} {last}" if first else last
            if len(_COMBINED) < COMBINED_KEPT:  # a few dozen shapes in practice; never unbounded
                _COMBINED[key] = sql
        self._run(sql, tuple(self.params))
        self.parts, self.params = [], []

    def run_queued(self) -> None:
        queued, self.queued = self.queued, None
        if not queued:
            return
        with _pipelined(self.connection) if len(queued) > 1 else nullcontext():
            for sql, params in queued:
                direct.execute(self.connection, sql, params)

    def _run(self, sql: str, params: Any) -> None:
        if self.queued is not None:
            self.queued.append((sql, params))
        else:
            direct.execute(self.connection, sql, params)


_COMBINED: dict[tuple[str, ...], str] = {}
COMBINED_KEPT = 1000


def _collect(session: OrmSession, *, failed: bool = False) -> None:
    """Close a pipeline :func:`send_rows` left open: wait for its answers and raise what failed."""
    opened = session.info.pop(_OPEN, None)
    if opened is None:
        return
    pipeline, connection = opened
    if failed:  # the transaction is being rolled back: its errors are moot
        pipeline.__exit__(RuntimeError, RuntimeError("rolled back"), None)
        return
    dbapi = connection.dialect.loaded_dbapi
    try:
        pipeline.__exit__(None, None, None)
    except dbapi.Error as exc:
        raise sa.exc.DBAPIError.instance(None, None, exc, dbapi.Error, dialect=connection.dialect) from exc


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
    _collect(session, failed=True)


def abandon(session: OrmSession) -> None:
    """Before a rollback: close a pipeline left open, whatever failed in it, so the rollback runs."""
    try:
        _collect(session, failed=True)
    except Exception:  # the connection is broken: the pool replaces it
        session.info.pop(_OPEN, None)


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


def _executemany_params(statement: _Statement, rows: list[dict[str, Any]]) -> list[Any]:
    """The parameters of ``statement`` for each row, converted as the driver takes them."""
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
    return params


class _Recordset:
    """PostgreSQL: a write's rows as one JSON array that the server unpacks into the table's row type.

    One parameter instead of one bind per row: psycopg's per-row work (dumping each value, a
    Bind/Execute message, reading each result) costs more client time than the server's JSON
    parsing. The row dicts are encoded as they are by msgspec: UUIDs, aware datetimes (with their
    offset), booleans, numbers, strings, and JSON columns as nested JSON. A type decorator's own
    conversion (the UTC columns refusing naive datetimes) still runs first, once per distinct
    value. A JSON column's ``None`` lands as SQL NULL.
    """

    __slots__ = ("conversions", "defaults", "key", "sql")

    def __init__(
        self,
        sql: str,
        conversions: tuple[tuple[str, Callable[[Any], Any]], ...],
        defaults: dict[str, Callable[[], Any]],
        key: str | None = None,
    ) -> None:
        self.sql = sql
        self.conversions = conversions  # (column, conversion) for the type decorators
        self.defaults = defaults  # for the columns the rows leave out
        self.key = key  # an update's key column, also sent as an array

    def params(self, rows: list[dict[str, Any]]) -> tuple[Any, ...]:
        """The statement's parameters for ``rows`` (filled in and converted in place)."""
        for column, make in self.defaults.items():
            for row in rows:
                row[column] = make()
        for column, convert in self.conversions:
            memo: dict[Any, Any] = {}
            for row in rows:
                value = row[column]
                if value is None:
                    continue
                if type(value) is datetime:
                    # A batch's rows share a handful of instants: each converts once.
                    memo_key = (value, value.tzinfo)
                    converted = memo.get(memo_key, memo)
                    if converted is memo:
                        converted = memo[memo_key] = convert(value)
                    row[column] = converted
                else:
                    row[column] = convert(value)
        params: tuple[Any, ...] = (_JSON.encode(rows).decode(),)
        if self.key is not None:
            params += ([row[self.key] for row in rows],)
        return params


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
            key = None
            if len(keys) == 1:
                # The planner takes a set-returning function for 100 rows and may scan the whole
                # table to hash-join them; the keys as an array make it an index lookup.
                key = keys[0]
                sql += f" AND {name}.{quote(table.c[key].name)} = ANY(%s)"
            _RECORDSETS[cache_key] = _Recordset(sql, _conversions(dialect, table, list(columns)), {}, key)
    return _RECORDSETS[cache_key]


def _encodable(table: sa.Table) -> bool:
    """Rows keyed by column name, and every column's values survive JSON (no bytes: base64)."""
    return all(c.key == c.name and not isinstance(c.type, sa.LargeBinary) for c in table.columns)


def _conversions(
    dialect: sa.Dialect, table: sa.Table, keys: list[str]
) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    conversions = []
    for key in keys:
        kind = table.c[key].type
        if (
            isinstance(kind, sa.TypeDecorator)
            and type(kind).process_bind_param is not sa.TypeDecorator.process_bind_param
        ):
            conversions.append((key, lambda value, kind=kind: kind.process_bind_param(value, dialect)))
    return tuple(conversions)


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


class BufferedSession(SqlModelSession):
    """A session whose pending bulk rows reach the database before anything reads it: before each
    statement, around each flush and before the commit; a rollback (a savepoint's too) drops them.
    ``backend.unit_of_work.UnitOfWork`` builds the service's session on it."""


@event.listens_for(BufferedSession, "do_orm_execute")
def _before_statement(state: ORMExecuteState) -> None:
    write_rows(state.session)


@event.listens_for(BufferedSession, "before_flush")
def _before_flush(session: OrmSession, _context: Any, _instances: Any) -> None:
    # The unit of work reads results (RETURNING) as it writes: no pipeline may be open under it.
    _collect(session)


@event.listens_for(BufferedSession, "after_flush_postexec")
def _after_flush(session: OrmSession, _context: Any) -> None:
    write_rows(session)


@event.listens_for(BufferedSession, "before_commit")
def _before_commit(session: OrmSession) -> None:
    write_rows(session)


@event.listens_for(BufferedSession, "after_rollback")
def _after_rollback(session: OrmSession) -> None:
    # Also after a savepoint's rollback: what was written in it is undone, so the copies are stale.
    discard_rows(session)


@event.listens_for(BufferedSession, "after_transaction_end")
def _after_transaction_end(session: OrmSession, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        # The row locks are gone with the transaction: nothing is written back from here on.
        discard_rows(session)
