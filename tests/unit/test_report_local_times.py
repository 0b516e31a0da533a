"""Exports convert UTC to the company's local time with a cached offset: exact across DST changes."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from backend.reports.exports import LocalTimes


@pytest.mark.parametrize(
    ("zone", "around"),
    [
        ("Europe/Berlin", datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),  # spring forward
        ("Europe/Berlin", datetime(2026, 10, 25, 1, 0, tzinfo=UTC)),  # fall back
        ("America/St_Johns", datetime(2026, 3, 8, 5, 30, tzinfo=UTC)),  # a half-hour zone
        ("Australia/Lord_Howe", datetime(2026, 4, 4, 15, 0, tzinfo=UTC)),  # a half-hour DST shift
        ("Asia/Shanghai", datetime(2026, 12, 7, 0, 30, tzinfo=UTC)),
    ],
)
def test_cached_offsets_match_zoneinfo_around_a_transition(zone: str, around: datetime) -> None:
    times = LocalTimes(ZoneInfo(zone))
    for step in range(-6 * 60, 6 * 60, 7):
        for moment in (around + timedelta(minutes=step), around + timedelta(minutes=step, seconds=59)):
            expected = moment.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
            assert times.local(moment) == expected, moment
            assert times.text(moment) == expected.strftime("%Y-%m-%d %H:%M:%S")
            serial = (expected - datetime(1899, 12, 30)) / timedelta(days=1)
            assert times.serial(moment) == pytest.approx(serial, abs=1e-9)
    assert times.local(None) is None and times.text(None) is None
