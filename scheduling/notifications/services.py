"""Notification writes: settings, events, delivery attempts, the overdue check.

Nothing here sends inside a run or a request: events become Notification
rows, and each delivery is a Celery task (``notifications.deliver``) queued on
commit, retried with backoff, every attempt recorded.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Iterable

from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.utils import timezone

from jobsite import http
from jobsite.crypto import secrets_decrypt, secrets_encrypt
from jobsite.tenancy import SYSTEM
from scheduling import selectors as core_selectors
from scheduling.beat import schedule_description
from scheduling.models import Execution, Job
from scheduling.notifications import selectors
from scheduling.notifications.models import (
    Destination,
    Event,
    JobNotificationSettings,
    Notification,
    NotificationDelivery,
    OverdueEpisode,
)

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Jobsite-Signature"
TIMESTAMP_HEADER = "X-Jobsite-Timestamp"
EVENT_HEADER = "X-Jobsite-Event"
DELIVERY_HEADER = "X-Jobsite-Delivery"
ERROR_MAX_CHARS = 2000
DELIVER_TASK = "notifications.deliver"


# ---------------------------------------------------------------------------
# Destinations and per-job settings
# ---------------------------------------------------------------------------
def destination_set_secret(*, destination: Destination, secret: str) -> None:
    """Store the webhook signing secret, encrypted ('' removes it)."""
    destination.secret = secrets_encrypt({"secret": secret}) if secret else ""


def destination_secret(destination: Destination) -> str:
    return secrets_decrypt(destination.secret).get("secret", "") if destination.secret else ""


@transaction.atomic
def destination_create(*, name: str, kind: str, url: str = "", secret: str = "", email_to: str = "",
                       is_enabled: bool = True) -> Destination:
    destination = Destination(name=name, kind=kind, url=url, email_to=email_to, is_enabled=is_enabled)
    destination_set_secret(destination=destination, secret=secret)
    destination.full_clean()
    destination.save()
    return destination


@transaction.atomic
def job_notification_settings_update(*, job: Job, on_failure: bool | None = None, on_recovery: bool | None = None,
                                     on_overdue: bool | None = None, destinations: Iterable[str] | None = None,
                                     include_defaults: bool | None = None) -> JobNotificationSettings:
    """Create or change a job's own notification settings. ``destinations``
    are destination names and replace the job's list."""
    current = selectors.job_notification_settings_effective(job=job)
    config, _ = JobNotificationSettings.objects.select_for_update().get_or_create(
        job=job, defaults={
            "on_failure": Event.FAILURE in current.events,
            "on_recovery": Event.RECOVERY in current.events,
            "on_overdue": Event.OVERDUE in current.events,
        },
    )
    for field, value in (("on_failure", on_failure), ("on_recovery", on_recovery), ("on_overdue", on_overdue),
                         ("include_defaults", include_defaults)):
        if value is not None:
            setattr(config, field, value)
    config.save()
    if destinations is not None:
        names = list(dict.fromkeys(destinations))
        found = {d.name: d for d in Destination.objects.filter(name__in=names)}
        unknown = [name for name in names if name not in found]
        if unknown:
            available = ", ".join(Destination.objects.values_list("name", flat=True)) or "none configured"
            raise ValidationError({"destinations": [f"Unknown destination(s): {', '.join(unknown)}. Available: {available}."]})
        config.destinations.set([found[name] for name in names])
    return config


# ---------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------
def _iso(value) -> str | None:
    return value.isoformat() if value else None


def event_payload(*, event: str, job: Job, execution: Execution | None = None, overdue_since=None) -> dict:
    """The JSON body a webhook receives (README "Notifications")."""
    payload = {
        "event": event,
        "occurred_at": timezone.now().isoformat(),
        "job": {
            "id": job.pk, "name": job.name, "title": job.title, "kind": job.kind,
            "schedule": schedule_description(job) or f"{job.schedule_type} {job.schedule_expression}".strip(),
            "last_status": job.last_status or None,
            "next_run_at": _iso(job.next_run_at),
        },
        "execution": None,
    }
    if execution is not None:
        payload["execution"] = {
            "id": execution.pk, "status": execution.status, "trigger": execution.trigger,
            "attempt": execution.attempt, "started_at": _iso(execution.started_at),
            "completed_at": _iso(execution.completed_at), "duration_seconds": execution.duration_seconds,
            "output": execution.output[:1000], "error": execution.error[:2000],
        }
    if overdue_since is not None:
        payload["overdue_since"] = overdue_since.isoformat()
    return payload


def _previous_outcome(execution: Execution) -> str | None:
    """Status of the job's run that finished before this one (cancelled,
    skipped and missed runs say nothing about health)."""
    previous = (
        Execution.objects.filter(job_id=execution.job_id, status__in=(Execution.Status.SUCCESS, *Execution.FAILURE_STATUSES))
        .exclude(pk=execution.pk)
        .filter(completed_at__lte=execution.completed_at or timezone.now())
        .order_by("-completed_at", "-id")
        .values_list("status", flat=True)
        .first()
    )
    return previous


def execution_event(execution: Execution) -> str | None:
    """Which event a finished run is: a failure (after its last retry), a
    recovery (a success after failures), or none."""
    if execution.status in Execution.FAILURE_STATUSES:
        if execution.retries.exists():  # a retry is queued: that one will tell
            return None
        return Event.FAILURE
    if execution.status == Execution.Status.SUCCESS and _previous_outcome(execution) in Execution.FAILURE_STATUSES:
        return Event.RECOVERY
    return None


def notification_create(*, event: str, job: Job, execution: Execution | None = None,
                        overdue_since=None) -> Notification | None:
    """Record one event and queue its deliveries on commit; None when the job
    does not want it, nobody is to be told, or it was already recorded."""
    config = selectors.job_notification_settings_effective(job=job)
    if event not in config.events or not config.destinations:
        return None
    payload = event_payload(event=event, job=job, execution=execution, overdue_since=overdue_since)
    try:
        with transaction.atomic():
            notification = Notification.objects.create(event=event, job=job, execution=execution, payload=payload)
    except IntegrityError:  # the same run's event, from a redelivered task
        return None
    payload["notification_id"] = str(notification.uuid)
    Notification.objects.filter(pk=notification.pk).update(payload=payload)
    notification.payload = payload

    for destination in config.destinations:
        transaction.on_commit(lambda d=destination.pk: delivery_queue(notification_id=notification.pk,
                                                                     destination_id=d))
    return notification


def delivery_queue(*, notification_id: int, destination_id: int, attempt: int = 1) -> None:
    """Queue one delivery attempt. The task is named, not imported (its module
    imports this one); a signature by name still runs in-process when Celery
    is eager, which ``send_task`` would not."""
    current_app.signature(DELIVER_TASK, args=[notification_id, destination_id, attempt],
                          queue=settings.CELERY_TASK_DEFAULT_QUEUE).apply_async()


@transaction.atomic
def notify_execution_finished(*, execution_id: int) -> Notification | None:
    """The ``execution_finished`` task: tell about a failure or a recovery."""
    execution = Execution.objects.select_related("job").filter(pk=execution_id).first()
    if execution is None:
        return None
    event = execution_event(execution)
    if event is None:
        return None
    return notification_create(event=event, job=execution.job, execution=execution)


def overdue_check(*, now=None) -> list[Notification]:
    """The dead-man's switch: notify once per overdue episode of each job.

    An episode starts when the job shows up in the overdue list and ends when
    it no longer does (a run started, it was paused or disabled); the next
    time it is overdue is a new episode."""
    now = now or timezone.now()
    overdue = list(core_selectors.job_overdue_list(user=SYSTEM))
    OverdueEpisode.objects.exclude(job__in=[job.pk for job in overdue]).delete()
    sent = []
    for job in overdue:
        with transaction.atomic():
            since = core_selectors.job_overdue_since(job, now) or now
            _, started = OverdueEpisode.objects.get_or_create(job=job, defaults={"since": since})
            if not started:
                continue
            notification = notification_create(event=Event.OVERDUE, job=job, overdue_since=since)
            if notification is not None:
                sent.append(notification)
    return sent


# ---------------------------------------------------------------------------
# Delivery
# ---------------------------------------------------------------------------
def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` + hex HMAC-SHA256 of ``<timestamp>.<body>`` keyed with the
    destination's secret (README "Verifying a webhook")."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class DeliveryFailed(Exception):
    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


def _send_webhook(destination: Destination, notification: Notification) -> int:
    body = json.dumps(notification.payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        EVENT_HEADER: notification.event,
        DELIVERY_HEADER: str(notification.uuid),
        TIMESTAMP_HEADER: timestamp,
    }
    secret = destination_secret(destination)
    if secret:
        headers[SIGNATURE_HEADER] = webhook_signature(secret, timestamp, body)
    try:
        # One HTTP request per attempt (retries=0): the task retries, and records each.
        response = http.request("POST", destination.url, headers=headers, data=body, retries=0,
                                timeout=settings.NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS, max_bytes=64 * 1024,
                                raise_for_status=False)
    except http.OutboundHTTPError as exc:
        raise DeliveryFailed(str(exc)) from None
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(f"HTTP {response.status_code} from {http.redact_url(destination.url)}",
                             status_code=response.status_code)
    return response.status_code


def _email_text(notification: Notification) -> tuple[str, str]:
    payload = notification.payload
    job = payload["job"]
    execution = payload.get("execution") or {}
    subject = {
        Event.FAILURE: f"[jobsite] {job['name']} failed",
        Event.RECOVERY: f"[jobsite] {job['name']} recovered",
        Event.OVERDUE: f"[jobsite] {job['name']} is overdue",
    }[notification.event]
    lines = [f"Job:      {job['name']} (id {job['id']}) {job['title']}".rstrip(), f"Schedule: {job['schedule']}"]
    if execution:
        lines += [f"Run:      {execution['id']} ({execution['trigger']}, attempt {execution['attempt']})",
                  f"Status:   {execution['status']}", f"Finished: {execution['completed_at']}"]
        if execution.get("error"):
            lines.append(f"Error:    {execution['error']}")
    if payload.get("overdue_since"):
        lines.append(f"Due at:   {payload['overdue_since']} (no run has started since)")
    lines += ["", f"Details: ./manage jobs show {job['id']}"]
    return subject, "\n".join(lines) + "\n"


def _send_email(destination: Destination, notification: Notification) -> None:
    subject, body = _email_text(notification)
    try:
        EmailMessage(subject, body, settings.NOTIFICATIONS_EMAIL_FROM, destination.recipients).send()
    except Exception as exc:  # SMTP and socket errors alike: recorded, then retried
        raise DeliveryFailed(f"{type(exc).__name__}: {http.redact_text(str(exc))}") from None


def delivery_attempt(*, notification_id: int, destination_id: int, attempt: int) -> NotificationDelivery | None:
    """Make one attempt and record it. Its status is ``retrying`` when it failed
    and attempts are left (the task then retries), ``failed`` when not."""
    notification = Notification.objects.select_related("job").filter(pk=notification_id).first()
    destination = Destination.objects.filter(pk=destination_id).first()
    if notification is None or destination is None:
        return None  # deleted meanwhile (with its job or destination)
    started = timezone.now()
    status, status_code, error = NotificationDelivery.Status.DELIVERED, None, ""
    try:
        if not destination.is_enabled:
            raise DeliveryFailed("the destination is disabled")
        if destination.kind == Destination.Kind.WEBHOOK:
            status_code = _send_webhook(destination, notification)
        else:
            _send_email(destination, notification)
    except DeliveryFailed as exc:
        status_code, error = exc.status_code, str(exc)[:ERROR_MAX_CHARS]
        last = attempt >= settings.NOTIFICATIONS_MAX_ATTEMPTS or not destination.is_enabled
        status = NotificationDelivery.Status.FAILED if last else NotificationDelivery.Status.RETRYING
    delivery, _ = NotificationDelivery.objects.update_or_create(
        notification=notification, destination=destination, attempt=attempt,
        defaults={"event": notification.event, "job_id": notification.job_id, "status": status,
                  "status_code": status_code, "error": error, "started_at": started, "finished_at": timezone.now()},
    )
    (logger.info if status == NotificationDelivery.Status.DELIVERED else logger.warning)(
        "notification %s (%s of job %s) to %s, attempt %s: %s%s", notification.pk, notification.event,
        notification.job_id, destination.name, attempt, status, f" ({error})" if error else "",
    )
    return delivery


TEST_EVENT = "test"


def _test_email_text() -> tuple[str, str]:
    return ("[jobsite] Test notification",
            "This is a test from jobsite's admin: this destination receives the platform's notifications.\n")


def destination_send_test(*, destination: Destination, actor) -> tuple[bool, str]:
    """Send a test message to ``destination`` now (a webhook: the JSON body
    ``{"event": "test", ...}``, signed like any other; an email: a short
    note) and record in the audit trail who sent it and what came back.
    Returns (delivered, what happened). A disabled destination is sent to
    as well: the operator asked, to check it before enabling it."""
    from scheduling import audit
    from scheduling.models import AuditLog

    payload = {"event": TEST_EVENT, "occurred_at": timezone.now().isoformat(), "job": None, "execution": None,
               "message": "A test from jobsite's admin: this destination receives the platform's notifications."}
    notification = Notification(event=TEST_EVENT, payload=payload)  # not stored: nothing happened to a job
    try:
        if destination.kind == Destination.Kind.WEBHOOK:
            status_code = _send_webhook(destination, notification)
            outcome = f"delivered: {http.redact_url(destination.url)} answered HTTP {status_code}"
        else:
            subject, body = _test_email_text()
            try:
                EmailMessage(subject, body, settings.NOTIFICATIONS_EMAIL_FROM, destination.recipients).send()
            except Exception as exc:  # SMTP and socket errors alike
                raise DeliveryFailed(f"{type(exc).__name__}: {http.redact_text(str(exc))}") from None
            outcome = f"sent to {len(destination.recipients)} recipient(s)"
        delivered = True
    except DeliveryFailed as exc:
        delivered, outcome = False, f"failed: {str(exc)[:ERROR_MAX_CHARS]}"
    audit.record(actor=actor, action=AuditLog.Action.EXECUTE, obj=destination, changes={"test_delivery": [None, outcome]})
    logger.info("test notification to %s: %s", destination.name, outcome)
    return delivered, outcome


def retry_countdown(attempt: int) -> float:
    """Seconds before attempt ``attempt + 1``: backoff × 2^(attempt-1), at most an hour."""
    return min(settings.NOTIFICATIONS_RETRY_BACKOFF_SECONDS * (2 ** (attempt - 1)), 3600)
