"""The run lifecycle, worker side and after: claim, run, record progress,
finish, cancel, time out, mark lost, retry, and the job's statistics and
``execution_finished`` signal that every outcome updates."""
from __future__ import annotations

import copy
import logging
import threading
from collections import OrderedDict
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction
from django.utils import timezone

from jobsite.crypto import secrets_decrypt
from jobsite.db import PkLookup, update_row, update_row_then
from jobsite.exceptions import Conflict
from scheduling import audit, heartbeat, runlog
from scheduling.errors import ErrorCode
from scheduling.executors import executor_for
from scheduling.models import Execution, Job
from scheduling.services.dependencies import dependants_on_end
from scheduling.services.held import (  # noqa: F401  (MAX_RETRY_DELAY_SECONDS: imported from here)
    MAX_RETRY_DELAY_SECONDS, held_release_next, retry_delay_seconds,
)
from scheduling.services.limits import is_limited, limits_release, limits_waiting
from scheduling.services.sending import new_execution, revoke_task, send_execution
from scheduling.signals import execution_finished

logger = logging.getLogger(__name__)

# A job read by primary key, compiled once (jobsite/db.py): the locked run request
# reads it and sets its last_run_at in one statement; a worker reads a job it runs.
job_row = PkLookup(lambda: Job.objects.all())


@transaction.atomic
def execution_cancel(*, execution: Execution, actor=None, actor_label: str = "", reason: str = "") -> Execution:
    """Cancel a queued or running execution: mark it cancelled and revoke its
    Celery task with terminate. A cancelled queued execution never starts (the
    worker finds it no longer queued)."""
    execution = Execution.objects.select_for_update().select_related("job").get(pk=execution.pk)
    if execution.status not in Execution.ACTIVE_STATUSES:
        raise Conflict(
            f"Execution {execution.pk} is already {execution.status}; only queued or running executions can be cancelled.",
            code=ErrorCode.EXECUTION_NOT_ACTIVE,
        )
    now = timezone.now()
    by = actor_label or getattr(actor, "username", "") or "system"
    execution.status = Execution.Status.CANCELLED
    execution.completed_at = now
    if execution.started_at:
        execution.duration_seconds = (now - execution.started_at).total_seconds()
    execution.error = f"Cancelled by {by}" + (f": {reason}" if reason else "")
    execution.output = execution.output or "Cancelled"
    execution.save(update_fields=["status", "completed_at", "duration_seconds", "error", "output"])
    _record_outcome(execution)
    task_id = execution.celery_task_id
    if task_id:
        transaction.on_commit(lambda: revoke_task(task_id))
    audit.record(actor=actor, actor_label=actor_label, action="cancel", obj=execution,
                 changes={"job": execution.job.name, "reason": reason})
    _release_held(execution)
    return execution


# Every run claims and reads its execution: compiled once per worker process (jobsite/db.py).
_execution_row = PkLookup(lambda: Execution.objects.all())


class _RunJobs:
    """The jobs a worker process runs, each as last read, by id.

    A worker runs the same jobs over and over; reading a job's ~30 columns
    with every claim cost the database more than the claim itself. The claim
    returns the job's ``updated_at`` (every edit saves it) and the held copy is
    used only while that is unchanged. Columns written without an edit (the
    statistics, ``last_run_at``, ``next_run_at``) may be stale in it: a run
    does not read them, but for ``last_status`` (the recovery notification's
    previous outcome), which the claim returns too. Each run gets its own copy."""

    MAX_JOBS = 1000
    VERSION_FIELDS = ("updated_at", "last_status")

    def __init__(self):
        self._jobs: OrderedDict[int, tuple[Any, Job]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, job_id: int, updated_at, last_status: str) -> Job | None:
        """The job as stored at ``updated_at``, with ``last_status``; None if it is gone."""
        with self._lock:
            held = self._jobs.get(job_id)
            if held is not None and held[0] == updated_at:
                self._jobs.move_to_end(job_id)
                job = copy.copy(held[1])
            else:
                job = None
        if job is None:
            job = job_row.first(job_id)
            if job is None:
                return None
            with self._lock:
                self._jobs[job_id] = (updated_at, job)
                self._jobs.move_to_end(job_id)
                while len(self._jobs) > self.MAX_JOBS:
                    self._jobs.popitem(last=False)
            job = copy.copy(job)
        job.last_status = last_status
        return job


_run_jobs = _RunJobs()


def execution_claim(*, execution_id: int, task_id: str, worker: str) -> Execution | None:
    """Move a queued execution to running, atomically. Returns None when it must
    not run (cancelled, finished, deleted, or already running).

    A message that finds its execution already running was delivered again:
    by the broker's visibility timeout while the run goes on, or after the
    worker that claimed it died. Its worker's heartbeat tells which
    (``_redelivered_while_running``)."""
    # The claim, the read of the execution and of its job's version: one statement.
    # The job row is not written here (its last_run_at was set when the run was
    # queued): workers never queue up behind a hot job row to start.
    claimed = _execution_row.update_then_first_with(
        execution_id, where={"pk": execution_id, "status": Execution.Status.QUEUED, "held": False},
        values={"status": Execution.Status.RUNNING, "started_at": timezone.now(), "worker": worker,
                "celery_task_id": task_id},
        related="job", fields=_RunJobs.VERSION_FIELDS,
        # Not waiting for the disk: the run's finish is a durable commit of the same
        # connection, which flushes the claim with it; a claim a database crash undoes
        # is a run queued again, delivered again (its message or the stale-queued sweep).
        flush=False,
    )
    if claimed is not None:
        execution, (updated_at, last_status) = claimed
        job = _run_jobs.get(execution.job_id, updated_at, last_status)
        if job is None:  # deleted since, and its executions with it
            return None
        execution.job = job
        return execution
    execution = _execution_row.first(execution_id)
    if execution is not None and execution.status == Execution.Status.RUNNING:
        _redelivered_while_running(execution, to=worker)
    elif execution is not None and execution.status == Execution.Status.QUEUED and execution.held:
        _retry_woken(execution)
    return None


def _retry_woken(execution: Execution) -> None:
    """The message of a held retry came (its backoff is over): it takes the
    next free slot of its limits, in order, or waits held for one. Only a
    retry is held with a message on its way (_maybe_retry); this message is
    dropped either way: a release sends the run anew, under the same task id."""
    job = job_row.first(execution.job_id)
    if job is None:
        return
    limits_release(job=job, due={execution.pk})


def _redelivered_while_running(execution: Execution, *, to: str) -> None:
    """A running execution's message came again (to worker ``to``). Its run
    goes on while the worker that claimed it beats: this copy is dropped (the
    task returns and its message is acknowledged), and should that worker die
    later, the lost-run sweep finds the run by its heartbeat. Only a fresh
    heartbeat vouches for the run: a worker whose heartbeat is stale, missing
    or unreadable (a broker that keeps none) is taken for dead with the run,
    which is lost and retried per policy."""
    claimed_by = execution.worker or "?"
    try:
        age = heartbeat.age_of(claimed_by.split(" ", 1)[0])
    except Exception as exc:
        age, beat = None, f"its heartbeat is unreadable: {type(exc).__name__}"
    else:
        beat = "it has no heartbeat" if age is None else f"its heartbeat is {age} s old"
    if age is not None and not heartbeat.is_stale(age):
        logger.warning("execution %s of job %s: message delivered again to %s while it runs on %s (heartbeat %s s "
                       "ago): this copy is dropped, the run goes on", execution.pk, execution.job_id, to, claimed_by, age)
        return
    execution_mark_lost(execution=execution, reason=f"worker {claimed_by} was lost mid-run; message redelivered ({beat})")


def execution_finish(
    *, execution: Execution, status: str, output: str = "", result: dict | None = None,
    error: str = "", batch_id: str | None = None, did_nothing: bool = False,
) -> Execution:
    """Record the outcome of a running execution (a concurrent cancel wins) and
    queue a retry if the job's policy allows one. ``did_nothing``: a success
    that found no work (``RunResult.did_nothing``)."""
    now = timezone.now()
    duration = (now - execution.started_at).total_seconds() if execution.started_at else None
    values = {"status": status, "completed_at": now, "duration_seconds": duration, "output": output[:10000],
              "error": error[:10000], "batch_id": batch_id,
              "did_nothing": bool(did_nothing and status == Execution.Status.SUCCESS)}
    if result is not None:  # else keep what the run recorded as it went (execution_record_progress)
        values["result"] = result
    running = {"pk": execution.pk, "status": Execution.Status.RUNNING}
    if status in Execution.FAILURE_STATUSES or status == Execution.Status.SKIPPED:  # a retry may come with it
        with transaction.atomic():
            updated = update_row(Execution, where=running, values=values)
            if updated:
                for name, value in values.items():
                    setattr(execution, name, value)
                _record_outcome(execution)
                _maybe_retry(execution)
    else:
        # The run's row and its job's counters in one statement (one commit), as
        # every successful run does this: docs/benchmarks.md, "bench_throughput".
        for_job, increments = _outcome_counters(status, values["duration_seconds"], now)
        updated = update_row_then(Execution, where=running, values=values, then_model=Job,
                                  then_where={"pk": execution.job_id}, then_values=for_job,
                                  then_increments=increments)
        if updated:
            for name, value in values.items():
                setattr(execution, name, value)
            _announce_finished(execution)
    if not updated:  # a cancel (or the lost-run sweep) got there first: return it as it is
        execution.refresh_from_db()
    else:
        _release_held(execution)
    if updated:
        log = logger.info if status == Execution.Status.SUCCESS else logger.warning
        log("execution %s of job %s finished %s in %.3fs: %s", execution.pk, execution.job_id, status,
            duration or 0.0, (output or error)[:200])
    return execution


def execution_record_progress(*, execution: Execution, result: dict) -> bool:
    """Record a running execution's progress in its ``result`` (steps done,
    rows processed, ...), for the API and admin to show while it runs. Only
    while it is running: a concurrent cancel or finish is never overwritten.
    False when it is no longer running (the executor should stop)."""
    return bool(Execution.objects.filter(pk=execution.pk, status=Execution.Status.RUNNING).update(result=result))


def execution_is_running(*, execution: Execution) -> bool:
    """Whether ``execution`` is still running (not cancelled or lost meanwhile):
    long executors check it between units of work."""
    return Execution.objects.filter(pk=execution.pk, status=Execution.Status.RUNNING).exists()


def execution_is_queued(*, execution_id: int) -> bool:
    """Whether the execution still waits for a worker to claim it."""
    return Execution.objects.filter(pk=execution_id, status=Execution.Status.QUEUED).exists()


def execution_process_lost(*, execution_id: int, worker: str) -> Execution | None:
    """The pool process ``worker`` ("<hostname> pid <n>") died while it ran the
    execution: seen by its worker's main process, which lives on (so the
    heartbeat would vouch for the run). Lost, and retried per policy; the
    message the worker puts back then finds it no longer running."""
    execution = Execution(pk=execution_id)
    return execution_mark_lost(execution=execution, reason=f"worker process {worker} died mid-run", worker=worker)


def execution_hard_timeout(*, execution_id: int, limit_seconds: float) -> Execution | None:
    """The worker killed a run that overran its hard time limit (it ignored the soft one)."""
    execution = Execution.objects.select_related("job").filter(pk=execution_id).first()
    if execution is None or execution.status != Execution.Status.RUNNING:
        return None
    limit = f"{limit_seconds:g}"
    return execution_finish(
        execution=execution, status=Execution.Status.TIMEOUT, output=f"Killed at the hard time limit ({limit}s)",
        error=f"Exceeded the job's timeout of {execution.job.timeout_seconds} seconds and did not stop; "
              f"the worker killed it at the hard limit of {limit} seconds.",
    )


@transaction.atomic
def execution_mark_lost(*, execution: Execution, reason: str, worker: str | None = None) -> Execution | None:
    """Record a running execution as lost (``error``) and retry it per policy.
    With ``worker``: only while that worker process is the one running it.
    None when it was no longer running (finished, cancelled, lost already)."""
    running = Execution.objects.filter(pk=execution.pk, status=Execution.Status.RUNNING)
    if worker is not None:
        running = running.filter(worker=worker)
    updated = running.update(
        status=Execution.Status.ERROR, completed_at=timezone.now(), error=f"Lost: {reason}", output="Lost: worker died",
    )
    if not updated:
        return None
    execution.refresh_from_db()
    _record_outcome(execution)
    _maybe_retry(execution)
    _release_held(execution)
    logger.warning("execution %s of job %s marked lost: %s", execution.pk, execution.job_id, reason)
    return execution


def _release_held(execution: Execution) -> None:
    """A run ended: start the runs waiting for it — a held run (overlap
    policy ``queue``, a concurrency limit), a job that runs after this one.
    A job with none of these: nothing, no query."""
    if execution.held:
        return  # a waiting run was cancelled: it held no slot
    job = execution.job
    if job.has_downstream:
        dependants_on_end(execution)
    if is_limited(job):
        limits_release(job=job)
    elif job.overlap_policy == Job.OverlapPolicy.QUEUE:
        held_release_next(job_id=execution.job_id)


def _record_outcome(execution: Execution) -> None:
    """Fold one finished execution into its job's statistics."""
    if execution.status == Execution.Status.SKIPPED:
        return
    _announce_finished(execution)
    values, increments = _outcome_counters(execution.status, execution.duration_seconds, execution.completed_at)
    update_row(Job, where={"pk": execution.job_id}, values=values, increments=increments)


def _outcome_counters(status: str, duration_seconds: float | None, finished_at) -> tuple[dict, dict]:
    """What one finished run adds to its job's statistics: (values, increments).
    The outcome and its time are written together, so ``last_status`` and
    ``last_finished_at`` always describe the same run."""
    return {"last_status": status, "last_finished_at": finished_at}, {
        "total_runs": 1,
        "successful_runs": 1 if status == Execution.Status.SUCCESS else 0,
        "failed_runs": 1 if status in Execution.FAILURE_STATUSES else 0,
        "total_duration_seconds": duration_seconds or 0.0,
    }


def _announce_finished(execution: Execution) -> None:
    """``execution_finished``, once the outcome is committed."""
    if not execution_finished.has_listeners(Execution):
        return
    execution_id, job_id, status = execution.pk, execution.job_id, execution.status
    # The job's last outcome as read when this run was claimed (None: not read).
    previous = execution.job.last_status if Execution.job.is_cached(execution) else None
    trigger, scheduled_for = execution.trigger, execution.scheduled_for
    transaction.on_commit(lambda: execution_finished.send_robust(
        sender=Execution, execution_id=execution_id, job_id=job_id, status=status, previous_status=previous,
        trigger=trigger, scheduled_for=scheduled_for,
    ))


def _maybe_retry(execution: Execution) -> Execution | None:
    if execution.status not in Execution.FAILURE_STATUSES:
        return None
    job = execution.job
    if execution.attempt > job.max_retries:
        return None
    delay = retry_delay_seconds(job, execution.attempt + 1)
    if not is_limited(job):
        retry = new_execution(
            job, trigger=Execution.Trigger.RETRY, attempt=execution.attempt + 1, retry_of=execution,
            override_kwargs=execution.override_kwargs, actor=execution.triggered_by,
        )
        send_execution(retry, job, countdown=delay)
        return retry
    # A limited job's retry takes a slot like any run: held, it waits out its backoff, then
    # for a slot (limits_release sends it). Its message, sent with the backoff as countdown,
    # only wakes it up then (execution_claim never claims a held run); no backoff: the
    # release that follows this run's end (_release_held) decides at once.
    retry = new_execution(
        job, trigger=Execution.Trigger.RETRY, attempt=execution.attempt + 1, retry_of=execution,
        override_kwargs=execution.override_kwargs, actor=execution.triggered_by, held=True,
        output=f"Retry of run {execution.pk}, after a backoff of {delay} s. {limits_waiting(job)}",
    )
    if delay:
        send_execution(retry, job, countdown=delay)
    return retry


def run_params(job: Job, override_kwargs: dict | None = None) -> dict[str, Any]:
    """The parameters of one run: the job's kwargs with the run's overrides merged over them."""
    return {**(job.task_kwargs or {}), **(override_kwargs or {})}


def execution_run(*, execution_id: int, task_id: str, worker: str) -> Execution | None:
    """Claim, run and record one execution with its job kind's executor."""
    execution = execution_claim(execution_id=execution_id, task_id=task_id, worker=worker)
    if execution is None:
        return None
    job = execution.job
    try:
        executor = executor_for(job.kind)
    except LookupError as exc:
        return execution_finish(execution=execution, status=Execution.Status.ERROR, error=str(exc), output="No executor")
    try:
        # Stores the run's log lines, and its traceback if it raises (scheduling/runlog.py).
        with runlog.capture(execution=execution, secrets=_secret_values(job)) as run_log:
            outcome = executor.run(job, execution, run_params(job, execution.override_kwargs))
    except SoftTimeLimitExceeded:
        return execution_finish(
            execution=execution, status=Execution.Status.TIMEOUT, output=f"Timed out after {job.timeout_seconds}s",
            error=f"Exceeded the job's timeout of {job.timeout_seconds} seconds.",
        )
    except Exception as exc:  # the run failed; record it (never lose the execution) and retry per policy
        # the traceback as stored: with the job's secrets redacted
        logger.error("execution %s of job %s failed\n%s", execution.pk, job.name, run_log.traceback)
        return execution_finish(
            execution=execution, status=Execution.Status.FAILED, output=run_log.redact(f"Error: {exc}")[:500],
            error=run_log.redact(f"{type(exc).__name__}: {exc}"),
        )
    return execution_finish(
        execution=execution,
        status=outcome.outcome,
        output=outcome.output, result=outcome.result, batch_id=outcome.batch_id,
        error="" if outcome.ok else (outcome.output or "failed"), did_nothing=outcome.did_nothing,
    )


def _secret_values(job: Job) -> list[str]:
    """The job's credentials, for its run's log to redact (none when they cannot
    be decrypted: that fails the run itself, not its log)."""
    try:
        return list(secrets_decrypt(job.secrets).values())
    except Exception:
        return []
