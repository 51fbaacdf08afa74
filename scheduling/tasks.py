"""Celery tasks of the scheduling core: thin, take ids, call one service."""
import os

from celery import Task, shared_task
from celery.exceptions import TimeLimitExceeded
from celery.signals import worker_ready

from scheduling import services


@shared_task(name="scheduling.run_job", ignore_result=True)
def run_job(job_id: int) -> None:
    """Fired by beat for a job's PeriodicTask: queue one execution of it."""
    services.job_dispatch_scheduled(job_id=job_id)


class ExecutionTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        # Runs in the worker's main process when the pool killed the task at its
        # hard time limit: the task itself never got to record anything.
        if isinstance(exc, TimeLimitExceeded) and args:
            limit = exc.args[0] if exc.args else 0
            services.execution_hard_timeout(execution_id=args[0], limit_seconds=float(limit))


@shared_task(
    bind=True, base=ExecutionTask, name="scheduling.run_execution", acks_late=True, reject_on_worker_lost=True
)
def run_execution(self, execution_id: int) -> None:
    """Run one execution (its time limits were set when it was sent).

    Returns nothing: the task always succeeds in *recording* the run, so
    Celery would log "succeeded: 'failed'" for a failed one. The outcome is
    logged by execution_finish and kept on the Execution."""
    services.execution_run(
        execution_id=execution_id, task_id=self.request.id, worker=f"{self.request.hostname} pid {os.getpid()}"
    )


@shared_task(name="scheduling.reap_lost_executions", ignore_result=True)
def reap_lost_executions() -> int:
    """Periodic safety net: executions running past their hard limit lost their worker."""
    return services.executions_reap_lost()


@worker_ready.connect
def _reap_executions_of_restarted_worker(sender, **kwargs):
    # A worker that (re)starts runs nothing yet: whatever the database says it is
    # running was lost when its previous process died (e.g. kill -9).
    services.executions_reap_lost(hostname=sender.hostname)
