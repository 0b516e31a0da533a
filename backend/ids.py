"""The one id factory: UUIDv7, time-ordered so that primary-key indexes stay append-friendly.

Server-made secrets that are not keys (refresh tokens, the sync epoch) come from here too, so
that one object decides where every unpredictable value comes from. The service always uses
``RandomIds``; a tool that must produce the same output on every run (the contract's golden
examples) swaps in ``SeededIds`` with ``ids_from`` for the length of that run only.
"""

import base64
import os
import random
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from uuid6 import uuid7

__all__ = ("IdSource", "RandomIds", "SeededIds", "ids_from", "new_hex", "new_id", "new_token")


class IdSource(Protocol):
    def uuid(self) -> uuid.UUID:
        """A fresh UUIDv7."""
        ...

    def token_bytes(self, nbytes: int) -> bytes:
        """``nbytes`` bytes nobody can guess (for the service) or repeatable ones (for a tool)."""
        ...


class RandomIds:
    """The service's source: uuid6's UUIDv7 and the operating system's CSPRNG."""

    __slots__ = ()

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(bytes=uuid7().bytes)

    def token_bytes(self, nbytes: int) -> bytes:
        return os.urandom(nbytes)


class SeededIds:
    """The same ids and tokens on every run, still UUIDv7-shaped and increasing.

    The timestamp starts at ``start_ms`` and moves on one millisecond per id, so ids keep the
    order in which they were made, as the service's do. Never for a server: everything it makes
    can be predicted from the seed.
    """

    __slots__ = ("_lock", "_ms", "_random")

    def __init__(self, seed: str, *, start_ms: int) -> None:
        self._random = random.Random(seed)
        self._ms = start_ms
        self._lock = threading.Lock()

    def uuid(self) -> uuid.UUID:
        with self._lock:
            self._ms += 1
            tail = self._random.getrandbits(74)
            ms = self._ms
        value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (tail >> 62) << 64 | 0b10 << 62 | tail & (2**62 - 1)
        return uuid.UUID(int=value)

    def token_bytes(self, nbytes: int) -> bytes:
        with self._lock:
            return self._random.randbytes(nbytes)


_source: IdSource = RandomIds()


def new_id() -> uuid.UUID:
    return _source.uuid()


def new_token(nbytes: int = 32) -> str:
    """URL-safe text of ``nbytes`` unguessable bytes (``secrets.token_urlsafe``'s format)."""
    return base64.urlsafe_b64encode(_source.token_bytes(nbytes)).rstrip(b"=").decode("ascii")


def new_hex(nbytes: int) -> str:
    return _source.token_bytes(nbytes).hex()


@contextmanager
def ids_from(source: IdSource) -> Iterator[None]:
    """Make every id and token of this process from ``source`` until the block ends."""
    global _source
    previous, _source = _source, source
    try:
        yield
    finally:
        _source = previous
