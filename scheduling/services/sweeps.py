"""Sweeps: the periodic safety nets that find runs nothing else would
finish or start — those whose worker died, and those queued with no message
on its way."""
from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from scheduling import broker, heartbeat
from scheduling.models import Execution, Job
from scheduling.services.held import held_release_next, retry_start_at
from scheduling.services.jitter import start_at
from scheduling.services.lifecycle import execution_mark_lost
from scheduling.services.limits import is_limited, limits_release
from scheduling.services.sending import execution_task_options, run_execution_task

logger = logging.getLogger(__name__)

def executions_reap_lost(*, now=None, hostname: str | None = None) -> int:
    """Mark executions whose worker is gone as errors (and retry per policy).

    With ``hostname``: every running execution of that worker (it just
    restarted, so nothing of its is still running). Without: those whose
    worker missed its heartbeat for ``JOBS_WORKER_HEARTBEAT_TIMEOUT_SECONDS``
    (``scheduling.heartbeat``), and those running past their hard time limit
    plus a margin (the worker must have died). A run longer than the broker's
    visibility timeout is found here too when its worker dies after the
    message's redelivered copy was dropped (``execution_claim``): no message
    of it is left to come again."""
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
            if heartbeat.is_stale(age) and started_long_enough:
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
    try:
        return heartbeat.ages()[0]
    except Exception as exc:
        logger.warning("worker heartbeats unreadable, lost-run sweep uses the time limits only: %s", exc)
        return {}


def _retry_due_at(execution: Execution):
    """When a retry's backoff ends (it was sent with this countdown), or a
    jittered run's start time comes (it was sent with this eta)."""
    if execution.scheduled_for is not None and execution.job.jitter_seconds:
        return start_at(execution.job_id, execution.scheduled_for, execution.job.jitter_seconds)
    return retry_start_at(execution, execution.job) or execution.created_at


def held_release_stuck() -> int:
    """Release held runs that nothing will release any more (the sweep's
    safety net, for a process that died between a run's end and the release):
    a waiting run (overlap queue) whose job has no run going, runs over a
    concurrency limit that now has free slots (or whose job has no limit any
    more), retries whose backoff is over and whose wake-up message was lost."""
    job_ids = set(Execution.objects.filter(status=Execution.Status.QUEUED, held=True)
                  .values_list("job_id", flat=True).distinct())
    released = 0
    for job in Job.objects.filter(pk__in=job_ids):
        if is_limited(job) or job.overlap_policy != Job.OverlapPolicy.QUEUE:
            # (no limit any more: every held run goes, each retry once its backoff is over)
            released += len(limits_release(job=job))
        else:
            released += held_release_next(job_id=job.pk) is not None
    return released


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
    now = now or timezone.now()
    held_release_stuck()  # held runs (overlap policy queue) whose release was lost
    stale_after = timedelta(seconds=settings.JOBS_QUEUED_STALE_SECONDS)
    candidates = [
        execution for execution in Execution.objects.filter(
            status=Execution.Status.QUEUED, created_at__lte=now - stale_after, celery_task_id__isnull=False,
            held=False,
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
            run_execution_task().apply_async(**execution_task_options(execution, execution.job), kwargs={"resent": True})
        except Exception:
            logger.exception("stale-queued sweep: could not send execution %s again", execution.pk)
            break  # the broker went away meanwhile: the next sweep carries on
        sent += 1
        logger.warning("execution %s of job %s was queued with no message on its way; sent again as task %s",
                       execution.pk, execution.job_id, execution.celery_task_id)
    return sent
