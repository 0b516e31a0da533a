"""The lock files and pyproject.toml cannot drift apart.

Every distribution pyproject.toml names (the service's dependencies, and the ``test`` extra) is
pinned with ``==`` in the lock that installs it, at a version pyproject allows; the two locks agree
on every package they share; and this environment runs the locked versions of the named ones.
Refresh both with ``bash infra/lock.sh``.
"""

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SERVICE = [Requirement(r) for r in PROJECT["dependencies"]]
TEST = [Requirement(r) for r in PROJECT["optional-dependencies"]["test"]]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;#]+)")


def pins(name: str) -> dict[str, Version]:
    found: dict[str, Version] = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        match = PIN.match(line)
        assert match, f"{name}: not an exact pin: {line!r}"
        found[canonicalize_name(match[1])] = Version(match[3])
    return found


LOCKS = {
    "requirements.lock": SERVICE,
    "requirements-test.lock": SERVICE + TEST,
}


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_named_distribution_is_pinned_at_an_allowed_version(lock: str) -> None:
    pinned = pins(lock)
    for requirement in LOCKS[lock]:
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} is in pyproject.toml but not pinned in {lock}"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"{lock} pins {name}=={pinned[name]}, outside pyproject's {requirement}"
        )


def test_the_locks_agree_on_what_they_share() -> None:
    service, test = pins("requirements.lock"), pins("requirements-test.lock")
    assert set(service) <= set(test)
    assert {n: v for n, v in service.items() if test[n] != v} == {}


def test_this_environment_runs_the_locked_versions() -> None:
    pinned = pins("requirements-test.lock")
    for requirement in SERVICE + TEST:
        name = canonicalize_name(requirement.name)
        installed = Version(metadata.version(name))
        assert installed == pinned[name], (
            f"{name} {installed} is installed but the lock pins {pinned[name]}: source infra/dev-env.sh"
        )


def test_the_private_sqlalchemy_api_is_bounded() -> None:
    # buffer.py reads compiled statements' internals: a new minor release must be tested first.
    bounded = {canonicalize_name(r.name): r.specifier for r in SERVICE}
    for name in ("sqlalchemy", "sqlmodel", "pillow", "reportlab", "litestar", "msgspec", "psycopg"):
        assert any(s.operator == "<" for s in bounded[name]), f"{name} has no upper bound"
