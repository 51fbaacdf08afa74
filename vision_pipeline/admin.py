"""Batches in the admin: history, read-only (they are written by the runs).
Cancel an API batch through its run (Executions) or the API."""
from django.contrib import admin
from django.utils.html import format_html

from jobsite.admin.base import ReadOnlyAdmin, ReadOnlyAdminMixin, RefreshingListMixin
from jobsite.admin.widgets import Palette, admin_change_url, badge
from jobsite.tenancy import scope_to_user
from vision_pipeline.models import Batch, BatchImage

# Batch statuses in the colours of the runs' statuses they resemble.
BATCH_COLOURS = {"pending": Palette.WAITING, "processing": Palette.BUSY, "completed": Palette.OK,
                 "failed": Palette.BAD, "cancelled": Palette.OFF}


class BatchImageInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = BatchImage
    fields = ("position", "filename", "description", "status", "flags", "error")
    readonly_fields = fields
    extra = 0
    show_change_link = False


@admin.register(Batch)
class BatchAdmin(RefreshingListMixin, ReadOnlyAdmin):
    list_display = ("id", "source", "status_badge", "model", "total_images", "flagged_images", "failed_images",
                    "vision_analysis_id", "created_at", "report_link")
    list_filter = ("status", "source", "model", "organization")
    search_fields = ("id", "vision_analysis_id", "run_code", "user_query")
    readonly_fields = [field.name for field in Batch._meta.fields] + ["report_link", "run_link"]
    inlines = [BatchImageInline]

    def get_queryset(self, request):
        return scope_to_user(super().get_queryset(request).select_related("execution"), request.user)

    def is_going(self, obj) -> bool:  # the list reloads itself while a batch is pending or processing
        return obj.status in Batch.ACTIVE_STATUSES

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        return badge(obj.status, obj.get_status_display(), colours=BATCH_COLOURS)

    @admin.display(description="Run (traceback, log)")
    def run_link(self, obj):
        if not obj.execution_id:
            return "—"
        url = admin_change_url(obj.execution)
        return format_html('<a href="{}">{}</a>', url, obj.execution) if url else str(obj.execution)

    @admin.display(description="Report")
    def report_link(self, obj):
        if obj.status != Batch.Status.COMPLETED:
            return "—"
        return format_html('<a href="/api/v1/vision/batches/{}/report">report</a>', obj.pk)
