"""The crontab schedule beat uses for jobs (``JobCrontab``): what fires is
``scheduling.schedules.cron_fires``, the same as the preview shows."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from celery import schedules as celery_schedules
from croniter import croniter
from django_celery_beat.models import CrontabSchedule

from scheduling.schedules import next_cron_fire

_UTC = ZoneInfo("UTC")


#: One croniter per (expression, zone) and thread, shared by every entry of that
#: schedule: parsing the expression is most of a croniter's cost, and at 100,000
#: jobs a croniter per entry made most of beat's first tick. ``next_cron_fire``
#: moves it to the time it asks about before each use.
_iterators = threading.local()
_ITERATORS_MAX = 10_000


def _shared_iterator(cron: str, zone: ZoneInfo, start: datetime) -> croniter:
    cache = getattr(_iterators, "cache", None)
    if cache is None:
        cache = _iterators.cache = {}
    key = (cron, zone.key)
    iterator = cache.get(key)
    if iterator is None:
        if len(cache) >= _ITERATORS_MAX:
            cache.clear()
        iterator = cache[key] = croniter(cron, start.astimezone(zone))
    return iterator


class JobCrontab(celery_schedules.BaseSchedule):
    """The crontab schedule beat uses for jobs: ``cron_fires``, so what fires
    is what the preview shows (Celery's own ``crontab`` fires only when both
    day fields match, and has its own DST arithmetic)."""

    def __init__(self, cron: str, timezone_name: str, nowfun=None, app=None):
        super().__init__(nowfun=nowfun, app=app)
        self.cron = cron
        self.zone = ZoneInfo(timezone_name)

    def next_fire(self, last_run_at: datetime) -> datetime:
        """In UTC: beat does arithmetic on it (same-zone aware datetimes subtract by wall clock)."""
        iterator = _shared_iterator(self.cron, self.zone, last_run_at)
        return next_cron_fire(self.cron, self.zone, last_run_at, iterator=iterator).astimezone(_UTC)

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        return self.next_fire(last_run_at) - self.now()

    def is_due(self, last_run_at: datetime):
        now = self.now()
        next_fire = self.next_fire(last_run_at)
        due = next_fire <= now
        if due:
            # Cron fires on whole minutes: the first after ``now`` is the first after the
            # start of its minute. Asked that way, every job on the same schedule asks the
            # same question in a minute's burst, and the memo answers all but the first.
            next_fire = self.next_fire(now.replace(second=0, microsecond=0))
        return celery_schedules.schedstate(due, max((next_fire - now).total_seconds(), 0.0))

    def now(self) -> datetime:
        """The current time in UTC: the ``nowfun`` given, else the clock Celery's
        ``app.now`` reads (which converts it through two time zone checks, at
        ~17 µs a call: a minute's burst asks twice an entry)."""
        if self.nowfun is None:
            return datetime.now(_UTC)
        value = self.nowfun()
        return value.astimezone(_UTC) if value.tzinfo else value.replace(tzinfo=_UTC)

    def __repr__(self) -> str:
        return f"<JobCrontab: {self.cron} ({self.zone.key})>"

    def __eq__(self, other) -> bool:
        return isinstance(other, JobCrontab) and (self.cron, self.zone) == (other.cron, other.zone)

    def __hash__(self) -> int:
        return hash((self.cron, self.zone.key))

    def __reduce__(self):
        return self.__class__, (self.cron, self.zone.key, self.nowfun)


@contextmanager
def crontabs_parsed_once():
    """While a read builds its entries: each distinct crontab row parsed once.

    django-celery-beat's ``ModelEntry`` asks every task's ``CrontabSchedule.schedule``,
    which parses the five fields twice (a ``crontab``, then the ``TzAwareCrontab`` it
    returns) — at 10,000 jobs 43 % of beat's load (docs/benchmarks.md section 1,
    "100,000 jobs") — and a job's entry then replaces it by its own ``JobCrontab``.
    Jobs share few crontab rows; a parsed crontab holds no state of an entry's, so
    the entries of one row share one. Only beat's main thread builds entries, and
    only inside this block."""
    original = CrontabSchedule.__dict__["schedule"]
    parsed: dict = {}

    def schedule(row):
        key = (row.minute, row.hour, row.day_of_week, row.day_of_month, row.month_of_year, str(row.timezone))
        if key not in parsed:
            parsed[key] = original.fget(row)
        return parsed[key]

    CrontabSchedule.schedule = property(schedule, doc=original.__doc__)
    try:
        yield
    finally:
        CrontabSchedule.schedule = original
