"""Working days on the Chinese calendar: holidays and make-up working days."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from backend.work_orders.calendar import add_working_days, is_working_day

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def test_a_friday_complaint_is_due_by_the_end_of_wednesday() -> None:
    due = add_working_days(local(2026, 12, 4, 10, 0), 3, SHANGHAI)
    assert due.due_at.astimezone(SHANGHAI) == local(2026, 12, 10, 0, 0)  # end of Wed 9 Dec
    assert not due.estimated


def test_spring_festival_holiday_is_skipped_and_its_make_up_saturday_counts() -> None:
    # Fri 13 Feb 2026; Sat 14 Feb is a make-up working day; 15-23 Feb is the holiday.
    due = add_working_days(local(2026, 2, 13, 16, 30), 3, SHANGHAI)
    assert due.due_at.astimezone(SHANGHAI) == local(2026, 2, 26, 0, 0)  # end of Wed 25 Feb
    assert is_working_day(local(2026, 2, 14).date()) == (True, False)
    assert is_working_day(local(2026, 2, 18).date()) == (False, False)


def test_new_year_with_a_make_up_sunday() -> None:
    # Wed 31 Dec 2025; 1-3 Jan 2026 off; Sun 4 Jan 2026 is a make-up working day.
    due = add_working_days(local(2025, 12, 31, 9, 0), 3, SHANGHAI)
    assert due.due_at.astimezone(SHANGHAI) == local(2026, 1, 7, 0, 0)  # Sun 4, Mon 5, Tue 6


def test_seven_working_days_for_a_report_over_national_day() -> None:
    # Tue 29 Sep 2026: 1-7 Oct off, Sat 10 Oct a make-up day.
    due = add_working_days(local(2026, 9, 29, 9, 0), 7, SHANGHAI)
    # 30 Sep, 8 Oct, 9 Oct, 10 Oct (Sat, make-up), 12, 13, 14 Oct
    assert due.due_at.astimezone(SHANGHAI) == local(2026, 10, 15, 0, 0)


def test_the_local_day_decides_not_the_utc_day() -> None:
    # 23:30 UTC on Thu 3 Dec is already Fri 4 Dec 07:30 in Shanghai.
    due = add_working_days(datetime(2026, 12, 3, 23, 30, tzinfo=UTC), 1, SHANGHAI)
    assert due.due_at.astimezone(SHANGHAI) == local(2026, 12, 8, 0, 0)  # Mon 7 Dec


def test_a_year_without_holiday_data_falls_back_to_weekdays_and_says_so() -> None:
    due = add_working_days(local(2040, 3, 9, 10, 0), 3, SHANGHAI)  # a Friday far beyond the data
    assert due.due_at.astimezone(SHANGHAI) == local(2040, 3, 15, 0, 0)
    assert due.estimated
