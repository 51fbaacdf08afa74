"""analytics_aggregation: per-day execution statistics (DailyJobStatistics)."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from datetime import time as dt_time
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from scheduling.executors import RunResult, schedulable
from scheduling.maintenance.common import QUEUE
from scheduling.models import DailyJobStatistics, Execution
from scheduling.statistics import nearest_rank_percentile


def _day_statistics(rows: list[tuple[str, float | None]]) -> dict[str, Any]:
    durations = [duration for _, duration in rows if duration is not None]
    p95 = nearest_rank_percentile(durations, 95)
    return {
        "runs": len(rows),
        "successes": sum(1 for status, _ in rows if status == Execution.Status.SUCCESS),
        "failures": sum(1 for status, _ in rows if status in Execution.FAILURE_STATUSES),
        "average_duration_seconds": round(sum(durations) / len(durations), 3) if durations else None,
        "p95_duration_seconds": round(p95, 3) if p95 is not None else None,
    }


def daily_statistics_compute(*, day: date) -> dict[str, Any]:
    """Recompute DailyJobStatistics for ``day`` (in settings.TIME_ZONE): one row
    per job that ran that day and one overall row (job=None).

    Runs are executions created that day and finished (as counted by the
    statistics selectors: cancelled counts as a run, skipped does not).
    """
    tz = timezone.get_default_timezone()
    start = timezone.make_aware(datetime.combine(day, dt_time.min), tz)
    end = timezone.make_aware(datetime.combine(day + timedelta(days=1), dt_time.min), tz)
    per_job: dict[int, list[tuple[str, float | None]]] = {}
    rows = Execution.objects.filter(created_at__gte=start, created_at__lt=end, status__in=Execution.COUNTED_STATUSES)
    for job_id, status, duration in rows.values_list("job_id", "status", "duration_seconds").iterator():
        per_job.setdefault(job_id, []).append((status, duration))

    with transaction.atomic():
        for job_id, job_rows in per_job.items():
            DailyJobStatistics.objects.update_or_create(day=day, job_id=job_id, defaults=_day_statistics(job_rows))
        overall = _day_statistics([row for job_rows in per_job.values() for row in job_rows])
        # update_or_create with job=None looks the row up with IS NULL.
        DailyJobStatistics.objects.update_or_create(day=day, job=None, defaults=overall)
    return {"day": day.isoformat(), "jobs": len(per_job), **overall}


@schedulable(
    "scheduling.analytics_aggregation",
    description="Per-day execution statistics (runs, successes, failures, avg/p95 duration) per job and overall.",
    queue=QUEUE,
)
def analytics_aggregation(*, execution=None, day: str | None = None) -> RunResult:
    """Compute DailyJobStatistics for ``day`` (ISO date), by default for
    yesterday and today. Days whose executions may already have been pruned
    (older than JOBS_EXECUTION_RETENTION_DAYS) are refused rather than
    overwritten with partial counts."""
    today = timezone.localdate()
    if day is None:
        days = [today - timedelta(days=1), today]
    else:
        try:
            days = [date.fromisoformat(str(day))]
        except ValueError:
            raise ValueError(f"day must be an ISO date such as {today.isoformat()}, got {day!r}.") from None
    oldest = today - timedelta(days=settings.JOBS_EXECUTION_RETENTION_DAYS)
    if days[0] < oldest:
        raise ValueError(
            f"{days[0].isoformat()} is before the execution retention window (since {oldest.isoformat()}); "
            "its executions may be pruned, so its statistics are kept as they are."
        )
    computed = [daily_statistics_compute(day=d) for d in days]
    summary = "; ".join(
        f"{item['day']}: {item['runs']} run(s) over {item['jobs']} job(s), {item['failures']} failed"
        for item in computed
    )
    return RunResult(output=f"Aggregated {summary}", result={"days": computed})
