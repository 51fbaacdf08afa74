"""Concurrency limits: ``Job.max_concurrent_runs`` (per job, overlap policy
``allow``) and concurrency groups (``ConcurrencyGroup``: one limit shared by
several jobs).

A run of a limited job is created ``queued`` and held (not sent); then the
oldest held runs of its job and group are sent while slots are free
(``limits_release``). The end of a run (finish, cancel, lost: the lost-run
sweep frees the slot of a run whose worker died) releases the next ones, so a
run over a limit waits in order and starts as soon as a slot frees; it is sent
once (the release is a conditional update of ``held``). Decided with the
group's row (or the job's) locked, so two ends never fill one slot twice. A
job with neither limit never comes here: no query more per fire.

A retry of a limited run is held too (``lifecycle._maybe_retry``): it is
passed over until its backoff is over (``held.retry_start_at``, or its
wake-up message came: ``due``), then takes its place among the held runs by
when it was made (the end of the run it retries)."""
from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from scheduling.models import ConcurrencyGroup, Execution, Job
from scheduling.services.held import retry_start_at
from scheduling.services.sending import send_execution

logger = logging.getLogger(__name__)

#: Held runs looked at per release (the oldest first).
RELEASE_BATCH = 200


def is_limited(job: Job) -> bool:
    return bool(job.max_concurrent_runs or job.concurrency_group_id)


def send_or_hold(execution: Execution, job: Job) -> Execution:
    """Send a new queued run, or hold it if its job is limited (then release
    what the limits allow, oldest first)."""
    if not is_limited(job):
        send_execution(execution, job)
        return execution
    Execution.objects.filter(pk=execution.pk).update(held=True, output=limits_waiting(job))
    execution.held, execution.output = True, limits_waiting(job)
    released = limits_release(job=job)
    if execution.pk in released:
        execution.held, execution.output = False, ""
    return execution


def limits_waiting(job: Job) -> str:
    """What a held run of ``job`` says it waits for."""
    limits = []
    if job.max_concurrent_runs:
        limits.append(f"max_concurrent_runs {job.max_concurrent_runs}")
    if job.concurrency_group_id:
        limits.append(f"concurrency group '{job.concurrency_group.name}'")
    return f"Waiting for a free slot ({', '.join(limits)})."


def _running_count(**where) -> int:
    return Execution.objects.filter(status__in=Execution.ACTIVE_STATUSES, held=False, **where).count()


def limits_release(*, job: Job, due: frozenset[int] | set[int] = frozenset()) -> set[int]:
    """Send the oldest held runs of ``job``'s job and group while slots are
    free (a retry once its backoff is over; ``due``: retries known to be,
    whose wake-up message came). Returns the ids sent."""
    group_id = job.concurrency_group_id
    sent: set[int] = set()
    with transaction.atomic():
        # One lock per limit scope: the group's row, or the job's.
        if group_id:
            group = ConcurrencyGroup.objects.select_for_update().filter(pk=group_id).first()
        else:
            group = None
            Job.objects.select_for_update().filter(pk=job.pk).first()
        scope = {"job__concurrency_group_id": group_id} if group else {"job_id": job.pk}
        held = list(Execution.objects.filter(status=Execution.Status.QUEUED, held=True, **scope)
                    .select_related("job").order_by("created_at", "pk")[:RELEASE_BATCH])
        if not held:
            return sent
        group_running = _running_count(job__concurrency_group_id=group.pk) if group else 0
        job_running: dict[int, int] = {}
        now = timezone.now()
        for execution in held:
            if group and group_running >= group.max_runs:
                break
            run_job = execution.job
            backoff_ends = retry_start_at(execution, run_job)
            if backoff_ends is not None and backoff_ends > now and execution.pk not in due:
                continue  # a retry in its backoff: it waits for no slot yet
            if run_job.pk not in job_running:
                job_running[run_job.pk] = _running_count(job_id=run_job.pk)
            if run_job.max_concurrent_runs and job_running[run_job.pk] >= run_job.max_concurrent_runs:
                continue  # its job is full; a run of another job of the group may go
            if run_job.overlap_policy == Job.OverlapPolicy.QUEUE and job_running[run_job.pk]:
                continue  # it waits for its job's running run (overlap policy queue)
            if not Execution.objects.filter(pk=execution.pk, status=Execution.Status.QUEUED, held=True).update(
                    held=False, output=""):
                continue
            execution.held, execution.output = False, ""
            send_execution(execution, run_job)
            sent.add(execution.pk)
            job_running[run_job.pk] += 1
            group_running += 1
    if sent:
        logger.info("concurrency limits: %d held run(s) of job %s%s sent", len(sent), job.pk,
                    f" / group {group_id}" if group_id else "")
    return sent


def limits_release_group(group_id: int) -> set[int]:
    """``limits_release`` for a concurrency group's runs (its limit changed, or
    a job left it): through any job still in it; none, no run of it waits."""
    member = Job.objects.filter(concurrency_group_id=group_id).first()
    return limits_release(job=member) if member is not None else set()


@transaction.atomic
def concurrency_group_set(*, name: str, max_runs: int, description: str = "", actor=None,
                          actor_label: str = "") -> ConcurrencyGroup:
    """Create or change the concurrency group ``name`` (audited); a raised
    limit sends the runs that now fit."""
    from django.core.exceptions import ValidationError

    from scheduling import audit

    errors = {}
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        errors["name"] = ["A name of 1 to 64 characters."]
    if not isinstance(max_runs, int) or isinstance(max_runs, bool) or max_runs < 1:
        errors["max_runs"] = ["A whole number of runs, at least 1."]
    if errors:
        raise ValidationError(errors)
    group = ConcurrencyGroup.objects.select_for_update().filter(name=name).first()
    before = {"max_runs": group.max_runs, "description": group.description} if group else {}
    if group is None:
        group = ConcurrencyGroup.objects.create(name=name, max_runs=max_runs, description=description)
    else:
        group.max_runs, group.description = max_runs, description or group.description
        group.save(update_fields=["max_runs", "description"])
    after = {"max_runs": group.max_runs, "description": group.description}
    audit.record(actor=actor, actor_label=actor_label, action="update" if before else "create", obj=group,
                 changes=audit.diff(before, after))
    limits_release_group(group.pk)
    return group
