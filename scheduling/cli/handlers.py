"""What each ``jobs`` subcommand does: one function per subcommand, called with
the console and the parsed options. Each calls services (writes) or selectors
(reads, as SYSTEM: the shell user is the operator) and renders the answer.

A handler reports failure by raising CommandError (or a ValidationError /
ApplicationError, which the command turns into one): one line on stderr and
exit code 1.
"""
from __future__ import annotations

import itertools
import json as json_module
import time
from datetime import timedelta
from datetime import timezone as dt_timezone
from typing import Callable

from django.core.management.base import CommandError
from django.utils import timezone

from jobsite.cli.errors import Interrupted
from jobsite.cli.output import Console, fixed, number, styled, text, truncate
from jobsite.humanize import duration, relative
from jobsite.tenancy import SYSTEM
from scheduling import selectors, services
from scheduling.cli.refs import job_by_ref
from scheduling.beat import (
    beat_drift_check,
    job_next_runs,
    periodic_task_name,
    schedule_description,
    schedule_preview,
)
from scheduling.cli import code_handlers, run_control_handlers
from scheduling.cli.completion import completion_script
from scheduling.cli.rendering import (JOB_COLUMNS, RUN_COLUMNS, fmt_bool, fmt_description, fmt_dt, fmt_rate,
                                      fmt_schedule, fmt_schedule_words, job_row, plural, run_row, show_executions)
from scheduling.defaults import jobs_init_defaults
from scheduling.executors import schedulable_tasks
from scheduling.models import Execution, Job
from scheduling.pagination import count_rows, list_envelope, paginate
from scheduling.serializers import (
    ExecutionSerializer,
    JobSerializer,
    JobStatsOverviewSerializer,
    SchedulableTaskListSerializer,
    ScheduleValidationSerializer,
)

ACTOR = "cli"
NEXT_RUNS = 5
RECENT_EXECUTIONS = 5
WAIT_POLL_SECONDS = 0.5



def sleep(seconds: float) -> None:
    """Between polls of ``execute --wait`` (the tests replace it)."""
    time.sleep(seconds)


# ---------------------------------------------------------------------------
# list / show
# ---------------------------------------------------------------------------
def list_jobs(console: Console, *, status, job_type, kind, search, enabled_only, overdue_only, page, size, json=False,
              **_):
    filters = {
        "status": status, "job_type": job_type, "kind": kind, "search": search,
        "is_enabled": True if enabled_only else None, "overdue": overdue_only,
    }
    result = paginate(selectors.job_list(user=SYSTEM, filters=filters), page=page, size=size)
    pages = max(result.pages, 1)  # an empty list still has its (empty) page 1
    if result.is_past_end:
        raise CommandError(f"Page {page} does not exist: there are {pages} page(s) of {size}.")
    if json:  # GET /api/v1/jobs/'s page envelope
        console.json(result.envelope(JobSerializer(result.items, many=True).data))
        return
    if result.total:
        now = timezone.now()
        console.table([job_row(job, now) for job in result.items], JOB_COLUMNS)
    else:
        console.note("No jobs found.")
    console.note(f"Page {result.page} of {pages} ({plural(result.total, 'job')})")


def show_job(console: Console, *, job, json=False, **_):
    job = job_by_ref(job)
    if json:  # GET /api/v1/jobs/{id}
        console.json(JobSerializer(job).data)
        return
    console.heading(f"Job {job.pk}: {job.name}")
    console.pairs([
        ["Title", job.title or "-"],
        ["Description", job.description or "-"],
        ["UUID", job.uuid],
        ["Kind", job.kind],
        ["Type", job.job_type],
        ["Schedule", f"{fmt_schedule(job)} ({job.timezone})"],
        ["Schedule description", fmt_description(schedule_description(job))],
        ["Task", job.task_name or "-"],
        ["Task args", json_module.dumps(job.task_args)],
        ["Task kwargs", json_module.dumps(job.task_kwargs)],
        ["Config", json_module.dumps(job.config)],
        ["Queue", job.queue],
        ["Priority", job.priority],
        ["Timeout", f"{job.timeout_seconds}s"],
        ["Max retries", f"{job.max_retries} (backoff {job.retry_backoff_seconds}s)"],
        ["Overlap policy", job.overlap_policy],
        ["Start jitter", f"up to {job.jitter_seconds}s after the due time" if job.jitter_seconds else "none"],
        ["Enabled", styled(fmt_bool(job.is_enabled))],
        ["Status", styled(job.state)],
        ["Overdue", fmt_bool(selectors.job_is_overdue(job))],
        ["Owner", job.owner.get_username() if job.owner else "-"],
        ["Organization", job.organization or "-"],
        ["Beat task", job.periodic_task.name if job.periodic_task_id else (
            "manual: no schedule" if job.schedule_type == Job.ScheduleType.MANUAL
            else f"- (expected {periodic_task_name(job)})")],
        ["Created", fmt_dt(job.created_at)],
        ["Updated", fmt_dt(job.updated_at)],
        ["Last run", fmt_dt(job.last_finished_at)],  # the time of last_status's run
        ["Last status", styled(job.last_status or "-")],
        ["Next run", fmt_dt(job.next_run_at)],
    ])

    # The job's own next runs, as beat will fire them (from beat's last run of
    # an interval job), not a fresh preview of its schedule.
    console.heading(f"\nNext {NEXT_RUNS} runs ({job.timezone})")
    if not job.is_schedulable:
        console.out(f"  none: the job is {job.state}")
    else:
        runs = job_next_runs(job, NEXT_RUNS)
        for run in runs:
            window = (f" (starts by {fmt_dt(run + timedelta(seconds=job.jitter_seconds), run.tzinfo)}: "
                      f"jitter)" if job.jitter_seconds else "")
            console.out(f"  {fmt_dt(run, run.tzinfo)}{window}")  # runs are in the job's zone
        if not runs:
            console.out("  none: a manual job runs only when triggered" if job.schedule_type == Job.ScheduleType.MANUAL
                        else "  none: a one-off schedule that has already fired")

    stats = selectors.job_statistics(job=job)
    console.heading("\nStatistics")
    console.pairs([
        ["Runs", stats["total_runs"]],
        ["Successful", stats["successful_runs"]],
        ["Failed", stats["failed_runs"]],
        ["Cancelled", stats["cancelled_runs"]],
        ["Success rate", fmt_rate(stats["success_rate"])],
        ["Average duration", duration(stats["average_duration_seconds"])],
        ["p95 duration", duration(stats["p95_duration_seconds"])],
    ])

    console.heading(f"\nLast {RECENT_EXECUTIONS} executions")
    show_executions(console, selectors.execution_list(user=SYSTEM, job=job)[:RECENT_EXECUTIONS])


# ---------------------------------------------------------------------------
# create / update / delete
# ---------------------------------------------------------------------------
def create_job(console: Console, *, name, title, job_type, schedule_type, schedule_expression, task_name, description,
               queue, priority, timeout, timezone, kind, task_args, task_kwargs, config, max_retries, overlap_policy,
               catch_up_policy, is_enabled, jitter_seconds=0, max_concurrent_runs=None, concurrency_group=None, **_):
    job = services.job_create(
        actor_label=ACTOR, name=name, title=title, job_type=job_type, schedule_type=schedule_type,
        schedule_expression=schedule_expression, task_name=task_name, description=description, queue=queue,
        priority=priority, timeout_seconds=timeout, timezone=timezone, kind=kind, task_args=task_args,
        task_kwargs=task_kwargs, config=config, max_retries=max_retries, overlap_policy=overlap_policy,
        catch_up_policy=catch_up_policy, is_enabled=is_enabled, jitter_seconds=jitter_seconds,
        max_concurrent_runs=max_concurrent_runs, concurrency_group=concurrency_group,
    )
    console.success(f"Created job '{job.name}' (id {job.pk}).")
    console.out(f"  Schedule: {fmt_schedule(job)} ({job.timezone}): {fmt_description(schedule_description(job))}")
    console.out(f"  Enabled:  {fmt_bool(job.is_enabled)}")
    console.out(f"  Next run: {fmt_dt(job.next_run_at)}")


def update_job(console: Console, *, job, **options):
    job = job_by_ref(job)
    # the options of `update` are named after the Job fields they set (dest = field name)
    data = {field: options[field] for field in Job.EDITABLE_FIELDS if options.get(field) is not None}
    if not data:
        raise CommandError("Nothing to update: give at least one option (see `./manage jobs update --help`).")
    before = {field: getattr(job, field) for field in data}
    job = services.job_update(job=job, actor_label=ACTOR, data=data)
    changes = [f"{field}: {before[field]!r} -> {getattr(job, field)!r}" for field in data if before[field] != getattr(job, field)]
    if not changes:
        console.out(f"Job '{job.name}' (id {job.pk}) already had those values; nothing changed.")
        return
    console.success(f"Updated job '{job.name}' (id {job.pk}).")
    for change in changes:
        console.out(f"  {change}")
    console.out(f"  Next run: {fmt_dt(job.next_run_at)}")


def delete_job(console: Console, *, job, force, **_):
    job = job_by_ref(job)
    if not force:
        count, estimated = count_rows(selectors.execution_list(user=SYSTEM, job=job))
        runs = f"{'about ' if estimated else ''}{plural(count, 'execution')}"
        if not console.confirm(f"Delete job '{job.name}' (id {job.pk}) and its {runs}? [y/N] "):
            console.out(f"Nothing deleted: job '{job.name}' was kept (answer y to delete, or pass --force).")
            return
    name, pk = job.name, job.pk
    services.job_delete(job=job, actor_label=ACTOR)
    console.success(f"Deleted job '{name}' (id {pk}).")


# ---------------------------------------------------------------------------
# runs
# ---------------------------------------------------------------------------
def execute_job(console: Console, *, job, force, override_kwargs, wait, **_):
    job = job_by_ref(job)
    # A broker outage is an ApplicationError (503) naming the execution, which
    # the service has recorded as an error: it is reported like any other.
    execution = services.job_execute(
        job=job, actor_label=ACTOR, trigger=Execution.Trigger.CLI, force=force, override_kwargs=override_kwargs,
    )
    console.success(f"Queued execution {execution.pk} of job '{job.name}' (id {job.pk}).")
    console.out(f"  Celery task id: {execution.celery_task_id}")
    if wait is None:
        console.out(f"  Follow it with: ./manage jobs execution {execution.pk}")
        return
    _wait_for(console, execution, wait)


SPINNER = "|/-\\"


def _wait_for(console: Console, execution: Execution, seconds: float) -> None:
    """Poll until the run ends, with a progress line (the status and the
    elapsed time; on a terminal redrawn in place, elsewhere a line when the
    status changes and every 30 s). Ctrl-C stops the waiting, not the run:
    one line starting "interrupted", exit 130."""
    started = time.monotonic()
    deadline = started + seconds
    pk = execution.pk
    line = console.progress(plain_every=30.0)
    try:
        for tick in itertools.count():
            execution = selectors.execution_get(user=SYSTEM, execution_id=pk)
            if not execution.is_active:
                break
            if time.monotonic() >= deadline:
                line.finish()
                raise CommandError(
                    f"Execution {pk} is still {execution.status} after {seconds:g}s (--wait); "
                    f"cancel it with `./manage jobs cancel {pk}` or follow it with `./manage jobs execution {pk}`."
                )
            elapsed = duration(time.monotonic() - started)
            spin = f"{SPINNER[tick % len(SPINNER)]} " if console.is_terminal else ""
            line.update(f"{spin}Execution {pk}: {execution.status}", [f"{elapsed} elapsed",
                        "(Ctrl-C stops waiting; the run goes on)"], key=execution.status)
            sleep(WAIT_POLL_SECONDS)
    except KeyboardInterrupt:
        line.finish()
        status = Execution.objects.filter(pk=pk).values_list("status", flat=True).first() or execution.status
        raise Interrupted(
            f"stopped waiting after {duration(time.monotonic() - started)}; execution {pk} goes on ({status}). "
            f"Cancel it with `./manage jobs cancel {pk}`, follow it with `./manage jobs execution {pk}`."
        ) from None
    line.finish()
    succeeded = execution.status == Execution.Status.SUCCESS
    (console.success if succeeded else console.error)(f"Execution {execution.pk} finished: {execution.status}")
    console.pairs([
        ["Worker", execution.worker or "-"],
        ["Started", fmt_dt(execution.started_at)],
        ["Finished", fmt_dt(execution.completed_at)],
        ["Duration", duration(execution.duration_seconds)],
        ["Output", execution.output or "-"],
        *([["Error", execution.error]] if execution.error else []),
    ], indent=2)
    if not succeeded:
        raise CommandError(f"Execution {execution.pk} ended {execution.status}: {truncate(execution.error or execution.output, 200)}")


def cancel_execution(console: Console, *, execution, reason, **_):
    execution = selectors.execution_get(user=SYSTEM, execution_id=execution)
    execution = services.execution_cancel(execution=execution, actor_label=ACTOR, reason=reason)
    console.success(f"Cancelled execution {execution.pk} of job '{execution.job.name}'.")
    if execution.celery_task_id:
        console.out(f"  Revoked Celery task {execution.celery_task_id}")


def list_executions(console: Console, *, job, limit, status, json=False, **_):
    job = job_by_ref(job) if job is not None else None
    executions = selectors.execution_list(user=SYSTEM, job=job, status=status)
    total, estimated = count_rows(executions)  # a million runs are not counted one by one
    shown = list(executions[:limit])
    if json:
        console.json({**list_envelope(ExecutionSerializer(shown, many=True).data, total=total),
                      **({"total_estimated": True} if estimated else {})})
        return
    show_executions(console, shown, with_job=job is None)
    where = f"of job '{job.name}' (id {job.pk})" if job is not None else "across all jobs"
    status_text = f" {status}" if status else ""
    console.note(f"Showing {len(shown)} of {'about ' if estimated else ''}{total}{status_text} "
                 f"{'execution' if total == 1 else 'executions'} {where}.")


def show_execution(console: Console, *, execution, json=False, **_):
    execution = selectors.execution_get(user=SYSTEM, execution_id=execution)
    if json:  # GET /api/v1/executions/{id}
        console.json(ExecutionSerializer(execution).data)
        return
    e = execution
    console.heading(f"Execution {e.pk} of job '{e.job.name}' (id {e.job_id})")
    console.pairs([
        ["Status", styled(e.status)],
        ["Trigger", e.trigger + (f" by {e.triggered_by.get_username()}" if e.triggered_by_id else "")],
        ["Attempt", e.attempt],
        ["Retry of", e.retry_of_id or "-"],
        ["Retried by", ", ".join(str(pk) for pk in e.retries.values_list("pk", flat=True)) or "-"],
        ["Celery task id", e.celery_task_id or "-"],
        ["Worker", e.worker or "-"],
        ["Scheduled for", fmt_dt(e.scheduled_for)],
        ["Created", fmt_dt(e.created_at)],
        ["Started", fmt_dt(e.started_at)],
        ["Finished", fmt_dt(e.completed_at)],
        ["Duration", duration(e.duration_seconds)],
        ["Parameters", json_module.dumps(e.override_kwargs) if e.override_kwargs else "-"],
        ["Output", e.output or "-"],
        ["Error", e.error or "-"],
        ["Batch", e.batch_id or "-"],
    ])
    if e.result is not None:
        console.block("\nResult", json_module.dumps(e.result, indent=2, default=str))
    if e.traceback:
        console.block("\nTraceback", e.traceback)
    if e.log:
        console.block("\nLog", e.log)
    if e.is_active:
        console.out(f"\nStill {e.status}: cancel it with `./manage jobs cancel {e.pk}`.")


# ---------------------------------------------------------------------------
# state
# ---------------------------------------------------------------------------
def pause_job(console: Console, *, job, **_):
    job = services.job_pause(job=job_by_ref(job), actor_label=ACTOR)
    console.success(f"Paused job '{job.name}' (id {job.pk}): no scheduled runs until it is resumed.")


def resume_job(console: Console, *, job, **_):
    job = services.job_resume(job=job_by_ref(job), actor_label=ACTOR)
    console.success(f"Resumed job '{job.name}' (id {job.pk}). Next run: {fmt_dt(job.next_run_at)}")


# ---------------------------------------------------------------------------
# reports
# ---------------------------------------------------------------------------
def list_overdue_jobs(console: Console, json=False, **_):
    jobs = list(selectors.job_overdue_list(user=SYSTEM))
    if json:  # GET /api/v1/jobs/overdue/list
        console.json(list_envelope(JobSerializer(jobs, many=True).data))
        return
    if not jobs:
        console.note("No overdue jobs.")
        return
    now = timezone.now()
    since = {job.pk: selectors.job_overdue_since(job, now) or now for job in jobs}
    console.table(
        [
            [job.pk, job.name, fmt_schedule_words(job), fmt_dt(since[job.pk]),
             duration((now - since[job.pk]).total_seconds()), relative(job.last_finished_at, now),
             styled(job.last_status or "-")]
            for job in jobs
        ],
        [fixed("ID"), fixed("Name"), text("Schedule"), fixed("Expected at"), number("Late by"),
         "Last run", "Last status"],
    )
    console.note(f"{plural(len(jobs), 'overdue job')}.")


def show_stats(console: Console, json=False, **_):
    overview = selectors.job_stats_overview(user=SYSTEM)
    if json:  # GET /api/v1/jobs/stats/overview
        console.json(JobStatsOverviewSerializer(overview).data)
        return
    jobs = overview["jobs"]
    console.heading("Jobs")
    console.table([[jobs[k] for k in ("total", "enabled", "disabled", "active", "paused", "overdue")]],
                  [number(header) for header in ("Total", "Enabled", "Disabled", "Active", "Paused", "Overdue")])

    executions = overview["executions"]
    console.heading("\nExecutions")
    console.table([run_row("All time", executions), run_row("Last 24h", overview["last_24h"])], [fixed("Period"), *RUN_COLUMNS])
    console.out(f"Now queued: {executions['queued']}, running: {executions['running']}")

    console.heading("\nBy job type")
    if overview["by_job_type"]:
        console.table(
            [[row["job_type"], row["jobs"], row["enabled"], *run_row("", row)[1:]] for row in overview["by_job_type"]],
            [fixed("Type"), number("Jobs"), number("Enabled"), *RUN_COLUMNS],
        )
    else:
        console.out("  no jobs yet")
    console.out(f"\nGenerated at {fmt_dt(overview['generated_at'])}")


def validate_schedule(console: Console, *, schedule_type, schedule_expression, timezone, json=False, **_):
    preview = schedule_preview(schedule_type, schedule_expression, timezone, count=NEXT_RUNS)
    if json:  # POST /api/v1/jobs/validate-schedule; an invalid schedule still exits 1
        shown = dict(preview)
        if shown["valid"]:
            shown["next_runs"] = [run.isoformat() for run in shown["next_runs"]]
        console.json(ScheduleValidationSerializer(shown).data)
        if not preview["valid"]:
            raise CommandError(preview["error"])
        return
    console.out(f"Schedule: {schedule_type} {schedule_expression!r} ({timezone})")
    if not preview["valid"]:
        console.error("Valid: no")
        raise CommandError(preview["error"])
    console.success("Valid: yes")
    console.out(f"Description: {fmt_description(preview['description'])}")
    runs = preview["next_runs"]
    console.out(f"Next {plural(len(runs), 'run')} ({preview['timezone']}):")
    for run in runs:
        console.out(f"  {fmt_dt(run, run.tzinfo)}  ({fmt_dt(run, dt_timezone.utc)})")
    if not runs:  # only a manual schedule has none (a past one-off is invalid)
        console.out("  none: runs only when triggered")


def list_tasks(console: Console, json=False, **_):
    tasks = schedulable_tasks()
    if json:  # GET /api/v1/jobs/tasks
        console.json(SchedulableTaskListSerializer(list_envelope(list(tasks.values()))).data)
        return
    if not tasks:
        console.out("No schedulable tasks are registered.")
        return
    console.table([[t.name, t.default_queue, t.description or "-"] for t in tasks.values()],
                  [fixed("Task"), fixed("Queue"), text("Description")])


# ---------------------------------------------------------------------------
# maintenance
# ---------------------------------------------------------------------------
def init_defaults(console: Console, **_):
    for job, created in jobs_init_defaults(actor_label=ACTOR):
        console.out(f"  {'created' if created else 'exists '}  {job.name}")
    console.success("Default jobs initialised.")


def sync_beat(console: Console, *, repair, **_):
    report = beat_drift_check(repair=repair)
    names = dict(selectors.job_list(user=SYSTEM).filter(pk__in=report.missing + report.mismatched).values_list("pk", "name"))

    def jobs_line(ids: list[int]) -> str:
        return ", ".join(f"{names.get(pk, '?')} (id {pk})" for pk in ids)

    if report.clean:
        console.success("Beat is in sync: every job has a matching PeriodicTask and there are no orphans.")
        return
    if report.missing:
        console.out(f"Missing PeriodicTask ({len(report.missing)}): {jobs_line(report.missing)}")
    if report.mismatched:
        console.out(f"Mismatched PeriodicTask ({len(report.mismatched)}): {jobs_line(report.mismatched)}")
    if report.orphans:
        console.out(f"Orphan PeriodicTasks ({len(report.orphans)}): {', '.join(report.orphans)}")
    if report.repaired:
        console.success("Repaired: beat now matches the jobs.")
        return
    raise CommandError(
        f"Beat is out of sync ({len(report.missing)} missing, {len(report.mismatched)} mismatched, "
        f"{len(report.orphans)} orphans); run `./manage jobs sync-beat --repair` to fix it."
    )


def shell_completion(console: Console, *, shell, **_):
    console.write(completion_script(shell))


# Subcommand name (as the parser spells it) → handler.
HANDLERS: dict[str, Callable[..., None]] = {
    "list": list_jobs,
    "show": show_job,
    "create": create_job,
    "update": update_job,
    "delete": delete_job,
    "execute": execute_job,
    "pause": pause_job,
    "resume": resume_job,
    "overdue": list_overdue_jobs,
    "stats": show_stats,
    "validate-schedule": validate_schedule,
    "cancel": cancel_execution,
    "executions": list_executions,
    "execution": show_execution,
    "init-defaults": init_defaults,
    "sync-beat": sync_beat,
    "tasks": list_tasks,
    "completion": shell_completion,
    **code_handlers.HANDLERS,  # apply, export, backfill
    **run_control_handlers.HANDLERS,  # pause-all, resume-all, maintenance
}
