"""The indoor-temperature standard at its boundaries: 18 °C by day, 16 °C at night, the design minimum."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from backend.evidence.measurements import evaluate

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
NIGHT = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai


def room(value: float, kind: str = "bedroom", name: str = "主卧") -> dict:
    return {"name": name, "kind": kind, "readings_c": [value, value, value], "height_m": 1.3}


def judge(rooms: list[dict], at: datetime = DAY, outdoor: float = -10.0, closed: int = 40):
    return evaluate(
        rooms=rooms,
        measured_at=at,
        zone=SHANGHAI,
        outdoor_c=outdoor,
        design_outdoor_min_c=-20.0,
        closed_minutes=closed,
    )


@pytest.mark.parametrize(("value", "verdict"), [(17.9, "fail"), (18.0, "pass"), (22.5, "pass")])
def test_daytime_needs_18_degrees(value: float, verdict: str) -> None:
    result = judge([room(value)])
    assert result.result == verdict
    assert result.period == "day" and result.threshold_c == 18.0


@pytest.mark.parametrize(("value", "verdict"), [(15.9, "fail"), (16.0, "pass"), (17.0, "pass")])
def test_at_night_never_below_16(value: float, verdict: str) -> None:
    result = judge([room(value)], at=NIGHT)
    assert (result.result, result.period, result.threshold_c) == (verdict, "night", 16.0)


def test_the_day_starts_at_six_and_ends_at_nine() -> None:
    assert judge([room(17.0)], at=datetime(2026, 12, 6, 21, 59, tzinfo=UTC)).period == "night"  # 05:59
    assert judge([room(17.0)], at=datetime(2026, 12, 6, 22, 0, tzinfo=UTC)).period == "day"  # 06:00
    assert judge([room(17.0)], at=datetime(2026, 12, 7, 13, 0, tzinfo=UTC)).period == "night"  # 21:00


def test_colder_outside_than_the_design_minimum_is_not_applicable() -> None:
    assert judge([room(15.0)], outdoor=-20.1).result == "not_applicable"
    assert judge([room(15.0)], outdoor=-20.0).result == "fail"


def test_only_bedrooms_and_living_rooms_count() -> None:
    result = judge(
        [room(18.5), room(12.0, kind="kitchen", name="厨房"), room(14.0, kind="bathroom", name="卫生间")]
    )
    assert result.result == "pass"
    assert [r.counted for r in result.rooms] == [True, False, False]


def test_one_cold_room_fails_the_home() -> None:
    assert judge([room(19.0), room(17.9, kind="living_room", name="客厅")]).result == "fail"


def test_the_value_is_the_mean_of_three_readings() -> None:
    result = judge([{"name": "主卧", "kind": "bedroom", "readings_c": [17.9, 18.0, 18.1], "height_m": 1.4}])
    assert result.rooms[0].value_c == 18.0
    assert result.result == "pass"


@pytest.mark.parametrize(
    ("rooms", "closed", "problem"),
    [
        ([{"name": "主卧", "kind": "bedroom", "readings_c": [18.2, 18.3]}], 40, "2 readings, 3 required"),
        ([room(18.5)], 20, "closed less than 30 min"),
        ([{**room(18.5), "height_m": 0.8}], 40, "not 1.2-1.5 m"),
    ],
)
def test_a_procedure_not_followed_is_incomplete(rooms: list[dict], closed: int, problem: str) -> None:
    result = judge(rooms, closed=closed)
    assert result.result == "incomplete"
    assert any(problem in p for p in result.problems)


def test_an_unstable_room_or_hurried_readings_make_the_record_incomplete() -> None:
    start = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
    minute_apart = [start.replace(minute=m).isoformat() for m in (0, 1, 2)]
    steady = {**room(19.0), "stable_drift_c": 0.2, "reading_times": minute_apart}
    assert judge([steady]).result == "pass"
    drifting = {**steady, "stable_drift_c": 0.3}
    assert judge([drifting]).result == "incomplete"
    assert "not stable" in judge([drifting]).problems[0]
    hurried = {**steady, "reading_times": [start.replace(second=s).isoformat() for s in (0, 20, 40)]}
    assert judge([hurried]).problems == ["主卧: readings less than a minute apart"]
    # A kitchen does not count, so its procedure does not matter either.
    assert judge([steady, {**room(12.0, kind="kitchen"), "stable_drift_c": 2.0}]).result == "pass"
