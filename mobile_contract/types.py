"""Constrained scalar types reused across the contract."""

from typing import Annotated

import msgspec

__all__ = ("AppVersion", "DeviceId", "Password", "Platform", "Sha256Hex", "Username")

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
