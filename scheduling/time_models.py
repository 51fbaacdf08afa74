"""Backfills and calendars: models of the scheduling app kept in a module of
their own (scheduling.models re-exports them, so they are ``scheduling.Backfill``
and ``scheduling.Calendar`` like any other). See scheduling.services.backfill
and scheduling.calendars."""
from django.conf import settings
from django.db import models


class Backfill(models.Model):
    """Runs of a job for the due times of a past range, one at a time
    (scheduling.services.backfill): one group, with its progress; cancelling
    it cancels what has not run."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"

    job = models.ForeignKey("scheduling.Job", on_delete=models.CASCADE, related_name="backfills", help_text="The job whose past due times are run.")
    start = models.DateTimeField(help_text="First instant of the range (included).")
    end = models.DateTimeField(help_text="End of the range (excluded).")
    due_times = models.JSONField(
        default=list, blank=True,
        help_text="The due times to run (ISO 8601, oldest first); those that already had a run are not in it.",
    )
    already_ran = models.JSONField(default=list, blank=True, help_text="Due times in the range that already had a run (not run again).")
    queued = models.PositiveIntegerField(default=0, help_text="How many of due_times have been queued so far.")
    current_execution = models.ForeignKey(
        "scheduling.Execution", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The run going now; the next is queued when it finishes.",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING, help_text="Running, done or cancelled.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Who asked for it (empty: the CLI or the system).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True, help_text="When it was done or cancelled.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "current_execution"], name="backfill_status_current")]

    def __str__(self) -> str:
        return f"Backfill {self.pk} of {self.job.name}"


class Calendar(models.Model):
    """Days and hours a job does not fire (scheduling.calendars): dates,
    date ranges, weekly windows, a country's public holidays, an imported
    iCalendar file. A job that lists a calendar records a fire inside it as
    ``skipped``, with the calendar's name as the reason."""

    name = models.CharField(max_length=200, unique=True, help_text="Unique name; jobs and files refer to it by name.")
    description = models.TextField(blank=True, help_text="What the calendar is for.")
    timezone = models.CharField(max_length=64, default="UTC", help_text="IANA zone its dates, ranges and windows are read in.")
    dates = models.JSONField(default=list, blank=True, help_text='Whole days, e.g. ["2026-12-24", "2026-12-31"].')
    date_ranges = models.JSONField(
        default=list, blank=True, help_text='Whole days from start to end, both included: [{"start": "2026-12-24", "end": "2027-01-01"}].',
    )
    weekly_windows = models.JSONField(
        default=list, blank=True,
        help_text='Hours of a weekday (0=Monday), start included, end excluded: [{"day": 4, "start": "18:00", "end": "22:00"}].',
    )
    holidays_country = models.CharField(max_length=8, blank=True, help_text="Public holidays of this country (ISO code, e.g. DE), from the holidays library.")
    holidays_subdivision = models.CharField(max_length=16, blank=True, help_text="And of this region of it (e.g. BY), if any.")
    ical = models.TextField(blank=True, help_text="An imported iCalendar file: each event (its RRULE expanded) is a period the jobs skip.")
    jobs = models.ManyToManyField("scheduling.Job", blank=True, related_name="calendars", help_text="Jobs that skip their fires inside this calendar.")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Who the calendar belongs to; they and their organization see it.",
    )
    organization = models.ForeignKey(
        "jobsite.Organization", null=True, blank=True, on_delete=models.SET_NULL, related_name="calendars",
        help_text="Members of this organization see and use the calendar.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
