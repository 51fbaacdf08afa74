"""How the ``jobs`` command shows things: value formatting, tables, key/value
pairs, and the console it writes to (and asks its one question on)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable

from django.core.management.base import OutputWrapper
from django.core.management.color import Style
from django.utils import timezone
from tabulate import tabulate

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


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return str(timedelta(seconds=round(seconds)))


def fmt_bool(value: bool) -> str:
    return "yes" if value else "no"


def fmt_rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1f}%"


def fmt_schedule(job: Job) -> str:
    return f"{job.schedule_type} {job.schedule_expression}"


def fmt_description(description: str | None) -> str:
    return CANNOT_DESCRIBE if description is None else description


def fmt_runs(job: Job) -> str:
    return f"{job.total_runs} ({fmt_rate(job.success_rate)})" if job.total_runs else "0"


def plural(count: int, noun: str) -> str:
    """``1 job``, ``2 jobs``, ``0 jobs``."""
    return f"{count} {noun}{'s' if count != 1 else ''}"


def one_line(text: str) -> str:
    return " ".join((text or "").split())


def truncate(text: str, width: int = 60) -> str:
    text = one_line(text)
    return text if len(text) <= width else text[: width - 1] + "…"


# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------
JOB_HEADERS = ["ID", "Name", "Type", "Schedule", "Enabled", "Status", "Last status", "Last run", "Next run", "Runs (success)"]
EXECUTION_HEADERS = ["ID", "Status", "Trigger", "Attempt", "Created", "Started", "Duration", "Output"]
RUN_HEADERS = ["Runs", "Successful", "Failed", "Cancelled", "Success rate", "Avg duration", "p95 duration"]


def job_row(job: Job) -> list:
    return [
        job.pk, job.name, job.job_type, fmt_schedule(job), fmt_bool(job.is_enabled), job.state,
        job.last_status or "-", fmt_dt(job.last_run_at), fmt_dt(job.next_run_at), fmt_runs(job),
    ]


def execution_row(execution: Execution) -> list:
    e = execution
    return [
        e.pk, e.status, e.trigger, e.attempt, fmt_dt(e.created_at), fmt_dt(e.started_at),
        fmt_duration(e.duration_seconds), truncate(e.error if e.error and not e.output else e.output),
    ]


def run_row(label: str, stats: dict[str, Any]) -> list:
    """One row of run statistics (selectors' job_statistics / job_stats_overview keys)."""
    return [label, stats["total_runs"], stats["successful_runs"], stats["failed_runs"], stats["cancelled_runs"],
            fmt_rate(stats["success_rate"]), fmt_duration(stats["average_duration_seconds"]),
            fmt_duration(stats["p95_duration_seconds"])]


# ---------------------------------------------------------------------------
# The console
# ---------------------------------------------------------------------------
@dataclass
class Console:
    """The command's stdout and styles, with the few shapes the handlers print."""

    stdout: OutputWrapper
    style: Style

    def out(self, text: str = "", style=None) -> None:
        self.stdout.write(style(text) if style else text)

    def success(self, text: str) -> None:
        self.out(text, self.style.SUCCESS)

    def error(self, text: str) -> None:
        self.out(text, self.style.ERROR)

    def heading(self, text: str) -> None:
        self.out(text, self.style.MIGRATE_HEADING)

    def table(self, rows: Iterable[list], headers: list[str]) -> None:
        self.out(tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True))

    def pairs(self, rows: Iterable[list]) -> None:
        self.out(tabulate(rows, tablefmt="plain", disable_numparse=True))

    def executions(self, executions: Iterable[Execution]) -> None:
        executions = list(executions)
        if not executions:
            self.out("  none yet")
            return
        self.table([execution_row(e) for e in executions], EXECUTION_HEADERS)

    def confirm(self, question: str) -> bool:
        """Ask on the terminal; no answer (end of input, no usable stdin) is a No."""
        self.stdout.write(question, ending="")
        self.stdout.flush()
        try:
            answer = input()
        except (EOFError, OSError):  # stdin closed, or not readable (pytest capture, daemon)
            self.stdout.write("")
            return False
        return answer.strip().lower() in ("y", "yes")
