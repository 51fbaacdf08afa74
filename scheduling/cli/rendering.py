"""How the ``jobs`` command shows things: value formatting, tables, key/value
pairs, JSON, the wait spinner, and the console it writes to (and asks its one
question on).

Rendering is rich's: tables fit in ``MAX_WIDTH`` columns (long cells wrap,
names and descriptions first), colour only when stdout is a terminal (rich
detects it; ``--no-color`` and ``NO_COLOR`` turn it off, ``--force-color``
on), so pipes and tests get plain text.
"""
from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable, Iterator

from django.core.management.base import OutputWrapper
from django.utils import timezone
from rest_framework.utils.encoders import JSONEncoder
from rich import box
from rich.console import Console as RichConsole
from rich.table import Table
from rich.text import Text

from scheduling.beat import schedule_description
from scheduling.models import Execution, Job

# What a schedule that cannot be put in words shows (beat.schedule_description is None).
CANNOT_DESCRIBE = "(cannot describe this schedule)"
MAX_WIDTH = 100

# A header underlined with dashes, no borders: rows start at column 0, so
# `grep '^12 '` and `awk` still work on the output.
DASHED_HEAD = box.Box("    \n    \n -  \n    \n    \n    \n    \n    \n", ascii=True)

STATUS_STYLES = {
    "success": "green", "active": "green", "yes": "green",
    "failed": "red", "error": "red", "timeout": "red", "missed": "red",
    "running": "cyan", "queued": "blue",
    "cancelled": "yellow", "skipped": "yellow", "paused": "yellow",
    "disabled": "dim", "no": "dim",
}


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


def fmt_ago(value: datetime | None, now: datetime | None = None) -> str:
    """``3m ago`` / ``in 2h 5m``: compact, for table cells."""
    if value is None:
        return "-"
    now = now or timezone.now()
    seconds = (value - now).total_seconds()
    span = abs(seconds)
    if span < 60:
        text = f"{int(span)}s"
    elif span < 3600:
        text = f"{int(span // 60)}m"
    elif span < 86400:
        text = f"{int(span // 3600)}h {int(span % 3600 // 60)}m"
    else:
        text = f"{int(span // 86400)}d {int(span % 86400 // 3600)}h"
    return f"in {text}" if seconds > 0 else f"{text} ago"


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


def one_line(text: str) -> str:
    return " ".join((text or "").split())


def truncate(text: str, width: int = 60) -> str:
    text = one_line(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def styled(value: Any) -> Text:
    text = str(value)
    return Text(text, style=STATUS_STYLES.get(text, ""))


# ---------------------------------------------------------------------------
# Tables: (header, options) per column; wrap=True columns give way first
# ---------------------------------------------------------------------------
def column(header: str, *, wrap: bool = False, ratio: int | None = None, justify: str = "left") -> dict:
    return {"header": header, "no_wrap": not wrap, "overflow": "fold" if wrap else "ellipsis", "ratio": ratio,
            "justify": justify}


# `jobs list` in 100 columns: the schedule in words; Status is the job's state
# (disabled wins over paused and active); Last run is its status and when.
JOB_COLUMNS = [
    column("ID"), column("Name", wrap=True), column("Schedule", wrap=True), column("Status"),
    column("Last run", wrap=True), column("Next run"), column("Runs (success)"),
]
JOB_HEADERS = [c["header"] for c in JOB_COLUMNS]
EXECUTION_COLUMNS = [
    column("ID"), column("Status"), column("Trigger"), column("Attempt"), column("Created"),
    column("Started"), column("Duration"), column("Output", wrap=True, ratio=1),
]
EXECUTION_HEADERS = [c["header"] for c in EXECUTION_COLUMNS]
ALL_EXECUTION_COLUMNS = [
    column("ID"), column("Job", wrap=True, ratio=1), column("Status"), column("Trigger"), column("Attempt"),
    column("Created"), column("Duration"), column("Output", wrap=True, ratio=2),
]
RUN_HEADERS = ["Runs", "Succeeded", "Failed", "Cancelled", "Rate", "Avg time", "p95 time"]


def fmt_last_run(job: Job, now: datetime | None = None) -> Text:
    """``failed 3m ago`` (status coloured), ``-`` before the first run."""
    if not job.last_finished_at and not job.last_status:
        return Text("-")
    text = Text()
    if job.last_status:
        text.append(job.last_status, style=STATUS_STYLES.get(job.last_status, ""))
        text.append(" ")
    text.append(fmt_ago(job.last_finished_at, now) if job.last_finished_at else "")  # its own time
    return text


def job_row(job: Job, now: datetime | None = None) -> list:
    return [job.pk, job.name, fmt_schedule_words(job), styled(job.state), fmt_last_run(job, now),
            fmt_ago(job.next_run_at, now), fmt_runs(job)]


def _short_dt(value: datetime | None) -> str:
    return timezone.localtime(value).strftime("%m-%d %H:%M:%S") if value else "-"


def _summary(e: Execution) -> str:
    return truncate(e.error if e.error and not e.output else e.output, 200)


def execution_row(e: Execution) -> list:
    return [e.pk, styled(e.status), e.trigger, e.attempt, _short_dt(e.created_at), _short_dt(e.started_at),
            fmt_duration(e.duration_seconds), _summary(e)]


def execution_row_with_job(e: Execution) -> list:
    return [e.pk, e.job.name, styled(e.status), e.trigger, e.attempt, _short_dt(e.created_at),
            fmt_duration(e.duration_seconds), _summary(e)]


def run_row(label: str, stats: dict[str, Any]) -> list:
    """One row of run statistics (selectors' job_statistics / job_stats_overview keys)."""
    return [label, stats["total_runs"], stats["successful_runs"], stats["failed_runs"], stats["cancelled_runs"],
            fmt_rate(stats["success_rate"]), fmt_duration(stats["average_duration_seconds"]),
            fmt_duration(stats["p95_duration_seconds"])]


# ---------------------------------------------------------------------------
# The console
# ---------------------------------------------------------------------------
class _RichConsole(RichConsole):
    def on_broken_pipe(self) -> None:
        # rich would exit(1) silently; the command says what happened (exit 141)
        self.quiet = True
        raise BrokenPipeError


def rich_console(stream, *, no_color: bool = False, force_color: bool = False) -> RichConsole:
    """A rich console on ``stream`` (the command's real stdout), at most
    MAX_WIDTH columns wide, coloured only on a terminal."""
    is_terminal = force_color or (hasattr(stream, "isatty") and stream.isatty())
    width = min(shutil.get_terminal_size((MAX_WIDTH, 24)).columns, MAX_WIDTH) if is_terminal else MAX_WIDTH
    return _RichConsole(
        file=stream, width=width, force_terminal=True if force_color else None, no_color=no_color or None,
        highlight=False, markup=False, emoji=False, soft_wrap=False,
    )


@dataclass
class Console:
    """The command's stdout, with the few shapes the handlers print."""

    stdout: OutputWrapper
    style: Any = None  # Django's styles; kept for callers that pass them
    no_color: bool = False
    force_color: bool = False
    rich: RichConsole = field(init=False)

    def __post_init__(self):
        stream = getattr(self.stdout, "_out", self.stdout)  # OutputWrapper would add newlines to rich's chunks
        self.rich = rich_console(stream, no_color=self.no_color, force_color=self.force_color)

    @property
    def is_terminal(self) -> bool:
        return self.rich.is_terminal

    def out(self, text: str = "", style: str | None = None) -> None:
        # soft_wrap: a message stays one line, whatever its length (the terminal wraps it)
        self.rich.print(Text(text, style=style or ""), soft_wrap=True)

    def success(self, text: str) -> None:
        self.out(text, "green")

    def error(self, text: str) -> None:
        self.out(text, "bold red")

    def heading(self, text: str) -> None:
        self.out(text, "bold cyan")

    def _print_trimmed(self, renderable) -> None:
        """Print without the padding rich leaves at the end of table lines."""
        with self.rich.capture() as captured:
            self.rich.print(renderable)
        lines = [line.rstrip() for line in captured.get().splitlines()]
        self.rich.file.write("\n".join(lines) + "\n")

    def table(self, rows: Iterable[list], headers: list[str] | list[dict]) -> None:
        # columns 2 apart: a space of padding, a space of the box's divider
        table = Table(box=DASHED_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold",
                      expand=False)
        for spec in headers:
            spec = spec if isinstance(spec, dict) else column(spec)
            table.add_column(spec["header"], no_wrap=spec["no_wrap"], overflow=spec["overflow"], ratio=spec["ratio"],
                             justify=spec["justify"])
        for row in rows:
            table.add_row(*[cell if isinstance(cell, Text) else Text(str(cell)) for cell in row])
        self._print_trimmed(table)

    def pairs(self, rows: Iterable[list]) -> None:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        for key, value in rows:
            grid.add_row(Text(str(key)), value if isinstance(value, Text) else Text(str(value)))
        self._print_trimmed(grid)

    def block(self, title: str, text: str) -> None:
        """A multi-line text (traceback, log) under a heading, as is."""
        self.heading(title)
        for line in (text or "").splitlines() or ["-"]:
            self.rich.print(Text("  " + line), soft_wrap=True)

    def executions(self, executions: Iterable[Execution], *, with_job: bool = False) -> None:
        executions = list(executions)
        if not executions:
            self.out("  none yet")
            return
        if with_job:
            self.table([execution_row_with_job(e) for e in executions], ALL_EXECUTION_COLUMNS)
        else:
            self.table([execution_row(e) for e in executions], EXECUTION_COLUMNS)

    def json(self, data: Any) -> None:
        """Machine-readable output (``--json``): the API's shapes, never coloured."""
        self.rich.file.write(json.dumps(data, cls=JSONEncoder, indent=2, ensure_ascii=False) + "\n")

    @contextmanager
    def spinner(self, text: str) -> Iterator[Any]:
        """A live spinner on a terminal (rich.status); nothing elsewhere.
        Yields a function that changes the spinner's text."""
        if not self.is_terminal:
            yield lambda _text: None
            return
        with self.rich.status(text, spinner="dots") as status:
            yield lambda new_text: status.update(new_text)

    def flush(self) -> None:
        self.rich.file.flush()

    def confirm(self, question: str) -> bool:
        """Ask on the terminal; no answer (end of input, no usable stdin) is a No."""
        self.rich.file.write(question)
        self.rich.file.flush()
        try:
            answer = input()
        except (EOFError, OSError):  # stdin closed, or not readable (pytest capture, daemon)
            self.rich.file.write("\n")
            return False
        return answer.strip().lower() in ("y", "yes")
