"""Celery tasks of the scheduling core: thin, take ids, call one service."""
import logging
import os
from datetime import datetime

from billiard.exceptions import WorkerLostError
from celery import Task, shared_task
from celery.exceptions import TimeLimitExceeded
from celery.signals import worker_ready, worker_shutdown
from celery.worker import state as worker_state
from celery.worker.request import Request

from scheduling import heartbeat, services
from scheduling.broker import patch_kombu_collect, patch_kombu_redis_client_reuse
from scheduling.services.sending import RUN_EXECUTION_TASK

logger = logging.getLogger(__name__)

# Before any worker connects: a broker restart must not stop the worker (see the docstring).
patch_kombu_collect()
patch_kombu_redis_client_reuse()


@shared_task(name="scheduling.run_job", ignore_result=True)
def run_job(job_id: int, scheduled_for: str | None = None, missed: int = 0, missed_from: str | None = None) -> None:
    """Fired by beat for a job's PeriodicTask: queue one execution of it.

    ``scheduled_for`` (the due time fired for), ``missed`` and ``missed_from``
    come from beat's entry (``scheduling.beat.JobEntry``)."""
    services.job_dispatch_scheduled(
        job_id=job_id,
        scheduled_for=datetime.fromisoformat(scheduled_for) if scheduled_for else None,
        missed=int(missed or 0),
        missed_from=datetime.fromisoformat(missed_from) if missed_from else None,
    )


class ExecutionRequest(Request):
    """A run's request as the worker's main process holds it."""

    def on_failure(self, exc_info, send_failed_event=True, return_ok=False):
        # The pool process running it died (kill -9, out of memory): its worker lives
        # on and beats, so the message put back next would be taken for a copy of a
        # run still going. Recorded here, first, by the process that saw it die.
        exc = getattr(exc_info.exception, "exc", exc_info.exception)
        if isinstance(exc, (WorkerLostError, SystemExit, KeyboardInterrupt)) and self.args and self.worker_pid:
            try:
                services.execution_process_lost(execution_id=self.args[0],
                                                worker=f"{self.hostname} pid {self.worker_pid}")
            except Exception:  # the database is away: the hard-limit sweep finds the run
                logger.exception("run of task %s: its lost pool process not recorded", self.id)
        try:
            return super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)
        finally:
            self._hand_id_back()

    def acknowledge(self):
        # (The worker's own subclass of this class replaces on_success; it acks here.)
        try:
            return super().acknowledge()
        finally:
            self._hand_id_back()

    def _hand_id_back(self) -> None:
        # A copy of a message this worker still runs (the broker's visibility timeout
        # passed) took the task id in the worker's table of requests by id, and took it
        # out again when done: hand it back to the run, or a cancel's revoke would not
        # find the process to terminate.
        for request in worker_state.active_requests:
            if request.id == self.id and request is not self:
                worker_state.requests[self.id] = request
                return


class ExecutionTask(Task):
    Request = ExecutionRequest

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        # Runs in the worker's main process when the pool killed the task at its
        # hard time limit: the task itself never got to record anything.
        if isinstance(exc, TimeLimitExceeded) and args:
            limit = exc.args[0] if exc.args else 0
            services.execution_hard_timeout(execution_id=args[0], limit_seconds=float(limit))


@shared_task(
    bind=True, base=ExecutionTask, name=RUN_EXECUTION_TASK, acks_late=True, reject_on_worker_lost=True
)
def run_execution(self, execution_id: int, resent: bool = False) -> None:
    """Run one execution (its time limits were set when it was sent).

    Returns nothing: the task always succeeds in *recording* the run, so
    Celery would log "succeeded: 'failed'" for a failed one. The outcome is
    logged by execution_finish and kept on the Execution.

    ``resent``: sent again by the stale-queued sweep. If the first message
    got through after all, this copy finds the execution no longer queued and
    does nothing (claiming it would take it for a redelivery of a lost run)."""
    if resent and not services.execution_is_queued(execution_id=execution_id):
        return
    services.execution_run(
        execution_id=execution_id, task_id=self.request.id, worker=f"{self.request.hostname} pid {os.getpid()}"
    )


@shared_task(name="scheduling.reap_lost_executions", ignore_result=True)
def reap_lost_executions() -> int:
    """Periodic safety net: executions running past their hard limit lost their worker."""
    return services.executions_reap_lost()


@shared_task(name="scheduling.resend_stale_queued_executions", ignore_result=True)
def resend_stale_queued_executions() -> int:
    """Periodic safety net: queued executions whose message the broker lost are sent again."""
    return services.executions_resend_stale_queued()


@worker_ready.connect
def _reap_executions_of_restarted_worker(sender, **kwargs):
    # A worker that (re)starts runs nothing yet: whatever the database says it is
    # running was lost when its previous process died (e.g. kill -9).
    services.executions_reap_lost(hostname=sender.hostname)


@worker_ready.connect
def _start_heartbeat(sender, **kwargs):
    # Runs whose worker stops beating are marked lost by reap_lost_executions.
    heartbeat.start(sender.hostname)


@worker_shutdown.connect
def _stop_heartbeat(sender, **kwargs):
    hostname = getattr(sender, "hostname", None)
    if hostname:
        heartbeat.stop(hostname)
