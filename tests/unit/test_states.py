"""Every (state, move) pair of the work-order state machine, against the rules written out by hand."""

import itertools

import pytest

from backend.work_orders.states import IllegalTransition, Move, State, allowed_moves, next_state

# The legal moves, read from the heating-service codes and the field-day issue, written apart from the code.
ARRANGING = ["accepted", "contacted", "appointment_set", "no_access", "rescheduled"]
WORKABLE = ["assigned", *ARRANGING, "en_route", "arrived", "in_progress"]
EXPECTED: dict[tuple[str, str], str] = {}
for s in ["new", "returned", *WORKABLE]:
    EXPECTED[(s, "assign")] = "assigned"
EXPECTED[("assigned", "accept")] = "accepted"
for s in ["accepted", "contacted"]:
    EXPECTED[(s, "contact")] = "contacted"
for s in ["accepted", "contacted", "appointment_set"]:
    EXPECTED[(s, "set_appointment")] = "appointment_set"
for s in ["no_access", "rescheduled"]:  # after a failed visit it is a reschedule
    EXPECTED[(s, "set_appointment")] = "rescheduled"
for s in ["accepted", "contacted", "appointment_set", "rescheduled"]:
    EXPECTED[(s, "depart")] = "en_route"
for s in [*ARRANGING, "en_route"]:
    EXPECTED[(s, "arrive")] = "arrived"
    EXPECTED[(s, "arrive_no_access")] = "no_access"
for s in ["en_route", "arrived", "appointment_set", "rescheduled"]:
    EXPECTED[(s, "no_access")] = "no_access"
EXPECTED[("arrived", "start")] = "in_progress"
EXPECTED[("in_progress", "complete")] = "completed"
for s in ["assigned", *ARRANGING, "en_route"]:
    EXPECTED[(s, "request_return")] = "return_requested"
EXPECTED[("return_requested", "approve_return")] = "returned"
EXPECTED[("return_requested", "refuse_return")] = "accepted"  # back to where it was (see below)
EXPECTED[("completed", "await_revisit")] = "revisit_due"
for s in ["completed", "revisit_due"]:
    EXPECTED[(s, "close")] = "closed"
for s in ["new", "returned", "return_requested", *WORKABLE]:
    EXPECTED[(s, "cancel")] = "cancelled"


@pytest.mark.parametrize(("state", "move"), list(itertools.product(State, Move)))
def test_every_move_from_every_state(state: State, move: Move) -> None:
    expected = EXPECTED.get((state.value, move.value))
    if expected is None:
        with pytest.raises(IllegalTransition) as refused:
            next_state(state, move, previous="accepted")
        assert refused.value.status == 409
        assert refused.value.code == "illegal_transition"
        assert refused.value.detail["state"] == state.value
        assert move.value not in refused.value.detail["allowed"]
        assert refused.value.detail["allowed"] == allowed_moves(state)
    else:
        assert next_state(state, move, previous="accepted").value == expected


def test_terminal_states_allow_nothing() -> None:
    assert allowed_moves(State.closed) == []
    assert allowed_moves(State.cancelled) == []


def test_a_refused_return_goes_back_to_where_the_technician_was() -> None:
    assert next_state(State.return_requested, Move.refuse_return, previous="en_route") is State.en_route
    assert next_state(State.return_requested, Move.refuse_return, previous=None) is State.assigned


def test_a_technician_cannot_drop_an_order() -> None:
    # No move takes an order out of a technician's hands without a dispatcher.
    for state in WORKABLE:
        for move in allowed_moves(State(state)):
            target = EXPECTED[(state, move)]
            if target in ("returned", "new"):
                pytest.fail(f"{state} --{move}--> {target} bypasses the dispatcher")
