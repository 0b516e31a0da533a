"""The files under ``mobile_contract/`` are what ``heatcrew contract build`` makes from the code now.

A change to a struct, a handler's answers or an action version that was not followed by
``heatcrew contract build`` fails here, naming the files that drifted.
"""

from pathlib import Path

from backend.contract.build import CONTRACT_ROOT, build
from mobile_contract.actions import ACTION_TYPES
from mobile_contract.documents import DOCUMENT_CONTENT


def _published(root: Path) -> dict[str, str]:
    files = [root / "openapi.json", *sorted((root / "schemas").rglob("*.json"))]
    return {str(path.relative_to(root)): path.read_text(encoding="utf-8") for path in files if path.exists()}


def test_checked_in_files_match_a_fresh_build(tmp_path: Path) -> None:
    written = build(tmp_path, typescript=False)
    assert any(path.name == "openapi.json" for path in written)
    fresh = _published(tmp_path)
    checked_in = _published(CONTRACT_ROOT)
    assert sorted(checked_in) == sorted(fresh), (
        "published files were added or removed: run heatcrew contract build"
    )
    drifted = [name for name in fresh if fresh[name] != checked_in[name]]
    assert not drifted, f"out of date, run `heatcrew contract build`: {drifted}"
    # Every action type and version and every document type has its own schema file.
    assert len([name for name in fresh if name.startswith("schemas/actions/")]) == len(ACTION_TYPES)
    assert len([name for name in fresh if name.startswith("schemas/documents/")]) == len(DOCUMENT_CONTENT)
