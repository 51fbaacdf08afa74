"""A job's schedule as people see it, on every face (API, admin, CLI): in
words, checked and previewed before it is saved, and its next runs as beat
will fire them."""
from __future__ import annotations

from datetime import datetime, timedelta

from cron_descriptor import FormatException
from django.core.exceptions import ValidationError
from django.utils import timezone

from jobsite.exceptions import django_validation_error_detail, validation_error_message
from scheduling.beat.sync import job_schedule
from scheduling.calendars import job_next_runs_open, next_runs_open
from scheduling.models import Job
from scheduling.schedules import Schedule, parse_schedule


def job_next_runs(job: Job, count: int = 5, *, after: datetime | None = None) -> list[datetime]:
    """The job's next ``count`` runs as beat will fire them (none while paused or
    disabled). Interval runs count from beat's own last run of the job. Due
    times inside the job's calendars are left out (they fire as ``skipped``):
    no query for that when the job's calendars were prefetched or it was read
    ``with_calendar_flag`` (scheduling.calendars) and lists none."""
    if not job.is_schedulable:
        return []
    schedule = job_schedule(job)
    anchor = None
    if schedule.interval:
        task = job.periodic_task
        anchor = (task.last_run_at if task is not None else None) or after or timezone.now()
    return job_next_runs_open(
        job, lambda n, since: schedule.next_runs(n, after=since or after, anchor=anchor), count)


def _in_words(schedule: Schedule) -> str | None:
    try:
        return schedule.describe()
    except FormatException:  # cron_descriptor cannot phrase some valid crons, e.g. "6 6 * 1-5 */7"
        return None


def schedule_description(job: Job) -> str | None:
    """The job's schedule in words; None when it cannot be described: a stored
    schedule the parser refuses (a row written around the services), or one
    the describer cannot phrase. A job is never hidden because of either."""
    try:
        schedule = job_schedule(job)
    except ValidationError:
        return None
    return _in_words(schedule)


def schedule_preview(schedule_type: str, expression: str, timezone_name: str, count: int = 5,
                     jitter_seconds: int = 0, calendars=()) -> dict:
    """Check a schedule (not yet a job's) and preview it.

    Valid: ``valid``, ``description`` (None if it cannot be phrased) and
    ``next_runs``: the next ``count`` runs, tz-aware in the schedule's zone.
    Invalid: ``valid: False``, ``error`` (one line naming the field at fault)
    and ``errors`` (field → messages). The input is echoed, with a blank time
    zone read as UTC like everywhere else. With ``jitter_seconds`` (a start
    jitter), valid: ``start_windows``, each run's window as (due, starts by).
    With ``calendars`` (Calendar objects): the next runs outside them, and
    ``calendars``, their names.
    """
    timezone_name = timezone_name or "UTC"
    preview = {"schedule_type": schedule_type, "schedule_expression": expression, "timezone": timezone_name}
    try:
        schedule = parse_schedule(schedule_type, expression, timezone_name)
    except ValidationError as exc:
        preview.update(valid=False, error=validation_error_message(exc), errors=django_validation_error_detail(exc))
    else:
        calendars = sorted(calendars, key=lambda c: c.name)
        runs = next_runs_open(calendars, lambda n, after: schedule.next_runs(n, after=after), count)
        preview.update(valid=True, description=_in_words(schedule), next_runs=runs)
        if calendars:
            preview["calendars"] = [c.name for c in calendars]
        if jitter_seconds:
            preview.update(jitter_seconds=jitter_seconds, start_windows=[
                (run, run + timedelta(seconds=jitter_seconds)) for run in preview["next_runs"]])
    return preview
