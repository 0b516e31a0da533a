"""The KPI rollup's tables (``backend.reports.rollup``): deltas, and what each entity last gave."""

import uuid
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

__all__ = ("KpiDelta", "KpiSettled")


class KpiDelta(SQLModel, table=True):
    """One change of a KPI ingredient's counts for a company, a team (or none) and a local day.

    Insert-only: the rollup of a key is the sum of its rows. ``heatcrew maintenance`` folds a
    key's rows into one (``rollup.compact``)."""

    __tablename__ = "kpi_delta"
    __table_args__ = (
        sa.Index(
            "ix_kpi_delta_company_day",
            "company_id",
            "day",
            postgresql_include=["team_id", "ingredient", "numerator", "denominator"],
        ),
    )

    id: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    )
    company_id: uuid.UUID
    team_id: uuid.UUID | None = None
    ingredient: str = Field(max_length=48)
    day: date
    numerator: int = Field(sa_type=sa.BigInteger)
    denominator: int = Field(sa_type=sa.BigInteger)


class KpiSettled(SQLModel, table=True):
    """What an entity (an order with its clocks, revisit and measurements, or a measurement without
    an order) counts for in the rollup now: the base its next change is a delta from."""

    __tablename__ = "kpi_settled"

    entity_id: uuid.UUID = Field(primary_key=True)
    parts: Any = Field(default=None, sa_type=sa.JSON, nullable=True)
