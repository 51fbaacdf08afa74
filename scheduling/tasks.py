"""Celery tasks of the scheduling core: thin, take ids, call one service."""
import os
from datetime import datetime

from celery import Task, shared_task
from celery.exceptions import TimeLimitExceeded
from celery.signals import worker_ready, worker_shutdown

from scheduling import heartbeat, services
from scheduling.broker import patch_kombu_collect, patch_kombu_redis_client_reuse
from scheduling.services.sending import RUN_EXECUTION_TASK

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


class ExecutionTask(Task):
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
