from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from scheduling.schedules import parse_schedule

UTC = ZoneInfo("UTC")
NY = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    "schedule_type, expression, cron",
    [
        ("cron", "0 2 * * 1", "0 2 * * 1"),
        ("cron", "*/15  *  * * *", "*/15 * * * *"),
        ("daily", "14:30", "30 14 * * *"),
        ("daily", "9:05", "5 9 * * *"),
        ("weekly", "0:09:00", "0 9 * * 1"),  # 0 = Monday → cron 1
        ("weekly", "6:23:59", "59 23 * * 0"),  # 6 = Sunday → cron 0
        ("monthly", "1:08:00", "0 8 1 * *"),
        ("monthly", "31:00:00", "0 0 31 * *"),
    ],
)
def test_cron_like_schedules_normalise_to_five_fields(schedule_type, expression, cron):
    assert parse_schedule(schedule_type, expression).cron == cron


@pytest.mark.parametrize(
    "expression, seconds",
    [("30", 1800), ("1", 60), ("1h 30m", 5400), ("45s", 45), ("10s", 10), ("2h", 7200)],
)
def test_interval_schedules(expression, seconds):
    assert parse_schedule("interval", expression).interval == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "schedule_type, expression, message",
    [
        ("cron", "0 9", "Invalid cron expression: 0 9. Expected 5 parts (minute hour day month day_of_week)"),
        ("cron", "61 * * * *", "Invalid cron expression: 61 * * * *."),
        ("cron", "* * * * * *", "Expected 5 parts"),
        ("cron", "0 0 L * *", "Invalid cron expression"),
        ("interval", "0", "at least 1 second"),
        ("interval", "soon", "Invalid interval 'soon'"),
        ("interval", "9" * 300, "it must be at most 366 days"),
        ("interval", "99999999999h", "it must be at most 366 days"),
        ("daily", "25:00", "hour must be 0-23"),
        ("daily", "0930", "time must be HH:MM"),
        ("weekly", "7:10:00", "day must be 0-6"),
        ("weekly", "Mon 10:00", "expected D:HH:MM"),
        ("monthly", "0:10:00", "day of month must be 1-31"),
        ("monthly", "32:10:00", "day of month must be 1-31"),
        ("once", "tomorrow", "expected an ISO 8601 datetime"),
        ("once", "2000-01-01T00:00", "must be in the future"),
        ("hourly", "5", "Unknown schedule type 'hourly'"),
        ("daily", "", "This field is required."),
    ],
)
def test_invalid_schedules_name_the_problem(schedule_type, expression, message):
    with pytest.raises(ValidationError) as excinfo:
        parse_schedule(schedule_type, expression)
    assert message in " ".join(m for ms in excinfo.value.message_dict.values() for m in ms)


def test_unknown_timezone_is_a_timezone_error():
    with pytest.raises(ValidationError) as excinfo:
        parse_schedule("daily", "09:30", "Mars/Olympus")
    assert "timezone" in excinfo.value.message_dict


def test_daily_schedule_follows_dst_in_its_timezone():
    # given a daily 09:30 job in New York, queried before the spring-forward of 2030-03-10
    schedule = parse_schedule("daily", "09:30", "America/New_York")
    after = datetime(2030, 3, 8, 12, 0, tzinfo=UTC)
    # when
    runs = schedule.next_runs(4, after=after)
    # then every run is 09:30 local, and in UTC it moves from 14:30 to 13:30
    assert [r.astimezone(NY).strftime("%H:%M") for r in runs] == ["09:30"] * 4
    assert [r.date().isoformat() for r in runs] == ["2030-03-08", "2030-03-09", "2030-03-10", "2030-03-11"]
    assert [r.astimezone(UTC).hour for r in runs] == [14, 14, 13, 13]


def test_fall_back_does_not_run_twice_or_skip():
    # 01:30 happens twice on 2030-11-03 in New York; a daily job runs once that day.
    schedule = parse_schedule("daily", "01:30", "America/New_York")
    runs = schedule.next_runs(3, after=datetime(2030, 11, 2, 12, 0, tzinfo=UTC))
    days = [r.astimezone(NY).date().isoformat() for r in runs]
    assert days == ["2030-11-03", "2030-11-04", "2030-11-05"]
    assert all(b > a for a, b in zip(runs, runs[1:]))


def test_spring_forward_gap_still_runs_that_day():
    # 02:30 does not exist on 2030-03-10 in New York; the run must not be lost.
    schedule = parse_schedule("daily", "02:30", "America/New_York")
    runs = schedule.next_runs(3, after=datetime(2030, 3, 9, 12, 0, tzinfo=UTC))
    days = [r.astimezone(NY).date().isoformat() for r in runs]
    assert days == ["2030-03-10", "2030-03-11", "2030-03-12"]


def test_fall_back_keeps_both_runs_of_hour_wildcard_schedules():
    schedule = parse_schedule("cron", "0 * * * *", "America/New_York")
    runs = schedule.next_runs(4, after=datetime(2030, 11, 3, 4, 30, tzinfo=UTC))  # 00:30 EDT
    assert [r.astimezone(UTC).strftime("%H:%M") for r in runs] == ["05:00", "06:00", "07:00", "08:00"]


def test_weekly_zero_is_monday():
    schedule = parse_schedule("weekly", "0:09:00", "UTC")
    runs = schedule.next_runs(2, after=datetime(2030, 1, 1, tzinfo=UTC))  # a Tuesday
    assert [r.strftime("%A %H:%M") for r in runs] == ["Monday 09:00", "Monday 09:00"]
    assert runs[1] - runs[0] == timedelta(days=7)


def test_monthly_31st_skips_short_months():
    runs = parse_schedule("monthly", "31:00:00").next_runs(3, after=datetime(2030, 1, 1, tzinfo=UTC))
    assert [r.strftime("%Y-%m-%d") for r in runs] == ["2030-01-31", "2030-03-31", "2030-05-31"]


def test_interval_next_runs_are_anchored_on_the_last_run():
    schedule = parse_schedule("interval", "30")
    anchor = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    runs = schedule.next_runs(3, after=anchor + timedelta(minutes=45), anchor=anchor)
    assert [r.strftime("%H:%M") for r in runs] == ["13:00", "13:30", "14:00"]


def test_once_runs_exactly_once_in_its_timezone():
    schedule = parse_schedule("once", "2031-06-01T09:00", "Europe/Paris")
    assert schedule.clocked == datetime(2031, 6, 1, 7, 0, tzinfo=UTC)
    assert len(schedule.next_runs(5, after=datetime(2030, 1, 1, tzinfo=UTC))) == 1
    assert schedule.next_runs(5, after=datetime(2032, 1, 1, tzinfo=UTC)) == []


def test_descriptions_and_seed_002_trigger_strings():
    assert parse_schedule("cron", "0 9 * * *").trigger_repr() == "cron[day='*', hour='9', minute='0']"
    assert parse_schedule("interval", "1h 30m").trigger_repr() == "interval[1:30:00]"
    assert parse_schedule("interval", "1h 30m").short() == "1h 30m"
    assert parse_schedule("interval", "30").describe() == "Every 30 minutes"
    assert parse_schedule("daily", "09:30", "UTC").describe() == "At 09:30 (UTC)"
