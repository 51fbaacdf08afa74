"""Run control's tables, read-only here (the CLI and the API write them
through the services): concurrency groups (a limit shared by jobs) and
maintenance pauses (``scheduling.maintenance_mode``; the banner says which are
in force)."""
from __future__ import annotations

from django.contrib import admin
from django.utils import timezone

from jobsite.admin.base import ReadOnlyAdmin
from jobsite.admin.widgets import when
from scheduling.admin.widgets import JobsNamingIt
from scheduling.maintenance_mode import is_in_force, pause_in_words
from scheduling.models import ConcurrencyGroup, MaintenancePause


@admin.register(ConcurrencyGroup)
class ConcurrencyGroupAdmin(JobsNamingIt, ReadOnlyAdmin):
    list_display = ["name", "max_runs", "job_count", "description"]
    search_fields = ["name", "description"]
    fields = ["name", "max_runs", "description", "job_names"]
    readonly_fields = ["job_names"]

    def get_queryset(self, request):
        return self.with_job_count(super().get_queryset(request))

    @admin.display(description="Its jobs")
    def job_names(self, obj) -> str:
        return self.job_name_list(obj)


@admin.register(MaintenancePause)
class MaintenancePauseAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "in_words", "in_force", "started", "until_time", "ended", "created_by"]
    list_filter = ["scope"]
    fields = ["in_words", "scope", "organization", "queue", "reason", "started", "until_time", "ended", "created_by"]
    readonly_fields = ["in_words", "started", "until_time", "ended"]
    ordering = ["-started_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("organization")

    @admin.display(description="What")
    def in_words(self, obj) -> str:
        return pause_in_words(obj)

    @admin.display(description="In force", boolean=True)
    def in_force(self, obj) -> bool:
        return is_in_force(obj, timezone.now())

    @admin.display(description="Started", ordering="started_at")
    def started(self, obj) -> str:
        return when(obj.started_at)

    @admin.display(description="Until", ordering="until")
    def until_time(self, obj) -> str:
        return when(obj.until) if obj.until else "until resumed"

    @admin.display(description="Ended", ordering="ended_at")
    def ended(self, obj) -> str:
        return when(obj.ended_at)
