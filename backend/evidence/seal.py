"""The server's seal on a signature: an HMAC only a process holding the secret key can make.

A signature row carries the hash of the content it covers; someone editing the database could
change the content *and* that hash together. The seal covers the signature and the hash with a
key the database does not hold, so such an edit is still detected by verification.
"""

import hashlib
import hmac
from typing import Any

from sqlalchemy.orm import Session

from mobile_contract.documents import canonical

__all__ = ("make_seal", "seal_key", "session_seal_key")


def seal_key(secret: str) -> bytes:
    """A key for seals only, derived from the service's secret (never the token key itself)."""
    return hmac.new(secret.encode(), b"heatcrew/signature-seal/v1", hashlib.sha256).digest()


def session_seal_key(session: Session) -> bytes:
    key = session.info.get("seal_key")
    if not isinstance(key, bytes):
        raise RuntimeError("the database was opened without a seal key")
    return key


def make_seal(key: bytes, fields: dict[str, Any]) -> str:
    return hmac.new(key, canonical(fields), hashlib.sha256).hexdigest()
