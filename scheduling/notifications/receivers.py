"""Hooks into the core's run lifecycle (scheduling.signals)."""
import logging

from django.conf import settings
from django.dispatch import receiver

from scheduling.models import Execution
from scheduling.signals import execution_finished

logger = logging.getLogger(__name__)

# Only these can be a failure or a recovery; a cancelled run tells nothing.
_RELEVANT = frozenset((Execution.Status.SUCCESS, *Execution.FAILURE_STATUSES))


@receiver(execution_finished, sender=Execution, dispatch_uid="notifications.execution_finished")
def queue_execution_notifications(sender, *, execution_id: int, job_id: int, status: str,
                                  previous_status: str | None = None, **kwargs) -> None:
    """Queue the decision, never send here: this runs in the worker right after
    the run's outcome committed. A success after a success (or after nothing) is
    no event at all, so no task is queued for it: the common case costs the
    worker nothing more."""
    if status not in _RELEVANT:
        return
    if status == Execution.Status.SUCCESS and previous_status is not None \
            and previous_status not in Execution.FAILURE_STATUSES:
        return
    from scheduling.notifications.tasks import execution_finished as task

    try:
        task.apply_async(args=[execution_id], queue=settings.CELERY_TASK_DEFAULT_QUEUE)
    except Exception:  # broker down: the run's outcome stands; say so in the log
        logger.exception("could not queue notifications of execution %s (job %s)", execution_id, job_id)
