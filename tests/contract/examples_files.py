"""The checked-in golden examples, as the tests read them."""

import json
from pathlib import Path
from typing import Any

from backend.contract.examples import EXAMPLES_DIR

__all__ = ("EXAMPLES", "ROOT", "example_names", "load")

ROOT = Path(__file__).resolve().parents[2] / "mobile_contract"
EXAMPLES = ROOT / EXAMPLES_DIR


def example_names() -> list[str]:
    """Every example in the order of the index (the order they were recorded)."""
    index = json.loads((EXAMPLES / "index.json").read_text(encoding="utf-8"))
    return [entry["file"].removesuffix(".json") for entry in index["examples"]]


def load(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))
