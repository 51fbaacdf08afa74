"""Services: the only code that writes Jobs and Executions and talks to Celery/beat.

Every service is keyword-only and atomic; the Job row and its beat
PeriodicTask change in the same transaction, and Celery messages are sent on
commit so a worker never sees a row that is not there yet.
"""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import re
import threading
import uuid
from collections import OrderedDict
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any, NamedTuple, Sequence

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from jobsite.crypto import secrets_decrypt, secrets_encrypt
from jobsite.db import (
    InsertedPk,
    PkLookup,
    create_row,
    create_rows_if_updated,
    id_batches,
    insert_rows,
    update_row,
    update_row_then,
)
from jobsite.exceptions import ApplicationError, Conflict
from scheduling import audit
from scheduling.errors import ErrorCode
from scheduling.beat import celery_priority, job_next_runs, job_schedule, periodic_task_delete, periodic_task_sync
from scheduling.executors import DEFAULT_KIND, executor_for, registered_kinds
from scheduling.models import AuditLog, Execution, Job
from scheduling.schedules import parse_schedule
from scheduling.signals import execution_finished

logger = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")
# /api/v1/jobs/<these> are routes, so a job of that name could not be addressed by name.
RESERVED_NAMES = frozenset({"tasks", "overdue", "stats", "validate-schedule"})
MAX_DESCRIPTION_CHARS = 10_000
MAX_JSON_FIELD_BYTES = 64 * 1024


MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
MAX_BACKOFF_SECONDS = 3600  # retries are held by the worker: keep them under the visibility timeout


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------
def job_validate(job: Job) -> None:
    """Raise ValidationError (a field → messages dict) if ``job`` may not be saved.

    The core checks what every job has; the job's executor checks its kind's
    own settings (task name and arguments, config, queue)."""
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if not job.name or not NAME_RE.match(job.name) or len(job.name) > 200:
        add("name", "Use 1-200 letters, digits and _ . : @ - (starting with a letter or digit).")
    elif job.name.isdigit():
        add("name", "A name of digits only would read as a job id; add a letter.")
    elif job.name in RESERVED_NAMES:
        add("name", f"'{job.name}' is a route of the jobs API (/api/v1/jobs/{job.name}); choose another name.")
    if len(job.title or "") > 255:
        add("title", "At most 255 characters.")
    if len(job.description or "") > MAX_DESCRIPTION_CHARS:
        add("description", f"At most {MAX_DESCRIPTION_CHARS} characters.")
    for field in ("task_args", "task_kwargs", "config"):
        if len(json.dumps(getattr(job, field), default=str)) > MAX_JSON_FIELD_BYTES:
            add(field, f"At most {MAX_JSON_FIELD_BYTES // 1024} KiB of JSON.")
    if job.kind not in registered_kinds():
        add("kind", f"Unknown job kind '{job.kind}'. Use one of: {', '.join(registered_kinds())}.")
    else:
        try:
            executor_for(job.kind).validate(job)
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                for message in messages:
                    add(field, message)
    if job.job_type not in Job.JobType.values:
        add("job_type", f"Unknown job type '{job.job_type}'. Use one of: {', '.join(Job.JobType.values)}.")
    try:
        parse_schedule(job.schedule_type, job.schedule_expression, job.timezone)
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            for message in messages:
                add(field, message)
    if not isinstance(job.priority, int) or not 0 <= job.priority <= 9:
        add("priority", "Priority must be an integer from 0 (lowest) to 9 (highest).")
    if not isinstance(job.timeout_seconds, int) or not 1 <= job.timeout_seconds <= MAX_TIMEOUT_SECONDS:
        add("timeout_seconds", f"Timeout must be from 1 to {MAX_TIMEOUT_SECONDS} seconds (7 days).")
    if not isinstance(job.retry_backoff_seconds, int) or not 0 <= job.retry_backoff_seconds <= MAX_BACKOFF_SECONDS:
        add("retry_backoff_seconds", f"Backoff must be from 0 to {MAX_BACKOFF_SECONDS} seconds.")
    if not isinstance(job.max_retries, int) or not 0 <= job.max_retries <= 20:
        add("max_retries", "Retries must be an integer from 0 to 20.")
    if not isinstance(job.task_args, list):
        add("task_args", "Must be a JSON list.")
    if not isinstance(job.task_kwargs, dict):
        add("task_kwargs", "Must be a JSON object.")
    if not isinstance(job.config, dict):
        add("config", "Must be a JSON object.")
    if job.overlap_policy not in Job.OverlapPolicy.values:
        add("overlap_policy", f"Use one of: {', '.join(Job.OverlapPolicy.values)}.")
    if job.catch_up_policy not in Job.CatchUpPolicy.values:
        add("catch_up_policy", f"Use one of: {', '.join(Job.CatchUpPolicy.values)}.")
    if errors:
        raise ValidationError(errors)


def _sync_schedule(job: Job) -> None:
    """Write the job's PeriodicTask, then its next run as beat will fire it."""
    periodic_task_sync(job)
    runs = job_next_runs(job, 1)
    job.next_run_at = runs[0] if runs else None
    Job.objects.filter(pk=job.pk).update(next_run_at=job.next_run_at)


def _save_unique(job: Job, **kwargs) -> None:
    try:
        with transaction.atomic():
            job.save(**kwargs)
    except IntegrityError:
        if Job.objects.exclude(pk=job.pk).filter(name=job.name).exists():
            raise Conflict(f"A job named '{job.name}' already exists.", code=ErrorCode.JOB_NAME_TAKEN) from None
        raise


# ---------------------------------------------------------------------------
# Jobs
# ---------------------------------------------------------------------------
@transaction.atomic
def job_create(
    *,
    actor=None,
    actor_label: str = "",
    name: str,
    schedule_type: str,
    schedule_expression: str = "",
    kind: str = DEFAULT_KIND,
    job_type: str = Job.JobType.CUSTOM,
    title: str = "",
    description: str = "",
    timezone: str = "UTC",
    task_name: str = "",
    task_args: list | None = None,
    task_kwargs: dict | None = None,
    config: dict | None = None,
    secrets: dict[str, str] | None = None,
    queue: str = "default",
    priority: int = 5,
    timeout_seconds: int = 3600,
    max_retries: int = 0,
    retry_backoff_seconds: int = 60,
    overlap_policy: str = Job.OverlapPolicy.SKIP,
    catch_up_policy: str = Job.CatchUpPolicy.ONCE,
    is_enabled: bool = True,
    owner=None,
    organization=None,
) -> Job:
    """Create a job and its beat PeriodicTask (disabled unless the job is enabled)."""
    job = Job(
        name=name, title=title or name, description=description, kind=kind, job_type=job_type,
        schedule_type=schedule_type, schedule_expression=str(schedule_expression).strip(), timezone=timezone or "UTC",
        task_name=task_name or "", task_args=task_args if task_args is not None else [],
        task_kwargs=task_kwargs if task_kwargs is not None else {}, config=config or {},
        secrets=secrets_encrypt(secrets or {}),
        queue=queue, priority=priority, timeout_seconds=timeout_seconds, max_retries=max_retries,
        retry_backoff_seconds=retry_backoff_seconds, overlap_policy=overlap_policy, catch_up_policy=catch_up_policy,
        is_enabled=is_enabled,
        owner=owner if owner is not None else (actor if getattr(actor, "is_authenticated", False) else None),
        organization=organization,
    )
    job_validate(job)
    _save_unique(job)
    _sync_schedule(job)
    audit.record(actor=actor, actor_label=actor_label, action="create", obj=job, changes=audit.job_snapshot(job))
    return job


@transaction.atomic
def job_update(*, job: Job, actor=None, actor_label: str = "", data: dict[str, Any]) -> Job:
    """Apply ``data`` (a subset of Job.EDITABLE_FIELDS); schedule changes re-sync beat."""
    unknown = sorted(set(data) - set(Job.EDITABLE_FIELDS))
    if unknown:
        raise ValidationError({field: ["This field cannot be changed."] for field in unknown})
    job = Job.objects.select_for_update().get(pk=job.pk)
    before = audit.job_snapshot(job)
    for field, value in data.items():
        setattr(job, field, value)
    if "schedule_expression" in data:
        job.schedule_expression = str(job.schedule_expression).strip()
    job_validate(job)
    _save_unique(job)
    _sync_schedule(job)
    changes = audit.diff(before, audit.job_snapshot(job))
    if changes:
        audit.record(actor=actor, actor_label=actor_label, action="update", obj=job, changes=changes)
    return job


def job_ensure_manual(
    *, name: str, kind: str, title: str = "", description: str = "", queue: str = "default",
    timeout_seconds: int = 3600, max_retries: int = 0, config: dict | None = None,
) -> Job:
    """The manual job (no schedule) that a facade's one-off work runs as,
    created on first use. A bulk upload, say, is one Execution of such a job:
    it gets the core's whole run lifecycle (claim, finish, cancel by revoking
    its task id, reap-lost, timeouts, retries) and no copy of it. Operators
    tune queue, timeout and retries on the job like on any other."""
    job = Job.objects.filter(name=name).first()
    if job is not None:
        return job
    try:
        return job_create(
            actor_label="system", name=name, kind=kind, title=title, description=description,
            schedule_type=Job.ScheduleType.MANUAL, queue=queue, timeout_seconds=timeout_seconds,
            max_retries=max_retries, config=config, overlap_policy=Job.OverlapPolicy.ALLOW,
        )
    except Conflict:  # created meanwhile by a concurrent first use
        return Job.objects.get(name=name)


def job_secrets(job: Job) -> dict[str, str]:
    """The job's decrypted credentials, for its executor only — never for display."""
    return secrets_decrypt(job.secrets)


@transaction.atomic
def job_set_secrets(*, job: Job, secrets: dict[str, str], actor=None, actor_label: str = "") -> Job:
    """Replace the job's credentials (stored encrypted; the audit log names only the keys)."""
    if not isinstance(secrets, dict) or not all(isinstance(v, str) for v in secrets.values()):
        raise ValidationError({"secrets": ["Must be an object of string values."]})
    job.secrets = secrets_encrypt(secrets)
    job.save(update_fields=["secrets", "updated_at"])
    audit.record(actor=actor, actor_label=actor_label, action="update", obj=job,
                 changes={"secrets": sorted(secrets)})
    return job


@transaction.atomic
def job_delete(*, job: Job, actor=None, actor_label: str = "") -> None:
    """Delete the job, its PeriodicTask and its history; revoke runs still going."""
    active = list(job.executions.filter(status__in=Execution.ACTIVE_STATUSES).exclude(celery_task_id=None))
    for execution in active:
        execution_cancel(execution=execution, actor=actor, actor_label=actor_label, reason="job deleted")
    audit.record(actor=actor, actor_label=actor_label, action="delete", obj=job, changes=audit.job_snapshot(job))
    periodic_task_delete(job)
    job.delete()


def _set_state(job: Job, *, actor, actor_label: str, action: str, **values) -> Job:
    job = Job.objects.select_for_update().get(pk=job.pk)
    before = audit.job_snapshot(job)
    for field, value in values.items():
        setattr(job, field, value)
    if job.is_schedulable and job.schedule_type == Job.ScheduleType.ONCE and not job_schedule(job).next_runs(1):
        raise Conflict(
            f"Job '{job.name}' ran once at {job.schedule_expression} and that time has passed; "
            "give it a new time (update schedule_expression) to run it again.",
            code=ErrorCode.ONCE_ALREADY_FIRED,
        )
    job.save()
    _sync_schedule(job)
    audit.record(actor=actor, actor_label=actor_label, action=action, obj=job, changes=audit.diff(before, audit.job_snapshot(job)))
    return job


@transaction.atomic
def job_pause(*, job: Job, actor=None, actor_label: str = "") -> Job:
    """Stop scheduled runs (the PeriodicTask stays, disabled). Manual runs still need ``force``."""
    return _set_state(job, actor=actor, actor_label=actor_label, action="pause", status=Job.Status.PAUSED)


@transaction.atomic
def job_resume(*, job: Job, actor=None, actor_label: str = "") -> Job:
    """Resume scheduled runs of a paused job (and enable it)."""
    return _set_state(job, actor=actor, actor_label=actor_label, action="resume", status=Job.Status.ACTIVE, is_enabled=True)


@transaction.atomic
def job_set_enabled(*, job: Job, enabled: bool, actor=None, actor_label: str = "") -> Job:
    """Enable or disable a job (seed 000 activate/deactivate)."""
    action = "resume" if enabled else "pause"
    values = {"is_enabled": enabled}
    if enabled:
        values["status"] = Job.Status.ACTIVE
    return _set_state(job, actor=actor, actor_label=actor_label, action=action, **values)


# ---------------------------------------------------------------------------
# Executions
# ---------------------------------------------------------------------------
def _send_execution(execution: Execution, job: Job, *, countdown: float | None = None) -> None:
    """Send the execution's Celery task (after commit) under its pre-assigned
    task id; a broker that can't be reached answers 503 (the execution is
    then ``error``, "Not queued")."""
    _send_executions([(execution, job)], countdown=countdown, raise_unreachable=True)


def executions_send(pairs: list[tuple[Execution, Job]]) -> None:
    """Send the messages of executions already recorded (committed): what
    ``jobs_dispatch_scheduled(sends=...)`` collected."""
    _send_executions(pairs)


def _send_executions(pairs: list[tuple[Execution, Job]], *, countdown: float | None = None,
                     raise_unreachable: bool = False) -> None:
    """Send each (execution, job)'s Celery task after commit, through one
    producer (one broker connection for the lot: beat sends a minute's burst
    this way), in pipelined batches of ``SEND_BATCH`` (``_publish_batch``).
    Whatever could not be sent is marked ``error`` ("Not queued"), so no run
    stays ``queued`` with nothing to start it."""
    from celery import current_app

    from scheduling.tasks import run_execution

    messages, queues = [], set()
    for execution, job in pairs:
        options = _execution_task_options(execution, job)
        if countdown:
            options["countdown"] = countdown
        # What Celery would work out for each message (0.1 ms of a 0.5 ms send):
        # how its arguments read in logs and Flower, and — once a message of the lot
        # has declared its queue — no second declaration (kombu re-binds the queue
        # to check its cache on every publish).
        options["argsrepr"], options["kwargsrepr"] = repr(options["args"]), "{}"
        if options["queue"] in queues:
            options["declare"] = []
        queues.add(options["queue"])
        messages.append(options)
    if not messages:
        return

    def enqueue() -> None:
        sent = 0  # messages known to be in the broker
        try:
            with current_app.producer_or_acquire() as producer:
                for start in range(0, len(messages), SEND_BATCH):
                    batch = messages[start:start + SEND_BATCH]
                    with _publish_batch(producer, len(batch)):
                        for options in batch:
                            run_execution.apply_async(producer=producer, **options)
                    sent += len(batch)
        except Exception as exc:  # broker down: never leave a "queued" run that nothing will start
            # (a batch that failed may have been delivered in part: its runs are marked error all
            # the same, and a worker given one of them does not start it, as it is not queued)
            unsent = [options["args"][0] for options in messages[sent:]]
            logger.exception("could not queue %d execution(s) (%s)", len(unsent), _ids_in_words(unsent))
            for batch in id_batches(unsent):
                Execution.objects.filter(pk__any_of=batch, status=Execution.Status.QUEUED).update(
                    status=Execution.Status.ERROR, completed_at=timezone.now(),
                    output="Not queued: broker unreachable",
                    error=f"The task broker could not be reached: {type(exc).__name__}",
                )
            if raise_unreachable:
                raise ApplicationError(
                    f"Execution {_ids_in_words(unsent)} could not be queued: the task broker is unreachable.",
                    status=503, code=ErrorCode.BROKER_UNAVAILABLE,
                ) from None

    transaction.on_commit(enqueue)


#: Messages published per Redis round trip when many are sent at once (beat's burst).
SEND_BATCH = 5000


def _publish_batch(producer, count: int):
    """kombu's ``Producer.batch()`` (one pipelined round trip for the lot, on
    transports that support it: Redis) for more than one message; else nothing."""
    if count < 2 or not getattr(producer, "supports_batch_publish", False):
        return contextlib.nullcontext()
    return producer.batch(max_size=count * 16)  # never flushed part-way: a message is one to a few commands


def _ids_in_words(ids: list[int]) -> str:
    return ", ".join(map(str, ids[:5])) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


def _new_execution(job: Job, *, trigger: str, actor=None, override_kwargs=None, attempt=1, retry_of=None,
                   status=Execution.Status.QUEUED, **extra) -> Execution:
    return create_row(Execution, **_execution_values(
        job, trigger=trigger, actor=actor, override_kwargs=override_kwargs, attempt=attempt, retry_of=retry_of,
        status=status, **extra,
    ))


def _execution_values(job: Job, *, trigger: str, actor=None, override_kwargs=None, attempt=1, retry_of=None,
                      status=Execution.Status.QUEUED, **extra) -> dict[str, Any]:
    """The field values of a new execution of ``job``."""
    return dict(
        job=job,
        celery_task_id=str(uuid.uuid4()) if status == Execution.Status.QUEUED else None,
        status=status,
        trigger=trigger,
        attempt=attempt,
        retry_of=retry_of,
        triggered_by=actor if getattr(actor, "is_authenticated", False) else None,
        override_kwargs=override_kwargs or {},
        **extra,
    )


# A job read by primary key, compiled once (jobsite/db.py): the locked run request
# reads it and sets its last_run_at in one statement; a worker reads a job it runs.
_job_row = PkLookup(lambda: Job.objects.all())


def job_execute(
    *, job: Job, actor=None, actor_label: str = "", trigger: str = Execution.Trigger.API,
    force: bool = False, override_kwargs: dict | None = None,
) -> Execution:
    """Run ``job`` now. Without ``force`` a disabled/paused job or one already
    running (overlap policy ``skip``) is refused with 409."""
    if override_kwargs is not None and not isinstance(override_kwargs, dict):
        raise ValidationError({"override_kwargs": ["Must be a JSON object."]})
    request = {"actor": actor, "actor_label": actor_label, "trigger": trigger, "force": force,
               "override_kwargs": override_kwargs}
    execution = _execute_unless_changed(job, **request)
    if execution is None:
        execution = _execute_locked(job.pk, **request)
    return execution


def job_execute_for(
    *, obj, job: Job, override_kwargs: dict, actor=None, actor_label: str = "",
    trigger: str = Execution.Trigger.API, paused_message: str,
) -> Execution:
    """Queue a run of the manual ``job`` for a facade's one-off object ``obj``
    (a bulk upload, a vision batch) and link them: ``obj.execution`` is the run.
    Call it inside the transaction that created ``obj``, so a refused run
    leaves no row behind. A paused or disabled job is a 409 that says
    ``paused_message`` and keeps the core's ``job_not_active`` code."""
    try:
        execution = job_execute(job=job, actor=actor, actor_label=actor_label, trigger=trigger,
                                override_kwargs=override_kwargs)
    except Conflict as exc:
        if exc.code == ErrorCode.JOB_NOT_ACTIVE:
            raise Conflict(paused_message, code=exc.code) from None
        raise
    obj.execution = execution
    obj.save(update_fields=["execution"])
    return execution


@transaction.atomic
def _execute_locked(job_id: int, *, actor, actor_label: str, trigger: str, force: bool,
                    override_kwargs: dict | None) -> Execution:
    # locks the job row (as select_for_update did) and reads it, in one statement
    job = _job_row.update_then_first(job_id, where={"pk": job_id}, values={"last_run_at": timezone.now()})
    if job is None:
        raise Job.DoesNotExist(f"Job {job_id} no longer exists.")
    _check_run_request(job, force=force, override_kwargs=override_kwargs)
    if not force and job.overlap_policy == Job.OverlapPolicy.SKIP:
        active = _active_execution(job)
        if active is not None:
            raise Conflict(
                f"Job '{job.name}' is already running ({_active_state(active)}); use force to start another run.",
                code=ErrorCode.JOB_RUNNING,
            )
    execution = _new_execution(job, trigger=trigger, actor=actor, override_kwargs=override_kwargs)
    _send_execution(execution, job)
    audit.record(actor=actor, actor_label=actor_label, action="execute", obj=job,
                 changes=_run_request_changes(execution.pk, force=force, override_kwargs=override_kwargs))
    return execution


def _run_request_changes(execution_id: int | None, *, force: bool, override_kwargs: dict | None) -> dict:
    """What the audit log records of a run request."""
    return {"execution": execution_id, "force": force, "override_kwargs": override_kwargs or {}}


def _check_run_request(job: Job, *, force: bool, override_kwargs: dict | None) -> None:
    """Refuse a run request the job's kind or state does not allow (the
    overlap policy aside: that needs the job row locked)."""
    executor_for(job.kind).validate_params(job, run_params(job, override_kwargs))
    if not force and not job.is_schedulable:
        raise Conflict(f"Job '{job.name}' is {job.state}; use force to run it anyway.", code=ErrorCode.JOB_NOT_ACTIVE)


def _execute_unless_changed(job: Job, *, actor, actor_label: str, trigger: str, force: bool,
                            override_kwargs: dict | None) -> Execution | None:
    """``_execute_locked`` without reading the job again, where it needs no
    lock: for a run whose overlap policy is not ``skip`` (or forced).

    The request is checked against the caller's instance of the job (the API
    and CLI read it just before), then the job's ``last_run_at`` is set and
    the execution and its audit row written — only while the job's row is as
    that instance says: the same ``updated_at`` (every edit saves it), overlap
    policy and, unless forced, enabled and active (``create_rows_if_updated``:
    one statement on PostgreSQL, a transaction elsewhere). Otherwise it
    writes nothing and returns None, and so does a request the instance
    refuses: ``_execute_locked`` then decides from the row as it is. The
    locked path costs the caller 0.9 ms and the server 0.4 ms of CPU more per
    request on PostgreSQL ("third pass" in docs/benchmarks.md), and its
    sender 0.3 ms more on SQLite ("fourth pass")."""
    if not (job.pk and job.updated_at):
        return None
    if not force and job.overlap_policy == Job.OverlapPolicy.SKIP:
        return None
    try:
        _check_run_request(job, force=force, override_kwargs=override_kwargs)
    except (ValidationError, ApplicationError):
        return None
    where = {"pk": job.pk, "updated_at": job.updated_at, "overlap_policy": job.overlap_policy}
    if not force:
        where |= {"is_enabled": True, "status": Job.Status.ACTIVE}
    audit_row = audit.entry(actor=actor, actor_label=actor_label, action="execute", obj=job,
                            changes=_run_request_changes(None, force=force, override_kwargs=override_kwargs))
    # the execution's id, once it is inserted
    audit_row["changes"] = InsertedPk(0, key="execution", json=audit_row["changes"])
    created = create_rows_if_updated(Job, where=where, values={"last_run_at": timezone.now()}, rows=[
        (Execution, _execution_values(job, trigger=trigger, actor=actor, override_kwargs=override_kwargs)),
        (AuditLog, audit_row),
    ])
    if created is None:
        return None
    execution = created[0]
    _send_execution(execution, job)
    return execution


def _active_execution(job: Job) -> Execution | None:
    return job.executions.filter(status__in=Execution.ACTIVE_STATUSES).only("pk", "status", "trigger").first()


def _active_state(execution: Execution) -> str:
    """What an active execution is doing, in words."""
    if execution.status == Execution.Status.RUNNING:
        return f"execution {execution.pk} is still running"
    if execution.trigger == Execution.Trigger.RETRY:
        return f"execution {execution.pk} is a retry waiting out its backoff"
    return f"execution {execution.pk} is queued, waiting for a worker"


@transaction.atomic
def job_dispatch_scheduled(
    *, job_id: int, scheduled_for: datetime | None = None, missed: int = 0, missed_from: datetime | None = None,
) -> Execution | None:
    """Beat fired ``job_id`` for its due time ``scheduled_for``: queue an
    execution, or record a skip while one is going.

    A fire is identified by (job, ``scheduled_for``): a duplicated or
    redelivered fire, or one from a second beat, returns the Execution the
    first one recorded (the database refuses a second), never a second run or
    a ``skipped`` row. ``missed`` fires before this one (since
    ``missed_from``: beat was not running) are handled by the job's catch-up
    policy (``_catch_up``). Without ``scheduled_for`` (a message from before
    fires carried it) the fire is identified by the time it arrives."""
    job = Job.objects.select_for_update().filter(pk=job_id).first()
    if job is None or not job.is_schedulable:
        return None  # deleted or paused after beat read its schedule
    now = timezone.now()
    if scheduled_for is not None:
        existing = job.executions.filter(scheduled_for=scheduled_for).first()
        if existing is not None:
            logger.info("job %s: fire for %s already recorded as execution %s; duplicate ignored",
                        job.pk, scheduled_for.isoformat(), existing.pk)
            return existing
    due = scheduled_for or now
    late = (now - due).total_seconds() > settings.JOBS_MISSED_GRACE_SECONDS
    active = _active_execution(job) if job.overlap_policy == Job.OverlapPolicy.SKIP else None
    job.last_run_at = now
    # the next run counts from the due time fired (an interval keeps its absolute spacing)
    job.next_run_at = job_schedule(job).next_run(after=max(due, now), anchor=due)
    Job.objects.filter(pk=job.pk).update(last_run_at=job.last_run_at, next_run_at=job.next_run_at)
    run_now = _catch_up(job, due=due, late=late, missed=missed, missed_from=missed_from, now=now,
                        scheduled_for=scheduled_for)
    _disable_fired_one_off(job)
    if not run_now:
        return None
    if active is not None:
        return _new_fire(
            job, scheduled_for=scheduled_for, status=Execution.Status.SKIPPED, completed_at=now,
            output=f"Skipped: {_active_state(active)} (overlap policy 'skip').",
        )
    execution = _new_fire(job, scheduled_for=scheduled_for)
    if not getattr(execution, "_duplicate", False):
        _send_execution(execution, job)
    return execution


class ScheduledFire(NamedTuple):
    """One fire of a job's beat entry (what ``scheduling.run_job`` carries)."""

    job_id: int
    scheduled_for: datetime | None
    missed: int = 0
    missed_from: datetime | None = None


def jobs_dispatch_scheduled(*, fires: Sequence[ScheduledFire], sends: list | None = None) -> tuple[int, int]:
    """Beat fired many jobs at once (a minute boundary with hundreds due):
    ``job_dispatch_scheduled`` for every fire, in one transaction, with the
    common case done in bulk. Returns how many executions were queued.

    The common case is a fire on time, for a job that is due, enabled and not
    a one-off, with nothing owed and (overlap policy ``skip``) no run going: a
    few queries for the lot — lock the jobs, look for fires already recorded
    and runs still going, insert the executions, set each job's
    ``last_run_at``/``next_run_at`` — and every message through one producer
    after commit. Every other fire (late, owing missed runs, a one-off, a
    skip, a race with another beat) goes through ``job_dispatch_scheduled``
    itself, unchanged. A fire already recorded is a duplicate and does
    nothing, as there.

    ``sends``: the bulk executions' messages are added to it, as (execution,
    job), for the caller to send with ``executions_send`` once it has
    recorded everything (beat: a burst in several transactions); by default
    they are sent when the transaction commits.

    Returns (fires queued in bulk, fires handled one by one)."""
    if not fires:
        return 0, 0
    now = timezone.now()
    grace = settings.JOBS_MISSED_GRACE_SECONDS
    with transaction.atomic():
        job_ids = {fire.job_id for fire in fires}
        # What a fire needs of its job (the run's message options included), not all of it.
        # Locked (and so read afresh) only where a concurrent run matters: overlap policy
        # skip, whose check below must not race a manual trigger. Locking every row of a
        # 10,000-job burst was a second of PostgreSQL's time.
        needed = Job.objects.only("is_enabled", "status", "overlap_policy", "schedule_type", "schedule_expression",
                                  "timezone", "queue", "priority", "timeout_seconds", "kind")
        jobs = {job.pk: job for job in _in_chunks(needed, "pk", job_ids)}
        skip_ids = [pk for pk, job in jobs.items() if job.overlap_policy == Job.OverlapPolicy.SKIP]
        jobs.update((job.pk, job) for job in _in_chunks(needed.select_for_update(), "pk", skip_ids))
        due_times = {fire.scheduled_for for fire in fires if fire.scheduled_for is not None}
        recorded = set(_in_chunks(
            Execution.objects.filter(scheduled_for__in=due_times), "job_id", job_ids, "job_id", "scheduled_for",
        )) if due_times else set()
        going = set(_in_chunks(Execution.objects.filter(status__in=Execution.ACTIVE_STATUSES), "job_id",
                               skip_ids, "job_id"))
        bulk: list[tuple[Job, ScheduledFire]] = []
        one_by_one: list[ScheduledFire] = []
        seen: set[int] = set()
        for fire in fires:
            job = jobs.get(fire.job_id)
            if job is None or not job.is_schedulable:
                continue  # deleted or paused after beat read its schedule
            if fire.scheduled_for is not None and (job.pk, fire.scheduled_for) in recorded:
                continue  # a duplicate fire: recorded already
            simple = (fire.scheduled_for is not None and not fire.missed and job.pk not in going
                      and job.pk not in seen and job.schedule_type != Job.ScheduleType.ONCE
                      and (now - fire.scheduled_for).total_seconds() <= grace)
            seen.add(job.pk)
            (bulk.append((job, fire)) if simple else one_by_one.append(fire))
        rows = [{"job_id": job.pk, "celery_task_id": str(uuid.uuid4()), "scheduled_for": fire.scheduled_for}
                for job, fire in bulk]
        try:
            with transaction.atomic():
                insert_rows(Execution, rows, common={
                    "status": Execution.Status.QUEUED, "trigger": Execution.Trigger.SCHEDULE, "attempt": 1,
                    "override_kwargs": {}, "created_at": timezone.now(),
                })
        except IntegrityError:
            # Another beat recorded some of these fires meanwhile: one by one, each finds its own.
            one_by_one.extend(fire for _, fire in bulk)
            bulk, rows = [], []
        executions = _fires_recorded(bulk, rows)
        next_runs: dict[tuple, datetime | None] = {}
        by_next_run: dict[datetime | None, list[int]] = {}
        for job, fire in bulk:
            key = (job.schedule_type, job.schedule_expression, job.timezone, fire.scheduled_for)
            if key not in next_runs:
                # the next run counts from the due time fired (as job_dispatch_scheduled)
                next_runs[key] = job_schedule(job).next_run(after=max(fire.scheduled_for, now),
                                                            anchor=fire.scheduled_for)
            by_next_run.setdefault(next_runs[key], []).append(job.pk)
        for next_run_at, pks in by_next_run.items():
            for batch in id_batches(pks):
                Job.objects.filter(pk__any_of=batch).update(last_run_at=now, next_run_at=next_run_at)
        pairs = [(execution, execution.job) for execution in executions]
        sends.extend(pairs) if sends is not None else _send_executions(pairs)
        for fire in one_by_one:
            job_dispatch_scheduled(job_id=fire.job_id, scheduled_for=fire.scheduled_for, missed=fire.missed,
                                   missed_from=fire.missed_from)
    return len(executions), len(one_by_one)


def _fires_recorded(bulk: list[tuple[Job, ScheduledFire]], rows: list[dict]) -> list[Execution]:
    """The executions just inserted for ``bulk`` (by their unique (job, due time)),
    each with its job attached, in the order of ``rows``."""
    jobs = {job.pk: job for job, _ in bulk}
    by_due: dict[datetime, list[int]] = {}
    for row in rows:
        by_due.setdefault(row["scheduled_for"], []).append(row["job_id"])
    found = {}
    for due, job_ids in by_due.items():
        for execution in _in_chunks(Execution.objects.filter(scheduled_for=due).only(
                "pk", "job_id", "celery_task_id", "scheduled_for"), "job_id", job_ids):
            found[(execution.job_id, due)] = execution
    executions = []
    for row in rows:
        execution = found[(row["job_id"], row["scheduled_for"])]
        execution.job = jobs[row["job_id"]]
        executions.append(execution)
    return executions


def _in_chunks(queryset, field: str, ids, *fields):
    """``queryset.filter(<field> in ids)`` (its ``values_list(*fields)`` if
    given): one query on PostgreSQL, one per ``IN_BATCH`` ids elsewhere
    (``jobsite.db.id_batches``)."""
    for batch in id_batches(ids, alias=queryset.db):
        chunk = queryset.filter(**{f"{field}__any_of": batch})
        if len(fields) == 1:
            yield from chunk.values_list(fields[0], flat=True)
        elif fields:
            yield from chunk.values_list(*fields)
        else:
            yield from chunk


def _disable_fired_one_off(job: Job) -> None:
    # A one-off has fired (run, skipped or missed): keep the job for its history,
    # disabled, so that nothing (a resume, `sync-beat --repair`) can fire it a second time.
    if job.schedule_type == Job.ScheduleType.ONCE:
        job.is_enabled = False
        job.next_run_at = None
        Job.objects.filter(pk=job.pk).update(is_enabled=False, next_run_at=None)
        periodic_task_sync(job)


def _new_fire(job: Job, *, scheduled_for: datetime | None, **extra) -> Execution:
    """One Execution for one fire; the existing one if (job, scheduled_for) is
    already recorded (a race the row lock did not serialize: the constraint
    ``exec_one_run_per_fire`` refuses the second)."""
    try:
        with transaction.atomic():
            return _new_execution(job, trigger=Execution.Trigger.SCHEDULE, scheduled_for=scheduled_for, **extra)
    except IntegrityError:
        if scheduled_for is None:
            raise
        existing = job.executions.get(scheduled_for=scheduled_for)
        existing._duplicate = True
        return existing


def _missed_fire_times(job: Job, first: datetime | None, due: datetime, *, limit: int) -> list[datetime]:
    """Up to ``limit`` due times from ``first`` (a missed fire) until before ``due``."""
    if not first or limit <= 0:
        return []
    schedule = job_schedule(job)
    if schedule.interval:
        times = [first + schedule.interval * i for i in range(limit)]
    else:
        times = [first, *schedule.next_runs(limit - 1, after=first)] if limit > 1 else [first]
    return [when for when in times if when < due]


def _catch_up(job: Job, *, due: datetime, late: bool, missed: int, missed_from: datetime | None, now: datetime,
              scheduled_for: datetime | None = None) -> bool:
    """Apply the job's catch-up policy to fires beat missed (``missed`` before
    ``due``; ``due`` itself too when it comes ``late``). Records one
    ``missed`` row saying how many and why; with policy ``all`` queues one
    run per missed fire (at most ``JOBS_CATCH_UP_MAX``). Returns whether the
    fire for ``due`` runs now."""
    policy = job.catch_up_policy
    if not missed and not late:
        return True
    missed_times = _missed_fire_times(job, missed_from, due, limit=min(missed, settings.JOBS_CATCH_UP_MAX))
    total = missed + (1 if late and policy == Job.CatchUpPolicy.SKIP else 0)
    first = missed_from or due
    span = f"between {first.astimezone(dt_timezone.utc):%Y-%m-%d %H:%M:%S} and {due.astimezone(dt_timezone.utc):%Y-%m-%d %H:%M:%S} UTC"
    why = "beat was not running (or had not fired this job)"
    caught_up = 0
    if policy == Job.CatchUpPolicy.ALL and missed_times:
        for when in missed_times[: settings.JOBS_CATCH_UP_MAX]:
            execution = _new_fire(job, scheduled_for=when)
            if not getattr(execution, "_duplicate", False):
                _send_execution(execution, job)
                caught_up += 1
    if policy == Job.CatchUpPolicy.SKIP:
        action = "none of them was run (catch-up policy 'skip')"
    elif policy == Job.CatchUpPolicy.ONCE:
        action = "ran once now instead (catch-up policy 'once')"
    else:
        action = (f"ran {caught_up} of them now (catch-up policy 'all', at most {settings.JOBS_CATCH_UP_MAX})"
                  if caught_up < missed else "ran each of them now (catch-up policy 'all')")
    if total:
        # Not run at all (policy skip, fire late): the missed row stands for this
        # fire, so a duplicate of it finds the row and records nothing more.
        owns_fire = late and policy == Job.CatchUpPolicy.SKIP
        _new_fire(
            job, scheduled_for=scheduled_for if owns_fire else None, status=Execution.Status.MISSED, completed_at=now,
            output=f"Missed {total} scheduled run{'s' if total != 1 else ''} {span}: {why}; {action}.",
            result={"missed": total, "from": first.isoformat(), "until": due.isoformat(), "policy": policy,
                    "caught_up": caught_up},
        )
    logger.warning("job %s missed %s fire(s) %s; policy %s", job.pk, total, span, policy)
    return policy != Job.CatchUpPolicy.SKIP or not late


@transaction.atomic
def execution_cancel(*, execution: Execution, actor=None, actor_label: str = "", reason: str = "") -> Execution:
    """Cancel a queued or running execution: mark it cancelled and revoke its
    Celery task with terminate. A cancelled queued execution never starts (the
    worker finds it no longer queued)."""
    execution = Execution.objects.select_for_update().select_related("job").get(pk=execution.pk)
    if execution.status not in Execution.ACTIVE_STATUSES:
        raise Conflict(
            f"Execution {execution.pk} is already {execution.status}; only queued or running executions can be cancelled.",
            code=ErrorCode.EXECUTION_NOT_ACTIVE,
        )
    now = timezone.now()
    by = actor_label or getattr(actor, "username", "") or "system"
    execution.status = Execution.Status.CANCELLED
    execution.completed_at = now
    if execution.started_at:
        execution.duration_seconds = (now - execution.started_at).total_seconds()
    execution.error = f"Cancelled by {by}" + (f": {reason}" if reason else "")
    execution.output = execution.output or "Cancelled"
    execution.save(update_fields=["status", "completed_at", "duration_seconds", "error", "output"])
    _record_outcome(execution)
    task_id = execution.celery_task_id
    if task_id:
        transaction.on_commit(lambda: revoke_task(task_id))
    audit.record(actor=actor, actor_label=actor_label, action="cancel", obj=execution,
                 changes={"job": execution.job.name, "reason": reason})
    return execution


def revoke_task(task_id: str) -> None:
    """Revoke ``task_id`` on every worker and terminate it if it is running."""
    from jobsite.celery import app

    try:
        app.control.revoke(task_id, terminate=True, signal="SIGTERM")
    except Exception:  # the cancel is recorded; a broker outage must not undo it
        logger.exception("revoke of task %s failed", task_id)


# ---------------------------------------------------------------------------
# Running an execution (called by the scheduling.run_execution task)
# ---------------------------------------------------------------------------
# Every run claims and reads its execution: compiled once per worker process (jobsite/db.py).
_execution_row = PkLookup(lambda: Execution.objects.all())


class _RunJobs:
    """The jobs a worker process runs, each as last read, by id.

    A worker runs the same jobs over and over; reading a job's ~30 columns
    with every claim cost the database more than the claim itself. The claim
    returns the job's ``updated_at`` (every edit saves it) and the held copy is
    used only while that is unchanged. Columns written without an edit (the
    statistics, ``last_run_at``, ``next_run_at``) may be stale in it: a run
    does not read them, but for ``last_status`` (the recovery notification's
    previous outcome), which the claim returns too. Each run gets its own copy."""

    MAX_JOBS = 1000
    VERSION_FIELDS = ("updated_at", "last_status")

    def __init__(self):
        self._jobs: OrderedDict[int, tuple[Any, Job]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, job_id: int, updated_at, last_status: str) -> Job | None:
        """The job as stored at ``updated_at``, with ``last_status``; None if it is gone."""
        with self._lock:
            held = self._jobs.get(job_id)
            if held is not None and held[0] == updated_at:
                self._jobs.move_to_end(job_id)
                job = copy.copy(held[1])
            else:
                job = None
        if job is None:
            job = _job_row.first(job_id)
            if job is None:
                return None
            with self._lock:
                self._jobs[job_id] = (updated_at, job)
                self._jobs.move_to_end(job_id)
                while len(self._jobs) > self.MAX_JOBS:
                    self._jobs.popitem(last=False)
            job = copy.copy(job)
        job.last_status = last_status
        return job


_run_jobs = _RunJobs()


def execution_claim(*, execution_id: int, task_id: str, worker: str) -> Execution | None:
    """Move a queued execution to running, atomically. Returns None when it must
    not run (cancelled, finished, deleted). A redelivered message whose
    execution is already running means the previous worker died: that attempt
    is recorded as an error and retried per policy."""
    # The claim, the read of the execution and of its job's version: one statement.
    # The job row is not written here (its last_run_at was set when the run was
    # queued): workers never queue up behind a hot job row to start.
    claimed = _execution_row.update_then_first_with(
        execution_id, where={"pk": execution_id, "status": Execution.Status.QUEUED},
        values={"status": Execution.Status.RUNNING, "started_at": timezone.now(), "worker": worker,
                "celery_task_id": task_id},
        related="job", fields=_RunJobs.VERSION_FIELDS,
        # Not waiting for the disk: the run's finish is a durable commit of the same
        # connection, which flushes the claim with it; a claim a database crash undoes
        # is a run queued again, delivered again (its message or the stale-queued sweep).
        flush=False,
    )
    if claimed is not None:
        execution, (updated_at, last_status) = claimed
        job = _run_jobs.get(execution.job_id, updated_at, last_status)
        if job is None:  # deleted since, and its executions with it
            return None
        execution.job = job
        return execution
    execution = _execution_row.first(execution_id)
    if execution is not None and execution.status == Execution.Status.RUNNING:
        execution_mark_lost(execution=execution, reason=f"worker {execution.worker or '?'} was lost mid-run; message redelivered")
    return None


def execution_finish(
    *, execution: Execution, status: str, output: str = "", result: dict | None = None,
    error: str = "", batch_id: str | None = None,
) -> Execution:
    """Record the outcome of a running execution (a concurrent cancel wins) and
    queue a retry if the job's policy allows one."""
    now = timezone.now()
    duration = (now - execution.started_at).total_seconds() if execution.started_at else None
    values = {"status": status, "completed_at": now, "duration_seconds": duration, "output": output[:10000],
              "error": error[:10000], "batch_id": batch_id}
    if result is not None:  # else keep what the run recorded as it went (execution_record_progress)
        values["result"] = result
    running = {"pk": execution.pk, "status": Execution.Status.RUNNING}
    if status in Execution.FAILURE_STATUSES or status == Execution.Status.SKIPPED:  # a retry may come with it
        with transaction.atomic():
            updated = update_row(Execution, where=running, values=values)
            if updated:
                for name, value in values.items():
                    setattr(execution, name, value)
                _record_outcome(execution)
                _maybe_retry(execution)
    else:
        # The run's row and its job's counters in one statement (one commit), as
        # every successful run does this: docs/benchmarks.md, "bench_throughput".
        for_job, increments = _outcome_counters(status, values["duration_seconds"])
        updated = update_row_then(Execution, where=running, values=values, then_model=Job,
                                  then_where={"pk": execution.job_id}, then_values=for_job,
                                  then_increments=increments)
        if updated:
            for name, value in values.items():
                setattr(execution, name, value)
            _announce_finished(execution)
    if not updated:  # a cancel (or the lost-run sweep) got there first: return it as it is
        execution.refresh_from_db()
    if updated:
        log = logger.info if status == Execution.Status.SUCCESS else logger.warning
        log("execution %s of job %s finished %s in %.3fs: %s", execution.pk, execution.job_id, status,
            duration or 0.0, (output or error)[:200])
    return execution


def execution_record_progress(*, execution: Execution, result: dict) -> bool:
    """Record a running execution's progress in its ``result`` (steps done,
    rows processed, ...), for the API and admin to show while it runs. Only
    while it is running: a concurrent cancel or finish is never overwritten.
    False when it is no longer running (the executor should stop)."""
    return bool(Execution.objects.filter(pk=execution.pk, status=Execution.Status.RUNNING).update(result=result))


def execution_is_running(*, execution: Execution) -> bool:
    """Whether ``execution`` is still running (not cancelled or lost meanwhile):
    long executors check it between units of work."""
    return Execution.objects.filter(pk=execution.pk, status=Execution.Status.RUNNING).exists()


def execution_is_queued(*, execution_id: int) -> bool:
    """Whether the execution still waits for a worker to claim it."""
    return Execution.objects.filter(pk=execution_id, status=Execution.Status.QUEUED).exists()


def execution_hard_timeout(*, execution_id: int, limit_seconds: float) -> Execution | None:
    """The worker killed a run that overran its hard time limit (it ignored the soft one)."""
    execution = Execution.objects.select_related("job").filter(pk=execution_id).first()
    if execution is None or execution.status != Execution.Status.RUNNING:
        return None
    limit = f"{limit_seconds:g}"
    return execution_finish(
        execution=execution, status=Execution.Status.TIMEOUT, output=f"Killed at the hard time limit ({limit}s)",
        error=f"Exceeded the job's timeout of {execution.job.timeout_seconds} seconds and did not stop; "
              f"the worker killed it at the hard limit of {limit} seconds.",
    )


@transaction.atomic
def execution_mark_lost(*, execution: Execution, reason: str) -> Execution | None:
    updated = Execution.objects.filter(pk=execution.pk, status=Execution.Status.RUNNING).update(
        status=Execution.Status.ERROR, completed_at=timezone.now(), error=f"Lost: {reason}", output="Lost: worker died",
    )
    if not updated:
        return None
    execution.refresh_from_db()
    _record_outcome(execution)
    _maybe_retry(execution)
    logger.warning("execution %s of job %s marked lost: %s", execution.pk, execution.job_id, reason)
    return execution


def executions_reap_lost(*, now=None, hostname: str | None = None) -> int:
    """Mark executions whose worker is gone as errors (and retry per policy).

    With ``hostname``: every running execution of that worker (it just
    restarted, so nothing of its is still running). Without: those whose
    worker missed its heartbeat for ``JOBS_WORKER_HEARTBEAT_TIMEOUT_SECONDS``
    (``scheduling.heartbeat``), and those running past their hard time limit
    plus a margin (the worker must have died)."""
    now = now or timezone.now()
    running = Execution.objects.filter(status=Execution.Status.RUNNING).select_related("job")
    if hostname:
        running = running.filter(worker__startswith=f"{hostname} ")
        reason = f"worker {hostname} restarted while it was running"
    else:
        reason = "no result past the hard time limit; the worker is gone"
    heartbeat_ages = {} if hostname else _worker_heartbeat_ages()
    heartbeat_timeout = settings.JOBS_WORKER_HEARTBEAT_TIMEOUT_SECONDS
    count = 0
    for execution in running.iterator():
        why = reason
        if not hostname:
            worker_name = execution.worker.split(" ", 1)[0]
            age = heartbeat_ages.get(worker_name)
            started_long_enough = execution.started_at and execution.started_at <= now - timedelta(seconds=heartbeat_timeout)
            if age is not None and age > heartbeat_timeout and started_long_enough:
                why = f"worker {worker_name} missed its heartbeat for {age} s (limit {heartbeat_timeout} s)"
            else:
                limit = execution.job.timeout_seconds + settings.JOBS_HARD_TIMEOUT_GRACE_SECONDS + 60
                if not execution.started_at or execution.started_at > now - timedelta(seconds=limit):
                    continue
        if execution_mark_lost(execution=execution, reason=why):
            count += 1
    return count


def _worker_heartbeat_ages() -> dict[str, int]:
    """hostname -> seconds since its last heartbeat; {} when Redis can't be read
    (then nothing is judged by heartbeat: an outage must not make runs look lost)."""
    from scheduling import heartbeat

    try:
        return heartbeat.ages()[0]
    except Exception as exc:
        logger.warning("worker heartbeats unreadable, lost-run sweep uses the time limits only: %s", exc)
        return {}


def _execution_task_options(execution: Execution, job: Job) -> dict[str, Any]:
    """The run_execution message of ``execution``: its own task id, queue,
    priority and time limits (sent, and re-sent by the stale-queued sweep)."""
    return {
        "args": [execution.pk],
        "task_id": execution.celery_task_id,
        "queue": job.queue,
        "priority": celery_priority(job.priority),
        "soft_time_limit": job.timeout_seconds,
        # The hard limit gives a run that ignores the soft limit time to clean up.
        "time_limit": job.timeout_seconds + settings.JOBS_HARD_TIMEOUT_GRACE_SECONDS,
        "ignore_result": not _keeps_celery_result(job.kind),
    }


def _keeps_celery_result(kind: str) -> bool:
    try:
        return executor_for(kind).keeps_celery_result
    except LookupError:  # no executor: the run records that error; nothing to keep
        return False


def _retry_due_at(execution: Execution):
    """When a retry's backoff ends (``_maybe_retry`` sent it with this countdown)."""
    if execution.trigger != Execution.Trigger.RETRY or execution.attempt < 2:
        return execution.created_at
    delay = min(execution.job.retry_backoff_seconds * (2 ** (execution.attempt - 2)), 3600)
    return execution.created_at + timedelta(seconds=delay)


def executions_resend_stale_queued(*, now=None, broker_view=None) -> int:
    """Send again, under the same task id, ``queued`` executions whose message
    is no longer on its way: not in its queue, and not delivered to a worker
    lately (a broker restart cut the worker off from it, or a killed Redis
    lost it). Looked at only once ``JOBS_QUEUED_STALE_SECONDS`` have passed
    since it was queued (or its retry backoff ended).

    A duplicate delivery is harmless: ``execution_claim`` starts an execution
    only while it is queued, and the old unacked entry is removed so the
    visibility timeout does not deliver it again. Broker unreachable: nothing
    is sent, the next sweep tries again. Returns how many were sent."""
    from scheduling import broker
    from scheduling.tasks import run_execution

    now = now or timezone.now()
    stale_after = timedelta(seconds=settings.JOBS_QUEUED_STALE_SECONDS)
    candidates = [
        execution for execution in Execution.objects.filter(
            status=Execution.Status.QUEUED, created_at__lte=now - stale_after, celery_task_id__isnull=False,
        ).select_related("job").order_by("pk")
        if _retry_due_at(execution) <= now - stale_after
    ]
    if not candidates:
        return 0
    try:
        client = broker.broker_client()
        view = broker_view or broker.broker_view(fresh_seconds=stale_after.total_seconds(), client=client)
    except Exception:
        logger.exception("stale-queued sweep: the broker is unreachable; trying again next time")
        return 0
    sent = 0
    for execution in candidates:
        if view.on_its_way(execution.celery_task_id):
            continue
        try:
            broker.forget_unacked(view.stale.get(execution.celery_task_id, []), client=client)
            run_execution.apply_async(**_execution_task_options(execution, execution.job), kwargs={"resent": True})
        except Exception:
            logger.exception("stale-queued sweep: could not send execution %s again", execution.pk)
            break  # the broker went away meanwhile: the next sweep carries on
        sent += 1
        logger.warning("execution %s of job %s was queued with no message on its way; sent again as task %s",
                       execution.pk, execution.job_id, execution.celery_task_id)
    return sent


def _record_outcome(execution: Execution) -> None:
    """Fold one finished execution into its job's statistics."""
    if execution.status == Execution.Status.SKIPPED:
        return
    _announce_finished(execution)
    values, increments = _outcome_counters(execution.status, execution.duration_seconds)
    update_row(Job, where={"pk": execution.job_id}, values=values, increments=increments)


def _outcome_counters(status: str, duration_seconds: float | None) -> tuple[dict, dict]:
    """What one finished run adds to its job's statistics: (values, increments)."""
    return {"last_status": status}, {
        "total_runs": 1,
        "successful_runs": 1 if status == Execution.Status.SUCCESS else 0,
        "failed_runs": 1 if status in Execution.FAILURE_STATUSES else 0,
        "total_duration_seconds": duration_seconds or 0.0,
    }


def _announce_finished(execution: Execution) -> None:
    """``execution_finished``, once the outcome is committed."""
    if not execution_finished.has_listeners(Execution):
        return
    execution_id, job_id, status = execution.pk, execution.job_id, execution.status
    # The job's last outcome as read when this run was claimed (None: not read).
    previous = execution.job.last_status if Execution.job.is_cached(execution) else None
    transaction.on_commit(lambda: execution_finished.send_robust(
        sender=Execution, execution_id=execution_id, job_id=job_id, status=status, previous_status=previous,
    ))


def _maybe_retry(execution: Execution) -> Execution | None:
    if execution.status not in Execution.FAILURE_STATUSES:
        return None
    job = execution.job
    if execution.attempt > job.max_retries:
        return None
    retry = _new_execution(
        job, trigger=Execution.Trigger.RETRY, attempt=execution.attempt + 1, retry_of=execution,
        override_kwargs=execution.override_kwargs, actor=execution.triggered_by,
    )
    # capped below the broker visibility timeout, or Redis would redeliver the held message
    delay = min(job.retry_backoff_seconds * (2 ** (execution.attempt - 1)), 3600)
    _send_execution(retry, job, countdown=delay)
    return retry


def run_params(job: Job, override_kwargs: dict | None = None) -> dict[str, Any]:
    """The parameters of one run: the job's kwargs with the run's overrides merged over them."""
    return {**(job.task_kwargs or {}), **(override_kwargs or {})}


def execution_run(*, execution_id: int, task_id: str, worker: str) -> Execution | None:
    """Claim, run and record one execution with its job kind's executor."""
    from celery.exceptions import SoftTimeLimitExceeded

    from scheduling import runlog

    execution = execution_claim(execution_id=execution_id, task_id=task_id, worker=worker)
    if execution is None:
        return None
    job = execution.job
    try:
        executor = executor_for(job.kind)
    except LookupError as exc:
        return execution_finish(execution=execution, status=Execution.Status.ERROR, error=str(exc), output="No executor")
    try:
        # Stores the run's log lines, and its traceback if it raises (scheduling/runlog.py).
        with runlog.capture(execution=execution) as run_log:
            outcome = executor.run(job, execution, run_params(job, execution.override_kwargs))
    except SoftTimeLimitExceeded:
        return execution_finish(
            execution=execution, status=Execution.Status.TIMEOUT, output=f"Timed out after {job.timeout_seconds}s",
            error=f"Exceeded the job's timeout of {job.timeout_seconds} seconds.",
        )
    except Exception as exc:  # the run failed; record it (never lose the execution) and retry per policy
        # the traceback as stored: with the job's secrets redacted
        logger.error("execution %s of job %s failed\n%s", execution.pk, job.name, run_log.traceback)
        return execution_finish(
            execution=execution, status=Execution.Status.FAILED, output=run_log.redact(f"Error: {exc}")[:500],
            error=run_log.redact(f"{type(exc).__name__}: {exc}"),
        )
    return execution_finish(
        execution=execution,
        status=outcome.outcome,
        output=outcome.output, result=outcome.result, batch_id=outcome.batch_id,
        error="" if outcome.ok else (outcome.output or "failed"),
    )
