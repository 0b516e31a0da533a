"""The work-order state machine: every move is named, checked, and refused with the allowed ones."""

from enum import StrEnum

from backend.errors import Conflict

__all__ = (
    "ACTIVE_STATES",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "IllegalTransition",
    "Move",
    "State",
    "allowed_moves",
    "next_state",
)


class State(StrEnum):
    new = "new"
    assigned = "assigned"
    accepted = "accepted"
    contacted = "contacted"
    appointment_set = "appointment_set"
    en_route = "en_route"
    arrived = "arrived"
    in_progress = "in_progress"
    no_access = "no_access"
    rescheduled = "rescheduled"
    return_requested = "return_requested"
    returned = "returned"
    completed = "completed"
    revisit_due = "revisit_due"
    closed = "closed"
    cancelled = "cancelled"


class Move(StrEnum):
    assign = "assign"
    accept = "accept"
    contact = "contact"
    set_appointment = "set_appointment"
    depart = "depart"
    arrive = "arrive"
    arrive_no_access = "arrive_no_access"
    no_access = "no_access"
    start = "start"
    complete = "complete"
    request_return = "request_return"
    approve_return = "approve_return"
    refuse_return = "refuse_return"
    await_revisit = "await_revisit"
    close = "close"
    cancel = "cancel"


S = State
# Before the technician is at the door: the phases in which the visit is being arranged.
_ARRANGING = (S.accepted, S.contacted, S.appointment_set, S.no_access, S.rescheduled)
_WORKABLE = (S.assigned, *_ARRANGING, S.en_route, S.arrived, S.in_progress)

TRANSITIONS: dict[Move, tuple[tuple[State, ...], State | None]] = {
    # move: (states it may start from, state it leads to; None = decided by the move itself)
    Move.assign: ((S.new, S.returned, *_WORKABLE), S.assigned),
    Move.accept: ((S.assigned,), S.accepted),
    Move.contact: ((S.accepted, S.contacted), S.contacted),
    Move.set_appointment: ((S.accepted, S.contacted, S.appointment_set), S.appointment_set),
    Move.depart: ((S.accepted, S.contacted, S.appointment_set, S.rescheduled), S.en_route),
    Move.arrive: ((*_ARRANGING, S.en_route), S.arrived),
    Move.arrive_no_access: ((*_ARRANGING, S.en_route), S.no_access),
    Move.no_access: ((S.en_route, S.arrived, S.appointment_set, S.rescheduled), S.no_access),
    Move.start: ((S.arrived,), S.in_progress),
    Move.complete: ((S.in_progress,), S.completed),
    Move.request_return: ((S.assigned, *_ARRANGING, S.en_route), S.return_requested),
    Move.approve_return: ((S.return_requested,), S.returned),
    Move.refuse_return: ((S.return_requested,), None),
    Move.await_revisit: ((S.completed,), S.revisit_due),
    Move.close: ((S.completed, S.revisit_due), S.closed),
    Move.cancel: ((S.new, S.returned, S.return_requested, *_WORKABLE), S.cancelled),
}
# An appointment agreed after a failed visit is a reschedule, not a new appointment.
RESCHEDULE_FROM = (S.no_access, S.rescheduled)

TERMINAL_STATES = frozenset({S.closed, S.cancelled})
# While an order is active its technician may see the resident's full phone number.
ACTIVE_STATES = frozenset(_WORKABLE) | {S.return_requested}


class IllegalTransition(Conflict):
    code = "illegal_transition"


# The moves a phone can make; the rest are the dispatcher's and the supervisor's.
FIELD_MOVES = frozenset(
    {
        Move.accept,
        Move.contact,
        Move.set_appointment,
        Move.depart,
        Move.arrive,
        Move.arrive_no_access,
        Move.no_access,
        Move.start,
        Move.complete,
        Move.request_return,
    }
)


def allowed_moves(state: State, *, field_only: bool = False) -> list[str]:
    moves = [move for move, (sources, _) in TRANSITIONS.items() if state in sources]
    if state in RESCHEDULE_FROM:
        moves.append(Move.set_appointment)
    if field_only:
        moves = [m for m in moves if m in FIELD_MOVES]
    return sorted({m.value for m in moves})


def next_state(state: State | str, move: Move, *, previous: State | str | None = None) -> State:
    """Where ``move`` leads from ``state``; raises 409 ``illegal_transition`` naming the allowed moves."""
    state = State(state)
    if move is Move.set_appointment and state in RESCHEDULE_FROM:
        return S.rescheduled
    sources, target = TRANSITIONS[move]
    if state not in sources:
        raise IllegalTransition(
            f"A work order that is {state.value} cannot {move.value.replace('_', ' ')}.",
            detail={"state": state.value, "move": move.value, "allowed": allowed_moves(state)},
        )
    if target is None:  # refuse_return: back to where the technician asked from
        return State(previous) if previous else S.assigned
    return target
