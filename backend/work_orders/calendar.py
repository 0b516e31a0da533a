"""Working days on the Chinese calendar, make-up working days included (package chinese-calendar)."""

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import chinese_calendar

__all__ = ("WorkingDayDue", "add_working_days", "is_working_day")


@lru_cache(maxsize=4096)
def _lookup(day: date) -> bool | None:
    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:  # the package has no holiday data for that year yet
        return None


def is_working_day(day: date) -> tuple[bool, bool]:
    """(is it a working day, was it only estimated as Monday to Friday)."""
    known = _lookup(day)
    if known is None:
        return day.weekday() < 5, True
    return known, False


class WorkingDayDue:
    __slots__ = ("due_at", "estimated")

    def __init__(self, due_at: datetime, estimated: bool) -> None:
        self.due_at = due_at
        self.estimated = estimated


def add_working_days(start: datetime, days: int, zone: ZoneInfo) -> WorkingDayDue:
    """The end of the ``days``-th working day after the local day of ``start``.

    "Answered within 3 working days" of a Friday call means by the end of Wednesday, or later
    when holidays intervene; a make-up Saturday counts as a working day.
    """
    if days <= 0:
        raise ValueError("days must be positive")
    day = start.astimezone(zone).date()
    counted = 0
    estimated = False
    while counted < days:
        day += timedelta(days=1)
        working, guessed = is_working_day(day)
        estimated = estimated or guessed
        if working:
            counted += 1
    end_of_day = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone)
    return WorkingDayDue(end_of_day.astimezone(start.tzinfo), estimated)
