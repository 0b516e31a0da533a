"""The console's browser sessions. No ``from __future__ import annotations`` here (SQLModel)."""

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from backend.db.types import UTCDateTime

__all__ = ("ConsoleSession",)


class ConsoleSession(SQLModel, table=True):
    """The browser side of one console sign-in: the auth session (and its ``console`` device) it
    belongs to, the SHA-256 of its opaque cookie and its CSRF token. It lives while the auth
    session, the device and the user do, for at most the absolute lifetime, and while it is used
    within the idle timeout."""

    __tablename__ = "console_session"

    token_hash: str = Field(primary_key=True, max_length=64)
    auth_session_id: uuid.UUID = Field(foreign_key="auth_session.id", index=True, unique=True)
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=UTCDateTime)
    last_active_at: datetime = Field(sa_type=UTCDateTime)
