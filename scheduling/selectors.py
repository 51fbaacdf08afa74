"""Selectors: every read of jobs and executions, tenancy-scoped inside."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Avg, Count, Exists, OuterRef, Prefetch, Q, QuerySet
from django.utils import timezone

from jobsite.db import MAX_ID
from jobsite.exceptions import NotFound
from jobsite.tenancy import get_visible, scope_to_user
from scheduling.beat.sync import job_schedule
from scheduling.calendars import FLAG, job_calendars, next_open_run, with_calendar_flag
from scheduling.models import Execution, Job
from scheduling.statistics import nearest_rank_index


def _grace() -> timedelta:
    return timedelta(seconds=settings.JOBS_OVERDUE_GRACE_SECONDS)


def _stale_queued(now=None) -> QuerySet[Execution]:
    """Scheduled runs beat fired that no worker started within the grace period
    (workers down or saturated): their job is overdue too."""
    now = now or timezone.now()
    return Execution.objects.filter(
        status=Execution.Status.QUEUED, trigger=Execution.Trigger.SCHEDULE, created_at__lt=now - _grace()
    )


def as_id(value) -> int | None:
    """``value`` as a primary key if it is one: ASCII digits within range
    (``"²"`` is a digit to ``str.isdigit`` and a ValueError to ``int``)."""
    text = str(value)
    if not text.isascii() or not text.isdigit():
        return None
    number = int(text)
    return number if number <= MAX_ID else None


def _jobs() -> QuerySet[Job]:
    # One extra query per page (not per row, not in the COUNT) tells
    # job_is_overdue about stale queued runs: the oldest of each job is all it
    # and job_overdue_since need (a sliced prefetch: one row a job, however
    # many runs wait).
    oldest = _stale_queued().only("pk", "job_id", "created_at").order_by("created_at", "id")[:1]
    stale = Prefetch("executions", queryset=oldest, to_attr="stale_queued")
    return Job.objects.select_related("owner", "organization").prefetch_related(stale)


def _base_jobs(user) -> QuerySet[Job]:
    return scope_to_user(_jobs(), user)


def expected_run(job: Job) -> datetime | None:
    """When beat should next run the job: its ``next_run_at``, or, when that
    falls inside one of the job's calendars (a fire recorded ``skipped``, not
    a run), the next due time outside them. No query for a job read
    ``with_calendar_flag`` (or with its calendars prefetched) that lists none."""
    if job.next_run_at is None or not job_calendars(job):
        return job.next_run_at
    try:
        schedule = job_schedule(job)
    except ValidationError:  # a stored schedule the parser refuses: its next_run_at stands
        return job.next_run_at
    return next_open_run(job, job.next_run_at, schedule)


def _excused_by_calendars(now) -> list[int]:
    """Jobs whose ``next_run_at`` passed by more than the grace period but
    fell inside one of their calendars, and whose next due time outside them
    has not: a skipped day is not overdue. One query (two when some job with
    calendars is late); jobs without calendars are not read."""
    cutoff = now - _grace()
    late = (with_calendar_flag(Job.objects.filter(is_enabled=True, status=Job.Status.ACTIVE, next_run_at__lt=cutoff))
            .filter(**{FLAG: True}).prefetch_related("calendars"))
    excused = []
    for job in late:
        expected = expected_run(job)
        if expected is None or expected >= cutoff:
            excused.append(job.pk)
    return excused


def overdue_q(now=None) -> Q:
    """Enabled and active, and either its expected run (``expected_run``: a
    skipped day in one of its calendars is not expected) passed by more than
    the grace period, or a scheduled run has waited that long without starting."""
    now = now or timezone.now()
    stale = Exists(_stale_queued(now).filter(job=OuterRef("pk")))
    late = Q(next_run_at__lt=now - _grace())
    excused = _excused_by_calendars(now)
    if excused:
        late &= ~Q(pk__in=excused)
    return Q(is_enabled=True, status=Job.Status.ACTIVE) & (late | Q(stale))


def job_list(*, user, filters: dict[str, Any] | None = None) -> QuerySet[Job]:
    """Jobs ``user`` may see (``SYSTEM``: all, for the CLI), filtered by status,
    is_enabled, job_type, kind, overdue, search."""
    filters = filters or {}
    qs = with_calendar_flag(_base_jobs(user))
    if filters.get("status"):
        qs = qs.filter(Job.state_q(filters["status"]))
    if filters.get("is_enabled") is not None:
        qs = qs.filter(is_enabled=filters["is_enabled"])
    if filters.get("job_type"):
        qs = qs.filter(job_type=filters["job_type"])
    if filters.get("kind"):
        qs = qs.filter(kind=filters["kind"])
    if filters.get("overdue"):
        qs = qs.filter(overdue_q())
    if filters.get("search"):
        term = filters["search"]
        qs = qs.filter(Q(name__icontains=term) | Q(title__icontains=term) | Q(description__icontains=term))
    return qs.order_by("id")


def job_get(*, user, job_id, forbidden: str | None = None, row_only: bool = False) -> Job:
    """One job by id (or name, for the CLI); someone else's job is a 404, or a
    403 with the ``forbidden`` message where a facade's contract asks for it.
    ``row_only``: the job's own row, for an action that answers no job (a run
    request): without what a job's page shows (owner, organization, overdue
    state, calendars), half a run request's cost on the API."""
    pk = as_id(job_id)
    lookup = {"pk": pk} if pk is not None else {"name": str(job_id)}
    jobs = Job.objects.all() if row_only else with_calendar_flag(_jobs())
    return get_visible(jobs, user, lookup=lookup, not_found=f"Job {job_id} not found.", forbidden=forbidden)


def job_overdue_list(*, user) -> QuerySet[Job]:
    return with_calendar_flag(_base_jobs(user)).filter(overdue_q()).order_by("next_run_at")


def job_overdue_since(job: Job, now=None) -> datetime | None:
    """When an overdue job's run should have started: its missed next run, or
    the oldest scheduled run still waiting for a worker (None: not overdue)."""
    now = now or timezone.now()
    if not job_is_overdue(job, now):
        return None
    stale = getattr(job, "stale_queued", None)
    if stale is None:
        stale = list(_stale_queued(now).filter(job=job).only("created_at"))
    candidates = [execution.created_at for execution in stale]
    expected = expected_run(job) if job.next_run_at is not None and job.next_run_at < now - _grace() else None
    if expected is not None and expected < now - _grace():
        candidates.append(expected)
    return min(candidates)


def job_is_overdue(job: Job, now=None) -> bool:
    """overdue_q for one job loaded through these selectors."""
    now = now or timezone.now()
    if not (job.is_enabled and job.status == Job.Status.ACTIVE):
        return False
    late = job.next_run_at is not None and job.next_run_at < now - _grace()
    if late:  # unless it fell on a skipped day (one of the job's calendars) and the next open one has not passed
        expected = expected_run(job)
        if expected is not None and expected < now - _grace():
            return True
    stale = getattr(job, "stale_queued", None)  # prefetched by the selectors
    if stale is None:
        return _stale_queued(now).filter(job=job).exists()
    return bool(stale)


def execution_list(
    *, user, job: Job | None = None, job_id: int | None = None, status: str | None = None
) -> QuerySet[Execution]:
    """Runs of the jobs ``user`` may see, newest first (created_at, then id:
    the keyset of scheduling.pagination; each filter has an index that keeps
    that order: Execution.Meta.indexes).

    A member's runs are those whose job is among the visible jobs (``job_id
    IN (the visible jobs' ids)``), not a join filtered on the job's owner and
    organization: the databases then walk the runs in the index's order and
    test each against the set, and an OFFSET or a count needs no job row."""
    qs = Execution.objects.select_related("job", "triggered_by")
    if not getattr(user, "is_superuser", False):
        qs = qs.filter(job__in=scope_to_user(Job.objects.all(), user).values("pk"))
    if job is not None:
        qs = qs.filter(job=job)
    if job_id is not None:
        qs = qs.filter(job_id=job_id)
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-created_at", "-id")


def job_recent_durations(*, job: Job, limit: int = 50) -> list[tuple[int, float]]:
    """``(run id, seconds)`` of the job's last ``limit`` finished runs that
    have a duration, oldest first: the job page's duration chart."""
    rows = (Execution.objects.filter(job=job, status__in=Execution.COUNTED_STATUSES)
            .exclude(duration_seconds=None).order_by("-created_at", "-id")
            .values_list("id", "duration_seconds")[:limit])
    return list(reversed(rows))


def execution_get(*, user, execution_id) -> Execution:
    pk = as_id(execution_id)
    execution = execution_list(user=user).filter(pk=pk).first() if pk is not None else None
    if execution is None:
        raise NotFound(f"Execution {execution_id} not found.")
    return execution


def _percentile(durations_qs: QuerySet, fraction: float) -> float | None:
    """Nearest-rank percentile computed in the database (one COUNT, one OFFSET)."""
    values = durations_qs.exclude(duration_seconds=None)
    count = values.count()
    if not count:
        return None
    index = nearest_rank_index(count, fraction)
    value = values.order_by("duration_seconds").values_list("duration_seconds", flat=True)[index]
    return round(value, 3)


def _duration_stats(executions: QuerySet) -> dict[str, Any]:
    finished = executions.filter(status__in=Execution.COUNTED_STATUSES)
    agg = finished.aggregate(
        runs=Count("id"),
        successes=Count("id", filter=Q(status=Execution.Status.SUCCESS)),
        failures=Count("id", filter=Q(status__in=Execution.FAILURE_STATUSES)),
        cancelled=Count("id", filter=Q(status=Execution.Status.CANCELLED)),
        average=Avg("duration_seconds"),
    )
    runs = agg["runs"]
    return {
        "total_runs": runs,
        "successful_runs": agg["successes"],
        "failed_runs": agg["failures"],
        "cancelled_runs": agg["cancelled"],
        "success_rate": round(100.0 * agg["successes"] / runs, 2) if runs else 0.0,
        "average_duration_seconds": round(agg["average"], 3) if agg["average"] is not None else None,
        "p95_duration_seconds": _percentile(finished, 0.95),
    }


def job_statistics(*, job: Job) -> dict[str, Any]:
    """Runs, successes, failures, success rate, average/p95 duration, last/next run."""
    stats = _duration_stats(Execution.objects.filter(job=job))
    return {
        **stats,
        "last_status": job.last_status or None,
        "last_run_at": job.last_finished_at,  # the time of last_status's run (a consistent pair)
        "next_run_at": job.next_run_at,
    }


def job_stats_overview(*, user) -> dict[str, Any]:
    """Totals over every job ``user`` may see: counts, rates, durations, per type."""
    jobs = _base_jobs(user)
    now = timezone.now()
    counts = jobs.aggregate(
        total=Count("id"),
        enabled=Count("id", filter=Q(is_enabled=True)),
        disabled=Count("id", filter=Q(is_enabled=False)),
        active=Count("id", filter=Job.state_q(Job.State.ACTIVE)),
        paused=Count("id", filter=Job.state_q(Job.State.PAUSED)),
        overdue=Count("id", filter=overdue_q(now)),
    )
    executions = Execution.objects.filter(job__in=jobs.values("pk"))
    running = executions.filter(status__in=Execution.ACTIVE_STATUSES).aggregate(
        queued=Count("id", filter=Q(status=Execution.Status.QUEUED)),
        running=Count("id", filter=Q(status=Execution.Status.RUNNING)),
    )
    last_24h = _duration_stats(executions.filter(created_at__gte=now - timedelta(hours=24)))
    by_type = []
    type_rows = jobs.values("job_type").annotate(
        jobs=Count("id", distinct=True),
        enabled=Count("id", filter=Q(is_enabled=True), distinct=True),
    ).order_by("job_type")
    for row in type_rows:
        by_type.append({
            "job_type": row["job_type"],
            "jobs": row["jobs"],
            "enabled": row["enabled"],
            **_duration_stats(executions.filter(job__job_type=row["job_type"])),
        })
    return {
        "jobs": counts,
        "executions": {**_duration_stats(executions), **running},
        "last_24h": last_24h,
        "by_job_type": by_type,
        "generated_at": now,
    }
