"""Calendars: public holidays, weekly windows, dates, ranges and iCalendar files; a job skips what is inside."""
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from django.core.exceptions import ValidationError

from scheduling import services
from scheduling.beat import job_schedule
from scheduling.calendars import calendar_contains, job_next_runs_open, job_skip_calendar
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db
BERLIN = ZoneInfo("Europe/Berlin")


def test_german_holidays_and_a_friday_window_over_a_year_across_dst():
    # given: an hourly job in Berlin skipping DE public holidays and Fridays 18:00-22:00
    job = JobFactory(name="hourly", schedule_type="cron", schedule_expression="0 * * * *", timezone="Europe/Berlin",
                     task_name="tests.echo")
    de = services.calendar_create(name="DE holidays", holidays_country="DE", timezone="Europe/Berlin")
    release = services.calendar_create(name="release window", timezone="Europe/Berlin",
                                       weekly_windows=[{"day": 4, "start": "18:00", "end": "22:00"}])
    services.job_set_calendars(job=job, names=["DE holidays", "release window"])
    schedule = job_schedule(job)
    start = datetime(2026, 1, 1, tzinfo=BERLIN) - timedelta(seconds=1)
    end = datetime(2027, 1, 1, tzinfo=BERLIN)
    # when: a simulated year of fires, each asking whether it is skipped (what beat's fire does)
    due_times = []
    after = start
    while True:
        batch = [d for d in schedule.next_runs(500, after=after) if d < end]
        due_times += batch
        if len(batch) < 500:
            break
        after = batch[-1]
    fired, skipped = [], {}
    for due in due_times:
        calendar = job_skip_calendar(job, due)
        (fired.append(due) if calendar is None else skipped.setdefault(calendar.name, []).append(due))
    # then: none on a public holiday, none inside the Friday window, DST days included
    public = holidays.country_holidays("DE", years=2026)
    assert not [d for d in fired if d.astimezone(BERLIN).date() in public]
    assert not [d for d in fired if d.astimezone(BERLIN).weekday() == 4 and 18 <= d.astimezone(BERLIN).hour < 22]
    assert len(skipped["DE holidays"]) == 24 * len([d for d in public if d.year == 2026])
    assert {d.astimezone(BERLIN).hour for d in skipped["release window"]} == {18, 19, 20, 21}
    march_29 = [d for d in fired if d.astimezone(BERLIN).date() == date(2026, 3, 29)]
    assert len(march_29) == 23  # the night clocks go forward has 23 hours, none lost to the calendars
    # and the preview (next runs outside the calendars) agrees day by day with what fires
    preview, after = [], start
    while True:
        batch = job_next_runs_open(job, lambda n, a: schedule.next_runs(n, after=a or after), 200)
        batch = [d for d in batch if d < end]
        preview += batch
        if len(batch) < 200:
            break
        after = batch[-1]
    assert preview == fired
    assert release.pk and de.pk


def test_dates_ranges_and_an_icalendar_file_with_an_rrule():
    ical = "\r\n".join([
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN",
        "BEGIN:VEVENT", "UID:1", "DTSTART;TZID=Europe/Berlin:20260105T090000",
        "DTEND;TZID=Europe/Berlin:20260105T100000", "RRULE:FREQ=WEEKLY;BYDAY=MO", "EXDATE;TZID=Europe/Berlin:20260112T090000",
        "END:VEVENT",
        "BEGIN:VEVENT", "UID:2", "DTSTART;VALUE=DATE:20260501", "DTEND;VALUE=DATE:20260502",
        "RRULE:FREQ=YEARLY", "END:VEVENT",
        "END:VCALENDAR", ""])
    calendar = services.calendar_create(name="blackouts", timezone="Europe/Berlin", dates=["2026-12-24"],
                                        date_ranges=[{"start": "2026-12-27", "end": "2026-12-31"}], ical=ical)

    def inside(*args):
        return calendar_contains(calendar, datetime(*args, tzinfo=BERLIN))

    assert inside(2026, 12, 24, 12) and not inside(2026, 12, 25, 12)
    assert inside(2026, 12, 27, 0) and inside(2026, 12, 31, 23, 59) and not inside(2027, 1, 1, 0)
    assert inside(2026, 1, 19, 9, 30) and not inside(2026, 1, 19, 10, 0) and not inside(2026, 1, 20, 9, 30)
    assert not inside(2026, 1, 12, 9, 30)  # EXDATE
    assert inside(2026, 6, 29, 9, 0)  # weekly, in summer time too
    assert inside(2027, 5, 1, 23, 0) and not inside(2027, 5, 2, 0, 0)  # a yearly all-day event


@pytest.mark.parametrize("values, field", [
    ({"timezone": "Mars/Base"}, "timezone"),
    ({"dates": ["2026-02-30"]}, "dates"),
    ({"date_ranges": [{"start": "2026-03-01", "end": "2026-02-01"}]}, "date_ranges"),
    ({"weekly_windows": [{"day": 7, "start": "18:00", "end": "22:00"}]}, "weekly_windows"),
    ({"weekly_windows": [{"day": 4, "start": "22:00", "end": "18:00"}]}, "weekly_windows"),
    ({"holidays_country": "XX"}, "holidays_country"),
    ({"ical": "not a calendar"}, "ical"),
    ({"ical": "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:20260101T090000Z\r\nDTEND:20260101T100000Z\r\n"
              "RRULE:FREQ=SOMETIMES\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"}, "ical"),
])
def test_bad_calendars_name_the_field(values, field):
    with pytest.raises(ValidationError) as refused:
        services.calendar_create(name="bad", **values)
    assert field in refused.value.message_dict


def test_a_job_lists_calendars_by_name():
    job = JobFactory(name="j", task_name="tests.echo")
    with pytest.raises(ValidationError, match="No calendar named 'nope'"):
        services.job_set_calendars(job=job, names=["nope"])


def test_cli_lists_calendars_and_shows_the_days_and_hours_one_covers():
    from io import StringIO

    from django.core.management import call_command

    services.calendar_create(name="release", timezone="Europe/Berlin", dates=["2026-12-24"],
                             weekly_windows=[{"day": 4, "start": "18:00", "end": "22:30"}])
    out = StringIO()
    call_command("jobs", "calendars", stdout=out)
    assert "release\tEurope/Berlin\t1 dates, 1 weekly windows\t-" in out.getvalue()
    out = StringIO()
    call_command("jobs", "calendars", "release", "--from", "2026-12-21", "--to", "2026-12-28", stdout=out)
    assert out.getvalue().splitlines() == ["2026-12-24 Thu  all day", "2026-12-25 Fri  18:00-22:30"]


def test_dates_are_stored_in_one_form():
    calendar = services.calendar_create(name="basic", dates=["20261224", "2026-12-24", "2026-01-01"],
                                        date_ranges=[{"start": "20261227", "end": "2026-12-31"}])
    assert calendar.dates == ["2026-01-01", "2026-12-24"]
    assert calendar.date_ranges == [{"start": "2026-12-27", "end": "2026-12-31"}]
    assert calendar_contains(calendar, datetime(2026, 12, 28, 12, tzinfo=ZoneInfo("UTC")))
