"""Admin for bulk uploads: progress, filters, the row errors, and cancel and
delete actions that go through the services (the core's cancel revokes the
run's task; delete removes the predictions and the stored file)."""
from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from jobsite.exceptions import ApplicationError, error_message
from jobsite.tenancy import scope_to_user
from scheduling.admin import OpsMedia, refreshing
from predictions import serializers, services
from predictions.models import BulkUploadJob
from predictions.selectors import STATUS_FILTERS, upload_row_errors

ERRORS_SHOWN = 100
STATUS_COLOURS = {"pending": "#f9a825", "processing": "#1565c0", "completed": "#2e7d32", "failed": "#c62828"}


class SeedStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return BulkUploadJob.Status.choices

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(STATUS_FILTERS[value]) if value in STATUS_FILTERS else queryset


@admin.register(BulkUploadJob)
class BulkUploadJobAdmin(admin.ModelAdmin):
    list_display = ["id", "job_type", "status_badge", "progress_bar", "original_filename", "successful_rows",
                    "failed_rows", "created_by", "created_at"]
    list_filter = [SeedStatusFilter, "job_type", "file_format", "organization", "created_at"]
    search_fields = ["id", "original_filename", "created_by", "owner__username"]
    date_hierarchy = "created_at"
    list_select_related = ["execution", "owner", "organization"]
    actions = ["cancel_selected", "delete_selected_uploads"]
    fields = ["id", "job_type", "status_badge", "progress_bar", "original_filename", "file_format", "file_size",
              "header", "total_rows", "processed_rows", "successful_rows", "failed_rows", "performance", "error_message",
              "execution", "retry_of", "owner", "organization", "created_by", "created_at", "updated_at",
              "row_errors_table"]
    readonly_fields = fields
    # reloads itself while an upload on the page is pending or processing
    change_list_template = "admin/scheduling/refreshing_change_list.html"

    class Media(OpsMedia):
        pass

    def get_queryset(self, request):
        return scope_to_user(super().get_queryset(request).select_related("execution", "owner", "organization"),
                             request.user)

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        cl = response.context_data.get("cl") if getattr(response, "context_data", None) else None
        return refreshing(response, cl is not None and any(upload.is_active for upload in cl.result_list))

    def has_add_permission(self, request):
        return False  # uploads come through the API or `./manage predictions upload`

    def has_change_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # ours goes through the service
        return actions

    # -- columns -------------------------------------------------------------
    @admin.display(description="Status")
    def status_badge(self, obj: BulkUploadJob):
        return format_html(
            '<span style="background:{};color:#fff;padding:2px 8px;border-radius:10px;font-size:11px;'
            'font-weight:600">{}</span>', STATUS_COLOURS.get(obj.status, "#607d8b"), obj.status,
        )

    @admin.display(description="Progress")
    def progress_bar(self, obj: BulkUploadJob):
        pct = obj.progress_percentage
        return format_html(
            '<div style="width:140px;background:#e0e0e0;border-radius:4px" title="{} of {} rows">'
            '<div style="width:{}%;background:{};color:#fff;font-size:10px;padding:1px 4px;border-radius:4px;'
            'white-space:nowrap">{}%</div></div>',
            obj.processed_rows, obj.total_rows, min(pct, 100), STATUS_COLOURS.get(obj.status, "#607d8b"), pct,
        )

    @admin.display(description="Performance")
    def performance(self, obj: BulkUploadJob):
        perf = serializers.performance(obj)
        parts = [f"{perf['processing_time_seconds']} s" if perf["processing_time_seconds"] is not None else None,
                 f"{perf['rows_per_second']:,.0f} rows/s" if perf["rows_per_second"] else None,
                 f"ETA {perf['estimated_completion_time']}" if perf.get("estimated_completion_time") else None]
        return ", ".join(p for p in parts if p) or "-"

    @admin.display(description="Row errors")
    def row_errors_table(self, obj: BulkUploadJob):
        errors = list(upload_row_errors(upload=obj, limit=ERRORS_SHOWN))
        if not errors:
            return "-"
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                                ((e.row_number, e.company_symbol, e.error) for e in errors))
        more = (f" (first {ERRORS_SHOWN} of {obj.failed_rows}; all in errors.csv)"
                if obj.failed_rows > len(errors) else "")
        return format_html('<table><tr><th>Row</th><th>Company symbol</th><th>Error</th></tr>{}</table>{}', rows, more)

    # -- actions -------------------------------------------------------------
    @admin.action(description="Cancel selected pending/processing jobs")
    def cancel_selected(self, request, queryset):
        done = 0
        for upload in queryset:
            try:
                services.upload_cancel(upload=upload, actor=request.user, reason="cancelled in the admin")
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"{upload.pk}: {error_message(exc)}", messages.WARNING)
        if done:
            self.message_user(request, f"Cancelled {done} job(s).", messages.SUCCESS)

    @admin.action(description="Delete selected jobs (with predictions and files)")
    def delete_selected_uploads(self, request, queryset):
        done = 0
        for upload in queryset:
            try:
                services.upload_delete(upload=upload, actor=request.user)
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"{upload.pk}: {error_message(exc)}", messages.WARNING)
        if done:
            self.message_user(request, f"Deleted {done} job(s).", messages.SUCCESS)
