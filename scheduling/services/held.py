"""Held runs: queued, with a task id, but not sent — a run that waits for its
job's running run to end (overlap policy ``queue``), or for a slot under a
concurrency limit (``limits``). The end of that run (finish, cancel, lost)
releases the oldest held run of the job; the stale-queued sweep releases any
whose release was lost (a process that died between the two).

A retry of a limited job is held from the start too: it waits out its backoff
(``retry_start_at``), then for a slot like any run. Its message, sent with the
backoff as countdown, only wakes it up: the worker that gets it asks the
limits for a slot (``execution_claim`` never claims a held run)."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction

from scheduling.models import Execution, Job
from scheduling.services.sending import send_execution

logger = logging.getLogger(__name__)

#: A retry's message waits out its countdown in a worker, unacknowledged: past the
#: broker's visibility timeout, Redis would deliver it a second time.
MAX_RETRY_DELAY_SECONDS = 3600


def retry_delay_seconds(job: Job, attempt: int) -> int:
    """How long retry ``attempt`` (2: the first retry) waits: the job's
    backoff, doubled with each retry, at most ``MAX_RETRY_DELAY_SECONDS``."""
    return min(job.retry_backoff_seconds * (2 ** (attempt - 2)), MAX_RETRY_DELAY_SECONDS)


def retry_start_at(execution: Execution, job: Job) -> datetime | None:
    """When a retry's backoff ends (counted from its creation, when the run it
    retries ended); None for a run that is not a retry."""
    if execution.trigger != Execution.Trigger.RETRY or execution.attempt < 2:
        return None
    return execution.created_at + timedelta(seconds=retry_delay_seconds(job, execution.attempt))


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
