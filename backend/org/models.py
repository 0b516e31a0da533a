"""Organisation tables. No ``from __future__ import annotations`` in table modules (SQLModel)."""

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from backend.db.types import UTCDateTime

__all__ = ("Company",)


class Company(SQLModel, table=True):
    __tablename__ = "company"

    id: uuid.UUID = Field(primary_key=True)
    code: str = Field(max_length=32, unique=True, description="Short stable code, e.g. 'demo'.")
    name: str = Field(max_length=200)
    timezone: str = Field(default="Asia/Shanghai", max_length=64)
    is_demo: bool = Field(default=False)
    created_at: datetime = Field(sa_type=UTCDateTime)
