"""Fixtures shared by every suite: databases, blob stores, a controllable clock, the app."""

import dataclasses
import json
import os
import tempfile
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


# Under pytest-xdist every worker is its own process: each leaves what it saw in a folder made by
# the controller (the recorded answers, the fuzz lines), and the controller reads them all.
_SHARED = "HEATCREW_TEST_SHARED_DIR"


def _is_worker(config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config) -> None:
    if not _is_worker(config) and _SHARED not in os.environ:
        os.environ[_SHARED] = tempfile.mkdtemp(prefix="heatcrew-tests-")  # workers inherit it


def pytest_sessionfinish(session, exitstatus) -> None:
    folder = os.environ.get(_SHARED)
    if not folder:
        return
    if _is_worker(session.config):
        worker = session.config.workerinput["workerid"]
        Path(folder, f"answers-{worker}.json").write_text(json.dumps(sorted(answers.SEEN)))
        Path(folder, f"fuzz-{worker}.json").write_text(json.dumps(fuzz_log.LINES))
        return
    for path in sorted(Path(folder).glob("answers-*.json")):
        answers.SEEN.update(tuple(a) for a in json.loads(path.read_text()))
    for path in sorted(Path(folder).glob("fuzz-*.json")):
        fuzz_log.LINES.extend(json.loads(path.read_text()))
    undeclared = answers.undeclared()
    if undeclared:  # what tests/test_answers_declared.py checks, over every worker's answers
        session.config._heatcrew_undeclared = undeclared
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """The fuzz tests' budgets and findings, printed at the end of the run (visible without -s)."""
    if fuzz_log.LINES:
        terminalreporter.section("fuzz (Hypothesis, schemathesis)")
        for line in fuzz_log.LINES:
            terminalreporter.write_line(line)
    undeclared = getattr(config, "_heatcrew_undeclared", None)
    if undeclared:
        terminalreporter.section("error answers the published document does not declare", red=True)
        for line in undeclared:
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
