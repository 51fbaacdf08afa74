"""Overlap policies ``queue`` and ``replace``: what a run does when it comes
while an earlier run of its job is going (``skip`` and ``allow`` are decided
where the run is requested: ``requests`` and ``dispatch``).

* ``queue``: the new run is recorded ``queued`` and held (not sent) until the
  running run ends (``held.held_release_next``). At most one run waits: a
  scheduled fire that finds one waiting is recorded ``skipped`` with the
  reason; a manual request is refused (409) unless forced.
* ``replace``: the running runs are cancelled ("replaced by run N", their
  tasks revoked with terminate) and the new run is sent at once.

Both are decided with the job's row locked, so two fires (or a fire and a
request) never both see "nothing going"."""
from __future__ import annotations

from typing import Callable

from django.utils import timezone

from jobsite.exceptions import Conflict
from scheduling.errors import ErrorCode
from scheduling.models import Execution, Job
from scheduling.services.held import held_run, running_runs
from scheduling.services.lifecycle import execution_cancel
from scheduling.services.limits import send_or_hold

#: The policies whose fires are decided one by one, with the job's row locked.
ONE_BY_ONE_POLICIES = (Job.OverlapPolicy.QUEUE, Job.OverlapPolicy.REPLACE)


def run_with_overlap_policy(job: Job, *, make_run: Callable[..., Execution], scheduled: bool) -> Execution:
    """Create (``make_run(**fields)``) and send, hold or skip the run of ``job``
    (row locked; policy ``queue`` or ``replace``). ``scheduled``: a beat fire
    (a skip is recorded) rather than a request (a skip is a 409)."""
    going = running_runs(job.pk).only("pk", "status").order_by("created_at", "pk").first()
    if going is None:
        return _sent(make_run(), job)
    if job.overlap_policy == Job.OverlapPolicy.QUEUE:
        waiting = held_run(job.pk)
        if waiting is not None:
            why = (f"run {waiting.pk} already waits for run {going.pk} to end (overlap policy 'queue' keeps "
                   f"at most one waiting)")
            if not scheduled:
                raise Conflict(f"Job '{job.name}' is running and {why}; use force to start another run.",
                               code=ErrorCode.JOB_RUNNING)
            return make_run(status=Execution.Status.SKIPPED, completed_at=timezone.now(), output=f"Skipped: {why}.")
        return make_run(held=True, output=f"Waiting for run {going.pk} to end (overlap policy 'queue').")
    execution = make_run()
    if getattr(execution, "_duplicate", False):
        return execution
    for running in running_runs(job.pk).exclude(pk=execution.pk).order_by("pk"):
        execution_cancel(execution=running, actor_label="system",
                         reason=f"replaced by run {execution.pk} (overlap policy 'replace')")
    return _sent(execution, job)


def _sent(execution: Execution, job: Job) -> Execution:
    if not getattr(execution, "_duplicate", False) and execution.status == Execution.Status.QUEUED:
        return send_or_hold(execution, job)
    return execution
