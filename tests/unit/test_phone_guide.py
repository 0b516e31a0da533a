"""docs/PHONE.md's table of actions and moves says what the code does."""

import re
from pathlib import Path

from backend.sync.handlers import CATALOGUE
from backend.work_orders.states import FIELD_MOVES

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "PHONE.md"
ROW = re.compile(r"^\| `(?P<action>[a-z_.]+)`[^|]*\| (?P<kind>intent|fact) \| (?P<move>`[a-z_]+`|–) \|", re.M)


def test_every_field_move_is_made_by_the_action_the_guide_names() -> None:
    rows = [m.groupdict() for m in ROW.finditer(GUIDE.read_text(encoding="utf-8"))]
    assert len(rows) >= 12
    kinds = {handler.type: handler.kind for handler in CATALOGUE.values()}
    for row in rows:
        assert kinds[row["action"]] == row["kind"], row
    moves = {row["move"].strip("`") for row in rows if row["move"] != "–"}
    assert moves == {m.value for m in FIELD_MOVES}, (
        "the guide and the state machine disagree on the phone's moves"
    )
