"""The one id factory: UUIDv7, time-ordered so that primary-key indexes stay append-friendly."""

import uuid

from uuid6 import uuid7

__all__ = ("new_id",)


def new_id() -> uuid.UUID:
    return uuid.UUID(bytes=uuid7().bytes)
