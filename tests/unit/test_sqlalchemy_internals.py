"""The SQLAlchemy internals ``backend/db/buffer.py`` builds on still exist and still mean the same.

buffer.py compiles each statement once and runs it itself: it reads a compiled statement's
``_bind_processors`` (private), ``positiontup``, ``binds``, ``positional``, ``escaped_bind_names``
and ``insert_prefetch``, and a column default's ``is_scalar`` / ``is_callable`` / ``arg``. A
SQLAlchemy release that renames or changes one of them must fail here, by name, rather than
write wrong rows. pyproject.toml bounds SQLAlchemy below the next minor release for that reason.
"""

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from backend.db import UTCDateTime

metadata = sa.MetaData()
probe = sa.Table(
    "probe",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("kind", sa.String, default="plain"),
    sa.Column("made", sa.String, default=lambda: "made"),
    sa.Column("data", sa.JSON),
)
DIALECTS = {"sqlite": sqlite.dialect(), "postgresql+psycopg": postgresql.psycopg.dialect()}


@pytest.mark.parametrize("name", sorted(DIALECTS))
def test_compiled_insert_exposes_what_buffer_reads(name: str) -> None:
    dialect = DIALECTS[name]
    compiled = sa.insert(probe).compile(dialect=dialect, column_keys=["id", "at", "data"])
    assert isinstance(compiled.string, str) and compiled.string.startswith("INSERT INTO probe")
    assert isinstance(compiled.positional, bool)
    assert isinstance(compiled.escaped_bind_names, dict)
    processors = compiled._bind_processors
    assert hasattr(processors, "get") and all(callable(p) for p in processors.values())
    names = list(compiled.positiontup or []) if compiled.positional else list(compiled.binds)
    assert {"id", "at", "data", "kind", "made"} <= set(names)
    # The UTC column's own check runs through the bind processor: a naive datetime is refused.
    assert processors.get("at") is not None
    with pytest.raises(Exception, match=r"(?i)naive|timezone|aware"):
        processors["at"](datetime(2026, 1, 1))
    assert processors["at"](datetime(2026, 1, 1, tzinfo=UTC)) is not None
    # Left-out columns with Python-side defaults are listed for the caller to fill in.
    prefetch = {column.key: column for column in compiled.insert_prefetch}
    assert set(prefetch) == {"kind", "made"}
    assert prefetch["kind"].default.is_scalar and prefetch["kind"].default.arg == "plain"
    made = prefetch["made"].default
    assert made.is_callable and not made.is_scalar and made.arg(None) == "made"


@pytest.mark.parametrize("name", sorted(DIALECTS))
def test_compiled_update_names_its_key_binds(name: str) -> None:
    dialect = DIALECTS[name]
    where = probe.c.id == sa.bindparam("heatcrew_pk_id")
    compiled = sa.update(probe).where(where).compile(dialect=dialect, column_keys=["kind"])
    names = list(compiled.positiontup or []) if compiled.positional else list(compiled.binds)
    assert {"kind", "heatcrew_pk_id"} <= set(names)
    assert compiled.insert_prefetch == []


def test_the_executed_statement_matches_a_core_insert(database_url: str) -> None:
    # End to end on each engine: buffer's way of running a compiled insert lands the same row.
    from backend.db import make_engine
    from backend.db.buffer import _insert

    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            probe.create(conn)
            try:
                statement = _insert(conn.dialect, probe, ("id", "at", "data"))
                at = datetime(2026, 12, 7, 0, 30, tzinfo=UTC)
                row_id = uuid.uuid4()
                values = {"id": row_id, "at": at, "data": {"a": [1, "二"]}}
                params = []
                for bind, escaped, process in statement.names:
                    default = statement.defaults.get(bind)
                    value = values.get(bind, default() if default else None)
                    params.append((escaped, process(value) if process else value))
                conn.exec_driver_sql(
                    statement.sql, tuple(v for _, v in params) if statement.positional else dict(params)
                )
                got = conn.execute(sa.select(probe)).one()
                assert got.id == row_id and got.at == at and got.kind == "plain" and got.made == "made"
                assert got.data == {"a": [1, "二"]}
            finally:
                probe.drop(conn)
    finally:
        engine.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_psycopg_connections_offer_the_pipeline(database_url: str) -> None:
    from backend.db import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            driver = conn.connection.driver_connection
            assert callable(getattr(driver, "pipeline", None))
            with driver.pipeline():
                conn.exec_driver_sql("SELECT 1")
    finally:
        engine.dispose()


def test_a_connection_still_handles_a_driver_error_as_db_direct_asks_it_to() -> None:
    """``backend/db/direct.py`` hands the errors of what it runs on the driver's cursor to
    ``Connection._handle_dbapi_exception(e, statement, parameters, cursor, context)``."""
    import inspect

    parameters = list(inspect.signature(sa.engine.Connection._handle_dbapi_exception).parameters)
    assert parameters[:6] == ["self", "e", "statement", "parameters", "cursor", "context"]
