"""The published canonical-JSON vectors: the Python signing code reproduces every one of them.

The expected texts are written by hand in ``backend/contract/vectors.py`` from RFC 8785, so this
checks ``mobile_contract.documents.canonical`` against the rule, not against itself.
"""

import hashlib
import json
import math
from pathlib import Path

import pytest

import mobile_contract
from backend.contract import vectors
from mobile_contract.documents import canonical, content_sha256

CONTRACT_DIR = Path(mobile_contract.__file__).parent
PUBLISHED = json.loads((CONTRACT_DIR / vectors.VECTORS_FILE).read_text(encoding="utf-8"))


def test_the_published_file_is_what_the_code_writes(tmp_path: Path) -> None:
    (written,) = vectors.write(tmp_path)
    assert written == tmp_path / vectors.VECTORS_FILE
    assert written.read_text(encoding="utf-8") == (CONTRACT_DIR / vectors.VECTORS_FILE).read_text(
        encoding="utf-8"
    ), "mobile_contract/vectors is stale: run `heatcrew contract build`"


@pytest.mark.parametrize("case", PUBLISHED["cases"], ids=lambda case: case["name"])
def test_python_reproduces_the_vector(case: dict[str, str]) -> None:
    content = json.loads(case["input"])
    assert canonical(content).decode() == case["canonical"]
    assert content_sha256(content) == case["sha256"]
    assert hashlib.sha256(case["canonical"].encode()).hexdigest() == case["sha256"]


@pytest.mark.parametrize("case", PUBLISHED["refused"], ids=lambda case: case["name"])
def test_python_refuses_what_cannot_be_signed(case: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        canonical(json.loads(case["input"]))


def test_the_vectors_cover_the_cases_where_languages_differ() -> None:
    names = " ".join(case["name"] for case in PUBLISHED["cases"])
    for topic in ("chinese", "astral", "negative zero", "safe integer", "small exponents", "large exponents",
                  "UTF-16 order", "escapes", "times", "nesting"):  # fmt: skip
        assert topic in names


def test_canonical_form_is_the_javascript_one_where_python_differs() -> None:
    # Python's own repr and sort_keys would give 1e-07, 1e+16 and code-point order.
    assert canonical([1e-7, 1e16, 1e21]) == b"[1e-7,10000000000000000,1e+21]"
    assert canonical({"\ue000": 1, "😀": 2}) == '{"😀":2,"\ue000":1}'.encode()
    assert canonical(2**53 + 1) == b"9007199254740992"
    with pytest.raises(ValueError):
        canonical(math.nan)
    with pytest.raises(ValueError):
        canonical(10**400)
