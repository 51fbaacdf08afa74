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
from jobsite.redaction import secrets_check
from jobsite.exceptions import ApplicationError, Conflict, Forbidden
from jobsite.tenancy import user_default_organization
from scheduling import audit
from scheduling import services as core
from scheduling.models import Execution, Job
from scheduling.schedules import format_interval_short, validate_cron_expression
from scheduling.workflows import selectors
from scheduling.workflows.errors import NOT_YOUR_WORKFLOW, ErrorCode
from scheduling.workflows.models import Workflow
from scheduling.workflows.steps import validate_steps

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
    secrets_check(secrets)
    return dict(secrets)


def workflow_secrets_clean(secrets: Any) -> dict[str, str]:
    """Check a NAME → value secrets dict as workflow_create/workflow_update do
    (ValidationError under ``secrets``); for forms that check before saving."""
    return _clean_secrets(secrets)


def workflow_steps_check(*, steps: Any, owner, workflow: Workflow | None = None,
                         secret_names: set[str] | None = None) -> list[dict]:
    """Validate ``steps`` exactly as workflow_create/workflow_update do, without
    saving anything: against the rights of ``workflow``'s owner (else
    ``owner``) and ``secret_names`` (default: the workflow's stored secrets).
    Returns the normalised steps; raises ValidationError keyed
    ``steps[<i>].<field>`` (the API's ``errors``)."""
    if workflow is not None:
        owner = workflow.owner or owner
        if secret_names is None:
            secret_names = set(secrets_decrypt(workflow.secrets))
    return validate_steps(steps, owner=owner, secret_names=set(secret_names or ()))


def _check_fields(*, name: Any, description: Any, enabled: Any, shared: Any, organization) -> None:
    errors = {}
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        errors["name"] = ["Give a name of 1-200 characters."]
    if not isinstance(description, str):
        errors["description"] = ["Must be a string."]
    if not isinstance(enabled, bool):
        errors["enabled"] = ["Must be true or false."]
    if not isinstance(shared, bool):
        errors["shared_with_organization"] = ["Must be true or false."]
    elif shared and organization is None:
        errors["shared_with_organization"] = ["The workflow belongs to no organization to share it with."]
    if errors:
        raise ValidationError(errors)


def _snapshot(workflow: Workflow, secret_names) -> dict[str, Any]:
    """What the audit log records of a workflow (secrets by name only)."""
    return {
        "name": workflow.name, "description": workflow.description, "steps": workflow.steps,
        "enabled": workflow.enabled, "shared_with_organization": workflow.shared_with_organization,
        "owner": workflow.owner_id, "organization": workflow.organization_id, "secrets": sorted(secret_names),
    }


def refuse_unless_usable(*, workflow: Workflow, user) -> None:
    """403 with the contract's message unless ``user`` may use ``workflow``
    (selectors.workflow_usable_by): their own, or shared with them."""
    if not selectors.workflow_usable_by(workflow, user):
        raise ApplicationError(NOT_YOUR_WORKFLOW, status=403, code=ErrorCode.NOT_YOUR_WORKFLOW)


@transaction.atomic
def workflow_create(
    *, actor, id: str, name: str, steps: list, description: str = "", enabled: bool = True,
    secrets: dict[str, str] | None = None, organization=None, shared_with_organization: bool = False,
    owner=None, actor_label: str = "",
) -> Workflow:
    """Create a workflow owned by ``owner`` (default: ``actor``), in the
    owner's organization unless one is given; only its owner may use it
    unless ``shared_with_organization``."""
    if not isinstance(id, str) or not WORKFLOW_ID_RE.match(id) or id in RESERVED_WORKFLOW_IDS:
        raise ValidationError({"id": ["Use 1-100 letters, digits, - and _ (starting with a letter or digit); "
                                      "'runs' is reserved."]})
    owner = owner if owner is not None else actor
    owner = owner if getattr(owner, "pk", None) else None
    organization = organization if organization is not None else user_default_organization(owner)
    _check_fields(name=name, description=description, enabled=enabled, shared=shared_with_organization,
                  organization=organization)
    secrets = _clean_secrets(secrets or {})
    steps = validate_steps(steps, owner=owner, secret_names=set(secrets))
    if Workflow.objects.filter(pk=id).exists():
        raise Conflict(f"A workflow with id '{id}' already exists.", code=ErrorCode.WORKFLOW_ID_TAKEN)
    workflow = Workflow(
        id=id, name=name.strip(), description=description, steps=steps, enabled=enabled,
        secrets=secrets_encrypt(secrets), owner=owner, organization=organization,
        shared_with_organization=shared_with_organization,
    )
    try:
        with transaction.atomic():
            workflow.save(force_insert=True)
    except IntegrityError:
        raise Conflict(f"A workflow with id '{id}' already exists.", code=ErrorCode.WORKFLOW_ID_TAKEN) from None
    audit.record(actor=actor, actor_label=actor_label, action="create", obj=workflow,
                 changes=_snapshot(workflow, secrets))
    return workflow


WORKFLOW_EDITABLE_FIELDS = ("name", "description", "steps", "enabled", "secrets", "shared_with_organization")


@transaction.atomic
def workflow_update(*, workflow: Workflow, actor, data: dict[str, Any], actor_label: str = "") -> Workflow:
    """Change any of WORKFLOW_EDITABLE_FIELDS. ``secrets`` replaces the whole set;
    steps are validated against the secrets the workflow will have."""
    unknown = sorted(set(data) - set(WORKFLOW_EDITABLE_FIELDS))
    if unknown:
        raise ValidationError({field: ["This field cannot be changed."] for field in unknown})
    workflow = Workflow.objects.select_for_update().get(pk=workflow.pk)
    _check_fields(
        name=data.get("name", workflow.name), description=data.get("description", workflow.description),
        enabled=data.get("enabled", workflow.enabled),
        shared=data.get("shared_with_organization", workflow.shared_with_organization),
        organization=workflow.organization,
    )
    stored_secrets = secrets_decrypt(workflow.secrets)
    secrets = _clean_secrets(data["secrets"]) if "secrets" in data else stored_secrets
    # The owner's rights decide which tasks the steps may call, whoever edits them.
    owner = workflow.owner or actor
    steps = validate_steps(data.get("steps", workflow.steps), owner=owner, secret_names=set(secrets))
    before = _snapshot(workflow, stored_secrets)
    workflow.name = data.get("name", workflow.name).strip()
    workflow.description = data.get("description", workflow.description)
    workflow.enabled = data.get("enabled", workflow.enabled)
    workflow.shared_with_organization = data.get("shared_with_organization", workflow.shared_with_organization)
    workflow.steps = steps
    if "secrets" in data:
        workflow.secrets = secrets_encrypt(secrets)
    workflow.save()
    changes = audit.diff(before, _snapshot(workflow, secrets))
    if "secrets" in data and secrets != stored_secrets and "secrets" not in changes:
        changes["secrets"] = ["changed", "changed"]  # same names, new values: say so, never what
    if changes:
        audit.record(actor=actor, actor_label=actor_label, action="update", obj=workflow, changes=changes)
    return workflow


@transaction.atomic
def workflow_delete(*, workflow: Workflow, actor, actor_label: str = "") -> None:
    """Delete a workflow no schedule uses (409 naming how many do)."""
    count = selectors.workflow_schedule_count(workflow=workflow)
    if count:
        raise Conflict(
            f"Workflow {workflow.pk} is used by {count} scheduled job(s); delete them first.",
            code=ErrorCode.WORKFLOW_IN_USE,
        )
    audit.record(actor=actor, actor_label=actor_label, action="delete", obj=workflow,
                 changes={"owner": workflow.owner_id})
    workflow.delete()


@transaction.atomic
def workflow_transfer(*, workflow: Workflow, owner, organization, actor=None) -> Workflow:
    """Give the workflow another owner and/or organization (operators, in the
    admin). Without an organization it is shared with nobody."""
    before = {"owner": workflow.owner_id, "organization": workflow.organization_id,
              "shared_with_organization": workflow.shared_with_organization}
    workflow.owner, workflow.organization = owner, organization
    if organization is None:
        workflow.shared_with_organization = False
    workflow.save(update_fields=["owner", "organization", "shared_with_organization", "updated_at"])
    changes = audit.diff(before, {"owner": workflow.owner_id, "organization": workflow.organization_id,
                                  "shared_with_organization": workflow.shared_with_organization})
    if changes:
        audit.record(actor=actor, action="update", obj=workflow, changes=changes)
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
    refuse_unless_usable(workflow=workflow, user=actor)
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
            job_type=Job.JobType.WORKFLOW, description=f"Workflow schedule '{job_id}' (created through /api/cron/jobs)",
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


def _refuse_unless_job_may_run(*, job: Job, actor) -> None:
    """403 unless the caller may (still) use the workflow ``job`` runs: its
    owner may have stopped sharing it since the job was scheduled."""
    workflow = Workflow.objects.filter(pk=(job.config or {}).get("workflow_id")).first()
    if workflow is not None:  # a workflow deleted since: the run fails saying so
        refuse_unless_usable(workflow=workflow, user=actor)


def workflow_schedule_trigger(*, job: Job, actor) -> Execution:
    """Run the job now; its schedule is unchanged. A manual trigger is an
    explicit request, so it runs even while the job is paused (like calling
    the job's function in APScheduler)."""
    _refuse_unless_job_may_run(job=job, actor=actor)
    return core.job_execute(job=job, actor=actor, trigger=Execution.Trigger.API, force=True)


def workflow_schedule_pause(*, job: Job, actor) -> Job:
    return core.job_pause(job=job, actor=actor)


def workflow_schedule_resume(*, job: Job, actor) -> Job:
    _refuse_unless_job_may_run(job=job, actor=actor)
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
    _refuse_unless_job_may_run(job=execution.job, actor=actor)
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
