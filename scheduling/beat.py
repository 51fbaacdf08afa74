"""Keeps one django-celery-beat PeriodicTask per Job, in the caller's transaction.

Beat's DatabaseScheduler notices every change through ``PeriodicTasks.changed``
(sent by PeriodicTask's pre_save/pre_delete signals, and explicitly here for
anything done in bulk), so it never needs a restart.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from celery.utils.time import maybe_make_aware

from cron_descriptor import FormatException
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    PeriodicTasks,
)
from django_celery_beat.schedulers import ModelEntry

from jobsite.db import id_batches
from jobsite.exceptions import django_validation_error_detail, validation_error_message
from scheduling.models import Job
from scheduling.schedules import JobCrontab, Schedule, parse_schedule

DISPATCH_TASK = "scheduling.run_job"
_EPOCH = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)
PERIODIC_TASK_PREFIX = "job:"
# A schedule message older than this is dropped by the worker instead of
# starting a stale run (e.g. after a long worker outage).
DEFAULT_DISPATCH_EXPIRES_SECONDS = 300


def periodic_task_name(job: Job) -> str:
    return f"{PERIODIC_TASK_PREFIX}{job.pk}"


def celery_priority(priority: int) -> int:
    """Job priority is 0 (lowest) – 9 (highest). RabbitMQ agrees; Redis
    transport treats 0 as the highest, so invert it there."""
    broker = settings.CELERY_BROKER_URL or ""
    return 9 - priority if broker.startswith(("redis://", "rediss://", "redis+socket://")) else priority


def job_schedule(job: Job) -> Schedule:
    """The job's parsed schedule. Stored schedules were validated on write, so a
    one-off whose time has passed is still readable here."""
    return parse_schedule(job.schedule_type, job.schedule_expression, job.timezone, now=_EPOCH)


def job_next_runs(job: Job, count: int = 5, *, after: datetime | None = None) -> list[datetime]:
    """The job's next ``count`` runs as beat will fire them (none while paused or
    disabled). Interval runs count from beat's own last run of the job."""
    if not job.is_schedulable:
        return []
    schedule = job_schedule(job)
    anchor = None
    if schedule.interval:
        task = job.periodic_task
        anchor = (task.last_run_at if task is not None else None) or after or timezone.now()
    return schedule.next_runs(count, after=after, anchor=anchor)


# ---------------------------------------------------------------------------
# Schedules in words, for every face (API, admin, CLI)
# ---------------------------------------------------------------------------
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


def schedule_preview(schedule_type: str, expression: str, timezone_name: str, count: int = 5) -> dict:
    """Check a schedule (not yet a job's) and preview it.

    Valid: ``valid``, ``description`` (None if it cannot be phrased) and
    ``next_runs``: the next ``count`` runs, tz-aware in the schedule's zone.
    Invalid: ``valid: False``, ``error`` (one line naming the field at fault)
    and ``errors`` (field → messages). The input is echoed, with a blank time
    zone read as UTC like everywhere else.
    """
    timezone_name = timezone_name or "UTC"
    preview = {"schedule_type": schedule_type, "schedule_expression": expression, "timezone": timezone_name}
    try:
        schedule = parse_schedule(schedule_type, expression, timezone_name)
    except ValidationError as exc:
        preview.update(valid=False, error=validation_error_message(exc), errors=django_validation_error_detail(exc))
    else:
        preview.update(valid=True, description=_in_words(schedule), next_runs=schedule.next_runs(count))
    return preview


def _beat_schedule_fields(schedule: Schedule) -> dict:
    if schedule.cron:
        minute, hour, day_of_month, month_of_year, day_of_week = schedule.cron.split()
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
            day_of_week=day_of_week,
            timezone=schedule.timezone_name,
        )
        return {"crontab": crontab, "interval": None, "clocked": None, "one_off": False}
    if schedule.interval:
        seconds = int(schedule.interval.total_seconds())
        interval, _ = IntervalSchedule.objects.get_or_create(every=seconds, period=IntervalSchedule.SECONDS)
        return {"crontab": None, "interval": interval, "clocked": None, "one_off": False}
    clocked, _ = ClockedSchedule.objects.get_or_create(clocked_time=schedule.clocked)
    return {"crontab": None, "interval": None, "clocked": clocked, "one_off": True}


def _expires_seconds(schedule: Schedule) -> int:
    if schedule.interval:
        return max(1, min(DEFAULT_DISPATCH_EXPIRES_SECONDS, int(schedule.interval.total_seconds())))
    return DEFAULT_DISPATCH_EXPIRES_SECONDS


def periodic_task_sync(job: Job) -> PeriodicTask | None:
    """Create or update the job's PeriodicTask so it matches the job exactly
    (a manual job has none: beat never fires it)."""
    schedule = job_schedule(job)
    if schedule.is_manual:
        periodic_task_delete(job)
        job.periodic_task = None
        return None
    values = {
        **_beat_schedule_fields(schedule),
        "name": periodic_task_name(job),
        "task": DISPATCH_TASK,
        "args": json.dumps([job.pk]),
        "kwargs": "{}",
        "queue": job.queue,
        "priority": celery_priority(job.priority),
        "expire_seconds": _expires_seconds(schedule),
        "enabled": job.is_schedulable,
        "description": f"jobsite job {job.name}",
    }
    task = job.periodic_task
    if task is None:
        # Adopt a task left under the job's name (e.g. by a lost link) instead of colliding with it.
        task = PeriodicTask.objects.filter(name=values["name"]).first()
    if task is None:
        task = PeriodicTask(**values)
        changed = True
    else:
        changed = False
        for key, value in values.items():
            if getattr(task, key) != value:
                setattr(task, key, value)
                changed = True
    if schedule.interval and task.enabled and task.last_run_at is None:
        # Beat would count a fresh interval from whenever it next loads the
        # entry; anchoring it now makes job.next_run_at exactly beat's due time.
        task.last_run_at = timezone.now()
        changed = True
    if changed:
        task.save()  # pre_save signal → PeriodicTasks.changed: beat reloads
    if job.periodic_task_id != task.pk:
        job.periodic_task = task
        Job.objects.filter(pk=job.pk).update(periodic_task=task)
    return task


def periodic_task_delete(job: Job) -> None:
    if job.periodic_task_id:
        PeriodicTask.objects.filter(pk=job.periodic_task_id).delete()
        PeriodicTasks.update_changed()


def periodic_tasks_record_fires(last_runs: dict[int, datetime]) -> None:
    """Beat's own record of fires it sent (PeriodicTask pk → the due time fired
    for): ``last_run_at`` and one more in ``total_run_count``, as
    django-celery-beat's ``sync()`` saves them, in one UPDATE per due time
    instead of a read and a save per task. No ``date_changed`` bump and no
    change announced: beat already holds these values."""
    by_time: dict[datetime, list[int]] = {}
    for pk, last_run_at in last_runs.items():
        by_time.setdefault(last_run_at, []).append(pk)
    for last_run_at, pks in by_time.items():
        for batch in id_batches(pks):
            PeriodicTask.objects.filter(pk__any_of=batch).update(
                last_run_at=last_run_at, total_run_count=F("total_run_count") + 1,
            )


@dataclass
class DriftReport:
    missing: list[int] = field(default_factory=list)  # job ids without a PeriodicTask
    mismatched: list[int] = field(default_factory=list)  # job ids whose PeriodicTask differs
    orphans: list[str] = field(default_factory=list)  # PeriodicTask names with no job
    repaired: bool = False

    @property
    def clean(self) -> bool:
        return not (self.missing or self.mismatched or self.orphans)


def _matches(job: Job, task: PeriodicTask) -> bool:
    schedule = job_schedule(job)
    if task.task != DISPATCH_TASK or task.args != json.dumps([job.pk]) or task.enabled != job.is_schedulable:
        return False
    if task.queue != job.queue or task.priority != celery_priority(job.priority):
        return False
    if schedule.cron:
        c = task.crontab
        return c is not None and " ".join(
            [c.minute, c.hour, c.day_of_month, c.month_of_year, c.day_of_week]
        ) == schedule.cron and str(c.timezone) == schedule.timezone_name
    if schedule.interval:
        i = task.interval
        return i is not None and i.period == IntervalSchedule.SECONDS and i.every == int(schedule.interval.total_seconds())
    return task.clocked is not None and task.clocked.clocked_time == schedule.clocked


def beat_drift_check(*, repair: bool = False) -> DriftReport:
    """Compare every Job with its PeriodicTask; with ``repair`` fix what differs."""
    report = DriftReport()
    jobs = Job.objects.select_related("periodic_task__crontab", "periodic_task__interval", "periodic_task__clocked")
    for job in jobs.iterator(chunk_size=500):
        manual = job.schedule_type == Job.ScheduleType.MANUAL
        if job.periodic_task is None:
            if not manual:
                report.missing.append(job.pk)
        elif manual:
            report.mismatched.append(job.pk)
        elif not _matches(job, job.periodic_task):
            report.mismatched.append(job.pk)
    linked = Job.objects.exclude(periodic_task=None).values_list("periodic_task_id", flat=True)
    orphans = PeriodicTask.objects.filter(name__startswith=PERIODIC_TASK_PREFIX).exclude(pk__in=linked)
    report.orphans = list(orphans.values_list("name", flat=True))
    if repair and not report.clean:
        with transaction.atomic():
            for job in Job.objects.filter(pk__in=report.missing + report.mismatched).select_related("periodic_task"):
                periodic_task_sync(job)
            # Re-evaluated: a missing job may just have adopted its old task.
            linked = Job.objects.exclude(periodic_task=None).values_list("periodic_task_id", flat=True)
            PeriodicTask.objects.filter(name__startswith=PERIODIC_TASK_PREFIX).exclude(pk__in=linked).delete()
            PeriodicTasks.update_changed()
        report.repaired = True
    return report


# ---------------------------------------------------------------------------
# What beat fires for a job (the scheduler's Entry class)
# ---------------------------------------------------------------------------
def _entry_cron(model: PeriodicTask) -> str | None:
    crontab = model.crontab
    if crontab is None:
        return None
    return " ".join([crontab.minute, crontab.hour, crontab.day_of_month, crontab.month_of_year, crontab.day_of_week])


class JobEntry(ModelEntry):
    """django-celery-beat's entry, for a job's PeriodicTask:

    * a cron job fires on ``scheduling.schedules.JobCrontab`` — the very
      ``cron_fires`` the preview, ``next_run_at`` and the overdue check use
      (standard day-of-month/day-of-week semantics, documented DST);
    * the fire carries its identity: ``scheduled_for`` (the due time it fires
      for) and how many earlier fires were missed since the last one
      (``missed``, ``missed_from``) go in the dispatch task's kwargs, so
      ``services.job_dispatch_scheduled`` records one Execution per
      (job, due time) and applies the job's catch-up policy;
    * after a fire, the entry's ``last_run_at`` is the due time it fired for,
      not the moment it was sent: intervals keep their absolute spacing, and a
      beat that takes over (or restarts) counts what it owes from there.

    Other entries (CELERY_BEAT_SCHEDULE's) behave exactly as before.
    """

    MISSED_COUNT_LIMIT = 10_000

    def __init__(self, model, app=None):
        super().__init__(model, app=app)
        self.job_schedule: Schedule | None = None
        self._fire: dict | None = None
        if model.task != DISPATCH_TASK or not model.name.startswith(PERIODIC_TASK_PREFIX):
            return
        cron = _entry_cron(model)
        if cron:
            zone = str(model.crontab.timezone)
            self.schedule = JobCrontab(cron, zone, app=self.app)
            self.job_schedule = Schedule("cron", cron, ZoneInfo(zone), cron=cron)
        elif model.interval is not None:
            every = model.interval.schedule.run_every
            self.job_schedule = Schedule("interval", "", ZoneInfo("UTC"), interval=every)

    # Celery reads entry.kwargs when it sends the task: the fire's identity is added then.
    @property
    def kwargs(self):
        base = self.__dict__.get("_base_kwargs", {})
        # Celery's tick makes the next entry (reserve → __next__, which records
        # the fire) before it sends this one (apply_entry → kwargs): both see it.
        fire = self._fire if self._fire is not None else self.current_fire()
        return {**base, **fire} if fire else base

    @kwargs.setter
    def kwargs(self, value):
        self.__dict__["_base_kwargs"] = value

    def current_fire(self, now: datetime | None = None) -> dict | None:
        """The due time this entry fires for now, and the fires missed before it."""
        if self.job_schedule is None or self.last_run_at is None:
            return None
        now = now or self._default_now()
        last = maybe_make_aware(self.last_run_at)
        _, _, latest = self.job_schedule.fires_between(last, now, limit=self.MISSED_COUNT_LIMIT)
        if not latest:
            return None
        # Fires owed since beat last fired this entry, not since a pause or an
        # edit (date_changed: saving the task, which a resume or edit does).
        changed = maybe_make_aware(self.model.date_changed) if self.model.date_changed else last
        owed_from = max(last, changed) if changed <= now else last
        missed, first_missed, _ = self.job_schedule.fires_between(owed_from, latest - timedelta(microseconds=1),
                                                                 limit=self.MISSED_COUNT_LIMIT)
        fire = {"scheduled_for": latest.astimezone(dt_timezone.utc).isoformat()}
        if missed:
            fire.update(missed=missed, missed_from=first_missed.astimezone(dt_timezone.utc).isoformat())
        return fire

    def record_fire(self, now: datetime | None = None) -> dict | None:
        """Fix the fire this entry is sending (what ``kwargs`` then carries)."""
        self._fire = self.current_fire(now)
        return self._fire

    def __next__(self):
        fire = self._fire if self._fire is not None else self.record_fire()
        if self.job_schedule is None:
            entry = super().__next__()
        else:
            # django-celery-beat's __next__ counts the run on the model and builds
            # the next entry from it anew, parsing its crontab again; the model is
            # this same object, so a copy is that entry at a fraction of the cost
            # (a minute's burst makes one per job due).
            model = self.model
            model.last_run_at = self._default_now()
            model.total_run_count += 1
            model.no_changes = True
            entry = self.__class__.__new__(self.__class__)  # (copy.copy would go through __reduce__: a rebuild)
            entry.__dict__.update(self.__dict__)
            entry._fire = None
            entry.total_run_count = model.total_run_count
        if fire:
            fired_for = datetime.fromisoformat(fire["scheduled_for"])
            entry.model.last_run_at = fired_for
            entry.last_run_at = fired_for
        return entry

    next = __next__
