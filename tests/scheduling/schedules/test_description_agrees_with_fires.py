"""A schedule's words never contradict its fires: with both day fields
restricted standard cron fires on a day matching either (issue 26), and the
description says so; a description that says "only on <weekday>" is true of
every fire over a year."""
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from scheduling.beat.preview import schedule_preview
from scheduling.schedules import parse_schedule

UTC = ZoneInfo("UTC")
START = datetime(2027, 1, 1, tzinfo=UTC)
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def year_of_fires(cron):
    return [run for run in parse_schedule("cron", cron, "UTC").next_runs(400, after=START) if run.year == 2027]


@pytest.mark.parametrize("cron, words, day_of_month, weekdays", [
    ("0 9 1 * 1", "At 09:00, on day 1 of the month and on every Monday (UTC)", {1}, {"Monday"}),
    ("30 8 1,15 * MON,FRI", "At 08:30, on day 1 and 15 of the month and on every Monday and Friday (UTC)",
     {1, 15}, {"Monday", "Friday"}),
    ("0 0 13 * 5", "At 00:00, on day 13 of the month and on every Friday (UTC)", {13}, {"Friday"}),
    ("0 9 1 * 1-5", "At 09:00, on day 1 of the month and on Monday through Friday (UTC)",
     {1}, {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"}),
])
def test_both_day_fields_read_as_either_and_fire_as_either(cron, words, day_of_month, weekdays):
    fires = year_of_fires(cron)

    assert parse_schedule("cron", cron, "UTC").describe() == words
    assert schedule_preview("cron", cron, "UTC")["description"] == words
    # every fire is on one of the days of the month OR one of the weekdays ...
    assert all(run.day in day_of_month or WEEKDAYS[run.weekday()] in weekdays for run in fires)
    # ... and both kinds of day fire on their own, as "and on every" says
    assert any(run.day in day_of_month and WEEKDAYS[run.weekday()] not in weekdays for run in fires)
    assert {WEEKDAYS[run.weekday()] for run in fires if run.day not in day_of_month} == weekdays


@pytest.mark.parametrize("cron", [
    "0 9 * * 1", "15 6 * JAN,JUL MON", "0 22 * * 1-5", "5 4 * * 0,6", "0 9 1 * *", "45 23 31 * *",
    "0 9 1 * 1", "0 0 13 * 5", "0 12 */10 * SUN",
])
def test_only_on_a_weekday_is_true_of_every_fire(cron):
    words = parse_schedule("cron", cron, "UTC").describe()
    fires = year_of_fires(cron)
    assert fires
    only = re.search(r"only on ((?:\w+(?:, | and )?)+)", words)
    if only:
        named = set(re.split(r", | and ", only.group(1))) & set(WEEKDAYS)
        assert {WEEKDAYS[run.weekday()] for run in fires} <= named, words
    if "on day 1 of the month" in words and " and on " not in words:
        assert {run.day for run in fires} == {1}, words
