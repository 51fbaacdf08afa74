"""Held runs: queued, with a task id, but not sent — a run that waits for its
job's running run to end (overlap policy ``queue``). The end of that run
(finish, cancel, lost) releases the oldest held run of the job; the
stale-queued sweep releases any whose release was lost (a process that died
between the two)."""
from __future__ import annotations

import logging

from django.db import transaction

from scheduling.models import Execution, Job
from scheduling.services.sending import send_execution

logger = logging.getLogger(__name__)


def running_runs(job_id: int):
    """The job's runs that are going (queued and sent, or running): not the held ones."""
    return Execution.objects.filter(job_id=job_id, status__in=Execution.ACTIVE_STATUSES, held=False)


def held_run(job_id: int) -> Execution | None:
    """The job's oldest held run."""
    return (Execution.objects.filter(job_id=job_id, status=Execution.Status.QUEUED, held=True)
            .order_by("created_at", "pk").first())


def held_release_next(*, job_id: int) -> Execution | None:
    """Send the job's oldest held run if none of its runs is going any more.
    Called when a run ends; a no-op (one query) when nothing is held."""
    if not Execution.objects.filter(job_id=job_id, status=Execution.Status.QUEUED, held=True).exists():
        return None
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or running_runs(job_id).exists():
            return None
        execution = held_run(job_id)
        if execution is None:
            return None
        released = Execution.objects.filter(pk=execution.pk, status=Execution.Status.QUEUED, held=True).update(
            held=False, output="")
        if not released:
            return None
        execution.held, execution.output = False, ""
        send_execution(execution, job)
    logger.info("job %s: held run %s released (the run it waited for ended)", job_id, execution.pk)
    return execution


def held_release_stuck() -> int:
    """Release held runs that nothing will release any more (the sweep's
    safety net, for a process that died between a run's end and the release):
    a waiting run (overlap queue) whose job has no run going, runs over a
    concurrency limit that now has free slots."""
    from scheduling.services.limits import is_limited, limits_release  # (limits sends held runs too)

    job_ids = set(Execution.objects.filter(status=Execution.Status.QUEUED, held=True)
                  .values_list("job_id", flat=True).distinct())
    released = 0
    for job in Job.objects.filter(pk__in=job_ids):
        if is_limited(job):
            released += len(limits_release(job=job))
        else:
            released += held_release_next(job_id=job.pk) is not None
    return released
