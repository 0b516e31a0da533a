"""The one error body of every 4xx/5xx answer, and the stable codes it may carry."""

from enum import StrEnum
from typing import Any

import msgspec

__all__ = ("ErrorBody", "ErrorCode")


class ErrorBody(msgspec.Struct):
    code: str
    """Stable machine code; clients branch on this, never on the message."""
    message: str
    """For people; may be reworded or translated."""
    detail: Any = None
    """Structured extra, e.g. the limit that was exceeded or the fields that failed."""


class ErrorCode(StrEnum):
    """Codes the server answers with. Never renamed; new ones may be added."""

    # request shape
    malformed_json = "malformed_json"
    invalid_body = "invalid_body"
    invalid_input = "invalid_input"
    body_too_large = "body_too_large"
    not_found = "not_found"
    method_not_allowed = "method_not_allowed"
    # authentication
    not_authenticated = "not_authenticated"
    invalid_credentials = "invalid_credentials"
    invalid_token = "invalid_token"
    token_expired = "token_expired"
    refresh_token_invalid = "refresh_token_invalid"
    refresh_token_reused = "refresh_token_reused"
    refresh_token_expired = "refresh_token_expired"
    session_revoked = "session_revoked"
    device_revoked = "device_revoked"
    device_mismatch = "device_mismatch"
    device_registered_elsewhere = "device_registered_elsewhere"
    user_disabled = "user_disabled"
    rate_limited = "rate_limited"
    # authorisation and state
    forbidden = "forbidden"
    conflict = "conflict"
    username_taken = "username_taken"
    # blobs
    blob_not_found = "blob_not_found"
    blob_hash_mismatch = "blob_hash_mismatch"
    blob_too_large = "blob_too_large"
    # server side
    blob_store_unavailable = "blob_store_unavailable"
    database_unavailable = "database_unavailable"
    internal_error = "internal_error"
