"""The checked-in golden examples are exactly what the code answers today.

Regenerating runs the real server in this process (see ``backend/contract/examples.py``); every
id, token and time in it is fixed for the run, so nothing needs normalising: the files must come
out byte for byte. When this fails, the server's answers changed: look at the diff, and if the
change is meant, regenerate with ``heatcrew contract build`` and commit the files.
"""

import difflib
from pathlib import Path

from backend.contract.examples import EXAMPLES_DIR, write
from tests.contract.examples_files import EXAMPLES


def test_regenerating_the_examples_gives_the_checked_in_files(tmp_path: Path) -> None:
    written = write(tmp_path)
    fresh = {
        p.relative_to(tmp_path / EXAMPLES_DIR).as_posix(): p.read_text(encoding="utf-8") for p in written
    }
    checked_in = {
        p.relative_to(EXAMPLES).as_posix(): p.read_text(encoding="utf-8")
        for p in EXAMPLES.rglob("*")
        if p.is_file()
    }
    assert sorted(fresh) == sorted(checked_in), "examples were added or removed"
    drifted = [name for name in fresh if fresh[name] != checked_in[name]]
    if drifted:
        name = drifted[0]
        diff = "".join(
            difflib.unified_diff(
                checked_in[name].splitlines(keepends=True),
                fresh[name].splitlines(keepends=True),
                name,
                "now",
                n=2,
            )
        )
        raise AssertionError(f"{len(drifted)} examples drifted, first {name}:\n{diff[:4000]}")
