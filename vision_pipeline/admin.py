"""Batches in the admin: history, read-only (they are written by the runs).
Cancel an API batch through its run (Executions) or the API."""
from django.contrib import admin
from django.utils.html import format_html

from jobsite.admin import ReadOnlyAdminMixin
from jobsite.tenancy import scope_to_user
from vision_pipeline.models import Batch, BatchImage


class BatchImageInline(admin.TabularInline):
    model = BatchImage
    fields = ("position", "filename", "description", "status", "flags", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Batch)
class BatchAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "source", "status", "model", "total_images", "flagged_images", "failed_images",
                    "vision_analysis_id", "created_at", "report_link")
    list_filter = ("status", "source", "model", "organization")
    search_fields = ("id", "vision_analysis_id", "run_code", "user_query")
    readonly_fields = [field.name for field in Batch._meta.fields] + ["report_link"]
    inlines = [BatchImageInline]

    def get_queryset(self, request):
        return scope_to_user(super().get_queryset(request).select_related("execution"), request.user)

    @admin.display(description="Report")
    def report_link(self, obj):
        if obj.status != Batch.Status.COMPLETED:
            return "—"
        return format_html('<a href="/api/v1/vision/batches/{}/report">report</a>', obj.pk)
