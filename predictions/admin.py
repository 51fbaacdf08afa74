"""Admin for bulk uploads: progress, filters, the row errors, and cancel and
delete actions that go through the services (the core's cancel revokes the
run's task; delete removes the predictions and the stored file)."""
from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from jobsite.admin.base import RefreshingListMixin, act_on_each
from jobsite.admin.widgets import OpsMedia, Palette, badge
from jobsite.tenancy import scope_to_user
from predictions import serializers, services
from predictions.models import BulkUploadJob
from predictions.selectors import STATUS_FILTERS, upload_row_errors

ERRORS_SHOWN = 100
STATUS_COLOURS = {"pending": Palette.WAITING, "processing": Palette.BUSY, "completed": Palette.OK, "failed": Palette.BAD}


class SeedStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return BulkUploadJob.Status.choices

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(STATUS_FILTERS[value]) if value in STATUS_FILTERS else queryset


@admin.register(BulkUploadJob)
class BulkUploadJobAdmin(RefreshingListMixin, admin.ModelAdmin):
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

    class Media(OpsMedia):
        pass

    def get_queryset(self, request):
        return scope_to_user(super().get_queryset(request).select_related("execution", "owner", "organization"),
                             request.user)

    def is_going(self, obj) -> bool:  # the list reloads itself while an upload is pending or processing
        return obj.is_active

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
        return badge(obj.status, colours=STATUS_COLOURS)

    @admin.display(description="Progress")
    def progress_bar(self, obj: BulkUploadJob):
        pct = obj.progress_percentage
        return format_html(
            '<div style="width:140px;background:#e0e0e0;border-radius:4px" title="{} of {} rows">'
            '<div style="width:{}%;background:{};color:#fff;font-size:10px;padding:1px 4px;border-radius:4px;'
            'white-space:nowrap">{}%</div></div>',
            obj.processed_rows, obj.total_rows, min(pct, 100), STATUS_COLOURS.get(obj.status, Palette.OTHER), pct,
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
        act_on_each(self, request, queryset, lambda upload: services.upload_cancel(
            upload=upload, actor=request.user, reason="cancelled in the admin"),
            done=lambda cancelled: f"Cancelled {len(cancelled)} job(s).", label=lambda upload: str(upload.pk))

    @admin.action(description="Delete selected jobs (with predictions and files)")
    def delete_selected_uploads(self, request, queryset):
        act_on_each(self, request, queryset, lambda upload: services.upload_delete(upload=upload, actor=request.user),
                    done=lambda deleted: f"Deleted {len(deleted)} job(s).", label=lambda upload: str(upload.pk))
