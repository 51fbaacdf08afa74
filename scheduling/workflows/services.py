"""Services of the workflows facade: the only code here that writes.

Workflows are this package's own rows. Their schedules are core Jobs of kind
``workflow``, written only through ``scheduling.services`` (job_create,
job_update, job_pause, job_resume, job_delete, job_execute), so the beat
entry, executions, cancel, retries and statistics are the core's.
"""
from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from jobsite.crypto import secrets_decrypt, secrets_encrypt
from jobsite.exceptions import ApplicationError, Conflict, Forbidden
from jobsite.tenancy import user_default_organization
from scheduling import services as core
from scheduling.models import Execution, Job
from scheduling.schedules import format_interval_short, validate_cron_expression
from scheduling.workflows import selectors
from scheduling.workflows.errors import ErrorCode
from scheduling.workflows.models import Workflow
from scheduling.workflows.steps import validate_steps

NOT_YOUR_WORKFLOW = "Unauthorized: You can only run your own workflows."
SEED_JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,149}$")
# Paths of the seed's collection (/api/cron/jobs/all, /cron, /interval) and of
# the workflow runs (/api/workflows/runs): never ids.
RESERVED_JOB_IDS = frozenset({"all", "cron", "interval"})
RESERVED_WORKFLOW_IDS = frozenset({"runs"})
WORKFLOW_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
SECRET_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


# ---------------------------------------------------------------------------
# Workflows
# ---------------------------------------------------------------------------
def _clean_secrets(secrets: Any) -> dict[str, str]:
    if not isinstance(secrets, dict):
        raise ValidationError({"secrets": ["Must be an object of NAME: value strings."]})
    bad = [name for name, value in secrets.items() if not SECRET_NAME_RE.match(str(name)) or not isinstance(value, str)]
    if bad:
        raise ValidationError({"secrets": [f"Names are letters, digits and _ (not starting with a digit) and values "
                                           f"strings; check: {', '.join(map(str, bad))}."]})
    return dict(secrets)


def _check_fields(*, name: Any, description: Any, enabled: Any) -> None:
    errors = {}
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        errors["name"] = ["Give a name of 1-200 characters."]
    if not isinstance(description, str):
        errors["description"] = ["Must be a string."]
    if not isinstance(enabled, bool):
        errors["enabled"] = ["Must be true or false."]
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def workflow_create(
    *, actor, id: str, name: str, steps: list, description: str = "", enabled: bool = True,
    secrets: dict[str, str] | None = None, organization=None,
) -> Workflow:
    """Create a workflow owned by ``actor`` (in their organization unless one is given)."""
    if not isinstance(id, str) or not WORKFLOW_ID_RE.match(id) or id in RESERVED_WORKFLOW_IDS:
        raise ValidationError({"id": ["Use 1-100 letters, digits, - and _ (starting with a letter or digit); "
                                      "'runs' is reserved."]})
    _check_fields(name=name, description=description, enabled=enabled)
    secrets = _clean_secrets(secrets or {})
    steps = validate_steps(steps, owner=actor, secret_names=set(secrets))
    if Workflow.objects.filter(pk=id).exists():
        raise Conflict(f"A workflow with id '{id}' already exists.", code=ErrorCode.WORKFLOW_ID_TAKEN)
    owner = actor if getattr(actor, "pk", None) else None
    workflow = Workflow(
        id=id, name=name.strip(), description=description, steps=steps, enabled=enabled,
        secrets=secrets_encrypt(secrets), owner=owner,
        organization=organization if organization is not None else user_default_organization(owner),
    )
    try:
        with transaction.atomic():
            workflow.save(force_insert=True)
    except IntegrityError:
        raise Conflict(f"A workflow with id '{id}' already exists.", code=ErrorCode.WORKFLOW_ID_TAKEN) from None
    return workflow


WORKFLOW_EDITABLE_FIELDS = ("name", "description", "steps", "enabled", "secrets")


@transaction.atomic
def workflow_update(*, workflow: Workflow, actor, data: dict[str, Any]) -> Workflow:
    """Change any of WORKFLOW_EDITABLE_FIELDS. ``secrets`` replaces the whole set;
    steps are validated against the secrets the workflow will have."""
    unknown = sorted(set(data) - set(WORKFLOW_EDITABLE_FIELDS))
    if unknown:
        raise ValidationError({field: ["This field cannot be changed."] for field in unknown})
    workflow = Workflow.objects.select_for_update().get(pk=workflow.pk)
    _check_fields(
        name=data.get("name", workflow.name), description=data.get("description", workflow.description),
        enabled=data.get("enabled", workflow.enabled),
    )
    secrets = _clean_secrets(data["secrets"]) if "secrets" in data else secrets_decrypt(workflow.secrets)
    # The owner's rights decide which tasks the steps may call, whoever edits them.
    owner = workflow.owner or actor
    steps = validate_steps(data.get("steps", workflow.steps), owner=owner, secret_names=set(secrets))
    workflow.name = data.get("name", workflow.name).strip()
    workflow.description = data.get("description", workflow.description)
    workflow.enabled = data.get("enabled", workflow.enabled)
    workflow.steps = steps
    if "secrets" in data:
        workflow.secrets = secrets_encrypt(secrets)
    workflow.save()
    return workflow


@transaction.atomic
def workflow_delete(*, workflow: Workflow, actor) -> None:
    """Delete a workflow no schedule uses (409 naming how many do)."""
    count = selectors.workflow_schedule_count(workflow=workflow)
    if count:
        raise Conflict(
            f"Workflow {workflow.pk} is used by {count} scheduled job(s); delete them first.",
            code=ErrorCode.WORKFLOW_IN_USE,
        )
    workflow.delete()


@transaction.atomic
def workflow_transfer(*, workflow: Workflow, owner, organization) -> Workflow:
    """Give the workflow another owner and/or organization (operators, in the admin)."""
    workflow.owner, workflow.organization = owner, organization
    workflow.save(update_fields=["owner", "organization", "updated_at"])
    return workflow


def workflow_can_modify(workflow: Workflow, user) -> bool:
    return bool(user.is_superuser or (workflow.owner_id is not None and workflow.owner_id == user.pk))


# ---------------------------------------------------------------------------
# Schedules (seed 002): core jobs of kind "workflow"
# ---------------------------------------------------------------------------
def _usable_workflow(*, actor, workflow_id: Any) -> Workflow:
    if not isinstance(workflow_id, str) or not workflow_id:
        raise ValidationError({"workflow_id": ["This field is required."]})
    workflow = Workflow.objects.filter(pk=workflow_id).first()
    if workflow is None:
        raise ValidationError({"workflow_id": [f"Workflow '{workflow_id}' does not exist."]})
    if not selectors.workflow_usable_by(workflow, actor):
        raise Forbidden(NOT_YOUR_WORKFLOW)
    if not workflow.enabled:
        raise ValidationError({"workflow_id": [f"Workflow '{workflow_id}' is disabled; enable it first."]})
    return workflow


def interval_expression(*, hours: int = 0, minutes: int = 0, seconds: int = 0) -> str:
    """Seed 002's hours/minutes/seconds as the core's interval expression (``1h 30m``)."""
    from datetime import timedelta

    values = {"hours": hours, "minutes": minutes, "seconds": seconds}
    bad = [k for k, v in values.items() if not isinstance(v, int) or isinstance(v, bool) or v < 0]
    if bad:
        raise ValidationError({k: ["Must be a whole number, 0 or more."] for k in bad})
    if not any(values.values()):
        raise ValidationError({"non_field_errors": ["At least one of hours, minutes or seconds must be greater than 0."]})
    try:
        delta = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:
        raise ValidationError({"hours": ["The interval must be at most 366 days."]}) from None
    return format_interval_short(delta)


@transaction.atomic
def workflow_schedule_save(
    *, actor, job_id: str, workflow_id: str, user_id: str, input: str, schedule_type: str,
    cron_expression: str = "", hours: int = 0, minutes: int = 0, seconds: int = 0, timezone: str = "UTC",
) -> tuple[Job, bool]:
    """Create the caller's job ``job_id`` running ``workflow_id`` with ``input``
    on a cron or interval schedule — or, when they already have one by that
    id, replace its workflow, input and schedule (seed 002: "creating a job
    with an existing ID replaces the old job"). The job keeps its one beat
    entry (re-synced in this transaction, so no stale entry is left) and its
    run history; a paused job is resumed, as a replaced job starts afresh.
    Returns (job, created)."""
    if not selectors.user_is(actor, user_id):
        raise Forbidden(NOT_YOUR_WORKFLOW)
    if not isinstance(job_id, str) or not SEED_JOB_ID_RE.match(job_id) or job_id in RESERVED_JOB_IDS:
        raise ValidationError({"job_id": ["Use 1-150 letters, digits and _ . : @ - (starting with a letter or "
                                          "digit); 'all', 'cron' and 'interval' are reserved."]})
    if not isinstance(input, str) or len(input) > 100_000:
        raise ValidationError({"input": ["Must be a string of at most 100000 characters."]})
    workflow = _usable_workflow(actor=actor, workflow_id=workflow_id)
    if schedule_type == Job.ScheduleType.CRON:
        try:
            expression = validate_cron_expression(cron_expression)
        except ValidationError as exc:
            # Seed 002 shows the message alone: {"detail": "Invalid cron expression: 0 9. Expected 5 parts ..."}
            raise ApplicationError(exc.message_dict["schedule_expression"][0], status=400,
                                   code=ErrorCode.INVALID_CRON_EXPRESSION) from None
    elif schedule_type == Job.ScheduleType.INTERVAL:
        expression = interval_expression(hours=hours, minutes=minutes, seconds=seconds)
    else:
        raise ValidationError({"schedule_type": ["Use cron or interval."]})

    seed_user_id = selectors.user_seed_id(actor)
    values = {
        "title": f"Workflow {workflow.pk} for user {seed_user_id}",
        "schedule_type": schedule_type,
        "schedule_expression": expression,
        "timezone": timezone or "UTC",
        "task_kwargs": {"input": input},
        "config": {"job_id": job_id, "workflow_id": workflow.pk, "user_id": seed_user_id},
    }
    existing = selectors.schedule_find(user=actor, job_id=job_id)
    try:
        if existing is not None:
            job = core.job_update(job=existing, actor=actor, data={**values, "is_enabled": True})
            if job.status != Job.Status.ACTIVE:
                job = core.job_resume(job=job, actor=actor)
            return job, False
        job = core.job_create(
            actor=actor, name=selectors.schedule_job_name(user=actor, job_id=job_id), kind=selectors.WORKFLOW_KIND,
            job_type=Job.JobType.WORKFLOW, description=f"Seed-002 workflow schedule '{job_id}'",
            queue=settings.WORKFLOWS_QUEUE, timeout_seconds=settings.WORKFLOWS_JOB_TIMEOUT_SECONDS,
            # Per-user isolation (seed 002): the job is its owner's alone, not
            # their organization's, unlike the workflow it runs.
            owner=actor, organization=None, **values,
        )
    except ValidationError as exc:
        _raise_for_seed_fields(exc)
    return job, True


def _raise_for_seed_fields(exc: ValidationError):
    """Re-raise a core ValidationError under the seed's field names."""
    if not hasattr(exc, "error_dict"):
        raise exc
    names = {"schedule_expression": "schedule", "task_kwargs": "input", "config": "workflow_id"}
    raise ValidationError({names.get(field, field): messages for field, messages in exc.message_dict.items()}) from exc


def workflow_schedule_trigger(*, job: Job, actor) -> Execution:
    """Run the job now; its schedule is unchanged. A manual trigger is an
    explicit request, so it runs even while the job is paused (like calling
    the job's function in APScheduler)."""
    return core.job_execute(job=job, actor=actor, trigger=Execution.Trigger.API, force=True)


def workflow_schedule_pause(*, job: Job, actor) -> Job:
    return core.job_pause(job=job, actor=actor)


def workflow_schedule_resume(*, job: Job, actor) -> Job:
    return core.job_resume(job=job, actor=actor)


def workflow_schedule_delete(*, job: Job, actor) -> None:
    core.job_delete(job=job, actor=actor)


# ---------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------
def workflow_run_rerun(*, execution: Execution, actor) -> Execution:
    """Run the job again from the failed step of ``execution``, reusing the
    recorded outputs of the steps before it (and the same input)."""
    if execution.status in Execution.ACTIVE_STATUSES or execution.status == Execution.Status.SUCCESS:
        raise Conflict(f"Execution {execution.pk} is {execution.status}; only a finished, unsuccessful run can be re-run.",
                       code=ErrorCode.NOTHING_TO_RERUN)
    result = execution.result if isinstance(execution.result, dict) else {}
    steps = result.get("steps") if isinstance(result.get("steps"), list) else []
    resume_from = next((s.get("index", i) for i, s in enumerate(steps) if s.get("status") in ("failed", "timeout")), None)
    if resume_from is None:
        # No step record (the run never started, or its result was lost): run it all again.
        resume_from = next((i for i, s in enumerate(steps) if s.get("status") not in ("success", "reused")), 0)
    previous_outputs = {s["name"]: s.get("output") for s in steps[:resume_from] if "name" in s}
    override = {
        "resume_from": resume_from, "previous_outputs": previous_outputs,
        "input": result.get("input", (execution.override_kwargs or {}).get("input", execution.job.task_kwargs.get("input", ""))),
        "resumed_from_execution": execution.pk,
    }
    return core.job_execute(job=execution.job, actor=actor, trigger=Execution.Trigger.API, force=True,
                            override_kwargs=override)
