"""Constrained scalar types reused across the contract.

Every datetime the server accepts is an :data:`AwareDateTime`: it carries a zone (``Z`` or
``±hh:mm``; a time without one is refused) and lies between :data:`EARLIEST` and :data:`LATEST`,
so that no arithmetic on it (a phone's clock skew added to it) can leave what Python and the
databases hold. The range is checked by :class:`TimeChecked`, the base of every struct holding one.
Integers the server accepts are bounded too (:data:`MAX_SAFE_INT` at most).
"""

from datetime import UTC, date, datetime
from typing import Annotated, Any

import msgspec

__all__ = (
    "EARLIEST",
    "LATEST",
    "MAX_SAFE_INT",
    "AppVersion",
    "AwareDateTime",
    "BoundedDate",
    "DeviceId",
    "Password",
    "Platform",
    "Sha256Hex",
    "TimeChecked",
    "Username",
    "check_times",
)

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
#: The largest integer a JSON client (JavaScript) holds exactly; far inside 64-bit storage.
MAX_SAFE_INT = 2**53 - 1

AwareDateTime = Annotated[
    datetime,
    msgspec.Meta(
        tz=True,
        description="RFC 3339 with a zone (Z or ±hh:mm), between 2000-01-01 and 2100-01-01 UTC.",
    ),
]
BoundedDate = Annotated[date, msgspec.Meta(description="A date between 2000-01-01 and 2099-12-31.")]


def _check(name: str, value: Any) -> None:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must carry a time zone")
        if not EARLIEST <= value < LATEST:
            raise ValueError(f"{name} must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}")
    elif isinstance(value, date) and not EARLIEST.date() <= value < LATEST.date():
        raise ValueError(f"{name} must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}")


def check_times(struct: msgspec.Struct) -> None:
    """Raise ``ValueError`` (msgspec: ``ValidationError``) for a datetime field out of range."""
    for name in struct.__struct_fields__:
        value = getattr(struct, name)
        if isinstance(value, date):
            _check(name, value)
        elif isinstance(value, list | tuple):
            for item in value:
                if isinstance(item, date):
                    _check(name, item)


class TimeChecked(msgspec.Struct):
    """Base of a struct with datetime fields: each must lie in ``[EARLIEST, LATEST)``.

    A subclass with its own ``__post_init__`` calls ``super().__post_init__()``.
    """

    def __post_init__(self) -> None:
        check_times(self)


DeviceId = Annotated[
    str,
    msgspec.Meta(
        min_length=8,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="Made by the phone once at install (a UUID is ideal) and kept for its lifetime.",
    ),
]
Username = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Platform = Annotated[str, msgspec.Meta(min_length=1, max_length=32, examples=["android", "ios", "web"])]
AppVersion = Annotated[str, msgspec.Meta(min_length=1, max_length=32, examples=["1.4.2"])]
Sha256Hex = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$", description="Lower-case hex SHA-256.")]
