"""Who is calling: resolved once per request from the access token and the database."""

import uuid

import msgspec

from backend.auth.models import Role

__all__ = ("Principal",)


class Principal(msgspec.Struct, frozen=True):
    user_id: uuid.UUID
    company_id: uuid.UUID
    role: Role
    username: str
    full_name: str
    device_id: str
    session_id: uuid.UUID

    def has_role(self, *roles: Role) -> bool:
        return self.role in roles
