"""Engine and session factory for the embedded SQLite file and for PostgreSQL."""

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


def _json_text(value: Any) -> str:
    """JSON columns written by msgspec: the same JSON as ``json.dumps`` gives, several times faster."""
    return msgspec.json.encode(value).decode()


def make_engine(url: str, **kwargs: Any) -> sa.Engine:
    kwargs.setdefault("json_serializer", _json_text)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # WAL lets readers (pull) run beside the one writer (push); foreign keys are off by
            # default in SQLite and must be switched on for every connection.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
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
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    return sa.create_engine(url, **kwargs)


class Database:
    """The engine plus the one way the service opens sessions."""

    __slots__ = ("_readonly_engine", "clock", "engine", "info")

    def __init__(
        self, url: str, clock: Clock | None = None, *, info: dict[str, object] | None = None
    ) -> None:
        self.engine = make_engine(url)
        self.clock = clock or SystemClock()
        # Handed to every session (``session.info``): the clock and the keys services need.
        self.info: dict[str, object] = {"clock": self.clock, **(info or {})}
        options: dict[str, object] = {"readonly": True}
        if self.engine.dialect.name == "postgresql":
            # One snapshot for every statement of a read: a pull's cursor and data agree.
            options["isolation_level"] = "REPEATABLE READ"
        self._readonly_engine = self.engine.execution_options(**options)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self, *, readonly: bool = False) -> Iterator[Session]:
        """A session whose transaction commits when the block ends and rolls back on error."""
        bind = self._readonly_engine if readonly else self.engine
        with Session(bind, expire_on_commit=False, info=self.info) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                buffer.abandon(session)  # writes still in flight are moot; the rollback must run
                session.rollback()
                raise

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
