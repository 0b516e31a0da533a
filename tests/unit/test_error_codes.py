"""Every machine code the server can answer with is published in the mobile contract."""

import re
from pathlib import Path

from mobile_contract.errors import ErrorCode

BACKEND = Path(__file__).resolve().parents[2] / "backend"
RAISED = re.compile(r'\bcode\s*=\s*"([a-z_]+)"')


def test_every_code_the_backend_raises_is_in_the_contract() -> None:
    raised = {code for path in BACKEND.rglob("*.py") for code in RAISED.findall(path.read_text())}
    assert len(raised) > 40  # the scan found the codes at all
    assert sorted(raised - {c.value for c in ErrorCode}) == []


def test_codes_are_snake_case_and_equal_to_their_names() -> None:
    assert all(c.name == c.value and re.fullmatch(r"[a-z][a-z_]*", c.value) for c in ErrorCode)
