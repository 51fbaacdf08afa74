"""The ``jobs`` command's argument parser: subcommands, flags, help texts,
examples and the argument types that check flag values before any handler runs.

Only argparse lives here; scheduling.cli.handlers acts on what it parses.
"""
from __future__ import annotations

import argparse
import json

from scheduling.cli import code_parser, run_control_parser
from scheduling.executors import registered_kinds
from scheduling.models import Execution, Job
from scheduling.schedules import SCHEDULE_TYPES

DEFAULT_WAIT_SECONDS = 300.0

HELP = (
    "Manage scheduled jobs from the shell: list, show, create, update, delete, execute, pause, resume, "
    "overdue, stats, validate-schedule, cancel, executions, execution, init-defaults, sync-beat, tasks, "
    "completion, apply, export, backfill, calendars, pause-all, resume-all, maintenance, group-set, run-after. Jobs are addressed by id or by name. On a terminal tables fit its width (only free text "
    "is cut, with an ellipsis); piped or redirected, output is tab-separated, header first; read commands "
    "take --json (the API's shapes). `./manage jobs SUBCOMMAND --help` shows a subcommand's options, "
    "examples and exit codes."
)
COMMAND_EXAMPLES = [
    "./manage jobs list",
    "./manage jobs show 1",
    "./manage jobs list --json | jq '.items[].name'",
    "./manage jobs list | cut -f2",
    "./manage jobs execute nightly_cleanup --wait -v 2",
    "./manage jobs create --help",
]


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
# Subcommands
# ---------------------------------------------------------------------------
# Each subcommand's examples, one a line, as typed.
EXAMPLES: dict[str, str] = {
    "list": """\
./manage jobs list
./manage jobs list --json
./manage jobs list --status active
./manage jobs list --type system_health_check
./manage jobs list --enabled-only
./manage jobs list --overdue-only
./manage jobs list --page 2 --size 10
./manage jobs list | cut -f2          # names only (tab-separated when piped)""",
    "show": """\
./manage jobs show 1
./manage jobs show system_health_check
./manage jobs show 1 --json""",
    "create": """\
./manage jobs create system_backup "System Backup Job" database_maintenance daily "03:00" \\
    scheduling.database_maintenance --description "Daily system backup" \\
    --queue maintenance --priority 8 --timeout 7200 --enabled
./manage jobs create cleanup_every_30m "Cleanup" document_cleanup interval 30 scheduling.document_cleanup
./manage jobs create weekly_digest "Digest" user_activity_digest weekly "0:09:00" \\
    scheduling.user_activity_digest --timezone Europe/Paris --kwargs '{"days": 7}' --disabled""",
    "update": """\
./manage jobs update 1 --schedule "04:00"
./manage jobs update 1 --schedule-type cron --schedule "0 */6 * * *"
./manage jobs update 1 --priority 9
./manage jobs update 1 --enabled
./manage jobs update system_backup --disabled""",
    "delete": """\
./manage jobs delete 1            # asks for confirmation
./manage jobs delete 1 --force    # no question asked""",
    "execute": """\
./manage jobs execute 1
./manage jobs execute 1 --force
./manage jobs execute document_cleanup --kwargs '{"cleanup_level": "deep"}'
./manage jobs execute 1 --wait          # wait up to 300s for the outcome
./manage jobs execute 1 --wait 60""",
    "pause": """\
./manage jobs pause 1
./manage jobs pause system_health_check""",
    "resume": """\
./manage jobs resume 1""",
    "overdue": """\
./manage jobs overdue
./manage jobs overdue --json""",
    "stats": """\
./manage jobs stats
./manage jobs stats --json""",
    "validate-schedule": """\
./manage jobs validate-schedule interval 30
./manage jobs validate-schedule daily "09:30"
./manage jobs validate-schedule weekly "1:10:00"
./manage jobs validate-schedule daily "14:30" --timezone "America/New_York"
./manage jobs validate-schedule cron "0 2 * * 1"
""",
    "cancel": """\
./manage jobs cancel 42
./manage jobs cancel 42 --reason "wrong input"
""",
    "executions": """\
./manage jobs executions                     # every job's runs, newest first
./manage jobs executions --status running    # what is running right now
./manage jobs executions 1
./manage jobs executions system_health_check --limit 50 --status failed
./manage jobs executions --status failed --json""",
    "execution": """\
./manage jobs execution 42            # one run in full: times, worker, result, error, log
./manage jobs execution 42 --json""",
    "completion": """\
eval "$(./manage jobs completion bash)"     # in ~/.bashrc, from the project directory
eval "$(./manage jobs completion zsh)"      # in ~/.zshrc""",
    "init-defaults": """\
./manage jobs init-defaults""",
    "sync-beat": """\
./manage jobs sync-beat             # report drift; exit 1 if any
./manage jobs sync-beat --repair    # fix it""",
    "tasks": """\
./manage jobs tasks
./manage jobs tasks --json""",
}
NOTES = {
    "create": """schedule types and expressions:
  interval  "30" (minutes), or "1h 30m", "45s"
  daily     "HH:MM"           e.g. "14:30"
  weekly    "D:HH:MM"         e.g. "0:09:00" (0=Monday)
  monthly   "DD:HH:MM"        e.g. "1:08:00"
  cron      5 fields          e.g. "0 2 * * 1"
  once      ISO 8601 datetime e.g. "2030-01-31T09:00"

TASK_NAME must be a schedulable task; `./manage jobs tasks` lists them.""",
    "delete": "Without a yes (an answer other than y, no terminal, end of input) nothing is deleted: it says "
              "\"nothing deleted\" and exits 0.",
    "execute": "With --wait, Ctrl-C stops waiting (exit 130); the run goes on.",
}
EXIT_CODES = {
    "delete": {0: "deleted, or nothing deleted (the question was not answered yes)"},
    "execute": {1: "refused, or (with --wait) the run did not succeed in time"},
    "validate-schedule": {1: "the schedule is invalid (with --json too)"},
    "sync-beat": {1: "beat is out of sync (and --repair was not given)"},
}
# apply, export, backfill, calendars: scheduling.cli.code_parser
EXAMPLES.update(code_parser.EXAMPLES)
NOTES.update(code_parser.NOTES)
EXIT_CODES.update(code_parser.EXIT_CODES)
# pause-all, resume-all, maintenance: scheduling.cli.run_control_parser
EXAMPLES.update(run_control_parser.EXAMPLES)
NOTES.update(run_control_parser.NOTES)
EXIT_CODES.update(run_control_parser.EXIT_CODES)


# ---------------------------------------------------------------------------
# Tab completion (argcomplete): values read from the database when asked
# ---------------------------------------------------------------------------
def _complete(query):
    def completer(prefix: str, **_):
        try:
            return [str(value) for value in query() if str(value).startswith(prefix)]
        except Exception:  # no database yet, unmigrated...: complete nothing rather than print a traceback
            return []

    return completer


def _job_refs():
    rows = Job.objects.order_by("id").values_list("pk", "name")[:1000]
    return [name for _, name in rows] + [pk for pk, _ in rows]


complete_job = _complete(_job_refs)
complete_execution = _complete(lambda: Execution.objects.order_by("-id").values_list("pk", flat=True)[:50])
complete_active_execution = _complete(
    lambda: Execution.objects.filter(status__in=Execution.ACTIVE_STATUSES).order_by("-id").values_list("pk", flat=True)[:50]
)

READ_COMMANDS = ("list", "show", "executions", "execution", "overdue", "stats", "tasks", "validate-schedule", "maintenance")


def add_subcommands(add_parser) -> None:
    """One subcommand each, with its help, examples, notes and exit codes
    (``add_parser`` is jobsite.cli.command.CLICommand's)."""
    def add(name: str, help_text: str):
        return add_parser(name, help_text, examples=EXAMPLES[name].splitlines(), note=NOTES.get(name, ""),
                   exit_codes=EXIT_CODES.get(name))

    job_ref = {"metavar": "ID|NAME", "help": "Job id or unique name."}

    def job_arg(p, **kwargs):
        p.add_argument("job", **{**job_ref, **kwargs}).completer = complete_job

    p = add("list", "List jobs as a table, one page at a time.")
    p.add_argument("--status", choices=Job.State.values, help="Only jobs in this status.")
    p.add_argument("--type", dest="job_type", choices=Job.JobType.values, help="Only jobs of this job type.")
    p.add_argument("--kind", choices=registered_kinds(), help="Only jobs of this kind (executor).")
    p.add_argument("--search", help="Only jobs whose name, title or description contains this text.")
    p.add_argument("--enabled-only", action="store_true", help="Only enabled jobs.")
    p.add_argument("--overdue-only", action="store_true", help="Only overdue jobs.")
    p.add_argument("--page", type=_positive_int, default=1, help="Page number (default 1).")
    p.add_argument("--size", type=_positive_int, default=20, help="Jobs per page (default 20).")

    p = add("show", "Show one job: every field, its schedule, next runs, statistics and recent executions.")
    job_arg(p)

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
    p.add_argument("--kind", default="task", choices=registered_kinds(), help="Executor kind (default task).")
    p.add_argument("--args", dest="task_args", type=json_list, metavar="JSON", help="Positional task arguments as a JSON list.")
    p.add_argument("--kwargs", dest="task_kwargs", type=json_object, metavar="JSON", help="Task keyword arguments as a JSON object.")
    p.add_argument("--config", type=json_object, metavar="JSON", help="Executor settings as a JSON object (non-secret).")
    p.add_argument("--max-retries", type=int, default=0, metavar="N", help="Retries after a failed run, 0-20 (default 0).")
    p.add_argument("--overlap", dest="overlap_policy", choices=Job.OverlapPolicy.values, default=Job.OverlapPolicy.SKIP,
                   help="What to do when a run is due while one is going: skip (default), allow, queue (one waits "
                        "for it), replace (cancel it).")
    p.add_argument("--jitter", dest="jitter_seconds", type=int, default=0, metavar="SECONDS",
                   help="Start jitter: each scheduled run starts up to this many seconds after its due time (0-3600).")
    run_control_parser.add_job_limits(p)
    p.add_argument("--catch-up", dest="catch_up_policy", choices=Job.CatchUpPolicy.values, default=Job.CatchUpPolicy.ONCE,
                   help="Runs that fell due while beat was down: skip, once (default) or all.")
    enabled = p.add_mutually_exclusive_group()
    enabled.add_argument("--enabled", dest="is_enabled", action="store_true", default=True, help="Create it enabled (default).")
    enabled.add_argument("--disabled", dest="is_enabled", action="store_false", help="Create it disabled.")

    p = add("update", "Change a job; a schedule change re-syncs beat at once.")
    job_arg(p)
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
    p.add_argument("--overlap", dest="overlap_policy", choices=Job.OverlapPolicy.values,
                   help="skip, allow, queue (one run waits for the running one) or replace (cancel it).")
    p.add_argument("--jitter", dest="jitter_seconds", type=int, metavar="SECONDS",
                   help="Start jitter in seconds (0-3600; 0: on time).")
    run_control_parser.add_job_limits(p)
    p.add_argument("--catch-up", dest="catch_up_policy", choices=Job.CatchUpPolicy.values,
                   help="Runs that fell due while beat was down: skip, once or all.")
    enabled = p.add_mutually_exclusive_group()
    enabled.add_argument("--enabled", dest="is_enabled", action="store_const", const=True, help="Enable the job.")
    enabled.add_argument("--disabled", dest="is_enabled", action="store_const", const=False, help="Disable the job.")

    p = add("delete", "Delete a job, its beat schedule and its execution history.")
    job_arg(p)
    p.add_argument("--force", action="store_true", help="Do not ask for confirmation.")

    p = add("execute", "Run a job now (queues one execution).")
    job_arg(p)
    p.add_argument("--force", action="store_true", help="Run even if the job is disabled, paused or already running.")
    p.add_argument("--kwargs", dest="override_kwargs", type=json_object, metavar="JSON", help="Keyword arguments for this run only (JSON object).")
    p.add_argument("--wait", nargs="?", type=_positive_float, const=DEFAULT_WAIT_SECONDS, metavar="SECONDS",
                   help=f"Wait for the outcome (default up to {DEFAULT_WAIT_SECONDS:.0f}s); exit 1 unless it succeeds.")

    p = add("pause", "Pause a job: no scheduled runs until it is resumed.")
    job_arg(p)

    p = add("resume", "Resume (and enable) a paused job.")
    job_arg(p)

    add("overdue", "List enabled jobs whose expected run passed without starting.")
    add("stats", "Show statistics over all jobs and executions.")

    p = add("validate-schedule", "Check a schedule and show its next runs.")
    p.add_argument("schedule_type", metavar="TYPE", help=f"One of: {', '.join(SCHEDULE_TYPES)}.")
    p.add_argument("schedule_expression", metavar="EXPR", help="The expression to check.")
    p.add_argument("--timezone", default="UTC", metavar="TZ", help="IANA time zone (default UTC).")

    p = add("cancel", "Cancel a queued or running execution (revokes its Celery task).")
    p.add_argument("execution", metavar="EXECUTION_ID", help="Execution id.").completer = complete_active_execution
    p.add_argument("--reason", default="", help="Why (recorded on the execution).")

    p = add("executions", "List executions, newest first: one job's, or every job's when none is named.")
    job_arg(p, nargs="?", default=None, help="Job id or unique name (default: every job).")
    p.add_argument("--limit", type=_positive_int, default=20, help="How many (default 20).")
    p.add_argument("--status", choices=Execution.Status.values, help="Only executions in this status.")

    p = add("execution", "Show one execution in full: times, worker, parameters, result, error, traceback and log.")
    p.add_argument("execution", metavar="EXECUTION_ID", help="Execution id.").completer = complete_execution

    add("init-defaults", "Create the default system jobs (existing ones are left alone).")

    p = add("sync-beat", "Compare every job with its beat PeriodicTask; exit 1 on drift unless repaired.")
    p.add_argument("--repair", action="store_true", help="Fix what differs.")

    add("tasks", "List the schedulable tasks a job of kind 'task' may name.")

    p = add("completion", "Print the shell code that enables tab completion of `./manage jobs`.")
    p.add_argument("shell", choices=["bash", "zsh"], help="Your shell.")

    code_parser.add_subcommands(add_parser)  # apply, export, backfill
    run_control_parser.add_subcommands(add_parser)  # pause-all, resume-all, maintenance
