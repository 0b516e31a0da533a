"""Sync bookkeeping: each device's counter, every action's answer, and the change feed.

No ``from __future__ import annotations`` here (SQLModel).
"""

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from backend.db.types import UTCDateTime

__all__ = ("REFUSED", "ChangeLog", "SyncAction", "SyncCounter", "SyncDevice")

# Answers a device reads back later; written as SQL so the partial index below matches the query.
REFUSED = "status IN ('rejected', 'conflict')"


class SyncDevice(SQLModel, table=True):
    """The device's last applied ``seq``: committed in the same transaction as the effects."""

    __tablename__ = "sync_device"

    device_id: str = Field(primary_key=True, foreign_key="device.id", max_length=64)
    last_applied_seq: int = Field(default=0, sa_type=sa.BigInteger)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    answers_pruned_below: int = Field(
        default=0,
        sa_type=sa.BigInteger,
        sa_column_kwargs={"server_default": "0"},
        description="Answers (sync_action) below this seq were removed by retention; always at or "
        "below last_applied_seq, so such a seq is answered duplicate, never applied again.",
    )
    waiting_actions: int = Field(
        default=0,
        sa_column_kwargs={"server_default": "0"},
        description="Actions the device's last push left waiting for an upload (blob_missing), with "
        "those queued behind them; 0 once its queue moves again (the metrics sum it by company).",
    )


class SyncAction(SQLModel, table=True):
    """Every action the server processed and what it answered, kept so a resend gets the same answer."""

    __tablename__ = "sync_action"
    # Only the refused actions a device reads back (``GET /sync/status``, newest first) need an
    # index beyond the key: every push writes hundreds of answers, and each index costs each insert.
    __table_args__ = (
        sa.Index(
            "ix_sync_action_refused",
            "device_id",
            "seq",
            postgresql_where=sa.text(REFUSED),
            sqlite_where=sa.text(REFUSED),
        ),
        # The phone's action id is its idempotency key: one answer per id and device.
        sa.Index("ux_sync_action_action_id", "device_id", "action_id", unique=True),
    )

    device_id: str = Field(primary_key=True, foreign_key="device.id", max_length=64)
    seq: int = Field(primary_key=True, sa_type=sa.BigInteger().with_variant(sa.Integer, "sqlite"))
    action_id: uuid.UUID = Field(description="The phone's action id.")
    user_id: uuid.UUID = Field(foreign_key="app_user.id")
    type: str = Field(max_length=64)
    v: int
    status: str = Field(max_length=16)
    code: str | None = Field(default=None, max_length=64)
    message: str | None = Field(default=None, max_length=500)
    current: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    payload: str = Field(sa_type=sa.Text, description="The payload as received, readable after a rejection.")
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    received_at: datetime = Field(sa_type=UTCDateTime)
    corrected_at: datetime = Field(sa_type=UTCDateTime)
    skew_s: int = Field(default=0, description="Server clock minus phone clock at send time, seconds.")


class SyncCounter(SQLModel, table=True):
    """A company's feed bookkeeping: its epoch, what was pruned, and on SQLite its positions.

    On SQLite ``version`` is bumped once per committing transaction that changed data (one writer
    at a time). On PostgreSQL positions are transaction ids and ``version`` stays as it is: pushes
    share no row (see ``backend.sync.changes``).
    """

    __tablename__ = "sync_counter"

    company_id: uuid.UUID = Field(primary_key=True, foreign_key="company.id")
    version: int = Field(default=0, sa_type=sa.BigInteger)
    epoch: str = Field(
        max_length=32, description="Changes when history is cut (restore, rebuild): cursors reset."
    )
    pruned_below: int = Field(
        default=0, sa_type=sa.BigInteger, description="Change-log rows below this are gone."
    )


class ChangeLog(SQLModel, table=True):
    """Which entity changed at which version, and for whom (null user: everyone in the company)."""

    __tablename__ = "change_log"
    __table_args__ = (
        sa.Index("ix_change_log_feed", "company_id", "user_id", "version"),
        sa.Index("ix_change_log_company_version", "company_id", "version"),
    )

    id: int | None = Field(
        default=None, primary_key=True, sa_type=sa.BigInteger().with_variant(sa.Integer, "sqlite")
    )
    company_id: uuid.UUID = Field(foreign_key="company.id")
    version: int = Field(sa_type=sa.BigInteger)
    user_id: uuid.UUID | None = Field(default=None)
    entity: str = Field(max_length=32)
    entity_id: str = Field(max_length=64)
    at: datetime = Field(sa_type=UTCDateTime, description="Commit time (server clock), for pruning by age.")
