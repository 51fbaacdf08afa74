"""Batches in the admin: history, read-only (they are written by the runs).
Cancel an API batch through its run (Executions) or the API."""
from django.contrib import admin
from django.utils.html import format_html

from jobsite.admin import ReadOnlyAdminMixin
from jobsite.tenancy import scope_to_user
from scheduling.admin import OpsMedia, admin_change_url, badge, refreshing
from vision_pipeline.models import Batch, BatchImage

# Batch statuses in the colours of the runs' (scheduling.admin.BADGE_COLOURS).
BATCH_BADGES = {"pending": "queued", "processing": "running", "completed": "success", "failed": "failed",
                "cancelled": "cancelled"}


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
    list_display = ("id", "source", "status_badge", "model", "total_images", "flagged_images", "failed_images",
                    "vision_analysis_id", "created_at", "report_link")
    list_filter = ("status", "source", "model", "organization")
    search_fields = ("id", "vision_analysis_id", "run_code", "user_query")
    readonly_fields = [field.name for field in Batch._meta.fields] + ["report_link", "run_link"]
    inlines = [BatchImageInline]
    # reloads itself while a batch on the page is pending or processing
    change_list_template = "admin/scheduling/refreshing_change_list.html"

    class Media(OpsMedia):
        pass

    def get_queryset(self, request):
        return scope_to_user(super().get_queryset(request).select_related("execution"), request.user)

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        cl = response.context_data.get("cl") if getattr(response, "context_data", None) else None
        return refreshing(response, cl is not None and any(b.status in Batch.ACTIVE_STATUSES for b in cl.result_list))

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        return badge(BATCH_BADGES.get(obj.status, obj.status), obj.get_status_display())

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
