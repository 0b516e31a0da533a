"""Which database failures are "try again later" (503) and which are bugs (500), on real errors."""

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from backend.db import Database
from backend.db.failures import is_unavailable


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


def raised(db: Database, sql: str) -> BaseException:
    with pytest.raises(sa.exc.DBAPIError) as caught, db.session() as session:
        session.execute(sa.text(sql))
    return caught.value


def test_data_errors_are_not_unavailability(db: Database) -> None:
    with db.session() as session:
        session.execute(sa.text("CREATE TABLE heatcrew_probe (id INTEGER PRIMARY KEY)"))
        session.execute(sa.text("INSERT INTO heatcrew_probe (id) VALUES (1)"))
    try:
        integrity = raised(db, "INSERT INTO heatcrew_probe (id) VALUES (1)")
        assert isinstance(integrity, sa.exc.IntegrityError)
        assert not is_unavailable(integrity)
        missing_table = raised(db, "SELECT * FROM no_such_table")  # OperationalError on SQLite
        assert not is_unavailable(missing_table)
        assert not is_unavailable(raised(db, "SELECT syntax error here"))
    finally:
        with db.session() as session:
            session.execute(sa.text("DROP TABLE heatcrew_probe"))


def test_a_refused_connection_is_unavailability(database_url: str, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nobody listens there
    if database_url.startswith("postgresql"):
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/heatcrew"
    else:
        (tmp_path / "a-directory").mkdir()  # a file that cannot be opened as a database
        url = f"sqlite:///{tmp_path / 'a-directory'}"
    db = Database(url)
    try:
        with pytest.raises(sa.exc.OperationalError) as caught:
            db.ping()
        assert is_unavailable(caught.value)
    finally:
        db.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_exhausted_pool_is_unavailability(database_url: str) -> None:
    db = Database(database_url, pool_timeout=0.2)
    held = [db.engine.connect() for _ in range(20)]  # pool_size 10 + max_overflow 10
    try:
        with pytest.raises(sa.exc.TimeoutError) as caught:
            db.engine.connect()
        assert is_unavailable(caught.value)
    finally:
        for conn in held:
            conn.close()
        db.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_statement_timeout_holds_and_is_unavailability(database_url: str) -> None:
    db = Database(database_url, statement_timeout=0.3)
    try:
        with db.session() as session:
            assert session.execute(sa.text("SHOW statement_timeout")).scalar() == "300ms"
        error = raised(db, "SELECT pg_sleep(3)")
        assert isinstance(error, sa.exc.OperationalError)
        assert is_unavailable(error)
    finally:
        db.dispose()
