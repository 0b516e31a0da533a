"""The audit log's tables: the append-only, hash-chained events and the anchor pruning leaves.

No ``from __future__ import annotations`` here (SQLModel).
"""

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from backend.db.types import UTCDateTime

__all__ = ("AuditAnchor", "AuditEvent")


class AuditEvent(SQLModel, table=True):
    """One security event; a company's rows form one chain, ``seq`` 1, 2, 3… without gaps.

    ``hash`` is SHA-256 over the previous row's hash and the canonical JSON of this row's fields
    (``backend.audit.service.row_hash``). Triggers refuse every UPDATE and every DELETE but that of
    a pruned prefix (migration 0013_audit). ``company_id`` has no foreign key: the log outlives
    what it names, and login failures for a username nobody has go to the installation's own chain
    (the nil UUID).
    """

    __tablename__ = "audit_event"
    __table_args__ = (
        sa.Index("ix_audit_event_company_event", "company_id", "event", "seq"),
        sa.Index("ix_audit_event_company_actor", "company_id", "actor_user_id", "seq"),
        sa.Index("ix_audit_event_company_target", "company_id", "target_type", "target_id", "seq"),
    )

    company_id: uuid.UUID = Field(primary_key=True)
    seq: int = Field(primary_key=True, sa_type=sa.BigInteger, sa_column_kwargs={"autoincrement": False})
    at: datetime = Field(sa_type=UTCDateTime)
    event: str = Field(max_length=64)
    actor_user_id: uuid.UUID | None = Field(default=None)
    actor_device_id: str | None = Field(default=None, max_length=64)
    target_type: str | None = Field(default=None, max_length=32)
    target_id: str | None = Field(default=None, max_length=64)
    request_id: str | None = Field(default=None, max_length=128)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditAnchor(SQLModel, table=True):
    """Where a company's chain starts after pruning: the last removed row's sequence and hash.

    Verification starts here instead of at the genesis hash; the delete trigger lets only rows
    covered by the anchor (and older than the retention) go.
    """

    __tablename__ = "audit_anchor"

    company_id: uuid.UUID = Field(primary_key=True)
    seq: int = Field(sa_type=sa.BigInteger)
    hash: str = Field(max_length=64)
    before: datetime = Field(sa_type=UTCDateTime)
    """The cutoff of the last pruning: every removed row was older than this."""
    pruned_at: datetime = Field(sa_type=UTCDateTime)
