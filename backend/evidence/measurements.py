"""Indoor temperature against the standard: the server computes the result, never the phone.

Only bedrooms and living rooms count. A room's value is the mean of its readings (three, a minute
apart, once stable). Between 06:00 and 21:00 local time every counted room must reach 18.0 °C;
at other hours none may be below 16.0 °C. The standard holds only while the outdoor temperature is
at or above the heating system's design minimum: below it the result is "not applicable".
"""

from datetime import datetime, time
from itertools import pairwise
from typing import Any, Literal
from zoneinfo import ZoneInfo

import msgspec

__all__ = ("COUNTED_ROOMS", "MeasurementResult", "RoomResult", "evaluate", "judge")

COUNTED_ROOMS = frozenset({"bedroom", "living_room"})
DAY_START, DAY_END = time(6, 0), time(21, 0)
DAY_MINIMUM_C = 18.0
NIGHT_MINIMUM_C = 16.0
REQUIRED_READINGS = 3
MIN_CLOSED_MINUTES = 30
HEIGHT_RANGE_M = (1.2, 1.5)
STABLE_DRIFT_C = 0.2
# "Three readings one minute apart": a phone clock's rounding should not fail an honest record.
MIN_READING_GAP_S = 50

Verdict = Literal["pass", "fail", "not_applicable", "incomplete"]


class RoomResult(msgspec.Struct):
    name: str
    kind: str
    counted: bool
    value_c: float | None
    """Mean of the readings, to 0.1 °C."""
    meets: bool | None


class MeasurementResult(msgspec.Struct):
    result: Verdict
    threshold_c: float
    period: Literal["day", "night"]
    rooms: list[RoomResult]
    problems: list[str]
    """Why the procedure was not followed (too few readings, windows closed too briefly, height)."""


def evaluate(
    *,
    rooms: list[dict],
    measured_at: datetime,
    zone: ZoneInfo,
    outdoor_c: float | None,
    design_outdoor_min_c: float,
    closed_minutes: int | None,
) -> MeasurementResult:
    local = measured_at.astimezone(zone).time()
    day = DAY_START <= local < DAY_END
    threshold = DAY_MINIMUM_C if day else NIGHT_MINIMUM_C
    problems: list[str] = []
    if closed_minutes is None or closed_minutes < MIN_CLOSED_MINUTES:
        problems.append(f"doors and windows closed less than {MIN_CLOSED_MINUTES} min")
    if outdoor_c is None:
        problems.append("outdoor temperature not recorded")
    results = []
    for room in rooms:
        counted = room.get("kind") in COUNTED_ROOMS
        readings = [float(r) for r in room.get("readings_c", [])]
        value = round(sum(readings) / len(readings), 1) if readings else None
        if counted and len(readings) < REQUIRED_READINGS:
            problems.append(f"{room.get('name')}: {len(readings)} readings, {REQUIRED_READINGS} required")
        height = room.get("height_m")
        if counted and height is not None and not HEIGHT_RANGE_M[0] <= height <= HEIGHT_RANGE_M[1]:
            problems.append(f"{room.get('name')}: measured at {height} m, not 1.2-1.5 m")
        if counted:
            problems += _procedure_problems(room)
        meets = None if not counted or value is None else value >= threshold
        results.append(
            RoomResult(
                name=str(room.get("name")),
                kind=str(room.get("kind")),
                counted=counted,
                value_c=value,
                meets=meets,
            )
        )
    counted_rooms = [r for r in results if r.counted]
    verdict: Verdict
    if outdoor_c is not None and outdoor_c < design_outdoor_min_c:
        verdict = "not_applicable"
    elif not counted_rooms or problems:
        verdict = "incomplete"
    else:
        verdict = "pass" if all(r.meets for r in counted_rooms) else "fail"
    return MeasurementResult(
        result=verdict,
        threshold_c=threshold,
        period="day" if day else "night",
        rooms=results,
        problems=problems,
    )


def _procedure_problems(room: dict) -> list[str]:
    """Stabilisation and the spacing of the readings, when the phone recorded them."""
    problems = []
    name = room.get("name")
    drift = room.get("stable_drift_c")
    if drift is not None and drift > STABLE_DRIFT_C:
        problems.append(f"{name}: not stable ({drift} °C change over 10 min, at most {STABLE_DRIFT_C})")
    times = room.get("reading_times")
    if times:
        stamps = sorted(datetime.fromisoformat(t) if isinstance(t, str) else t for t in times)
        readings = len(room.get("readings_c", []))
        if len(stamps) != readings:
            problems.append(f"{name}: {len(stamps)} reading times for {readings} readings")
        elif any((b - a).total_seconds() < MIN_READING_GAP_S for a, b in pairwise(stamps)):
            problems.append(f"{name}: readings less than a minute apart")
    return problems


def judge(record: Any, *, timezone: str, design_outdoor_min_c: float) -> MeasurementResult:
    """:func:`evaluate` for a measurement row (recorded, or about to be) in its company's zone."""
    return evaluate(
        rooms=record.rooms,
        measured_at=record.measured_at or record.corrected_at,
        zone=ZoneInfo(timezone),
        outdoor_c=record.outdoor_c,
        design_outdoor_min_c=design_outdoor_min_c,
        closed_minutes=record.closed_minutes,
    )
