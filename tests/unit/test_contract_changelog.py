"""The contract's changelog and guide say what the code does about versions."""

import re
from pathlib import Path

from mobile_contract.actions import DEPRECATED

ROOT = Path(__file__).resolve().parents[2]
CHANGELOG = (ROOT / "mobile_contract" / "CHANGELOG.md").read_text()
CHANGELOG_TEXT = " ".join(CHANGELOG.split())
PHONE = " ".join((ROOT / "docs" / "PHONE.md").read_text().split())


def test_versions_are_listed_newest_first() -> None:
    versions = [tuple(map(int, v.split("."))) for v in re.findall(r"^## (\d+\.\d+\.\d+)", CHANGELOG, re.M)]
    assert versions[:2] == [(1, 1, 0), (1, 0, 0)]
    assert versions == sorted(versions, reverse=True)


def test_every_retirement_is_announced_with_its_dates() -> None:
    for (action_type, version), retirement in DEPRECATED.items():
        line = (
            f"`{action_type}` v{version}: deprecated on {retirement.deprecated_on.isoformat()}, "
            f"sunset on {retirement.sunset_on.isoformat()}"
        )
        assert line in CHANGELOG_TEXT
        assert (
            f"{action_type}` v{version} is deprecated since {retirement.deprecated_on.isoformat()}" in PHONE
        )


def test_the_published_document_carries_the_newest_contract_version() -> None:
    from backend.app import API_VERSION

    newest = re.findall(r"^## (\d+\.\d+\.\d+)", CHANGELOG, re.M)[0]
    assert newest == API_VERSION
    published = (ROOT / "mobile_contract" / "openapi.json").read_text()
    assert f'"version": "{newest}"' in published
