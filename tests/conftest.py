"""Fixtures shared by every suite: databases, blob stores, a controllable clock, the app."""

import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from litestar import Litestar
from litestar.testing import TestClient

from backend.app import create_app
from backend.clock import ManualClock
from backend.context import AppContext
from backend.demo import seed_demo
from backend.settings import Settings
from tests import fuzz_log
from tests.fixtures import answers

pytest_plugins = ["tests.fixtures.databases", "tests.fixtures.s3"]

# Real Argon2id, with a small cost so that the suite is not dominated by hashing; the
# production parameters are asserted separately.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
WINTER_MORNING = datetime(2026, 12, 7, 0, 30, tzinfo=UTC)  # 08:30 in Shanghai, a Monday


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(WINTER_MORNING)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        var_dir=tmp_path / "var",
        database_url=database_url,
        secret_key="test-signing-key-not-for-production-0123456789",
        auto_migrate=False,
    )


@pytest.fixture
def app(settings: Settings, clock: ManualClock) -> Iterator[Litestar]:
    application = answers.record(create_app(settings, clock=clock, password_hasher=FAST_HASHER))
    yield application
    application.state.ctx.db.dispose()


@pytest.fixture
def ctx(app: Litestar) -> AppContext:
    return app.state.ctx


@pytest.fixture
def client(app: Litestar) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def demo(ctx: AppContext) -> AppContext:
    """The demo company, seeded into the test database."""
    with ctx.db.session() as session:
        seed_demo(ctx, session)
    return ctx


# ---------------------------------------------------------------- fuzzing: one summary section in CI


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """The fuzz tests' budgets and findings, printed at the end of the run (visible without -s)."""
    if fuzz_log.LINES:
        terminalreporter.section("fuzz (Hypothesis, schemathesis)")
        for line in fuzz_log.LINES:
            terminalreporter.write_line(line)


@pytest.fixture
def make_client(settings: Settings, clock: ManualClock) -> Iterator[Callable[..., TestClient]]:
    """A client of an app on the same database and blob directory, with some settings changed."""
    opened: list[tuple[Litestar, TestClient]] = []

    def make(**overrides: Any) -> TestClient:
        application = answers.record(
            create_app(dataclasses.replace(settings, **overrides), clock=clock, password_hasher=FAST_HASHER)
        )
        test_client = TestClient(application)
        test_client.__enter__()
        opened.append((application, test_client))
        return test_client

    yield make
    for application, test_client in opened:
        test_client.__exit__(None, None, None)
        application.state.ctx.db.dispose()


def pytest_collection_modifyitems(session, config, items) -> None:
    """The check that the document declares every error answer seen runs after everything else."""
    last = [item for item in items if item.get_closest_marker("after_everything")]
    items[:] = [item for item in items if item not in last] + last
