"""Engine and session factory for the embedded SQLite file and for PostgreSQL."""

import select
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlmodel import Session

from backend.clock import Clock, SystemClock
from backend.db import buffer

__all__ = ("Database", "make_engine")

IDLE_IN_TRANSACTION_MS = 60_000
"""Milliseconds after which PostgreSQL ends a session of ours idle in a transaction
(``idle_in_transaction_session_timeout``)."""


def _json_text(value: Any) -> str:
    """JSON columns written by msgspec: the same JSON as ``json.dumps`` gives, several times faster."""
    return msgspec.json.encode(value).decode()


# SQLite writers wait this long for the write lock when no statement timeout is given.
SQLITE_BUSY_SECONDS = 30.0


def make_engine(
    url: str,
    *,
    connect_timeout: int = 3,
    statement_timeout: float | None = None,
    pool_timeout: float = 5.0,
    **kwargs: Any,
) -> sa.Engine:
    """An engine for ``url``. ``connect_timeout`` bounds a new PostgreSQL connection (whole seconds);
    ``statement_timeout`` (seconds, None or 0: none) becomes PostgreSQL's ``statement_timeout``,
    sent as a startup option so no statement is spent on it (nor on the push path's pipeline), and
    SQLite's ``busy_timeout``; ``pool_timeout`` bounds the wait for a pooled connection."""
    kwargs.setdefault("json_serializer", _json_text)
    # Statement errors (and so the logs that quote them) never show the values sent: phone
    # numbers, payloads and token hashes travel as parameters.
    kwargs.setdefault("hide_parameters", True)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        busy = statement_timeout or SQLITE_BUSY_SECONDS
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": busy}, **kwargs)

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # WAL lets readers (pull) run beside the one writer (push); foreign keys are off by
            # default in SQLite and must be switched on for every connection.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy * 1000)}")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn: sa.Connection) -> None:
            # A writer takes the lock at BEGIN so two writers queue (busy_timeout) instead of
            # failing with "database is locked" half-way through; readers stay deferred so WAL
            # lets them run beside the writer.
            if conn.get_execution_options().get("readonly"):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        # pysqlite's own transaction handling would issue a deferred BEGIN; we issue ours.
        @sa.event.listens_for(engine, "connect")
        def _sqlite_no_autobegin(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        return engine
    check_alive = kwargs.pop("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_timeout", pool_timeout)
    connect_args: dict[str, Any] = dict(kwargs.pop("connect_args", {}))
    query = parsed.query
    if "connect_timeout" not in query:
        # libpq's default is to wait for ever (psycopg: 130 s) on a server that accepts but never answers.
        connect_args.setdefault("connect_timeout", max(2, int(connect_timeout)))
    if "application_name" not in query:
        connect_args.setdefault("application_name", "heatcrew")
    # Timestamps come back as aware UTC whatever the server's zone (``db.direct`` relies on it),
    # and no SQL of ours depends on a server setting.
    options = ["-c TimeZone=UTC"]
    if statement_timeout:
        options.append(f"-c statement_timeout={max(1, round(statement_timeout * 1000))}")
    # A transaction left idle holds back every company's change feed (backend.sync.changes): ours
    # never sit idle for long, so one that does is ended.
    options.append(f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}")
    given = query.get("options")
    given = given if isinstance(given, str) else " ".join(given or ())
    connect_args["options"] = " ".join([given, *options]).strip()
    from backend.db.pgcursor import DescribedLater  # psycopg: loaded on PostgreSQL only

    connect_args.setdefault("cursor_factory", DescribedLater)
    engine = sa.create_engine(url, connect_args=connect_args, **kwargs)
    if check_alive:
        sa.event.listen(engine, "checkout", _alive)
    return engine


def _alive(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """At checkout: whether a pooled PostgreSQL connection still has its server, with no round trip
    (SQLAlchemy's pre-ping costs one at every checkout, a fifth of a small push).

    An idle connection has nothing to read. A server that ended it (a restart, a terminated
    backend, a timeout) sent its last message and closed the socket, so the socket is readable; the
    pool then drops the connection and checks out another (``DisconnectionError``).

    ``poll``, not ``select``: a worker holding many sockets (live streams) opens connections whose
    descriptors are past ``select``'s limit of 1024."""
    if dbapi_connection.closed or dbapi_connection.broken:
        raise sa.exc.DisconnectionError("the connection is closed")
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN)
    if poller.poll(0):  # readable, hung up or failed
        raise sa.exc.DisconnectionError("the server ended this connection")


class Database:
    """The engine plus the one way the service opens sessions."""

    __slots__ = ("_point_engine", "_readonly_engine", "clock", "engine", "info", "session_class")

    def __init__(
        self,
        url: str,
        clock: Clock | None = None,
        *,
        info: dict[str, object] | None = None,
        connect_timeout: int = 3,
        statement_timeout: float | None = None,
        pool_timeout: float = 5.0,
        session_class: type[Session] = buffer.BufferedSession,
    ) -> None:
        self.session_class = session_class
        """What each transaction runs in: the service passes ``backend.unit_of_work.UnitOfWork``."""
        self.engine = make_engine(
            url,
            connect_timeout=connect_timeout,
            statement_timeout=statement_timeout,
            pool_timeout=pool_timeout,
        )
        self.clock = clock or SystemClock()
        # Handed to every session (``session.info``): the clock and the keys services need.
        self.info: dict[str, object] = {"clock": self.clock, **(info or {})}
        options: dict[str, object] = {"readonly": True}
        if self.engine.dialect.name == "postgresql":
            # One snapshot for every statement of a read: a pull's cursor and data agree.
            options["isolation_level"] = "REPEATABLE READ"
        self._readonly_engine = self.engine.execution_options(**options)
        # Single-statement reads on every request (authentication): on PostgreSQL a small pool of
        # autocommit connections without pre-ping, so such a read is one round trip (psycopg
        # prepares a statement it has run five times on a connection); a connection found dead is
        # dropped and the read runs once more on another.
        self._point_engine = (
            make_engine(
                url,
                connect_timeout=connect_timeout,
                statement_timeout=statement_timeout,
                pool_timeout=pool_timeout,
                pool_pre_ping=False,
                pool_size=4,
                max_overflow=8,
                isolation_level="AUTOCOMMIT",
            )
            if self.engine.dialect.name == "postgresql"
            else None
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self, *, readonly: bool = False) -> Iterator[Session]:
        """A session whose transaction commits when the block ends and rolls back on error."""
        bind = self._readonly_engine if readonly else self.engine
        with self.session_class(bind, expire_on_commit=False, info=self.info) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                buffer.abandon(session)  # writes still in flight are moot; the rollback must run
                session.rollback()
                raise

    @contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        """A read-only transaction on a plain connection, as ``session(readonly=True)`` has but
        without the ORM session around it (a pull builds no ORM objects): one snapshot for every
        statement on PostgreSQL, a deferred reader beside the writer on SQLite. It ends with the
        block (rolled back: it wrote nothing); ``conn.rollback()`` inside starts a new snapshot at
        the next statement."""
        with self._readonly_engine.connect() as conn:
            yield conn

    def fetch_one(self, statement: sa.Executable, params: dict[str, Any]) -> sa.Row[Any] | None:
        """One read-only statement, its first row: one round trip on PostgreSQL, no transaction."""
        if self._point_engine is None:
            with self._readonly_engine.connect() as conn:
                return conn.execute(statement, params).first()
        try:
            with self._point_engine.connect() as conn:
                return conn.execute(statement, params).first()
        except sa.exc.DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
        with self._point_engine.connect() as conn:
            return conn.execute(statement, params).first()

    @property
    def engines(self) -> tuple[sa.Engine, ...]:
        """Every engine of this database (tests count their statements)."""
        return (self.engine,) if self._point_engine is None else (self.engine, self._point_engine)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
        if self._point_engine is not None:
            self._point_engine.dispose()
