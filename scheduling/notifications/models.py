"""Where notifications go (Destination), what each job wants
(JobNotificationSettings), what was sent (Notification) and every attempt to
deliver it (NotificationDelivery)."""
import uuid

from django.db import models
from django.db.models import Q

from scheduling.models import Execution, Job


class Event(models.TextChoices):
    FAILURE = "failure", "Failure"
    RECOVERY = "recovery", "Recovery (first success after failures)"
    OVERDUE = "overdue", "Overdue (dead-man's switch)"


class Destination(models.Model):
    class Kind(models.TextChoices):
        WEBHOOK = "webhook", "Webhook (JSON POST, HMAC-SHA256 signed)"
        EMAIL = "email", "Email"

    name = models.SlugField(max_length=100, unique=True, help_text="How jobs and settings refer to it.")
    kind = models.CharField(max_length=16, choices=Kind.choices, help_text="Webhook or email.")
    url = models.URLField(max_length=1000, blank=True, help_text="Webhook URL (kind webhook); sent through the outbound client's SSRF guard.")
    secret = models.TextField(
        blank=True, default="", editable=False,
        help_text="The webhook's HMAC signing secret, Fernet-encrypted (jobsite.crypto); never shown.",
    )
    email_to = models.CharField(max_length=1000, blank=True, help_text="Recipients, comma-separated (kind email).")
    is_enabled = models.BooleanField(default=True, help_text="Disabled destinations receive nothing.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=~Q(kind="webhook") | ~Q(url=""), name="notif_webhook_has_url"),
            models.CheckConstraint(condition=~Q(kind="email") | ~Q(email_to=""), name="notif_email_has_recipients"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    @property
    def recipients(self) -> list[str]:
        return [address.strip() for address in self.email_to.split(",") if address.strip()]


class JobNotificationSettings(models.Model):
    """A job's own choice; a job without one uses the global default
    (settings.NOTIFICATIONS_DEFAULT_EVENTS / NOTIFICATIONS_DEFAULT_DESTINATIONS)."""

    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="notification_settings")
    on_failure = models.BooleanField(default=True, help_text="Notify when a run fails, times out or errors (after its last retry).")
    on_recovery = models.BooleanField(default=True, help_text="Notify on the first success after failures.")
    on_overdue = models.BooleanField(default=True, help_text="Notify once when the job becomes overdue.")
    destinations = models.ManyToManyField(Destination, blank=True, related_name="jobs", help_text="This job's own destinations.")
    include_defaults = models.BooleanField(
        default=True, help_text="Also notify the global default destinations (NOTIFICATIONS_DEFAULT_DESTINATIONS).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "job notification settings"
        verbose_name_plural = "job notification settings"

    def __str__(self) -> str:
        return f"notifications of {self.job}"


class Notification(models.Model):
    """One event worth telling (a failure, a recovery, an overdue episode)."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, help_text="Sent as X-Jobsite-Delivery.")
    event = models.CharField(max_length=16, choices=Event.choices)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="notifications")
    execution = models.ForeignKey(Execution, null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications")
    payload = models.JSONField(help_text="The JSON body webhooks receive.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A redelivered "finished" task never notifies twice about one run.
            models.UniqueConstraint(fields=["execution", "event"], condition=Q(execution__isnull=False),
                                    name="notif_one_per_execution_event"),
        ]

    def __str__(self) -> str:
        return f"{self.event} of {self.job}"


class NotificationDelivery(models.Model):
    """One attempt to deliver one notification to one destination."""

    class Status(models.TextChoices):
        DELIVERED = "delivered", "Delivered"
        RETRYING = "retrying", "Failed, will retry"
        FAILED = "failed", "Failed, gave up"

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="deliveries")
    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=16, choices=Event.choices, help_text="The notification's event (for filters).")
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="notification_deliveries")
    attempt = models.PositiveSmallIntegerField(help_text="1 for the first try.")
    status = models.CharField(max_length=16, choices=Status.choices)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True, help_text="HTTP status of a webhook answer.")
    error = models.TextField(blank=True, help_text="Why the attempt failed (URLs and secrets redacted).")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name_plural = "notification deliveries"
        indexes = [models.Index(fields=["job", "-started_at"], name="notif_delivery_job")]
        constraints = [
            models.UniqueConstraint(fields=["notification", "destination", "attempt"], name="notif_one_row_per_attempt"),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.destination.name} #{self.attempt} {self.status}"


class OverdueEpisode(models.Model):
    """A job is overdue now and has been told about: one notification per episode.
    The row goes when the job is no longer overdue."""

    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="overdue_episode")
    since = models.DateTimeField(help_text="When the run that did not start was due.")
    notified_at = models.DateTimeField(auto_now_add=True)
