"""Notification reads."""
from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import QuerySet

from jobsite.tenancy import scope_to_user
from scheduling.models import Job
from scheduling.notifications.models import Destination, Event, JobNotificationSettings, NotificationDelivery


@dataclass
class EffectiveSettings:
    """What a job notifies about, and to whom, once the defaults are applied."""

    job: Job
    events: set[str]
    own_destinations: list[Destination] = field(default_factory=list)
    default_destinations: list[Destination] = field(default_factory=list)
    include_defaults: bool = True
    customised: bool = False  # the job has its own settings row

    @property
    def destinations(self) -> list[Destination]:
        """Enabled destinations, each once: the job's own, then the defaults."""
        chosen = list(self.own_destinations) + (list(self.default_destinations) if self.include_defaults else [])
        unique = {d.pk: d for d in chosen if d.is_enabled}
        return list(unique.values())


def default_destinations() -> list[Destination]:
    names = list(settings.NOTIFICATIONS_DEFAULT_DESTINATIONS)
    found = {d.name: d for d in Destination.objects.filter(name__in=names)}
    return [found[name] for name in names if name in found]


def job_notification_settings_effective(*, job: Job) -> EffectiveSettings:
    config = JobNotificationSettings.objects.filter(job=job).prefetch_related("destinations").first()
    defaults = default_destinations()
    if config is None:
        events = {Event(value) for value in settings.NOTIFICATIONS_DEFAULT_EVENTS}
        return EffectiveSettings(job=job, events=events, default_destinations=defaults)
    events = {event for event, on in ((Event.FAILURE, config.on_failure), (Event.RECOVERY, config.on_recovery),
                                      (Event.OVERDUE, config.on_overdue)) if on}
    return EffectiveSettings(
        job=job, events=events, own_destinations=list(config.destinations.all()), default_destinations=defaults,
        include_defaults=config.include_defaults, customised=True,
    )


def delivery_list(
    *, user, job: Job | None = None, event: str | None = None, status: str | None = None,
) -> QuerySet[NotificationDelivery]:
    """Delivery attempts of the jobs ``user`` may see (``SYSTEM``: all),
    newest first, optionally of one job, event or status."""
    qs = scope_to_user(NotificationDelivery.objects.select_related("destination", "notification", "job"), user,
                       owner_field="job__owner", org_field="job__organization")
    if job is not None:
        qs = qs.filter(job=job)
    if event:
        qs = qs.filter(event=event)
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-started_at", "-id")
