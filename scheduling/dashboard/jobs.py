"""Jobs at a glance: the overdue ones, the next 24 hours of scheduled runs,
the audit trail and the daily statistics' state."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import CharField, Q
from django.db.models.functions import Cast
from django.utils import timezone

from jobsite.tenancy import scope_to_user
from scheduling import selectors
from scheduling.models import AuditLog, DailyJobStatistics, Job

logger = logging.getLogger(__name__)

ANALYTICS_TASK = "scheduling.analytics_aggregation"


#: Counted up to this many: past it the dashboard says "100+" (a count of every
#: overdue job checks each job for a stale queued run, ~130 ms at 2,000 jobs on SQLite).
OVERDUE_COUNT_CAP = 100


def overdue_jobs(*, user, limit: int = 6) -> tuple[list[Job], int]:
    """The overdue jobs (``selectors.job_overdue_list``), most overdue first,
    at most ``limit``; and how many there are, counted up to
    ``OVERDUE_COUNT_CAP`` + 1 (more than the cap: there are more)."""
    overdue = selectors.job_overdue_list(user=user)
    jobs = list(overdue[: limit + 1])
    if len(jobs) <= limit:
        return jobs, len(jobs)
    return jobs[:limit], overdue.order_by().values("pk")[: OVERDUE_COUNT_CAP + 1].count()


@dataclass
class Lane:
    """One job on the next-24-hours timeline."""

    job: Job
    runs: list[datetime] = field(default_factory=list)
    more: bool = False  # more runs in the window than drawn (a dense schedule: drawn as a band)


def upcoming_runs(*, user, now: datetime | None = None, hours: int = 24, lanes: int = 10,
                  marks: int = 48) -> tuple[list[Lane], int]:
    """The jobs that run next within ``hours`` (soonest first, at most
    ``lanes``), each with its fire times in the window (at most ``marks``:
    a job firing more often is marked ``more``); and how many jobs fire in
    the window. Three queries; the fire times are computed, not read."""
    from scheduling.beat.preview import job_next_runs

    now = now or timezone.now()
    end = now + timedelta(hours=hours)
    due = scope_to_user(Job.objects.all(), user).filter(
        is_enabled=True, status=Job.Status.ACTIVE, next_run_at__gte=now - timedelta(minutes=1), next_run_at__lt=end,
    )
    # the calendars a job skips: read for all lanes at once (job_next_runs leaves out their due times)
    jobs = list(due.select_related("periodic_task").prefetch_related("calendars").order_by("next_run_at", "id")[:lanes])
    total = len(jobs) if len(jobs) < lanes else due.count()
    result = []
    for job in jobs:
        lane = Lane(job=job)
        try:
            runs = job_next_runs(job, marks + 1, after=now)
        except Exception as exc:  # a stored schedule the parser now refuses: shown without marks
            logger.warning("next runs of job %s not computed: %s", job.pk, exc)
            runs = [job.next_run_at] if job.next_run_at else []
        in_window = [run for run in runs if now <= run < end]
        lane.runs = in_window[:marks]
        lane.more = len(in_window) > marks
        result.append(lane)
    return result, total


def audit_trail(*, user, limit: int = 10) -> list[AuditLog]:
    """The newest audit entries this user may see: all for a superuser;
    otherwise their own actions and those on jobs they can see."""
    entries = AuditLog.objects.select_related("actor")
    if not getattr(user, "is_superuser", False):
        visible = scope_to_user(Job.objects.all(), user).annotate(key=Cast("pk", CharField())).values("key")
        entries = entries.filter(Q(actor=user) | Q(object_type="job", object_id__in=visible))
    return list(entries.order_by("-created_at", "-id")[:limit])


def daily_statistics_state(*, now: datetime | None = None) -> dict:
    """What the daily statistics page holds and when it is next written:
    ``{"latest": DailyJobStatistics | None, "job": the analytics job | None,
    "next_at": datetime | None, "reason": str}``, ``reason`` saying in words
    why the page is empty or stale (empty when it is up to date)."""
    now = now or timezone.now()
    latest = DailyJobStatistics.objects.filter(job=None).order_by("-day").only("day", "computed_at").first()
    job = (Job.objects.filter(task_name=ANALYTICS_TASK).order_by("-is_enabled", "next_run_at", "id")
           .only("pk", "name", "is_enabled", "status", "next_run_at").first())
    next_at = job.next_run_at if job is not None and job.is_schedulable else None
    when = f"at {timezone.localtime(next_at):%H:%M %Z}" if next_at else ""
    if job is None:
        reason = ("No job computes them: create one with the task scheduling.analytics_aggregation "
                  "(the default jobs include it, daily at 01:00).")
    elif not job.is_schedulable:
        reason = f"The job that computes them, {job.name}, is {job.get_status_display().lower() if job.is_enabled else 'disabled'}."
    elif latest is None:
        reason = (f"Each day's statistics are computed the night after, by the job {job.name}: "
                  f"the first ones {when}.")
    elif latest.day < (timezone.localdate(now) - timedelta(days=1)):
        reason = f"The latest day computed is {latest.day:%Y-%m-%d}; the next computation is {when or 'not scheduled'}."
    else:
        reason = ""
    return {"latest": latest, "job": job, "next_at": next_at, "reason": reason}
