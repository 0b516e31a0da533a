"""Login, token refresh and logout."""

import uuid

import msgspec

from mobile_contract.types import AppVersion, DeviceId, Password, Platform, Username

__all__ = (
    "DeviceInfo",
    "LoggedOut",
    "LoginRequest",
    "LogoutRequest",
    "RefreshRequest",
    "TokenPair",
    "UserSummary",
)


class DeviceInfo(msgspec.Struct, forbid_unknown_fields=True):
    id: DeviceId
    platform: Platform
    app_version: AppVersion


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    username: Username
    password: Password
    device: DeviceInfo


class RefreshRequest(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: str
    device_id: DeviceId | None = None
    """The phone's own id; when given it must be the device the token was issued to."""


class LogoutRequest(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: str | None = None


class UserSummary(msgspec.Struct):
    id: uuid.UUID
    username: str
    full_name: str
    role: str
    staff_number: str | None
    company_id: uuid.UUID
    timezone: str


class LoggedOut(msgspec.Struct):
    ok: bool
    """Always true: the device's refresh token no longer works."""


class TokenPair(msgspec.Struct):
    access_token: str
    """Short-lived, bound to the device; send as ``Authorization: Bearer …``."""
    refresh_token: str
    """Single use: each refresh spends it and returns a new one. Reusing a spent one ends the session."""
    expires_in: int
    """Seconds until the access token expires."""
    refresh_expires_in: int
    user: UserSummary
    device_id: str
    token_type: str = "Bearer"
