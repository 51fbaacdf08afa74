"""Run requests: run a job now (API, admin, CLI, a facade's one-off object),
unless its state or overlap policy refuses it."""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from jobsite.db import InsertedPk, create_rows_if_updated
from jobsite.exceptions import ApplicationError, Conflict
from jobsite.limits import json_params_errors
from scheduling import audit
from scheduling.errors import ErrorCode
from scheduling.executors import executor_for
from scheduling.maintenance_mode import refuse_run_if_paused
from scheduling.models import AuditLog, Execution, Job
from scheduling.services.lifecycle import job_row, run_params
from scheduling.services.limits import is_limited, send_or_hold
from scheduling.services.overlap import ONE_BY_ONE_POLICIES, run_with_overlap_policy
from scheduling.services.sending import execution_values, new_execution, send_execution

def job_execute(
    *, job: Job, actor=None, actor_label: str = "", trigger: str = Execution.Trigger.API,
    force: bool = False, override_kwargs: dict | None = None,
) -> Execution:
    """Run ``job`` now. Without ``force`` a disabled/paused job or one already
    running (overlap policy ``skip``) is refused with 409."""
    if override_kwargs is not None and not isinstance(override_kwargs, dict):
        raise ValidationError({"override_kwargs": ["Must be a JSON object."]})
    too_big = json_params_errors({"override_kwargs": override_kwargs}) if override_kwargs else {}
    if too_big:
        raise ValidationError(too_big)
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
    job = job_row.update_then_first(job_id, where={"pk": job_id}, values={"last_run_at": timezone.now()})
    if job is None:
        raise Job.DoesNotExist(f"Job {job_id} no longer exists.")
    _check_run_request(job, force=force, override_kwargs=override_kwargs)
    if not force and job.overlap_policy == Job.OverlapPolicy.SKIP:
        active = active_execution(job)
        if active is not None:
            raise Conflict(
                f"Job '{job.name}' is already running ({active_state(active)}); use force to start another run.",
                code=ErrorCode.JOB_RUNNING,
            )
    if not force and job.overlap_policy in ONE_BY_ONE_POLICIES:
        execution = run_with_overlap_policy(job, scheduled=False, make_run=lambda **extra: new_execution(
            job, trigger=trigger, actor=actor, override_kwargs=override_kwargs, **extra))
    else:
        execution = new_execution(job, trigger=trigger, actor=actor, override_kwargs=override_kwargs)
        send_or_hold(execution, job)
    audit.record(actor=actor, actor_label=actor_label, action="execute", obj=job,
                 changes=_run_request_changes(execution.pk, force=force, override_kwargs=override_kwargs))
    return execution


def _run_request_changes(execution_id: int | None, *, force: bool, override_kwargs: dict | None) -> dict:
    """What the audit log records of a run request."""
    return {"execution": execution_id, "force": force, "override_kwargs": override_kwargs or {}}


def _check_run_request(job: Job, *, force: bool, override_kwargs: dict | None) -> None:
    """Refuse a run request the job's kind or state, or a maintenance pause,
    does not allow (the overlap policy aside: that needs the job row locked)."""
    executor_for(job.kind).validate_params(job, run_params(job, override_kwargs))
    if not force and not job.is_schedulable:
        raise Conflict(f"Job '{job.name}' is {job.state}; use force to run it anyway.", code=ErrorCode.JOB_NOT_ACTIVE)
    if not force:
        refuse_run_if_paused(job)


def _execute_unless_changed(job: Job, *, actor, actor_label: str, trigger: str, force: bool,
                            override_kwargs: dict | None) -> Execution | None:
    """``_execute_locked`` without reading the job again, where it needs no
    lock: for a run whose overlap policy is not ``skip`` (or forced).

    (Policies ``queue`` and ``replace`` need the lock too.)
    The request is checked against the caller's instance of the job (the API
    and CLI read it just before), then the job's ``last_run_at`` is set and
    the execution and its audit row written — only while the job's row is as
    that instance says: the same ``updated_at`` (every edit saves it), overlap
    policy and, unless forced, enabled and active (``create_rows_if_updated``:
    one statement on PostgreSQL, a transaction elsewhere). Otherwise it
    writes nothing and returns None, and so does a request the instance
    refuses: ``_execute_locked`` then decides from the row as it is. The
    locked path costs the caller and the server more per request ("third
    pass" and "fourth pass" in docs/benchmarks.md)."""
    if not (job.pk and job.updated_at):
        return None
    if (not force and job.overlap_policy != Job.OverlapPolicy.ALLOW) or is_limited(job):
        return None  # (a limited job's run may have to wait: decided with its limit's row locked)
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
        (Execution, execution_values(job, trigger=trigger, actor=actor, override_kwargs=override_kwargs)),
        (AuditLog, audit_row),
    ])
    if created is None:
        return None
    execution = created[0]
    send_execution(execution, job)
    return execution


def active_execution(job: Job) -> Execution | None:
    return job.executions.filter(status__in=Execution.ACTIVE_STATUSES).only("pk", "status", "trigger").first()


def active_state(execution: Execution) -> str:
    """What an active execution is doing, in words."""
    if execution.status == Execution.Status.RUNNING:
        return f"execution {execution.pk} is still running"
    if execution.trigger == Execution.Trigger.RETRY:
        return f"execution {execution.pk} is a retry waiting out its backoff"
    return f"execution {execution.pk} is queued, waiting for a worker"
