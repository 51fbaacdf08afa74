"""The Celery application: configured from Django settings (CELERY_*)."""
import logging
import os
import time

from celery import Celery, signals

from jobsite.heap import freeze_startup_heap
from jobsite.observability import setup_tracing_if_configured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")

app = Celery("jobsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# Start-up objects out of the collector's full passes (jobsite/heap.py): the
# worker's main process before it forks its pool (so the pool processes start
# frozen too) and once it is ready; each pool process after its own start-up.
@signals.worker_init.connect
@signals.worker_ready.connect
@signals.worker_process_init.connect
def _freeze_startup_heap(**kwargs):
    freeze_startup_heap()


# Optional tracing (jobsite/observability.py): in each process that runs tasks,
# and in beat, whose fires start their traces.
@signals.worker_process_init.connect
def _trace_pool_process(**kwargs):
    """Each prefork pool process (tracing is set up after the fork)."""
    setup_tracing_if_configured(service_name="jobsite-worker", django=False)


@signals.worker_init.connect
def _trace_worker_without_pool_processes(sender=None, **kwargs):
    """A solo or threads pool runs tasks in the worker's main process."""
    pool = getattr(sender, "pool_cls", None)
    if "prefork" not in f"{getattr(pool, '__module__', '')} {pool}":
        setup_tracing_if_configured(service_name="jobsite-worker", django=False)


@signals.beat_init.connect
def _freeze_beats_heap(sender=None, **kwargs):
    """Beat has read its schedule (the scheduler is made before beat_init): its
    entries are frozen with the start-up objects, and again after each full
    re-read (``scheduling.beat.scheduler``). A scheduler made in any other
    process (the tests) freezes nothing."""
    scheduler = getattr(sender, "scheduler", None)
    if scheduler is not None:
        scheduler.freezes_heap = True
    freeze_startup_heap()


@signals.beat_init.connect
def _trace_beat(**kwargs):
    setup_tracing_if_configured(service_name="jobsite-beat", django=False)


# The worker and beat log through handlers Celery makes itself (it empties the
# root logger's, worker_hijack_root_logger): each gets the redacting filter that
# LOGGING puts on the web's (jobsite.redaction.RedactingLogFilter), so that an
# exception's text (a task's failure, a signal receiver's error logged by
# send_robust) never writes a credential to a worker's or beat's log.
@signals.after_setup_logger.connect
def _redact_worker_and_beat_logs(logger=None, **kwargs):
    from celery.utils.log import get_multiprocessing_logger

    from jobsite.redaction import install_log_redaction

    install_log_redaction(logger or logging.getLogger(), get_multiprocessing_logger())


@signals.after_setup_task_logger.connect
def _redact_task_logs(logger=None, **kwargs):
    from jobsite.redaction import install_log_redaction

    if logger is not None:
        install_log_redaction(logger)


@app.task(name="jobsite.ping")
def ping() -> str:
    """Round-trip probe used by /health and the test-suite."""
    return "pong"


#: A connection a task used without error this recently is not health-checked
#: again (Django's CONN_HEALTH_CHECKS: a ``SELECT 1`` before the first query of
#: each task, a tenth of a short run's time on PostgreSQL). A connection that
#: broke meanwhile fails that task's first query; Django then closes it after
#: the task, and the run's execution, still queued, is sent again by the
#: stale-queued sweep.
HEALTH_CHECK_FRESH_SECONDS = 1.0
_last_clean_use: dict[str, float] = {}


@signals.task_prerun.connect
def _before_task(sender=None, task=None, **kwargs):
    """Before each task, what Django does before a request: close the
    connections that are unusable or older than CONN_MAX_AGE, keep the others
    (CELERY_DB_REUSE_MAX stops Celery's fix-up from closing every one).
    Not for eager tasks: they run inside the caller's transaction."""
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections, connections

    close_old_connections()
    now = time.monotonic()
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None and now - _last_clean_use.get(connection.alias, -1e9) < HEALTH_CHECK_FRESH_SECONDS:
            connection.health_check_done = True


@signals.task_postrun.connect
def _after_task(sender=None, task=None, **kwargs):
    """After each task, as after a request; remembers which connections the
    task left in good order (see HEALTH_CHECK_FRESH_SECONDS)."""
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections, connections

    close_old_connections()
    now = time.monotonic()
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None and not connection.errors_occurred:
            _last_clean_use[connection.alias] = now
        else:
            _last_clean_use.pop(connection.alias, None)
