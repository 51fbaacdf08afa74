"""Standard cron semantics and DST, on the schedule
beat actually fires (``JobCrontab``'s ``is_due``/``remaining_estimate``,
driven as beat drives it), compared with the preview and with croniter."""
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from django.core.exceptions import ValidationError
from django_celery_beat.models import PeriodicTask

from scheduling.beat import JobEntry, job_next_runs
from scheduling.beat.crontab import JobCrontab
from scheduling.schedules import next_cron_fire, parse_schedule
from tests.factories import JobFactory

UTC = ZoneInfo("UTC")
NY = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")

CORPUS = [
    "0 9 1 * 1",  # both day fields: the 1st, and every Monday
    "30 8 1,15 * MON-FRI",  # both, with a list and names
    "0 12 */10 * SUN",  # both, with a step
    "0 0 13 * 5",  # Friday 13th? no: every 13th and every Friday
    "15 6 * JAN,JUL MON",  # month names
    "0 22 * * 1-5",
    "45 23 31 * *",
    "0 */6 * * *",
    "0 9-17/4 * * *",
    "5 4 * * 0,6",
    "30 2 * * *",  # in the hour skipped when New York springs forward
    "30 1 * * *",  # in the hour repeated when clocks fall back
    "*/30 1 * * *",
]


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def beat_fires(cron, zone, start, end):
    """What beat fires between start and end: ask the schedule how long to
    wait (remaining_estimate), jump there, check is_due, fire, and record the
    fire's due time as the entry's last run (JobEntry does)."""
    clock = Clock(start.astimezone(UTC))  # beat's clock is UTC: arithmetic in absolute time
    schedule = JobCrontab(cron, zone.key, nowfun=clock)
    last, fires = clock.now, []
    while True:
        wait = schedule.remaining_estimate(last)
        assert wait.total_seconds() > 0
        clock.now = clock.now + wait
        if clock.now >= end:
            return fires
        due, next_check = schedule.is_due(last)
        assert due, (cron, clock.now)
        fires.append(clock.now.astimezone(zone))
        last = clock.now
        # asked again at once: not due, and the next check is the next fire
        assert not schedule.is_due(last).is_due


def croniter_fires(cron, zone, start, end):
    """croniter's own sequence, with the documented fall-back rule: a fixed-hour
    schedule does not fire again in the repeated hour."""
    fixed_hour = cron.split()[1] != "*"
    fires, it = [], croniter(cron, start.astimezone(zone))
    while True:
        run = it.get_next(datetime).astimezone(zone)
        if run >= end:
            return fires
        if fixed_hour and run.fold == 1 and run.replace(fold=0).utcoffset() != run.utcoffset():
            continue
        fires.append(run)


def day_matches_either(cron, day: date) -> bool:
    """Independent check of Vixie/POSIX: both day fields restricted → either."""
    _, _, dom, month, dow = cron.split()
    names = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}

    def values(field, low, high):
        result = set()
        for part in field.split(","):
            for name, number in names.items():
                part = part.replace(name, str(number))
            base, _, step = part.partition("/")
            if base == "*":
                start, stop = low, high
            elif "-" in base:
                start, stop = (int(x) for x in base.split("-"))
            else:
                start = stop = int(base)
            result.update(range(start, stop + 1, int(step or 1)))
        return result

    cron_weekday = (day.weekday() + 1) % 7
    return day.day in values(dom, 1, 31) or cron_weekday in values(dow, 0, 6)


@pytest.mark.parametrize("zone", [NY, LONDON], ids=["new_york", "london"])
@pytest.mark.parametrize("cron", CORPUS)
def test_what_beat_fires_over_a_year_is_what_croniter_and_the_preview_say(cron, zone):
    start = datetime(2026, 1, 1, tzinfo=zone)
    end = datetime(2027, 1, 1, tzinfo=zone)
    fired = beat_fires(cron, zone, start, end)
    expected = croniter_fires(cron, zone, start, end)
    in_utc = lambda times: [t.astimezone(UTC) for t in times]  # noqa: E731  (same-zone datetimes compare by wall clock)
    assert in_utc(fired) == in_utc(expected)
    # the preview (next_run_at, validate-schedule, overdue) is the same sequence
    preview = parse_schedule("cron", cron, zone.key).next_runs(len(expected), after=start)
    assert in_utc(preview) == in_utc(expected)
    _, _, dom, _, dow = cron.split()
    if dom != "*" and dow != "*":
        fire_days = {fire.date() for fire in fired}
        either_days = {start.date() + timedelta(days=n) for n in range(365)
                       if day_matches_either(cron, start.date() + timedelta(days=n))}
        assert fire_days == either_days


def test_0_9_1_star_1_fires_on_the_first_and_on_mondays_as_shown():
    fired = beat_fires("0 9 1 * 1", NY, datetime(2026, 1, 1, tzinfo=NY), datetime(2026, 2, 3, tzinfo=NY))
    assert [f.day for f in fired] == [1, 5, 12, 19, 26, 1, 2]  # Thu 1 Jan, Mondays, Sun 1 Feb, Mon 2 Feb


# -- DST, New York: springs forward 2026-03-08 02:00, falls back 2026-11-01 02:00 ----
def fires_on(cron, zone, day):
    start = datetime(day.year, day.month, day.day, tzinfo=zone) - timedelta(hours=1)
    return [f for f in beat_fires(cron, zone, start, start + timedelta(hours=26)) if f.date() == day]


def test_a_daily_0230_fires_once_on_the_spring_forward_day_at_0300_edt():
    fires = fires_on("30 2 * * *", NY, date(2026, 3, 8))
    assert fires == [datetime(2026, 3, 8, 3, 0, tzinfo=NY)]
    assert fires[0].utcoffset() == timedelta(hours=-4)


def test_a_daily_0230_fires_once_on_the_fall_back_day_at_0230_est():
    fires = fires_on("30 2 * * *", NY, date(2026, 11, 1))
    assert fires == [datetime(2026, 11, 1, 2, 30, tzinfo=NY)]
    assert fires[0].utcoffset() == timedelta(hours=-5)


def test_0130_fires_once_on_the_fall_back_day_in_the_first_pass():
    fires = fires_on("30 1 * * *", NY, date(2026, 11, 1))
    assert len(fires) == 1
    assert fires[0].utcoffset() == timedelta(hours=-4)  # 01:30 EDT, not again at 01:30 EST


def test_an_hour_wildcard_fires_in_both_passes_of_the_repeated_hour():
    fires = fires_on("30 * * * *", NY, date(2026, 11, 1))
    assert len(fires) == 25  # a 25-hour day


def test_london_fires_once_on_both_change_days():
    assert fires_on("30 1 * * *", LONDON, date(2026, 3, 29)) == [datetime(2026, 3, 29, 2, 0, tzinfo=LONDON)]
    assert len(fires_on("30 1 * * *", LONDON, date(2026, 10, 25))) == 1


@pytest.mark.django_db
def test_an_interval_keeps_its_absolute_spacing_across_dst_on_the_entry_beat_uses():
    job = JobFactory(schedule_type="interval", schedule_expression="90m", timezone="America/New_York")
    entry = JobEntry(PeriodicTask.objects.get(pk=job.periodic_task_id))
    entry.model.date_changed = None
    entry.last_run_at = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)  # 00:00 EST, two hours before the jump
    fired = []
    for _ in range(4):
        # beat sends each fire a little late (0.7 s), as it does
        now = entry.last_run_at + timedelta(minutes=90, seconds=0.7)
        fire = entry.record_fire(now=now)
        fired.append(datetime.fromisoformat(fire["scheduled_for"]))
        assert "missed" not in fire
        entry = next(entry)
        assert entry.last_run_at == fired[-1]  # the next one counts from the due time, not from the send
    spacing = {(b - a) for a, b in zip(fired, fired[1:])}
    assert spacing == {timedelta(minutes=90)}  # absolute time, through 02:00 → 03:00
    assert fired[0] == datetime(2026, 3, 8, 6, 30, tzinfo=UTC)


@pytest.mark.django_db
def test_a_cron_entry_fires_for_the_due_time_and_counts_what_beat_missed():
    job = JobFactory(schedule_type="cron", schedule_expression="* * * * *", timezone="Europe/London")
    entry = JobEntry(PeriodicTask.objects.get(pk=job.periodic_task_id))
    assert isinstance(entry.schedule, JobCrontab)
    entry.model.date_changed = None
    entry.last_run_at = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    # beat was down for three and a half minutes
    fire = entry.record_fire(now=datetime(2026, 6, 1, 12, 3, 30, tzinfo=UTC))
    assert fire == {"scheduled_for": "2026-06-01T12:03:00+00:00", "missed": 2,
                    "missed_from": "2026-06-01T12:01:00+00:00"}
    assert next(entry).last_run_at == datetime(2026, 6, 1, 12, 3, tzinfo=UTC)


@pytest.mark.django_db
def test_next_run_at_and_the_overdue_check_follow_what_fires():
    job = JobFactory(schedule_type="cron", schedule_expression="0 9 1 * 1", timezone="America/New_York")
    after = datetime(2026, 1, 2, tzinfo=NY)  # a Friday
    schedule = JobCrontab("0 9 1 * 1", "America/New_York", nowfun=lambda: after)
    assert job_next_runs(job, 1, after=after) == [after + schedule.remaining_estimate(after)]
    assert job_next_runs(job, 1, after=after)[0] == datetime(2026, 1, 5, 9, tzinfo=NY)  # Monday, not Feb 2


@pytest.mark.parametrize("expression", ["0-59/61 * * * *", "*/61 * * * *", "0 */25 * * *", "0 0 */32 * *",
                                        "0 0 * */13 *", "0 0 * * */8", "*/0 * * * *"])
def test_out_of_range_steps_are_rejected(expression):
    with pytest.raises(ValidationError) as error:
        parse_schedule("cron", expression, "UTC")
    assert "schedule_expression" in error.value.message_dict


@pytest.mark.parametrize("zone", ["localtime", "Factory", "posixrules"])
def test_pseudo_zones_are_rejected(zone):
    with pytest.raises(ValidationError) as error:
        parse_schedule("cron", "0 9 * * *", zone)
    assert "timezone" in error.value.message_dict


@pytest.mark.parametrize("expression, cron", [("5 4 * * 7", "5 4 * * 0"), ("5 4 * * 5-7", "5 4 * * 5-6,0"),
                                              ("0 9 1,15 * MON", "0 9 1,15 * MON")])
def test_sunday_as_7_and_both_day_fields_are_accepted(expression, cron):
    assert parse_schedule("cron", expression, "UTC").cron == cron


@pytest.mark.parametrize("cron, zone", [("* * * * *", UTC), ("*/15 * * * *", NY), ("30 1 * * *", NY),
                                        ("30 2 * * *", NY), ("0 9 1 * 1", LONDON)])
def test_a_due_entry_is_checked_again_at_its_next_fire_asked_from_any_instant_of_the_minute(cron, zone):
    """``is_due`` answers "due, next check in N s" with the first fire after
    now; it asks from the start of now's minute (the memo then serves every
    job on the same schedule in a burst), which must give the same fire from
    any second of the minute, DST days included."""
    clock = Clock(datetime(2026, 3, 7, 0, 0, tzinfo=UTC))
    schedule = JobCrontab(cron, zone.key, nowfun=clock)
    last = clock.now - timedelta(days=400)  # always due
    checked = 0
    for minutes in range(0, 3 * 24 * 60, 7):  # three days around New York's spring forward (8 March)
        for offset in (timedelta(0), timedelta(seconds=0.25), timedelta(seconds=31), timedelta(seconds=59.999)):
            clock.now = datetime(2026, 3, 7, tzinfo=UTC) + timedelta(minutes=minutes) + offset
            due, next_check = schedule.is_due(last)
            expected = next_cron_fire(cron, zone, clock.now).astimezone(UTC)
            assert due
            assert next_check == pytest.approx((expected - clock.now).total_seconds()), (cron, clock.now)
            checked += 1
    assert checked > 2000
