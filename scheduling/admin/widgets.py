"""The shared admin widgets bound to the core's statuses: a job's state and a
run's status as a badge in the admin palette, a run's columns, and the look
of these pages."""
from __future__ import annotations

from django.contrib import admin
from django.db.models import Count
from django.utils import timezone
from django.utils.html import format_html

from jobsite.admin import widgets
from jobsite.admin.widgets import OpsMedia, Palette, human_duration, when
from scheduling.models import Execution, Job

BADGE_COLOURS = {
    Job.State.ACTIVE: Palette.OK,
    Job.State.PAUSED: Palette.IDLE,
    Job.State.DISABLED: Palette.OFF,
    Execution.Status.QUEUED: Palette.WAITING,
    Execution.Status.RUNNING: Palette.BUSY,
    Execution.Status.SUCCESS: Palette.OK,
    Execution.Status.FAILED: Palette.BAD,
    Execution.Status.TIMEOUT: Palette.LATE,
    Execution.Status.ERROR: Palette.BROKEN,
    Execution.Status.CANCELLED: Palette.OFF,
    Execution.Status.SKIPPED: Palette.IDLE,
    Execution.Status.MISSED: Palette.MISSED,
}


def badge(value: str, label: str | None = None):
    """A job state or run status as a badge in its colour."""
    return widgets.badge(value, label, colours=BADGE_COLOURS)


def status_label(status: str) -> str:
    try:
        return Execution.Status(status).label
    except ValueError:
        return status


class SchedulingMedia(OpsMedia):
    css = {"all": [*OpsMedia.css["all"], "scheduling/admin/scheduling.css"]}


class RunColumns:
    """The columns of a run wherever runs are listed (the executions, a job's
    recent runs)."""

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        return badge(obj.status, obj.get_status_display())

    @admin.display(description="Created", ordering="created_at")
    def created_time(self, obj):
        return when(obj.created_at)

    @admin.display(description="Started", ordering="started_at")
    def started_time(self, obj):
        return when(obj.started_at)

    @admin.display(description="Duration", ordering="duration_seconds")
    def duration(self, obj):
        if obj.duration_seconds is None and obj.status == Execution.Status.RUNNING and obj.started_at:
            return format_html('{}<span class="ops-sub"> so far</span>', human_duration(timezone.now() - obj.started_at))
        return human_duration(obj.duration_seconds)


class JobsNamingIt:
    """The columns of what jobs name (calendars, concurrency groups): how many
    jobs name it, counted in the list's one query (``with_job_count``), and
    which (``job_name_list``, on its page)."""

    @staticmethod
    def with_job_count(queryset):
        return queryset.annotate(job_total=Count("jobs"))

    @admin.display(description="Jobs", ordering="job_total")
    def job_count(self, obj) -> int:
        return obj.job_total

    @staticmethod
    def job_name_list(obj) -> str:
        return ", ".join(obj.jobs.order_by("name").values_list("name", flat=True)) or "-"
