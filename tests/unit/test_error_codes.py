"""Every machine code the server can answer with is published in the mobile contract."""

import re
from pathlib import Path

from mobile_contract.errors import ErrorCode

BACKEND = Path(__file__).resolve().parents[2] / "backend"
RAISED = re.compile(r'\bcode\s*=\s*"([a-z][a-z0-9_]*)"')
# A push answer's code (``_result(envelope, Status.rejected, "seq_reused", …)``) and a framework
# error's (``_body(400, "invalid_body", …)``).
ANSWERED = re.compile(r'(?:Status\.[a-z_]+|_body\([\w.]+),\s*"([a-z][a-z0-9_]*)"')


def test_every_code_the_backend_raises_is_in_the_contract() -> None:
    sources = [path.read_text() for path in BACKEND.rglob("*.py")]
    raised = {code for text in sources for pattern in (RAISED, ANSWERED) for code in pattern.findall(text)}
    assert len(raised) > 40  # the scan found the codes at all
    # push answers, framework errors, and the fallback for what HTTP itself refuses
    assert {"seq_reused", "gap", "blob_missing", "invalid_body", "bad_request"} <= raised
    assert sorted(raised - {c.value for c in ErrorCode}) == []


def test_codes_are_snake_case_and_equal_to_their_names() -> None:
    assert all(c.name == c.value and re.fullmatch(r"[a-z][a-z0-9_]*", c.value) for c in ErrorCode)
