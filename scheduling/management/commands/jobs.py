"""``./manage jobs <subcommand>``: manage scheduled jobs from the shell (seed 003).

Thin on purpose: every subcommand parses its arguments, calls one service or
selector and renders the answer. Jobs are addressed by id or by name. Errors
(ValidationError, ApplicationError, NotFound) become one-line CommandErrors,
so the shell sees a readable message and a non-zero exit code.
"""
from __future__ import annotations

import argparse
import inspect
import json
import time
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, DjangoHelpFormatter
from django.core.paginator import EmptyPage, Paginator
from django.utils import timezone
from tabulate import tabulate

from jobsite.exceptions import ApplicationError, error_message
from jobsite.tenancy import SYSTEM
from scheduling import selectors, services
from scheduling.beat import beat_drift_check, job_next_runs, job_schedule, periodic_task_name
from scheduling.executors import schedulable_tasks
from scheduling.models import Execution, Job
from scheduling.schedules import SCHEDULE_TYPES, parse_schedule

ACTOR = "cli"
NEXT_RUNS = 5
RECENT_EXECUTIONS = 5
DEFAULT_WAIT_SECONDS = 300.0
WAIT_POLL_SECONDS = 0.5


class HelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Django's option ordering, but keep the hand-written examples as written."""


# ---------------------------------------------------------------------------
# Argument types
# ---------------------------------------------------------------------------
def _json_value(kind: type, label: str):
    def parse(text: str):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise argparse.ArgumentTypeError(f"not valid JSON ({exc.msg} at position {exc.pos}): {text!r}") from None
        if not isinstance(value, kind):
            raise argparse.ArgumentTypeError(f"must be a JSON {label}, got {type(value).__name__}: {text!r}")
        return value

    parse.__name__ = f"JSON {label}"  # argparse names the type in its error messages
    return parse


json_object = _json_value(dict, "object")
json_list = _json_value(list, "list")


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text}")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


# ---------------------------------------------------------------------------
# Rendering helpers
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


def fmt_runs(job: Job) -> str:
    return f"{job.total_runs} ({fmt_rate(job.success_rate)})" if job.total_runs else "0"


def one_line(text: str) -> str:
    return " ".join((text or "").split())


def truncate(text: str, width: int = 60) -> str:
    text = one_line(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def describe(job: Job) -> str:
    try:
        return job_schedule(job).describe()
    except (ValidationError, ValueError, KeyError) as exc:  # an unreadable stored schedule must not hide the job
        return f"(cannot describe: {exc})"


EXAMPLES = {
    "list": """examples:
  ./manage jobs list
  ./manage jobs list --status active
  ./manage jobs list --type system_health_check
  ./manage jobs list --enabled-only
  ./manage jobs list --overdue-only
  ./manage jobs list --page 2 --size 10""",
    "show": """examples:
  ./manage jobs show 1
  ./manage jobs show system_health_check""",
    "create": """examples:
  ./manage jobs create system_backup "System Backup Job" database_maintenance daily "03:00" \\
      scheduling.database_maintenance --description "Daily system backup" \\
      --queue maintenance --priority 8 --timeout 7200 --enabled
  ./manage jobs create cleanup_every_30m "Cleanup" document_cleanup interval 30 scheduling.document_cleanup
  ./manage jobs create weekly_digest "Digest" user_activity_digest weekly "0:09:00" \\
      scheduling.user_activity_digest --timezone Europe/Paris --kwargs '{"days": 7}' --disabled

schedule types and expressions:
  interval  "30" (minutes), or "1h 30m", "45s"
  daily     "HH:MM"           e.g. "14:30"
  weekly    "D:HH:MM"         e.g. "0:09:00" (0=Monday)
  monthly   "DD:HH:MM"        e.g. "1:08:00"
  cron      5 fields          e.g. "0 2 * * 1"
  once      ISO 8601 datetime e.g. "2030-01-31T09:00"

TASK_NAME must be a schedulable task; `./manage jobs tasks` lists them.""",
    "update": """examples:
  ./manage jobs update 1 --schedule "04:00"
  ./manage jobs update 1 --schedule-type cron --schedule "0 */6 * * *"
  ./manage jobs update 1 --priority 9
  ./manage jobs update 1 --enabled
  ./manage jobs update system_backup --disabled""",
    "delete": """examples:
  ./manage jobs delete 1            # asks for confirmation
  ./manage jobs delete 1 --force    # no question asked

Without an answer (no terminal, end of input) nothing is deleted and the exit code is 1.""",
    "execute": """examples:
  ./manage jobs execute 1
  ./manage jobs execute 1 --force
  ./manage jobs execute system_health_check --kwargs '{"cleanup_level": "deep"}'
  ./manage jobs execute 1 --wait          # wait up to 300s for the outcome
  ./manage jobs execute 1 --wait 60""",
    "pause": """examples:
  ./manage jobs pause 1
  ./manage jobs pause system_health_check""",
    "resume": """examples:
  ./manage jobs resume 1""",
    "overdue": """examples:
  ./manage jobs overdue""",
    "stats": """examples:
  ./manage jobs stats""",
    "validate-schedule": """examples:
  ./manage jobs validate-schedule interval 30
  ./manage jobs validate-schedule daily "09:30"
  ./manage jobs validate-schedule weekly "1:10:00"
  ./manage jobs validate-schedule daily "14:30" --timezone "America/New_York"
  ./manage jobs validate-schedule cron "0 2 * * 1"

An invalid schedule exits with code 1.""",
    "cancel": """examples:
  ./manage jobs cancel 42
  ./manage jobs cancel 42 --reason "wrong input\"""",
    "executions": """examples:
  ./manage jobs executions 1
  ./manage jobs executions system_health_check --limit 50 --status failed""",
    "init-defaults": """examples:
  ./manage jobs init-defaults""",
    "sync-beat": """examples:
  ./manage jobs sync-beat             # report drift; exit 1 if any
  ./manage jobs sync-beat --repair    # fix it""",
    "tasks": """examples:
  ./manage jobs tasks""",
}


class Command(BaseCommand):
    help = (
        "Manage scheduled jobs: list, show, create, update, delete, execute, pause, resume, "
        "overdue, stats, validate-schedule, cancel, executions, init-defaults, sync-beat, tasks. "
        "Jobs are addressed by id or name. Run `./manage jobs SUBCOMMAND --help` for its options and examples."
    )

    # -- parser --------------------------------------------------------------
    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = HelpFormatter
        parser.epilog = "examples:\n  ./manage jobs list\n  ./manage jobs show 1\n  ./manage jobs create --help"
        return parser

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)

        def add(name: str, help_text: str):
            return sub.add_parser(
                name, help=help_text, description=help_text, epilog=EXAMPLES[name], formatter_class=HelpFormatter
            )

        job_ref = {"metavar": "ID|NAME", "help": "Job id or unique name."}

        p = add("list", "List jobs as a table, one page at a time.")
        p.add_argument("--status", choices=Job.Status.values, help="Only jobs in this status.")
        p.add_argument("--type", dest="job_type", choices=Job.JobType.values, help="Only jobs of this job type.")
        p.add_argument("--kind", choices=Job.Kind.values, help="Only jobs of this kind (executor).")
        p.add_argument("--search", help="Only jobs whose name, title or description contains this text.")
        p.add_argument("--enabled-only", action="store_true", help="Only enabled jobs.")
        p.add_argument("--overdue-only", action="store_true", help="Only overdue jobs.")
        p.add_argument("--page", type=_positive_int, default=1, help="Page number (default 1).")
        p.add_argument("--size", type=_positive_int, default=20, help="Jobs per page (default 20).")

        p = add("show", "Show one job: every field, its schedule, next runs, statistics and recent executions.")
        p.add_argument("job", **job_ref)

        p = add("create", "Create a job (and its beat schedule).")
        p.add_argument("name", metavar="NAME", help="Unique machine name (letters, digits, _ . : @ -).")
        p.add_argument("title", metavar="TITLE", help="Human-readable title.")
        p.add_argument("job_type", metavar="JOB_TYPE", help=f"One of: {', '.join(Job.JobType.values)}.")
        p.add_argument("schedule_type", metavar="SCHEDULE_TYPE", help=f"One of: {', '.join(SCHEDULE_TYPES)}.")
        p.add_argument("schedule_expression", metavar="SCHEDULE_EXPRESSION", help="Read according to SCHEDULE_TYPE (see below).")
        p.add_argument("task_name", metavar="TASK_NAME", help="A schedulable task (see `./manage jobs tasks`).")
        p.add_argument("--description", default="", help="Longer description.")
        p.add_argument("--queue", default="default", help="Celery queue (default: default).")
        p.add_argument("--priority", type=int, default=5, metavar="0-9", help="0 (lowest) – 9 (highest); default 5.")
        p.add_argument("--timeout", type=int, default=3600, metavar="SECONDS", help="Time limit in seconds (default 3600).")
        p.add_argument("--timezone", default="UTC", metavar="TZ", help="IANA time zone the schedule is read in (default UTC).")
        p.add_argument("--kind", default=Job.Kind.TASK, choices=Job.Kind.values, help="Executor kind (default task).")
        p.add_argument("--args", dest="task_args", type=json_list, metavar="JSON", help="Positional task arguments as a JSON list.")
        p.add_argument("--kwargs", dest="task_kwargs", type=json_object, metavar="JSON", help="Task keyword arguments as a JSON object.")
        p.add_argument("--config", type=json_object, metavar="JSON", help="Executor settings as a JSON object (non-secret).")
        p.add_argument("--max-retries", type=int, default=0, metavar="N", help="Retries after a failed run, 0-20 (default 0).")
        p.add_argument("--overlap", dest="overlap_policy", choices=Job.OverlapPolicy.values, default=Job.OverlapPolicy.SKIP,
                       help="What to do when a run is due while one is going (default skip).")
        enabled = p.add_mutually_exclusive_group()
        enabled.add_argument("--enabled", dest="is_enabled", action="store_true", default=True, help="Create it enabled (default).")
        enabled.add_argument("--disabled", dest="is_enabled", action="store_false", help="Create it disabled.")

        p = add("update", "Change a job; a schedule change re-syncs beat at once.")
        p.add_argument("job", **job_ref)
        p.add_argument("--schedule", dest="schedule_expression", metavar="EXPR", help="New schedule expression.")
        p.add_argument("--schedule-type", choices=SCHEDULE_TYPES, help="New schedule type (give --schedule too when the format changes).")
        p.add_argument("--timezone", metavar="TZ", help="New IANA time zone.")
        p.add_argument("--name", help="Rename the job.")
        p.add_argument("--title", help="New title.")
        p.add_argument("--description", help="New description.")
        p.add_argument("--type", dest="job_type", choices=Job.JobType.values, help="New job type.")
        p.add_argument("--task", dest="task_name", metavar="TASK_NAME", help="New schedulable task.")
        p.add_argument("--args", dest="task_args", type=json_list, metavar="JSON", help="Replace the task's positional arguments (JSON list).")
        p.add_argument("--kwargs", dest="task_kwargs", type=json_object, metavar="JSON", help="Replace the task's keyword arguments (JSON object).")
        p.add_argument("--config", type=json_object, metavar="JSON", help="Replace the executor settings (JSON object).")
        p.add_argument("--queue", help="New Celery queue.")
        p.add_argument("--priority", type=int, metavar="0-9", help="0 (lowest) – 9 (highest).")
        p.add_argument("--timeout", dest="timeout_seconds", type=int, metavar="SECONDS", help="Time limit in seconds.")
        p.add_argument("--max-retries", type=int, metavar="N", help="Retries after a failed run, 0-20.")
        p.add_argument("--overlap", dest="overlap_policy", choices=Job.OverlapPolicy.values)
        enabled = p.add_mutually_exclusive_group()
        enabled.add_argument("--enabled", dest="is_enabled", action="store_const", const=True, help="Enable the job.")
        enabled.add_argument("--disabled", dest="is_enabled", action="store_const", const=False, help="Disable the job.")

        p = add("delete", "Delete a job, its beat schedule and its execution history.")
        p.add_argument("job", **job_ref)
        p.add_argument("--force", action="store_true", help="Do not ask for confirmation.")

        p = add("execute", "Run a job now (queues one execution).")
        p.add_argument("job", **job_ref)
        p.add_argument("--force", action="store_true", help="Run even if the job is disabled, paused or already running.")
        p.add_argument("--kwargs", dest="override_kwargs", type=json_object, metavar="JSON", help="Keyword arguments for this run only (JSON object).")
        p.add_argument("--wait", nargs="?", type=_positive_float, const=DEFAULT_WAIT_SECONDS, metavar="SECONDS",
                       help=f"Wait for the outcome (default up to {DEFAULT_WAIT_SECONDS:.0f}s); exit 1 unless it succeeds.")

        p = add("pause", "Pause a job: no scheduled runs until it is resumed.")
        p.add_argument("job", **job_ref)

        p = add("resume", "Resume (and enable) a paused job.")
        p.add_argument("job", **job_ref)

        add("overdue", "List enabled jobs whose expected run passed without starting.")
        add("stats", "Show statistics over all jobs and executions.")

        p = add("validate-schedule", "Check a schedule and show its next runs.")
        p.add_argument("schedule_type", metavar="TYPE", help=f"One of: {', '.join(SCHEDULE_TYPES)}.")
        p.add_argument("schedule_expression", metavar="EXPR", help="The expression to check.")
        p.add_argument("--timezone", default="UTC", metavar="TZ", help="IANA time zone (default UTC).")

        p = add("cancel", "Cancel a queued or running execution (revokes its Celery task).")
        p.add_argument("execution", metavar="EXECUTION_ID", help="Execution id.")
        p.add_argument("--reason", default="", help="Why (recorded on the execution).")

        p = add("executions", "List a job's executions, newest first.")
        p.add_argument("job", **job_ref)
        p.add_argument("--limit", type=_positive_int, default=20, help="How many (default 20).")
        p.add_argument("--status", choices=Execution.Status.values, help="Only executions in this status.")

        add("init-defaults", "Create the default system jobs (existing ones are left alone).")

        p = add("sync-beat", "Compare every job with its beat PeriodicTask; exit 1 on drift unless repaired.")
        p.add_argument("--repair", action="store_true", help="Fix what differs.")

        add("tasks", "List the schedulable tasks a job of kind 'task' may name.")

    # -- dispatch ------------------------------------------------------------
    def handle(self, *args, subcommand: str, **options):
        handler = getattr(self, f"handle_{subcommand.replace('-', '_')}")
        try:
            handler(**options)
        except (ValidationError, ApplicationError) as exc:
            raise CommandError(error_message(exc)) from exc

    def out(self, text: str = "", style=None) -> None:
        self.stdout.write(style(text) if style else text)

    def table(self, rows, headers) -> None:
        self.out(tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True))

    def pairs(self, rows) -> None:
        self.out(tabulate(rows, tablefmt="plain", disable_numparse=True))

    @staticmethod
    def job(ref: str) -> Job:
        return selectors.job_get(user=SYSTEM, job_id=ref)

    # -- list / show ---------------------------------------------------------
    def handle_list(self, *, status, job_type, kind, search, enabled_only, overdue_only, page, size, **_):
        filters = {
            "status": status, "job_type": job_type, "kind": kind, "search": search,
            "is_enabled": True if enabled_only else None, "overdue": overdue_only,
        }
        paginator = Paginator(selectors.job_list(user=SYSTEM, filters=filters), size)
        try:
            jobs = paginator.page(page)
        except EmptyPage:
            raise CommandError(f"Page {page} does not exist: there are {paginator.num_pages} page(s) of {size}.") from None
        if paginator.count:
            self.table(
                [
                    [
                        job.pk, job.name, job.job_type, fmt_schedule(job), fmt_bool(job.is_enabled), job.status,
                        job.last_status or "-", fmt_dt(job.last_run_at), fmt_dt(job.next_run_at), fmt_runs(job),
                    ]
                    for job in jobs
                ],
                ["ID", "Name", "Type", "Schedule", "Enabled", "Status", "Last status", "Last run", "Next run", "Runs (success)"],
            )
        else:
            self.out("No jobs found.")
        self.out(f"\nPage {jobs.number} of {paginator.num_pages} ({paginator.count} job{'s' if paginator.count != 1 else ''})")

    def handle_show(self, *, job, **_):
        job = self.job(job)
        self.out(f"Job {job.pk}: {job.name}", self.style.MIGRATE_HEADING)
        self.pairs([
            ["Title", job.title or "-"],
            ["Description", job.description or "-"],
            ["UUID", job.uuid],
            ["Kind", job.kind],
            ["Type", job.job_type],
            ["Schedule", f"{fmt_schedule(job)} ({job.timezone})"],
            ["Schedule description", describe(job)],
            ["Task", job.task_name or "-"],
            ["Task args", json.dumps(job.task_args)],
            ["Task kwargs", json.dumps(job.task_kwargs)],
            ["Config", json.dumps(job.config)],
            ["Queue", job.queue],
            ["Priority", job.priority],
            ["Timeout", f"{job.timeout_seconds}s"],
            ["Max retries", f"{job.max_retries} (backoff {job.retry_backoff_seconds}s)"],
            ["Overlap policy", job.overlap_policy],
            ["Enabled", fmt_bool(job.is_enabled)],
            ["Status", job.status],
            ["Overdue", fmt_bool(selectors.job_is_overdue(job))],
            ["Owner", job.owner.get_username() if job.owner else "-"],
            ["Organization", job.organization or "-"],
            ["Beat task", job.periodic_task.name if job.periodic_task_id else f"- (expected {periodic_task_name(job)})"],
            ["Created", fmt_dt(job.created_at)],
            ["Updated", fmt_dt(job.updated_at)],
            ["Last run", fmt_dt(job.last_run_at)],
            ["Last status", job.last_status or "-"],
            ["Next run", fmt_dt(job.next_run_at)],
        ])

        self.out(f"\nNext {NEXT_RUNS} runs ({job.timezone})", self.style.MIGRATE_HEADING)
        if not job.is_schedulable:
            self.out(f"  none: the job is {'disabled' if not job.is_enabled else job.status}")
        else:
            schedule = job_schedule(job)
            runs = job_next_runs(job, NEXT_RUNS)
            for run in runs:
                self.out(f"  {fmt_dt(run, schedule.tz)}")
            if not runs:
                self.out("  none: a one-off schedule that has already fired")

        stats = selectors.job_statistics(job=job)
        self.out("\nStatistics", self.style.MIGRATE_HEADING)
        self.pairs([
            ["Runs", stats["total_runs"]],
            ["Successful", stats["successful_runs"]],
            ["Failed", stats["failed_runs"]],
            ["Cancelled", stats["cancelled_runs"]],
            ["Success rate", fmt_rate(stats["success_rate"])],
            ["Average duration", fmt_duration(stats["average_duration_seconds"])],
            ["p95 duration", fmt_duration(stats["p95_duration_seconds"])],
        ])

        self.out(f"\nLast {RECENT_EXECUTIONS} executions", self.style.MIGRATE_HEADING)
        self._executions_table(selectors.execution_list(user=SYSTEM, job=job)[:RECENT_EXECUTIONS])

    def _executions_table(self, executions) -> None:
        executions = list(executions)
        if not executions:
            self.out("  none yet")
            return
        self.table(
            [
                [
                    e.pk, e.status, e.trigger, e.attempt, fmt_dt(e.created_at), fmt_dt(e.started_at),
                    fmt_duration(e.duration_seconds), truncate(e.error if e.error and not e.output else e.output),
                ]
                for e in executions
            ],
            ["ID", "Status", "Trigger", "Attempt", "Created", "Started", "Duration", "Output"],
        )

    # -- create / update / delete ----------------------------------------------
    def handle_create(self, *, name, title, job_type, schedule_type, schedule_expression, task_name, description, queue,
                      priority, timeout, timezone, kind, task_args, task_kwargs, config, max_retries, overlap_policy,
                      is_enabled, **_):
        job = services.job_create(
            actor_label=ACTOR, name=name, title=title, job_type=job_type, schedule_type=schedule_type,
            schedule_expression=schedule_expression, task_name=task_name, description=description, queue=queue,
            priority=priority, timeout_seconds=timeout, timezone=timezone, kind=kind, task_args=task_args,
            task_kwargs=task_kwargs, config=config, max_retries=max_retries, overlap_policy=overlap_policy,
            is_enabled=is_enabled,
        )
        self.out(f"Created job '{job.name}' (id {job.pk}).", self.style.SUCCESS)
        self.out(f"  Schedule: {fmt_schedule(job)} ({job.timezone}): {describe(job)}")
        self.out(f"  Enabled:  {fmt_bool(job.is_enabled)}")
        self.out(f"  Next run: {fmt_dt(job.next_run_at)}")

    UPDATE_OPTIONS = (
        "name", "title", "description", "job_type", "schedule_type", "schedule_expression", "timezone", "task_name",
        "task_args", "task_kwargs", "config", "queue", "priority", "timeout_seconds", "max_retries", "overlap_policy",
        "is_enabled",
    )

    def handle_update(self, *, job, **options):
        job = self.job(job)
        data = {field: options[field] for field in self.UPDATE_OPTIONS if options.get(field) is not None}
        if not data:
            raise CommandError("Nothing to update: give at least one option (see `./manage jobs update --help`).")
        before = {field: getattr(job, field) for field in data}
        job = services.job_update(job=job, actor_label=ACTOR, data=data)
        changes = [f"{field}: {before[field]!r} -> {getattr(job, field)!r}" for field in data if before[field] != getattr(job, field)]
        if not changes:
            self.out(f"Job '{job.name}' (id {job.pk}) already had those values; nothing changed.")
            return
        self.out(f"Updated job '{job.name}' (id {job.pk}).", self.style.SUCCESS)
        for change in changes:
            self.out(f"  {change}")
        self.out(f"  Next run: {fmt_dt(job.next_run_at)}")

    def handle_delete(self, *, job, force, **_):
        job = self.job(job)
        if not force:
            count = selectors.execution_list(user=SYSTEM, job=job).count()
            question = f"Delete job '{job.name}' (id {job.pk}) and its {count} execution{'s' if count != 1 else ''}? [y/N] "
            if not self.confirm(question):
                raise CommandError(f"Not deleted: job '{job.name}' was kept (answer 'y' to confirm, or pass --force).")
        name, pk = job.name, job.pk
        services.job_delete(job=job, actor_label=ACTOR)
        self.out(f"Deleted job '{name}' (id {pk}).", self.style.SUCCESS)

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

    # -- runs ----------------------------------------------------------------
    def handle_execute(self, *, job, force, override_kwargs, wait, **_):
        job = self.job(job)
        # A broker outage is an ApplicationError (503) naming the execution, which
        # the service has recorded as an error: it is reported like any other.
        execution = services.job_execute(
            job=job, actor_label=ACTOR, trigger=Execution.Trigger.CLI, force=force, override_kwargs=override_kwargs,
        )
        self.out(f"Queued execution {execution.pk} of job '{job.name}' (id {job.pk}).", self.style.SUCCESS)
        self.out(f"  Celery task id: {execution.celery_task_id}")
        if wait is None:
            self.out(f"  Follow it with: ./manage jobs executions {job.pk} --limit 1")
            return
        self._wait_for(execution, wait)

    def _wait_for(self, execution: Execution, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            execution = selectors.execution_get(user=SYSTEM, execution_id=execution.pk)
            if not execution.is_active:
                break
            if time.monotonic() >= deadline:
                raise CommandError(
                    f"Execution {execution.pk} is still {execution.status} after {seconds:g}s; "
                    f"cancel it with `./manage jobs cancel {execution.pk}` or keep waiting with `./manage jobs executions`."
                )
            self.sleep(WAIT_POLL_SECONDS)
        style = self.style.SUCCESS if execution.status == Execution.Status.SUCCESS else self.style.ERROR
        self.out(f"Execution {execution.pk} finished: {execution.status}", style)
        self.pairs([
            ["  Worker", execution.worker or "-"],
            ["  Started", fmt_dt(execution.started_at)],
            ["  Finished", fmt_dt(execution.completed_at)],
            ["  Duration", fmt_duration(execution.duration_seconds)],
            ["  Output", execution.output or "-"],
            *([["  Error", execution.error]] if execution.error else []),
        ])
        if execution.status != Execution.Status.SUCCESS:
            raise CommandError(f"Execution {execution.pk} ended {execution.status}: {truncate(execution.error or execution.output, 200)}")

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(seconds)

    def handle_cancel(self, *, execution, reason, **_):
        execution = selectors.execution_get(user=SYSTEM, execution_id=execution)
        execution = services.execution_cancel(execution=execution, actor_label=ACTOR, reason=reason)
        self.out(f"Cancelled execution {execution.pk} of job '{execution.job.name}'.", self.style.SUCCESS)
        if execution.celery_task_id:
            self.out(f"  Revoked Celery task {execution.celery_task_id}")

    def handle_executions(self, *, job, limit, status, **_):
        job = self.job(job)
        qs = selectors.execution_list(user=SYSTEM, job=job, status=status)
        total = qs.count()
        self._executions_table(qs[:limit])
        self.out(f"\nShowing {min(limit, total)} of {total} execution{'s' if total != 1 else ''} of job '{job.name}' (id {job.pk}).")

    # -- state ---------------------------------------------------------------
    def handle_pause(self, *, job, **_):
        job = services.job_pause(job=self.job(job), actor_label=ACTOR)
        self.out(f"Paused job '{job.name}' (id {job.pk}): no scheduled runs until it is resumed.", self.style.SUCCESS)

    def handle_resume(self, *, job, **_):
        job = services.job_resume(job=self.job(job), actor_label=ACTOR)
        self.out(f"Resumed job '{job.name}' (id {job.pk}). Next run: {fmt_dt(job.next_run_at)}", self.style.SUCCESS)

    # -- reports ---------------------------------------------------------------
    def handle_overdue(self, **_):
        jobs = list(selectors.job_overdue_list(user=SYSTEM))
        if not jobs:
            self.out("No overdue jobs.")
            return
        now = timezone.now()
        self.table(
            [
                [job.pk, job.name, fmt_schedule(job), fmt_dt(job.next_run_at), fmt_duration((now - job.next_run_at).total_seconds()),
                 fmt_dt(job.last_run_at), job.last_status or "-"]
                for job in jobs
            ],
            ["ID", "Name", "Schedule", "Expected at", "Late by", "Last run", "Last status"],
        )
        self.out(f"\n{len(jobs)} overdue job{'s' if len(jobs) != 1 else ''}.")

    def handle_stats(self, **_):
        overview = selectors.job_stats_overview(user=SYSTEM)
        jobs = overview["jobs"]
        self.out("Jobs", self.style.MIGRATE_HEADING)
        self.table([[jobs[k] for k in ("total", "enabled", "disabled", "active", "paused", "overdue")]],
                   ["Total", "Enabled", "Disabled", "Active", "Paused", "Overdue"])

        def run_row(label: str, s: dict[str, Any]) -> list:
            return [label, s["total_runs"], s["successful_runs"], s["failed_runs"], s["cancelled_runs"],
                    fmt_rate(s["success_rate"]), fmt_duration(s["average_duration_seconds"]), fmt_duration(s["p95_duration_seconds"])]

        run_headers = ["Runs", "Successful", "Failed", "Cancelled", "Success rate", "Avg duration", "p95 duration"]
        executions = overview["executions"]
        self.out("\nExecutions", self.style.MIGRATE_HEADING)
        self.table([run_row("All time", executions), run_row("Last 24h", overview["last_24h"])], ["", *run_headers])
        self.out(f"Now queued: {executions['queued']}, running: {executions['running']}")

        self.out("\nBy job type", self.style.MIGRATE_HEADING)
        if overview["by_job_type"]:
            self.table(
                [[row["job_type"], row["jobs"], row["enabled"], *run_row("", row)[1:]] for row in overview["by_job_type"]],
                ["Type", "Jobs", "Enabled", *run_headers],
            )
        else:
            self.out("  no jobs yet")
        self.out(f"\nGenerated at {fmt_dt(overview['generated_at'])}")

    def handle_validate_schedule(self, *, schedule_type, schedule_expression, timezone, **_):
        self.out(f"Schedule: {schedule_type} {schedule_expression!r} ({timezone})")
        try:
            schedule = parse_schedule(schedule_type, schedule_expression, timezone)
        except ValidationError as exc:
            self.out("Valid: no", self.style.ERROR)
            raise CommandError(error_message(exc)) from exc
        self.out("Valid: yes", self.style.SUCCESS)
        self.out(f"Description: {schedule.describe()}")
        runs = schedule.next_runs(NEXT_RUNS)
        self.out(f"Next {len(runs)} run{'s' if len(runs) != 1 else ''} ({schedule.timezone_name}):")
        for run in runs:
            self.out(f"  {fmt_dt(run, schedule.tz)}  ({fmt_dt(run, dt_timezone.utc)})")

    def handle_tasks(self, **_):
        tasks = schedulable_tasks()
        if not tasks:
            self.out("No schedulable tasks are registered.")
            return
        self.table([[t.name, t.default_queue, t.description or "-"] for t in tasks.values()], ["Task", "Queue", "Description"])

    # -- maintenance -----------------------------------------------------------
    def handle_init_defaults(self, **_):
        try:
            from scheduling.defaults import jobs_init_defaults
        except ImportError as exc:
            raise CommandError(f"Default jobs are not available: {exc}") from exc
        kwargs = {"actor_label": ACTOR} if "actor_label" in inspect.signature(jobs_init_defaults).parameters else {}
        result = jobs_init_defaults(**kwargs)
        self._report_defaults(result)

    def _report_defaults(self, result) -> None:
        # The defaults module is owned elsewhere; accept the shapes it may return.
        if isinstance(result, dict):
            for key, value in result.items():
                items = value if isinstance(value, (list, tuple, set)) else [value]
                names = ", ".join(getattr(item, "name", str(item)) for item in items) or "none"
                self.out(f"{str(key).replace('_', ' ').capitalize()}: {names}")
        elif isinstance(result, (list, tuple)):
            for item in result:
                if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bool):
                    job, created = item
                    self.out(f"  {'created' if created else 'exists '}  {getattr(job, 'name', job)}")
                else:
                    self.out(f"  {getattr(item, 'name', item)}")
        elif result is not None:
            self.out(str(result))
        self.out("Default jobs initialised.", self.style.SUCCESS)

    def handle_sync_beat(self, *, repair, **_):
        report = beat_drift_check(repair=repair)
        names = dict(selectors.job_list(user=SYSTEM).filter(pk__in=report.missing + report.mismatched).values_list("pk", "name"))

        def jobs_line(ids: list[int]) -> str:
            return ", ".join(f"{names.get(pk, '?')} (id {pk})" for pk in ids)

        if report.clean:
            self.out("Beat is in sync: every job has a matching PeriodicTask and there are no orphans.", self.style.SUCCESS)
            return
        if report.missing:
            self.out(f"Missing PeriodicTask ({len(report.missing)}): {jobs_line(report.missing)}")
        if report.mismatched:
            self.out(f"Mismatched PeriodicTask ({len(report.mismatched)}): {jobs_line(report.mismatched)}")
        if report.orphans:
            self.out(f"Orphan PeriodicTasks ({len(report.orphans)}): {', '.join(report.orphans)}")
        if report.repaired:
            self.out("Repaired: beat now matches the jobs.", self.style.SUCCESS)
            return
        raise CommandError(
            f"Beat is out of sync ({len(report.missing)} missing, {len(report.mismatched)} mismatched, "
            f"{len(report.orphans)} orphans); run `./manage jobs sync-beat --repair` to fix it."
        )
