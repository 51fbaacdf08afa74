"""Celery tasks of the notifications app: thin, take ids, call one service.
All go to the default queue."""
from celery import shared_task

from scheduling.executors import RunResult, schedulable
from scheduling.notifications import services


@shared_task(name="notifications.execution_finished", ignore_result=True)
def execution_finished(execution_id: int) -> None:
    """Queued by the execution_finished receiver: decide and record the event."""
    services.notify_execution_finished(execution_id=execution_id)


@shared_task(bind=True, name=services.DELIVER_TASK, ignore_result=True, max_retries=None)
def deliver(self, notification_id: int, destination_id: int, attempt: int = 1) -> None:
    """One delivery attempt; a failed one is retried with backoff until
    NOTIFICATIONS_MAX_ATTEMPTS, each attempt recorded."""
    delivery = services.delivery_attempt(notification_id=notification_id, destination_id=destination_id,
                                         attempt=attempt)
    if delivery is not None and delivery.status == delivery.Status.RETRYING:
        raise self.retry(args=[notification_id, destination_id, attempt + 1],
                         countdown=services.retry_countdown(attempt))


@shared_task(name="notifications.overdue_check", ignore_result=True)
def overdue_check() -> int:
    """Periodic (settings.CELERY_BEAT_SCHEDULE): notify newly overdue jobs."""
    return len(services.overdue_check())


@schedulable("notifications.overdue_check", description="Notify once per overdue episode of each job (dead-man's switch).")
def overdue_check_job(*, execution, **kwargs):
    """The same check as a job of kind task, for who prefers to schedule it themselves."""
    sent = services.overdue_check()
    return RunResult(output=f"{len(sent)} overdue notification(s) queued", result={"notified": [n.job_id for n in sent]})
