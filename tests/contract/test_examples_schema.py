"""Every golden example fits the published OpenAPI document: its request and its answer."""

import msgspec
import pytest

from backend.contract.action_cases import ACTION_CASES
from backend.sync.handlers import CATALOGUE
from tests.contract.examples_files import example_names, load
from tests.contract.openapi_check import CONTRACT


@pytest.mark.parametrize("name", example_names())
def test_the_example_fits_the_openapi_document(name: str) -> None:
    exchange = load(name)
    if "breaks_contract" not in exchange:  # else it shows what the server does with a bad request
        CONTRACT.check_request(exchange["request"])
    CONTRACT.check_response(exchange["request"], exchange["response"])


def test_every_action_is_shown_in_every_answer_it_can_get() -> None:
    """applied, duplicate, rejected and out_of_order for all; conflict for every intent (and only
    them: a fact is always recorded); waiting for every action whose payload names a file (``blob``,
    or a list of ``photos`` with theirs)."""
    names = set(example_names())
    assert set(ACTION_CASES) == set(CATALOGUE)
    for key, handler in CATALOGUE.items():
        names_a_file = bool({"blob", "photos"} & {f.name for f in msgspec.structs.fields(handler.payload)})
        wanted = {"applied", "duplicate", "rejected", "out_of_order"}
        wanted |= {"conflict"} if handler.kind == "intent" else set()
        wanted |= {"waiting"} if names_a_file else set()
        shown = {n.rsplit("/", 1)[1] for n in names if n.startswith(f"actions/{key[0]}/v{key[1]}/")}
        assert shown == wanted, key


def test_the_check_refuses_an_answer_the_document_does_not_allow() -> None:
    """A guard on the guard: a push answer with a status outside the enum, or a field missing, fails."""
    exchange = load("actions/work_order.accept/v1/applied")
    answer = exchange["response"]
    answer["body"]["results"][0]["status"] = "done"
    with pytest.raises(AssertionError, match="does not fit its schema"):
        CONTRACT.check_response(exchange["request"], answer)
    del answer["body"]["server_epoch"]
    answer["body"]["results"][0]["status"] = "applied"
    with pytest.raises(AssertionError, match="server_epoch"):
        CONTRACT.check_response(exchange["request"], answer)
    with pytest.raises(AssertionError, match="not documented"):
        CONTRACT.check_response(exchange["request"], {**answer, "status": 201})
