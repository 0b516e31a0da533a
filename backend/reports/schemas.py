"""Wire types of the reports API (office roles): KPIs with their series."""

import uuid
from datetime import date, datetime
from typing import Literal

import msgspec

__all__ = ("Kpi", "KpiReport", "SeriesPoint")


class SeriesPoint(msgspec.Struct, kw_only=True):
    """One bar of a KPI's chart: a day or a week (``start`` to ``end``, both local dates, inclusive)."""

    start: date
    end: date
    value: float | None
    numerator: int
    denominator: int


class Kpi(msgspec.Struct, kw_only=True):
    name: str
    title: str
    unit: Literal["ratio", "score"]
    """``ratio``: 0–1 (shown as a percentage); ``score``: the 1–5 satisfaction mean."""
    value: float | None
    """None when nothing was counted (denominator 0)."""
    numerator: int
    denominator: int
    target: float
    better: Literal["higher", "lower"]
    meets_target: bool | None
    definition: str
    series: list[SeriesPoint]


class KpiReport(msgspec.Struct, kw_only=True):
    company_id: uuid.UUID
    team_id: uuid.UUID | None
    since: date
    until: date
    """Local dates in ``timezone``, both inclusive."""
    timezone: str
    bucket: Literal["day", "week"]
    generated_at: datetime
    kpis: list[Kpi]

    def kpi(self, name: str) -> Kpi:
        for kpi in self.kpis:
            if kpi.name == name:
                return kpi
        raise KeyError(name)
