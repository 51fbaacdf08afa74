"""Jobs: create, validate, update, delete, pause, resume, enable, their
credentials, and the manual jobs that facades' one-off work runs as.

The Job row and its beat PeriodicTask change in the same transaction."""
from __future__ import annotations

import inspect
import re
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone as django_timezone

from jobsite.crypto import secrets_decrypt, secrets_encrypt
from jobsite.db import id_batches
from jobsite.exceptions import Conflict
from jobsite.limits import json_params_errors
from jobsite.redaction import secrets_check
from scheduling import audit
from scheduling.beat import job_next_runs, job_schedule, periodic_task_delete, periodic_task_sync
from scheduling.errors import ErrorCode
from scheduling.executors import DEFAULT_KIND, executor_for, registered_kinds
from scheduling.models import AuditLog, Execution, Job
from scheduling.schedules import parse_schedule
from scheduling.services import jobs_bulk
from scheduling.services.jitter import MAX_JITTER_SECONDS
from scheduling.services.lifecycle import MAX_RETRY_DELAY_SECONDS, execution_cancel
from scheduling.services.limits import limits_release, limits_release_group

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")
# /api/v1/jobs/<these> are routes, so a job of that name could not be addressed by name.
RESERVED_NAMES = frozenset({"tasks", "overdue", "stats", "validate-schedule", "apply"})
MAX_DESCRIPTION_CHARS = 10_000
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
MAX_BACKOFF_SECONDS = MAX_RETRY_DELAY_SECONDS


#: The choices job_validate checks, read once (a TextChoices' ``values`` is built on every read).
_JOB_TYPES, _OVERLAP_POLICIES = frozenset(Job.JobType.values), frozenset(Job.OverlapPolicy.values)
_CATCH_UP_POLICIES, _STATUSES = frozenset(Job.CatchUpPolicy.values), frozenset(Job.Status.values)


def _schedule_check(job: Job, schedules: dict | None) -> None:
    """parse_schedule of the job's schedule; with ``schedules`` (a dict kept
    by the caller across many jobs) each schedule but a one-off (whose answer
    depends on the time) is parsed once."""
    if schedules is None or job.schedule_type == Job.ScheduleType.ONCE:
        parse_schedule(job.schedule_type, job.schedule_expression, job.timezone)
        return
    key = (job.schedule_type, job.schedule_expression, job.timezone)
    if key not in schedules:
        try:
            parse_schedule(*key)
            schedules[key] = None
        except ValidationError as exc:
            schedules[key] = exc.message_dict
    if schedules[key] is not None:
        raise ValidationError(schedules[key])


def job_validate(job: Job, *, schedules: dict | None = None) -> None:
    """Raise ValidationError (a field → messages dict) if ``job`` may not be saved.

    The core checks what every job has; the job's executor checks its kind's
    own settings (task name and arguments, config, queue). ``schedules``: see
    ``_schedule_check`` (for checking many jobs at once)."""
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
    params = {field: getattr(job, field) for field in ("task_args", "task_kwargs", "config")}
    for field, messages in json_params_errors(params).items():
        add(field, messages[0])
    if job.kind not in registered_kinds():
        add("kind", f"Unknown job kind '{job.kind}'. Use one of: {', '.join(registered_kinds())}.")
    else:
        try:
            executor_for(job.kind).validate(job)
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                for message in messages:
                    add(field, message)
    if job.job_type not in _JOB_TYPES:
        add("job_type", f"Unknown job type '{job.job_type}'. Use one of: {', '.join(Job.JobType.values)}.")
    try:
        _schedule_check(job, schedules)
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
    if job.overlap_policy not in _OVERLAP_POLICIES:
        add("overlap_policy", f"Use one of: {', '.join(Job.OverlapPolicy.values)}.")
    if job.catch_up_policy not in _CATCH_UP_POLICIES:
        add("catch_up_policy", f"Use one of: {', '.join(Job.CatchUpPolicy.values)}.")
    if not isinstance(job.jitter_seconds, int) or not 0 <= job.jitter_seconds <= MAX_JITTER_SECONDS:
        add("jitter_seconds", f"Jitter must be a whole number of seconds from 0 to {MAX_JITTER_SECONDS}.")
    if job.max_concurrent_runs is not None:
        if not isinstance(job.max_concurrent_runs, int) or job.max_concurrent_runs < 1:
            add("max_concurrent_runs", "A whole number of runs, at least 1 (empty: no limit).")
        elif job.overlap_policy != Job.OverlapPolicy.ALLOW:
            add("max_concurrent_runs", f"Applies to overlap policy 'allow' (this job's is '{job.overlap_policy}', "
                                       "which runs one at a time already).")
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
    jitter_seconds: int = 0,
    max_concurrent_runs: int | None = None,
    concurrency_group=None,
    is_enabled: bool = True,
    owner=None,
    organization=None,
) -> Job:
    """Create a job and its beat PeriodicTask (disabled unless the job is enabled)."""
    arguments = dict(locals())  # the parameters, as jobs_create_bulk's specs name them
    arguments.pop("actor_label")
    job = _job_new(**arguments)
    job_validate(job)
    _save_unique(job)
    _sync_schedule(job)
    audit.record(actor=actor, actor_label=actor_label, action="create", obj=job, changes=audit.job_snapshot(job))
    return job


_CREATE_PARAMETERS = {name: param.default for name, param in inspect.signature(job_create).parameters.items()
                      if name not in ("actor", "actor_label")}
#: jobs_create_bulk's spec keys: job_create's keyword arguments, and those a spec must give.
_CREATE_ARGS = frozenset(_CREATE_PARAMETERS)
_CREATE_REQUIRED = frozenset(name for name, default in _CREATE_PARAMETERS.items() if default is inspect.Parameter.empty)


def _job_new(*, actor, **values) -> Job:
    """The unsaved Job ``job_create`` makes of its arguments (``values``: every one), its secrets checked."""
    secrets = values["secrets"]
    secrets_check(secrets)
    owner = values["owner"]
    return Job(
        name=values["name"], title=values["title"] or values["name"], description=values["description"],
        kind=values["kind"], job_type=values["job_type"], schedule_type=values["schedule_type"],
        schedule_expression=str(values["schedule_expression"]).strip(), timezone=values["timezone"] or "UTC",
        task_name=values["task_name"] or "",
        task_args=values["task_args"] if values["task_args"] is not None else [],
        task_kwargs=values["task_kwargs"] if values["task_kwargs"] is not None else {},
        config=values["config"] or {}, secrets=secrets_encrypt(secrets or {}),
        **{f: values[f] for f in ("queue", "priority", "timeout_seconds", "max_retries", "retry_backoff_seconds",
                                  "overlap_policy", "catch_up_policy", "jitter_seconds", "max_concurrent_runs",
                                  "concurrency_group", "is_enabled", "organization")},
        owner=owner if owner is not None else (actor if getattr(actor, "is_authenticated", False) else None),
    )


def jobs_build(specs: list[dict[str, Any]], *, actor=None) -> tuple[list[Job], dict[int, ValidationError]]:
    """The unsaved Jobs ``specs`` (``job_create``'s keyword arguments each, plus
    ``status``: a job may be created paused) describe, checked as ``job_create``
    checks one (``secrets_check``, ``job_validate``, a free name), and the
    ValidationError of each spec that fails, by index."""
    jobs: list[Job] = []
    errors: dict[int, ValidationError] = {}
    names: dict[str, int] = {}
    schedules: dict = {}
    for index, spec in enumerate(specs):
        spec = dict(spec)
        status = spec.pop("status", Job.Status.ACTIVE)
        unknown = sorted(set(spec) - _CREATE_ARGS)
        try:
            if unknown:
                raise ValidationError({field: ["Unknown field."] for field in unknown})
            if status not in _STATUSES:
                raise ValidationError({"status": [f"Use one of: {', '.join(Job.Status.values)}."]})
            missing = sorted(_CREATE_REQUIRED - set(spec))
            if missing:
                raise ValidationError({field: ["This field is required."] for field in missing})
            job = _job_new(actor=actor, **{**_CREATE_PARAMETERS, **spec})
            job.status = status
            job_validate(job, schedules=schedules)
            if job.name in names:
                raise ValidationError({"name": [f"Listed twice (also at {names[job.name]})."]})
        except ValidationError as exc:
            errors[index] = exc
            continue
        names[job.name] = index
        jobs.append(job)
    taken = {name for batch in id_batches(names) for name in
             Job.objects.filter(name__in=batch).values_list("name", flat=True)}
    for name in sorted(taken):
        errors[names[name]] = ValidationError({"name": [f"A job named '{name}' already exists."]})
    return [job for job in jobs if job.name not in taken], errors


@transaction.atomic
def jobs_create_bulk(*, specs: list[dict[str, Any]], actor=None, actor_label: str = "") -> list[Job]:
    """Create many jobs at once: each spec is ``job_create``'s keyword arguments
    (plus ``status``, to create one paused). The same checks, beat entries,
    ``next_run_at`` and ``create`` audit rows as ``job_create`` one by one, in a
    few statements (scheduling.services.jobs_bulk). All or nothing: a
    ValidationError naming ``specs[i].field`` for every spec at fault; a
    Conflict if a name was taken meanwhile."""
    jobs, errors = jobs_build(specs, actor=actor)
    if errors:
        raise ValidationError({f"specs[{index}].{field}": messages for index, exc in sorted(errors.items())
                               for field, messages in exc.message_dict.items()})
    try:
        with transaction.atomic():
            jobs_bulk.jobs_insert(jobs, actor=actor, actor_label=actor_label)
    except IntegrityError:
        raise Conflict("A job of one of these names was created meanwhile; try again.",
                       code=ErrorCode.JOB_NAME_TAKEN) from None
    return jobs


@transaction.atomic
def jobs_update_bulk(*, updates: list[tuple[Job, dict[str, Any]]], actor=None, actor_label: str = "") -> list[Job]:
    """``job_update`` for many jobs at once: each (job, data) checked as it
    checks one (``job_validate``), the rows locked and written with one
    ``bulk_update``, beat entries re-synced in bulk with one change notice,
    one ``update`` audit row per job that changed. All or nothing: a
    ValidationError naming ``updates[i].field`` for every update at fault."""
    errors: dict[str, list[str]] = {}
    for index, (_, data) in enumerate(updates):
        for field in sorted(set(data) - set(Job.EDITABLE_FIELDS)):
            errors[f"updates[{index}].{field}"] = ["This field cannot be changed."]
    if errors:
        raise ValidationError(errors)
    locked = (Job.objects.select_for_update(of=("self",)).select_related("periodic_task")
              .prefetch_related("calendars").in_bulk([job.pk for job, _ in updates]))
    jobs, befores, schedules, limits_before = [], [], {}, []
    for index, (job, data) in enumerate(updates):
        job = locked[job.pk]
        befores.append(audit.job_snapshot(job))
        limits_before.append(_limits(job))
        for field, value in data.items():
            setattr(job, field, value)
        if "schedule_expression" in data:
            job.schedule_expression = str(job.schedule_expression).strip()
        try:
            job_validate(job, schedules=schedules)
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                errors[f"updates[{index}].{field}"] = messages
        jobs.append(job)
    if errors:
        raise ValidationError(errors)
    now = django_timezone.now()
    jobs_bulk.periodic_tasks_sync(jobs, now=now)
    for job in jobs:
        job.updated_at = now
    # only the columns some update sets: a bulk UPDATE is a CASE per column and row
    fields = sorted({field for _, data in updates for field in data})
    try:
        with transaction.atomic():
            Job.objects.bulk_update(jobs, [*fields, "updated_at", "next_run_at", "periodic_task"],
                                    batch_size=jobs_bulk.BATCH)
    except IntegrityError:
        raise Conflict("A job of one of these names exists already.", code=ErrorCode.JOB_NAME_TAKEN) from None
    entries = []
    for job, before in zip(jobs, befores):
        changes = audit.diff(before, audit.job_snapshot(job))
        if changes:
            entries.append(AuditLog(**audit.entry(actor=actor, actor_label=actor_label, action="update", obj=job,
                                                  changes=changes)))
    AuditLog.objects.bulk_create(entries, batch_size=jobs_bulk.BATCH)
    for job, limits in zip(jobs, limits_before):
        _release_on_new_limits(job, limits)
    return jobs


def _limits(job: Job) -> tuple:
    return job.max_concurrent_runs, job.concurrency_group_id


def _release_on_new_limits(job: Job, before: tuple) -> None:
    """A job whose limit changed (raised, removed, another group) sends at
    once the held runs that now fit, of its own and of the group it left,
    instead of waiting for a run to end or for the stale-queued sweep."""
    if _limits(job) == before:
        return
    limits_release(job=job)
    old_group = before[1]
    if old_group and old_group != job.concurrency_group_id:
        limits_release_group(old_group)  # the job's runs left the group's slots


@transaction.atomic
def job_update(*, job: Job, actor=None, actor_label: str = "", data: dict[str, Any]) -> Job:
    """Apply ``data`` (a subset of Job.EDITABLE_FIELDS); schedule changes re-sync beat."""
    unknown = sorted(set(data) - set(Job.EDITABLE_FIELDS))
    if unknown:
        raise ValidationError({field: ["This field cannot be changed."] for field in unknown})
    job = Job.objects.select_for_update().get(pk=job.pk)
    before = audit.job_snapshot(job)
    limits_before = _limits(job)
    for field, value in data.items():
        setattr(job, field, value)
    if "schedule_expression" in data:
        job.schedule_expression = str(job.schedule_expression).strip()
    job_validate(job)
    _save_unique(job)
    _sync_schedule(job)
    _release_on_new_limits(job, limits_before)
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
    secrets_check(secrets)
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
