"""Password hashing with Argon2id (memory-hard), parameters from RFC 9106's low-memory profile."""

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ("Passwords",)


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
