"""Keeps one django-celery-beat PeriodicTask per Job, in the caller's transaction,
and checks (and repairs) that every PeriodicTask still matches its job.

Beat's DatabaseScheduler notices every change through ``PeriodicTasks.changed``
(sent by PeriodicTask's pre_save/pre_delete signals, and explicitly here for
anything done in bulk), so it never needs a restart.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from datetime import timezone as dt_timezone

from django.conf import settings
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

from jobsite.db import id_batches
from scheduling.models import Job
from scheduling.schedules import Schedule, parse_schedule

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


def crontab_expression(crontab: CrontabSchedule) -> str:
    """A CrontabSchedule row as the five-field cron expression it was written from."""
    return " ".join([crontab.minute, crontab.hour, crontab.day_of_month, crontab.month_of_year, crontab.day_of_week])


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


# ---------------------------------------------------------------------------
# Drift: PeriodicTasks that no longer match their jobs
# ---------------------------------------------------------------------------
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
        return c is not None and crontab_expression(c) == schedule.cron and str(c.timezone) == schedule.timezone_name
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
