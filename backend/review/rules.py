"""A company's review policy and the rule that decides whether a completed order enters review.

An order enters when its kind is always reviewed, when it carries one of the flags the policy
names, or when it falls in the deterministic sample: the first 8 bytes of SHA-256 of its id,
modulo 100, below ``sample_percent``. The same order is always in or out of the sample, on every
server and in every test.
"""

import hashlib
import uuid
from enum import StrEnum
from typing import Annotated

import msgspec

from mobile_contract.reference import WorkOrderKind

__all__ = (
    "ReviewFlag",
    "ReviewPolicy",
    "in_sample",
    "load_review_policy",
    "reasons_to_enter",
    "sample_bucket",
)


class ReviewFlag(StrEnum):
    """Why an order's evidence needs a second look (``backend.review.flags`` computes each)."""

    after_reassignment = "after_reassignment"
    after_cancelled = "after_cancelled"
    clock_skew = "clock_skew"
    location_not_verified = "location_not_verified"
    photo_missing = "photo_missing"
    signature_refused = "signature_refused"
    repeat_fault = "repeat_fault"
    measurement_failed = "measurement_failed"


def _all_flags() -> list[ReviewFlag]:
    return list(ReviewFlag)


class ReviewPolicy(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What enters the supervisor's review (``GET/PUT /api/v1/review/policy``)."""

    always_kinds: Annotated[list[WorkOrderKind], msgspec.Meta(max_length=20)] = msgspec.field(
        default_factory=list
    )
    """Orders of these kinds always enter review when completed."""
    flags: Annotated[list[ReviewFlag], msgspec.Meta(max_length=20)] = msgspec.field(
        default_factory=_all_flags
    )
    """An order with any of these flags enters review (default: every flag)."""
    sample_percent: Annotated[int, msgspec.Meta(ge=0, le=100)] = 10
    """Of the rest, this share enters, chosen by the order's id (repeatable)."""
    own_team_only: bool = False
    """A supervisor may decide only on items of their own team (admins always may)."""


def load_review_policy(stored: dict | None) -> ReviewPolicy:
    if not stored:
        return ReviewPolicy()
    return msgspec.convert(stored, ReviewPolicy)


def sample_bucket(order_id: uuid.UUID) -> int:
    """0–99, fixed for an order: the sample is repeatable."""
    return int.from_bytes(hashlib.sha256(order_id.bytes).digest()[:8], "big") % 100


def in_sample(order_id: uuid.UUID, percent: int) -> bool:
    return sample_bucket(order_id) < percent


def reasons_to_enter(policy: ReviewPolicy, *, order_id: uuid.UUID, kind: str, flags: list[str]) -> list[str]:
    """Why the order enters: ``kind:<kind>``, ``flag:<name>`` per flag, ``sample``; empty: it does not."""
    reasons = []
    if kind in policy.always_kinds:
        reasons.append(f"kind:{kind}")
    wanted = {f.value for f in policy.flags}
    reasons += [f"flag:{f}" for f in flags if f in wanted]
    if not reasons and in_sample(order_id, policy.sample_percent):
        reasons.append("sample")
    return reasons
