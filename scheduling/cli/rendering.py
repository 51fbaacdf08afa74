"""How the ``jobs`` command shows jobs and executions: value formatting and
the columns of its tables. Where it goes and in what shape (terminal table,
tab-separated lines, JSON) is jobsite.cli.output's Console; durations and
relative times are jobsite.humanize's, as in the admin.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from django.utils import timezone
from rich.text import Text

from jobsite.cli.output import STATUS_STYLES, Console, fixed, number, styled, text, truncate
from jobsite.humanize import duration, relative
from scheduling.beat import schedule_description
from scheduling.models import Execution, Job

# What a schedule that cannot be put in words shows (beat.schedule_description is None).
CANNOT_DESCRIBE = "(cannot describe this schedule)"


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------
def fmt_dt(value: datetime | None, tz=None) -> str:
    if value is None:
        return "-"
    local = value.astimezone(tz) if tz is not None else timezone.localtime(value)
    return local.strftime("%Y-%m-%d %H:%M:%S %Z")


def fmt_bool(value: bool) -> str:
    return "yes" if value else "no"


def fmt_rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1f}%"


def fmt_schedule(job: Job) -> str:
    """The schedule as stored (``daily 02:00``)."""
    return f"{job.schedule_type} {job.schedule_expression}".strip()


def fmt_schedule_words(job: Job) -> str:
    """The schedule in words (``At 02:00 (UTC)``), else as stored."""
    return schedule_description(job) or fmt_schedule(job)


def fmt_description(description: str | None) -> str:
    return CANNOT_DESCRIBE if description is None else description


def fmt_runs(job: Job) -> str:
    return f"{job.total_runs} ({fmt_rate(job.success_rate)})" if job.total_runs else "0"


def plural(count: int, noun: str) -> str:
    """``1 job``, ``2 jobs``, ``0 jobs``."""
    return f"{count} {noun}{'s' if count != 1 else ''}"


# ---------------------------------------------------------------------------
# Tables: ids, names, statuses and times whole; only free text is cut
# ---------------------------------------------------------------------------
# Status is the job's state (disabled wins over paused and active); Last run is its status and when.
JOB_COLUMNS = [fixed("ID"), fixed("Name"), text("Schedule"), fixed("Status"), fixed("Last run"), fixed("Next run"),
               number("Runs (success)")]
EXECUTION_COLUMNS = [fixed("ID"), fixed("Status"), fixed("Trigger"), number("Attempt"), fixed("Created"),
                     fixed("Started"), number("Duration"), text("Output")]
ALL_EXECUTION_COLUMNS = [fixed("ID"), fixed("Job"), fixed("Status"), fixed("Trigger"), number("Attempt"),
                         fixed("Created"), number("Duration"), text("Output")]
RUN_COLUMNS = [number("Runs"), number("Succeeded"), number("Failed"), number("Cancelled"), number("Rate"),
               number("Avg time"), number("p95 time")]


def fmt_last_run(job: Job, now: datetime | None = None) -> Text:
    """``failed 3m ago`` (status coloured), ``-`` before the first run."""
    if not job.last_finished_at and not job.last_status:
        return Text("-")
    cell = Text()
    if job.last_status:
        cell.append(job.last_status, style=STATUS_STYLES.get(job.last_status, ""))
        cell.append(" ")
    cell.append(relative(job.last_finished_at, now) if job.last_finished_at else "")  # its own time
    return cell


def job_row(job: Job, now: datetime | None = None) -> list:
    return [job.pk, job.name, fmt_schedule_words(job), styled(job.state), fmt_last_run(job, now),
            relative(job.next_run_at, now), fmt_runs(job)]


def _short_dt(value: datetime | None) -> str:
    return timezone.localtime(value).strftime("%m-%d %H:%M:%S") if value else "-"


def _summary(e: Execution) -> str:
    return truncate(e.error if e.error and not e.output else e.output, 200)


def execution_row(e: Execution) -> list:
    return [e.pk, styled(e.status), e.trigger, e.attempt, _short_dt(e.created_at), _short_dt(e.started_at),
            duration(e.duration_seconds), _summary(e)]


def execution_row_with_job(e: Execution) -> list:
    return [e.pk, e.job.name, styled(e.status), e.trigger, e.attempt, _short_dt(e.created_at),
            duration(e.duration_seconds), _summary(e)]


def run_row(label: str, stats: dict[str, Any]) -> list:
    """One row of run statistics (selectors' job_statistics / job_stats_overview keys)."""
    return [label, stats["total_runs"], stats["successful_runs"], stats["failed_runs"], stats["cancelled_runs"],
            fmt_rate(stats["success_rate"]), duration(stats["average_duration_seconds"]),
            duration(stats["p95_duration_seconds"])]


def show_executions(console: Console, executions: Iterable[Execution], *, with_job: bool = False) -> None:
    executions = list(executions)
    if not executions:
        console.out("  none yet")
    elif with_job:
        console.table([execution_row_with_job(e) for e in executions], ALL_EXECUTION_COLUMNS)
    else:
        console.table([execution_row(e) for e in executions], EXECUTION_COLUMNS)
