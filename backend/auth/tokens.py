"""Access tokens (signed, short-lived, bound to one device and one session) and refresh tokens."""

import hashlib
import uuid
from datetime import datetime

import jwt
import msgspec

from backend.errors import AuthError
from backend.ids import new_token

__all__ = ("AccessClaims", "TokenCodec", "hash_refresh_token", "new_refresh_token")

ALGORITHM = "HS256"


class AccessClaims(msgspec.Struct, frozen=True):
    user_id: uuid.UUID
    session_id: uuid.UUID
    device_id: str
    expires_at: int


# Tokens whose signature was checked, kept so that a phone's next request costs no HMAC.
VERIFIED_KEPT = 20_000


class TokenCodec:
    __slots__ = ("_key", "_ttl", "_verified")

    def __init__(self, key: str, ttl_seconds: int) -> None:
        self._key = key
        self._ttl = ttl_seconds
        self._verified: dict[str, AccessClaims] = {}

    @property
    def ttl(self) -> int:
        return self._ttl

    def issue(self, *, user_id: uuid.UUID, session_id: uuid.UUID, device_id: str, now: datetime) -> str:
        issued = int(now.timestamp())
        claims = {
            "sub": str(user_id),
            "sid": str(session_id),
            "did": device_id,
            "iat": issued,
            "exp": issued + self._ttl,
            "typ": "access",
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def read(self, token: str, *, now: datetime) -> AccessClaims:
        """Checks signature and expiry against the injected clock, not the wall clock. A token
        whose signature was checked before is not checked again (its expiry always is)."""
        parsed = self._verified.get(token)
        if parsed is None:
            parsed = self._verify(token)
            if len(self._verified) >= VERIFIED_KEPT:
                self._verified.clear()
            self._verified[token] = parsed
        if parsed.expires_at <= now.timestamp():
            raise AuthError("The access token has expired; refresh it.", code="token_expired")
        return parsed

    def _verify(self, token: str) -> AccessClaims:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": ["sub", "sid", "did", "exp"],
                },
            )
            if claims.get("typ") != "access":
                raise jwt.InvalidTokenError("not an access token")
            parsed = AccessClaims(
                user_id=uuid.UUID(claims["sub"]),
                session_id=uuid.UUID(claims["sid"]),
                device_id=str(claims["did"]),
                expires_at=int(claims["exp"]),
            )
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise AuthError("The access token is not valid.", code="invalid_token") from None
        return parsed


def new_refresh_token() -> str:
    return new_token(32)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
