"""A pooled PostgreSQL connection is checked at checkout by its socket: a healthy one is handed out
whatever its descriptor's number, a dead one is replaced without a failed request."""

import os
import resource
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from backend.db.engine import make_engine

__all__ = ()

# A worker serving many live streams (one socket each) opens its database connections past this.
SELECT_LIMIT = 1024


@pytest.fixture
def many_open_files() -> Iterator[None]:
    """The process holds over a thousand descriptors, as a worker with that many live streams."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = SELECT_LIMIT + 200
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"the descriptor limit ({hard}) is below {wanted}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(SELECT_LIMIT + 50)]
    try:
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.usefixtures("many_open_files")
def test_a_connection_whose_descriptor_is_past_1024_is_checked_out(postgres_url: str) -> None:
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            assert conn.connection.dbapi_connection.fileno() >= SELECT_LIMIT  # type: ignore[union-attr]
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
        # Checked out again from the pool: still the same, healthy connection.
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 2")).scalar() == 2
    finally:
        engine.dispose()


def test_a_pooled_connection_whose_backend_was_ended_is_replaced_at_checkout(postgres_url: str) -> None:
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0)
    monitor = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        with monitor.connect() as watch:
            assert watch.execute(sa.text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid}).scalar()
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_backend_pid()")).scalar() != pid
    finally:
        engine.dispose()
        monitor.dispose()
