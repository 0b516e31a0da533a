"""Password hashing with Argon2id (memory-hard), parameters from RFC 9106's low-memory profile,
and the per-worker bound on how many checks run at once."""

import asyncio
import math
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from backend.errors import LoginBusy

__all__ = ("HashGate", "Passwords")

T = TypeVar("T")


class Passwords:
    __slots__ = ("_dummy_hash", "_hasher")

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        # Verifying against a throw-away hash when the user does not exist keeps the answer
        # time the same, so timing does not reveal which usernames exist.
        self._dummy_hash = self._hasher.hash("heatcrew-no-such-user")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return (
                self._hasher.verify(password_hash or self._dummy_hash, password) and password_hash is not None
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)


class HashGate:
    """At most ``slots`` password checks at once in this worker; others queue up to ``wait_s``
    seconds, then get ``503 login_busy``. Each check takes 64 MiB (production Argon2id), so this
    bounds a worker's memory and CPU by the checks at once, not by the phones logging in. Waiting
    logins hold no thread, only a coroutine."""

    __slots__ = ("_limiter", "_loop", "_semaphore", "slots", "wait_s")

    def __init__(self, slots: int, wait_s: float) -> None:
        self.slots = slots
        self.wait_s = wait_s
        self._semaphore: asyncio.Semaphore | None = None
        self._limiter: anyio.CapacityLimiter | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _current(self) -> asyncio.Semaphore:
        # One per event loop: a worker has one; tests may start the app on a second one.
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._loop is not loop:
            self._semaphore, self._loop = asyncio.Semaphore(self.slots), loop
            # The checks' own threads: a rush of pulls holding every worker thread does not make
            # a login wait for one (nor count that wait against its queue time).
            self._limiter = anyio.CapacityLimiter(self.slots)
        return self._semaphore

    async def run(self, check: Callable[[], T]) -> T:
        semaphore = self._current()
        try:
            async with asyncio.timeout(self.wait_s):
                await semaphore.acquire()
        except TimeoutError:
            retry_after = max(1, math.ceil(self.wait_s))
            raise LoginBusy(
                detail={"retryable": True, "retry_after_s": retry_after, "concurrent_checks": self.slots},
                headers={"Retry-After": str(retry_after)},
            ) from None
        try:
            # Not abandoned on cancellation: the slot is released only when the check has ended.
            return await anyio.to_thread.run_sync(check, limiter=self._limiter)
        finally:
            semaphore.release()
