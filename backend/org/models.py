"""Organisation and reference tables: company, stations, teams, buildings, households.

No ``from __future__ import annotations`` in table modules (SQLModel).
"""

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from backend.db.types import UTCDateTime

__all__ = ("Building", "Company", "Household", "Station", "Team")


class Company(SQLModel, table=True):
    __tablename__ = "company"

    id: uuid.UUID = Field(primary_key=True)
    code: str = Field(max_length=32, unique=True, description="Short stable code, e.g. 'demo'.")
    name: str = Field(max_length=200)
    timezone: str = Field(default="Asia/Shanghai", max_length=64)
    is_demo: bool = Field(default=False)
    created_at: datetime = Field(sa_type=UTCDateTime)
    sla_policy: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    """The company's own SLA policy; null means the defaults (``mobile_contract.reference.SlaPolicy``)."""
    review_policy: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    """What enters the supervisor's review; null: the defaults (``backend.review.rules.ReviewPolicy``)."""
    photo_original_retention_days: int | None = Field(default=None)
    """Days after an order closed that its photos' originals (with GPS and EXIF) are kept; the
    metadata-free copies stay. Null: ``HEATCREW_PHOTO_ORIGINAL_RETENTION_DAYS``; 0: kept for ever."""


class Station(SQLModel, table=True):
    """A heat-exchange station (换热站) and the area it serves."""

    __tablename__ = "station"
    __table_args__ = (sa.UniqueConstraint("company_id", "code"),)

    id: uuid.UUID = Field(primary_key=True)
    company_id: uuid.UUID = Field(foreign_key="company.id", index=True)
    code: str = Field(max_length=32)
    name: str = Field(max_length=100)


class Team(SQLModel, table=True):
    """A repair team; SLA boards and repeat-fault counts are per team."""

    __tablename__ = "team"
    __table_args__ = (sa.UniqueConstraint("company_id", "code"),)

    id: uuid.UUID = Field(primary_key=True)
    company_id: uuid.UUID = Field(foreign_key="company.id", index=True)
    code: str = Field(max_length=32)
    name: str = Field(max_length=100)
    station_id: uuid.UUID | None = Field(default=None, foreign_key="station.id")


class Building(SQLModel, table=True):
    __tablename__ = "building"
    __table_args__ = (sa.UniqueConstraint("company_id", "address"),)

    id: uuid.UUID = Field(primary_key=True)
    company_id: uuid.UUID = Field(foreign_key="company.id", index=True)
    station_id: uuid.UUID | None = Field(default=None, foreign_key="station.id")
    address: str = Field(max_length=200)
    lat: float | None = None
    lon: float | None = None


class Household(SQLModel, table=True):
    """A heated dwelling and its resident: personal data, served minimised and masked."""

    __tablename__ = "household"
    __table_args__ = (sa.UniqueConstraint("company_id", "account_number"),)

    id: uuid.UUID = Field(primary_key=True)
    company_id: uuid.UUID = Field(foreign_key="company.id", index=True)
    building_id: uuid.UUID = Field(foreign_key="building.id", index=True)
    account_number: str = Field(max_length=32)
    unit: str = Field(max_length=50, description="Entrance-floor-room, e.g. 3-2-501.")
    heated_area_m2: float
    resident_name: str = Field(max_length=100)
    resident_phone: str | None = Field(default=None, max_length=32)
    is_key_customer: bool = Field(default=False)
    lat: float | None = None
    lon: float | None = None
    created_at: datetime = Field(sa_type=UTCDateTime)
    erased_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    """When the resident's personal data was erased on their request (PIPL); null: never."""
    erased_by: uuid.UUID | None = Field(default=None)
    """The admin who erased it."""
    erase_reason: str | None = Field(default=None, max_length=500)
    """Why (the request's reference, as the admin gave it)."""
