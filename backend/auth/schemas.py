"""Wire types of the admin and supervisor endpoints for accounts and devices."""

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

from backend.auth.models import Role

__all__ = ("DeviceRead", "RevokeDevice", "UserCreate", "UserRead")

FullName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class UserCreate(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
    full_name: FullName
    role: Role
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    staff_number: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    phone: Annotated[str, msgspec.Meta(max_length=32, pattern=r"^[0-9+ -]*$")] | None = None


class UserRead(msgspec.Struct):
    id: uuid.UUID
    username: str
    full_name: str
    role: str
    staff_number: str | None
    is_active: bool
    created_at: datetime
    disabled_at: datetime | None


class DeviceRead(msgspec.Struct):
    id: str
    user_id: uuid.UUID
    username: str
    platform: str
    app_version: str
    registered_at: datetime
    last_seen_at: datetime
    revoked_at: datetime | None
    revoke_reason: str | None


class RevokeDevice(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=200)] | None = None
