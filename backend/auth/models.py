"""Accounts, phones and token families. No ``from __future__ import annotations`` here (SQLModel)."""

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from backend.db.types import UTCDateTime

__all__ = ("AuthSession", "Device", "LoginAttempt", "RateCounter", "RefreshToken", "Role", "User")


class Role(StrEnum):
    technician = "technician"
    inspector = "inspector"
    supervisor = "supervisor"
    dispatcher = "dispatcher"
    admin = "admin"


class User(SQLModel, table=True):
    # "user" is a reserved word in PostgreSQL.
    __tablename__ = "app_user"

    id: uuid.UUID = Field(primary_key=True)
    company_id: uuid.UUID = Field(foreign_key="company.id", index=True)
    username: str = Field(max_length=64, unique=True)
    full_name: str = Field(max_length=100)
    staff_number: str | None = Field(default=None, max_length=32)
    role: str = Field(max_length=16)
    phone: str | None = Field(default=None, max_length=32)
    team_id: uuid.UUID | None = Field(default=None, foreign_key="team.id", index=True)
    password_hash: str = Field(max_length=255)
    is_active: bool = Field(default=True)
    is_demo: bool = Field(default=False)
    created_at: datetime = Field(sa_type=UTCDateTime)
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    locale: str | None = Field(default=None, max_length=16)
    """The web console's language for this user (``zh`` or ``en``); unset: the default, Chinese."""


class Device(SQLModel, table=True):
    """A phone (or a console browser) registered to one user; revoking it locks it out at once."""

    __tablename__ = "device"

    id: str = Field(primary_key=True, max_length=64)
    user_id: uuid.UUID = Field(foreign_key="app_user.id", index=True)
    platform: str = Field(max_length=32)
    app_version: str = Field(max_length=32)
    registered_at: datetime = Field(sa_type=UTCDateTime)
    last_seen_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_by: uuid.UUID | None = Field(default=None, foreign_key="app_user.id")
    revoke_reason: str | None = Field(default=None, max_length=200)


class AuthSession(SQLModel, table=True):
    """One login on one device: the family of its rotating refresh tokens."""

    __tablename__ = "auth_session"

    id: uuid.UUID = Field(primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="app_user.id", index=True)
    device_id: str = Field(foreign_key="device.id", index=True, max_length=64)
    created_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoke_reason: str | None = Field(default=None, max_length=64)


class RefreshToken(SQLModel, table=True):
    """Only the SHA-256 of the token is kept: a database leak yields no usable token."""

    __tablename__ = "refresh_token"

    id: uuid.UUID = Field(primary_key=True)
    session_id: uuid.UUID = Field(foreign_key="auth_session.id", index=True)
    token_hash: str = Field(max_length=64, unique=True)
    issued_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    spent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    """Set when the token is used, or when it is replaced by a retry of its parent."""
    parent_id: uuid.UUID | None = Field(default=None)
    """The token whose refresh issued this one (none for a login's first token). A retry of the
    parent within the grace replaces this token, so one live successor exists at any time."""


class LoginAttempt(SQLModel, table=True):
    """Shared by every worker, so the login rate limit holds across a scaled-out deployment."""

    __tablename__ = "login_attempt"
    __table_args__ = (
        sa.Index("ix_login_attempt_username_at", "username", "at"),
        sa.Index("ix_login_attempt_address_at", "address", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64)
    address: str = Field(max_length=64)
    at: datetime = Field(sa_type=UTCDateTime)
    succeeded: bool | None = Field(default=None, nullable=True)
    """None while the password check runs: a pending attempt counts against the budget, so that
    concurrent guesses cannot all slip past the limit before one of them is recorded."""


class RateCounter(SQLModel, table=True):
    """Requests from one key (a client address) in one fixed window, shared by every worker."""

    __tablename__ = "rate_counter"
    __table_args__ = (sa.Index("ix_rate_counter_scope_window", "scope", "window_start"),)

    scope: str = Field(primary_key=True, max_length=32)
    key: str = Field(primary_key=True, max_length=64)
    window_start: int = Field(primary_key=True, sa_type=sa.BigInteger)
    """Seconds since the epoch at which the window began (a multiple of its length)."""
    hits: int
