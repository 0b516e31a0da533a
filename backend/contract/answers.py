"""The error answers each operation declares, beside the handler that gives them.

A handler names the codes it can answer beyond those every operation of its sort shares
(:func:`backend.contract.openapi.shared_answers`), with ``opt={"answers": answers(...)}``. The
status of a code is the one in :data:`mobile_contract.errors.ERROR_STATUS`; a code answered with
another status in one place is given as ``(status, code)``. The suite records every error the
server gives and fails when one is not declared for its operation (``tests/test_answers_declared.py``).
"""

from mobile_contract.errors import ERROR_STATUS, ErrorCode

__all__ = ("Answers", "answers")

Answers = tuple[tuple[int, ErrorCode], ...]


def answers(*codes: ErrorCode | tuple[int, ErrorCode]) -> Answers:
    """``(status, code)`` pairs, for ``opt={"answers": ...}`` on a route handler."""
    pairs: list[tuple[int, ErrorCode]] = []
    for item in codes:
        if isinstance(item, tuple):
            pairs.append(item)
        else:
            pairs.append((ERROR_STATUS[item], item))
    return tuple(pairs)
