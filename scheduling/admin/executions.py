"""Runs and history in the admin, read-only: executions (with Cancel and
Re-run buttons that call ``execution_cancel``/``job_execute``, and pages that
reload themselves while a run is queued or running), audit entries and daily
statistics."""
from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from jobsite.admin.base import ObjectToolsMixin, ReadOnlyAdmin, RefreshingListMixin, act_on_each
from jobsite.admin.widgets import human_duration, json_block, pre_block, refreshing, when
from jobsite.tenancy import scope_to_user
from scheduling import services
from scheduling.admin.widgets import RunColumns, SchedulingMedia, badge, status_label
from scheduling.admin.workers import WorkersPageMixin
from scheduling.models import AuditLog, DailyJobStatistics, Execution


@admin.register(Execution)
class ExecutionAdmin(RunColumns, WorkersPageMixin, ObjectToolsMixin, RefreshingListMixin, ReadOnlyAdmin):
    list_display = ["id", "job", "status_badge", "trigger", "attempt", "created_time", "started_time", "duration",
                    "worker", "summary"]
    list_filter = ["status", "trigger", "job__queue"]
    search_fields = ["job__name", "celery_task_id"]
    list_select_related = ["job"]
    actions = ["cancel"]
    date_hierarchy = "created_at"
    fieldsets = [
        (None, {"fields": ["status_badge", "job_link", "trigger", "attempt", "retry_links", "triggered_by",
                           "override_kwargs_block"]}),
        ("Timing", {"fields": ["scheduled_time", "created_time", "started_time", "completed_time", "duration",
                               "worker", "celery_task_id"]}),
        ("Outcome", {"fields": ["output", "error", "result_block", "batch_id"]}),
        ("Traceback", {"fields": ["traceback_block"]}),
        ("Log", {"fields": ["log_block"]}),
    ]
    readonly_fields = [name for _, options in fieldsets for name in options["fields"]]
    change_form_template = "admin/scheduling/execution/change_form.html"
    change_list_template = "admin/scheduling/execution/change_list.html"

    class Media(SchedulingMedia):
        pass

    def get_queryset(self, request):
        qs = super().get_queryset(request).select_related("job", "triggered_by", "retry_of")
        return scope_to_user(qs, request.user, owner_field="job__owner", org_field="job__organization")

    def has_cancel_permission(self, request) -> bool:
        return request.user.has_perm("scheduling.change_execution")

    # -- columns and fields (status, times, duration: RunColumns) ---------------
    @admin.display(description="Completed", ordering="completed_at")
    def completed_time(self, obj):
        return when(obj.completed_at)

    @admin.display(description="Due (scheduled for)")
    def scheduled_time(self, obj):
        return when(obj.scheduled_for)

    @admin.display(description="Output / error")
    def summary(self, obj):
        text = obj.error if obj.status in Execution.FAILURE_STATUSES and obj.error else obj.output
        text = " ".join((text or "").split())
        return format_html('<span title="{}">{}</span>', text, text[:80] + ("…" if len(text) > 80 else "")) if text else "-"

    @admin.display(description="Job")
    def job_link(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("admin:scheduling_job_change", args=[obj.job_id]), obj.job.name)

    @admin.display(description="Retries")
    def retry_links(self, obj):
        parts = []
        if obj.retry_of_id:
            url = reverse("admin:scheduling_execution_change", args=[obj.retry_of_id])
            parts.append(format_html('Retries <a href="{}">run {}</a>', url, obj.retry_of_id))
        retries = list(obj.retries.order_by("pk").values_list("pk", "status"))
        for pk, status in retries:
            url = reverse("admin:scheduling_execution_change", args=[pk])
            parts.append(format_html('Retried as <a href="{}">run {}</a> {}', url, pk, badge(status, status_label(status))))
        return format_html_join(mark_safe("<br>"), "{}", ((part,) for part in parts)) if parts else "-"

    @admin.display(description="Parameters of this run")
    def override_kwargs_block(self, obj):
        return json_block(obj.override_kwargs)

    @admin.display(description="Result")
    def result_block(self, obj):
        return json_block(obj.result)

    @admin.display(description="Traceback")
    def traceback_block(self, obj):
        return pre_block(obj.traceback, empty="(none: the run did not raise)")

    @admin.display(description="Log")
    def log_block(self, obj):
        return pre_block(obj.log, empty="(nothing logged)")

    # -- pages -------------------------------------------------------------------
    def is_going(self, obj) -> bool:
        return obj.status in Execution.ACTIVE_STATUSES

    def change_view(self, request, object_id, form_url="", extra_context=None):
        execution = self.get_object(request, object_id)
        extra_context = {
            **(extra_context or {}),
            "can_cancel": bool(execution and execution.is_active and self.has_cancel_permission(request)),
            "can_rerun": bool(execution and request.user.has_perm("scheduling.change_job")),
        }
        response = super().change_view(request, object_id, form_url, extra_context)
        return refreshing(response, bool(execution and execution.is_active))

    # -- buttons ---------------------------------------------------------------
    def tool_urls(self):
        return [
            *self.workers_urls(),
            ("<path:object_id>/cancel/", self.cancel_view, "scheduling_execution_cancel"),
            ("<path:object_id>/rerun/", self.rerun_view, "scheduling_execution_rerun"),
        ]

    @method_decorator(require_POST)
    def cancel_view(self, request, object_id):
        execution = self.tool_object(request, object_id)
        if not self.has_cancel_permission(request):
            raise PermissionDenied
        cancelled = self.tool_call(request, lambda: services.execution_cancel(
            execution=execution, actor=request.user, reason="cancelled in the admin"))
        if cancelled is not None:
            self.message_user(request, f"Cancelled run {execution.pk} of {execution.job.name}.", messages.SUCCESS)
        return self.back_to(execution)

    @method_decorator(require_POST)
    def rerun_view(self, request, object_id):
        execution = self.tool_object(request, object_id)
        if not request.user.has_perm("scheduling.change_job"):
            raise PermissionDenied
        rerun = self.tool_call(request, lambda: services.job_execute(
            job=execution.job, actor=request.user, trigger=Execution.Trigger.MANUAL,
            override_kwargs=execution.override_kwargs or None, force=request.POST.get("force") == "1",
        ), refused="Not re-run: ")
        if rerun is None:
            return self.back_to(execution)
        self.message_user(request, f"Queued run {rerun.pk}: a re-run of run {execution.pk} with the same parameters.",
                          messages.SUCCESS)
        return self.back_to(rerun)

    # -- action (the list) -------------------------------------------------------
    @admin.action(description="Cancel (revoke the Celery task)", permissions=["cancel"])
    def cancel(self, request, queryset):
        def cancel_one(execution):
            services.execution_cancel(execution=execution, actor=request.user, reason="cancelled in the admin")
            return str(execution.pk)

        act_on_each(self, request, queryset.select_related("job"), cancel_one,
                    done=lambda pks: f"Cancelled execution(s) {', '.join(pks)}.")


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor_label", "action", "object_type", "object_id", "object_repr"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_label", "object_repr", "object_id"]
    date_hierarchy = "created_at"


@admin.register(DailyJobStatistics)
class DailyJobStatisticsAdmin(ReadOnlyAdmin):
    list_display = ["day", "job", "runs", "successes", "failures", "average_duration", "p95_duration", "computed_at"]
    list_filter = ["day"]
    search_fields = ["job__name"]
    list_select_related = ["job"]
    date_hierarchy = "day"

    @admin.display(description="Average duration", ordering="average_duration_seconds")
    def average_duration(self, obj):
        return human_duration(obj.average_duration_seconds)

    @admin.display(description="p95 duration", ordering="p95_duration_seconds")
    def p95_duration(self, obj):
        return human_duration(obj.p95_duration_seconds)


