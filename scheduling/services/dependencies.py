"""Run after another job: a job (downstream) starts when other jobs' runs
(upstream) end — after A succeeds, after A finishes (any outcome), or after A
and B have both succeeded for the same due time.

The downstream run is identified by the upstream run's due time (its
``scheduled_for``; a manual upstream run's creation time), so it is one run
per due time however often an upstream run is reported ended; it records the
run that triggered it (``trigger_run``). An upstream run that ends in a way its
link does not accept (failed, for "after it succeeds") records the downstream
fire as ``skipped``, with the reason — once its retries are spent. Cycles are
refused. Only a job with ``has_downstream`` looks for its dependants when a run
of it ends: other jobs pay no query."""
from __future__ import annotations

import logging
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from scheduling import audit
from scheduling.models import Execution, Job, JobDependency
from scheduling.services.limits import send_or_hold
from scheduling.services.sending import new_execution

logger = logging.getLogger(__name__)

#: How many retries back a run is traced to its due time.
RETRY_DEPTH = 20


@transaction.atomic
def job_set_run_after(*, job: Job, upstreams: list[tuple[Job, str]], actor=None,
                      actor_label: str = "") -> list[JobDependency]:
    """Make ``job`` run after ``upstreams`` ((job, condition) pairs; empty:
    after none). A cycle is a 400 naming it. Audited."""
    errors = []
    seen = set()
    for upstream, condition in upstreams:
        if condition not in JobDependency.Condition.values:
            errors.append(f"Unknown condition '{condition}': use one of {', '.join(JobDependency.Condition.values)}.")
        if upstream.pk in seen:
            errors.append(f"Job '{upstream.name}' is listed twice.")
        seen.add(upstream.pk)
    if errors:
        raise ValidationError({"run_after": errors})
    cycle = _cycle(job, {upstream.pk for upstream, _ in upstreams})
    if cycle:
        raise ValidationError({"run_after": [f"Dependency cycle (each runs after the next): {' → '.join(cycle)}."]})
    before = sorted((link.upstream.name, link.condition) for link in job.upstream_links.select_related("upstream"))
    old_upstream_ids = set(job.upstream_links.values_list("upstream_id", flat=True))
    job.upstream_links.all().delete()
    links = [JobDependency.objects.create(downstream=job, upstream=upstream, condition=condition)
             for upstream, condition in upstreams]
    # has_downstream, with updated_at: a worker's copy of the job (held by updated_at) sees the change
    now = timezone.now()
    for upstream_id in old_upstream_ids | seen:
        Job.objects.filter(pk=upstream_id).update(
            has_downstream=JobDependency.objects.filter(upstream_id=upstream_id).exists(), updated_at=now)
    after = sorted((upstream.name, condition) for upstream, condition in upstreams)
    if before != after:
        audit.record(actor=actor, actor_label=actor_label, action="update", obj=job,
                     changes={"run_after": [[f"{n} ({c})" for n, c in before], [f"{n} ({c})" for n, c in after]]})
    return links


def _cycle(job: Job, new_upstreams: set[int]) -> list[str] | None:
    """The cycle ``job``'s new upstreams would close, as job names, or None."""
    edges: dict[int, set[int]] = {}
    for downstream_id, upstream_id in JobDependency.objects.exclude(downstream=job).values_list(
            "downstream_id", "upstream_id"):
        edges.setdefault(downstream_id, set()).add(upstream_id)
    edges[job.pk] = set(new_upstreams)
    path: list[int] = []

    def walk(node: int, visiting: set[int]) -> list[int] | None:
        for upstream_id in sorted(edges.get(node, ())):
            if upstream_id == job.pk:
                return [*path, upstream_id]
            if upstream_id in visiting:
                continue
            visiting.add(upstream_id)
            path.append(upstream_id)
            found = walk(upstream_id, visiting)
            if found:
                return found
            path.pop()
        return None

    found = walk(job.pk, {job.pk})
    if not found:
        return None
    names = dict(Job.objects.filter(pk__in=[job.pk, *found]).values_list("pk", "name"))
    # job runs after found[0], which runs after found[1] ... which runs after job
    return [names[job.pk], *(names[pk] for pk in found)]


def _due_of(execution: Execution) -> datetime:
    """The due time a run stands for: its own, or that of the run it retries."""
    run = execution
    for _ in range(RETRY_DEPTH):
        if run.scheduled_for is not None or run.retry_of_id is None:
            break
        run = Execution.objects.only("pk", "scheduled_for", "retry_of_id", "created_at").get(pk=run.retry_of_id)
    return run.scheduled_for or run.created_at


def _runs_for(job_id: int, due: datetime):
    """The runs of ``job_id`` standing for ``due`` (the run fired for it and its retries)."""
    q = Q(scheduled_for=due)
    prefix = ""
    for _ in range(3):
        prefix += "retry_of__"
        q |= Q(**{f"{prefix}scheduled_for": due})
    return Execution.objects.filter(job_id=job_id).filter(q)


def _accepts(condition: str, status: str) -> bool:
    if condition == JobDependency.Condition.SUCCESS:
        return status == Execution.Status.SUCCESS
    return status in Execution.COUNTED_STATUSES


def dependants_on_end(execution: Execution) -> list[Execution]:
    """A run of a job others run after has ended: start, or record as skipped,
    each downstream job's fire for its due time."""
    job = execution.job
    if execution.status in Execution.FAILURE_STATUSES and execution.attempt <= job.max_retries:
        return []  # a retry comes: decided when it ends
    due = _due_of(execution)
    recorded = []
    for link in JobDependency.objects.filter(upstream_id=job.pk).select_related("downstream"):
        downstream = link.downstream
        if not downstream.is_schedulable:
            continue
        with transaction.atomic():
            if Execution.objects.filter(job=downstream, scheduled_for=due).exists():
                continue  # this due time's downstream fire is recorded already
            if not _accepts(link.condition, execution.status):
                run = _record(downstream, due, execution, status=Execution.Status.SKIPPED, completed_at=timezone.now(),
                              output=f"Skipped: upstream job '{job.name}' run {execution.pk} ended "
                                     f"{execution.status} (this job runs after it {link.condition_label()}).")
            elif all(any(_accepts(other.condition, status) for status in
                         _runs_for(other.upstream_id, due).values_list("status", flat=True))
                     for other in downstream.upstream_links.exclude(pk=link.pk)):
                run = _record(downstream, due, execution)
                if run is not None:
                    send_or_hold(run, downstream)
            else:
                continue  # waits for its other upstream jobs' runs for this due time
        if run is not None:
            recorded.append(run)
            logger.info("job %s: %s run %s after run %s of job %s", downstream.pk, run.status, run.pk,
                        execution.pk, job.pk)
    return recorded


def _record(downstream: Job, due: datetime, trigger_run: Execution, **extra) -> Execution | None:
    try:
        with transaction.atomic():
            return new_execution(downstream, trigger=Execution.Trigger.DEPENDENCY, scheduled_for=due,
                                 trigger_run=trigger_run, **extra)
    except IntegrityError:  # recorded meanwhile by another upstream's end: one run per due time
        return None
