"""Runs at a glance: per hour by outcome, the active ones with progress and
ETA, the latest failures."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.db.models import Case, Count, F, JSONField, QuerySet, Value, When
from django.db.models.functions import Substr, TruncHour
from django.utils import timezone

from jobsite.tenancy import scope_to_user
from scheduling.models import Execution

logger = logging.getLogger(__name__)

S = Execution.Status


@dataclass(frozen=True)
class Outcome:
    key: str
    label: str
    statuses: tuple[str, ...]
    colour: str


#: How the charts group statuses (stacked bottom to top), with the admin palette's colours.
OUTCOMES = (
    Outcome("success", "Succeeded", (S.SUCCESS,), "#2e7d32"),
    Outcome("failed", "Failed, timed out or errored", tuple(Execution.FAILURE_STATUSES), "#c62828"),
    Outcome("cancelled", "Cancelled", (S.CANCELLED,), "#616161"),
    Outcome("skipped", "Skipped or missed", (S.SKIPPED, S.MISSED), "#bdbdbd"),
    Outcome("active", "Queued or running", tuple(Execution.ACTIVE_STATUSES), "#1565c0"),
)
_OUTCOME_OF = {status: outcome.key for outcome in OUTCOMES for status in outcome.statuses}

# What the list pages show of a run here: never the log or traceback (large texts).
_LIGHT = ("log", "traceback", "override_kwargs")


def _executions(user) -> QuerySet[Execution]:
    return scope_to_user(Execution.objects.all(), user, owner_field="job__owner", org_field="job__organization")


#: Hours older than this are read once per HISTORY_CACHE_SECONDS (per process and
#: tenancy scope): their runs are history. A run that changes status after its hour's
#: bar was read (a long run finishing) shows its new status within that time.
LIVE_HOURS = 2
HISTORY_CACHE_SECONDS = 300


def runs_per_hour(*, user, now: datetime | None = None, hours: int = 7 * 24) -> dict[str, Any]:
    """Runs created in each of the last ``hours`` whole hours (the current one
    included) by outcome: ``{"hours": [start of each hour], "series": {outcome
    key: [count per hour]}, "total": n}``.

    One query (GROUP BY hour, status; an index-only scan of
    ``exec_created_status_job``) for the last ``LIVE_HOURS``, and one for the
    hours before them when they are not in the cache."""
    now = now or timezone.now()
    current = now.astimezone(dt_timezone.utc).replace(minute=0, second=0, microsecond=0)
    starts = [current - timedelta(hours=hours - 1 - i) for i in range(hours)]
    cutoff = starts[max(0, hours - LIVE_HOURS)]
    position = {start: i for i, start in enumerate(starts)}
    series = {outcome.key: [0] * hours for outcome in OUTCOMES}
    key = f"dashboard:runs-per-hour:{_scope_key(user)}:{starts[0].isoformat()}:{cutoff.isoformat()}"
    history = cache.get(key)
    if history is None:
        history = _hourly_counts(user, starts[0], cutoff)
        cache.set(key, history, HISTORY_CACHE_SECONDS)
    total = 0
    # bounded above as well: SQLite's planner then reads the index on created_at, not the one on status
    live = _hourly_counts(user, cutoff, current + timedelta(hours=1))
    for hour, status, count in [*history, *live]:
        i = position.get(hour)
        if i is None:  # a run created "in the future" (clock skew between hosts): not charted
            continue
        series[_OUTCOME_OF.get(status, "failed")][i] += count
        total += count
    return {"hours": starts, "series": series, "total": total}


def _scope_key(user) -> str:
    return "all" if getattr(user, "is_superuser", False) else f"user-{user.pk}"


def _hourly_counts(user, start: datetime, end: datetime) -> list[tuple[datetime, str, int]]:
    runs = _executions(user).filter(created_at__gte=start, created_at__lt=end)
    rows = runs.annotate(hour=_hour_of("created_at")).order_by().values_list("hour", "status").annotate(n=Count("*"))
    return [(_as_hour(hour), status, count) for hour, status, count in rows]


def _hour_of(field: str):
    """The hour a time falls in, as the database computes it fastest:
    ``date_trunc`` on PostgreSQL; on SQLite, whose TruncHour is a Python
    function called per row, the stored text's first 13 characters
    (``YYYY-MM-DD HH``, in UTC as Django stores it)."""
    if connection.vendor == "sqlite":
        return Substr(field, 1, 13)
    return TruncHour(field, tzinfo=dt_timezone.utc)


def _as_hour(value) -> datetime | None:
    if isinstance(value, str):
        try:
            return datetime.strptime(value, "%Y-%m-%d %H").replace(tzinfo=dt_timezone.utc)
        except ValueError:
            return None
    return value


# ---------------------------------------------------------------------------
# Active runs
# ---------------------------------------------------------------------------
@dataclass
class ActiveRun:
    execution: Execution
    percent: float | None = None  # None: the run reports no progress
    failed_percent: float | None = None
    eta_seconds: float | None = None
    running_seconds: float | None = None
    waiting_seconds: float | None = None  # queued: since it was created


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _counted(data: dict) -> tuple[str, float, float, float] | None:
    """``processed_X`` of ``total_X`` (and ``failed_X``): rows of an upload,
    images of a batch; as (X, done, total, failed)."""
    for key, value in data.items():
        if not key.startswith("processed_"):
            continue
        noun = key.removeprefix("processed_")
        done, total = _number(value), _number(data.get(f"total_{noun}"))
        if done is None or not total:
            continue
        return noun, done, total, _number(data.get(f"failed_{noun}")) or 0.0
    return None


def run_progress(result: Any) -> tuple[float, float] | None:
    """(percent done, percent failed) from what a run recorded as it went
    (``services.execution_record_progress``, or its Celery task's progress
    meta): a ``percent``; a workflow's ``steps``; ``processed_X`` of
    ``total_X`` (and ``failed_X``). None when it says nothing about progress.
    Any kind that records one of these shapes has its bar and ETA on the
    dashboard, the runs list and the run's page."""
    if not isinstance(result, dict):
        return None
    percent = _number(result.get("percent"))
    if percent is not None:
        return max(0.0, min(100.0, percent)), 0.0
    steps = result.get("steps")
    if isinstance(steps, list) and steps and all(isinstance(step, dict) for step in steps):
        finished = [step for step in steps if step.get("status") not in (None, "pending", "running")]
        failed = [step for step in finished if step.get("status") in ("failed", "timeout")]
        return 100.0 * len(finished) / len(steps), 100.0 * len(failed) / len(steps)
    counted = _counted(result)
    if counted is None:
        return None
    _, done, total, failed = counted
    return min(100.0, 100.0 * done / total), min(100.0, 100.0 * failed / total)


def progress_detail(result: Any) -> str:
    """The counts behind a counted report ("3 of 10 images · 1 failed"), else ""."""
    counted = _counted(result) if isinstance(result, dict) else None
    if counted is None:
        return ""
    noun, done, total, failed = counted
    return f"{done:,.0f} of {total:,.0f} {noun.replace('_', ' ')} · {failed:,.0f} failed"


def eta_seconds(execution: Execution, percent: float, now: datetime | None = None) -> float | None:
    """Remaining time at the rate so far, while the run goes on."""
    if execution.status != S.RUNNING or not execution.started_at or not 0 < percent < 100:
        return None
    elapsed = max(0.0, ((now or timezone.now()) - execution.started_at).total_seconds())
    return elapsed * (100.0 - percent) / percent


@dataclass
class PageProgress:
    percent: float
    failed_percent: float
    eta_seconds: float | None
    detail: str = ""


#: Annotate a list of runs that defers ``result`` with it (``live_result``) for its running rows only:
#: their recorded progress comes with the page's own query.
LIVE_RESULT = "live_result"


def with_live_result(queryset: QuerySet[Execution]) -> QuerySet[Execution]:
    return queryset.annotate(**{LIVE_RESULT: Case(When(status=S.RUNNING, then=F("result")), default=Value(None),
                                                  output_field=JSONField())})


def page_progress(executions: list[Execution], *, now: datetime | None = None) -> dict[int, PageProgress]:
    """The recorded progress of each running run of a page of runs (a list
    that defers ``result``): from its ``live_result`` (``with_live_result``),
    else their results in one query (always made when the page has runs: the
    same queries on every page); and for kinds that keep their Celery result,
    its progress meta (one MGET)."""
    if not executions:
        return {}
    running = [execution for execution in executions if execution.status == S.RUNNING]
    if all(hasattr(execution, LIVE_RESULT) for execution in executions):
        results = {execution.pk: getattr(execution, LIVE_RESULT) for execution in running}
    else:
        results = dict(Execution.objects.filter(pk__in=[execution.pk for execution in executions],
                                                status=S.RUNNING).values_list("pk", "result"))
    metas = celery_progress(running)
    found = {}
    for execution in running:
        recorded = results.get(execution.pk)
        progress = run_progress(recorded)
        if progress is None:
            recorded = metas.get(execution.pk)
            progress = run_progress(recorded)
        if progress is not None:
            percent, failed = progress
            found[execution.pk] = PageProgress(percent, failed, eta_seconds(execution, percent, now),
                                               progress_detail(recorded))
    return found


def celery_progress(executions: list[Execution]) -> dict[int, dict]:
    """The progress meta of runs whose kind keeps its Celery result (a
    predictions upload publishes its row counts there): one MGET."""
    from scheduling.kinds import executor_for

    wanted = {}
    for execution in executions:
        try:
            keeps = executor_for(execution.job.kind).keeps_celery_result
        except Exception:
            keeps = False
        if keeps and execution.celery_task_id and execution.status == S.RUNNING:
            wanted[execution.pk] = execution.celery_task_id
    if not wanted:
        return {}
    try:
        from jobsite.celery import app

        backend = app.backend
        keys = [backend.get_key_for_task(task_id) for task_id in wanted.values()]
        values = backend.client.mget(keys)
    except Exception as exc:  # the result backend is for display: no progress shown then
        logger.debug("no Celery progress meta: %s", exc)
        return {}
    found = {}
    for pk, raw in zip(wanted, values):
        try:
            meta = json.loads(raw) if raw else None
        except (TypeError, ValueError):
            continue
        if isinstance(meta, dict) and isinstance(meta.get("result"), dict):
            found[pk] = meta["result"]
    return found


def active_runs(*, user, limit: int = 8, now: datetime | None = None) -> tuple[list[ActiveRun], int]:
    """Running runs (longest first), then queued ones (oldest first), at most
    ``limit``, with progress and ETA; and how many are active in all."""
    now = now or timezone.now()
    active = _executions(user).filter(status__in=Execution.ACTIVE_STATUSES)
    executions = list(active.select_related("job").defer(*_LIGHT).order_by("-status", "created_at", "id")[:limit])
    total = len(executions) if len(executions) < limit else active.count()
    metas = celery_progress(executions)
    runs = []
    for execution in executions:
        run = ActiveRun(execution=execution)
        if execution.status == S.RUNNING and execution.started_at:
            run.running_seconds = max(0.0, (now - execution.started_at).total_seconds())
            progress = run_progress(execution.result) or run_progress(metas.get(execution.pk))
            if progress is not None:
                run.percent, run.failed_percent = progress
                run.eta_seconds = eta_seconds(execution, run.percent, now)
        else:
            run.waiting_seconds = max(0.0, (now - execution.created_at).total_seconds())
        runs.append(run)
    return runs, total


def latest_failures(*, user, limit: int = 6) -> list[Execution]:
    """The newest runs that failed, timed out or errored."""
    return list(
        _executions(user).filter(status__in=Execution.FAILURE_STATUSES).select_related("job")
        .defer(*_LIGHT).order_by("-created_at", "-id")[:limit]
    )
