"""Batches in the admin: history, read-only (they are written by the runs).
Cancel an API batch through its run (Executions) or the API.

A batch's page starts with what an operator looks for: its status and
progress, the report link and its run, the flags as chips with their counts,
the model's answer, then the images as a grid of thumbnails (served by
``thumbnail_view``, which checks permission and tenancy like the page and
reads the stored image), each with its own flags and error."""
from __future__ import annotations

import hashlib

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseNotModified
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from jobsite.admin.base import ReadOnlyAdmin, RefreshingListMixin
from jobsite.admin.widgets import Palette, admin_change_url, badge, progress_bar, refreshing, relative_when, when
from jobsite.exceptions import ApplicationError
from jobsite.tenancy import scope_to_user
from vision_pipeline.models import Batch, BatchImage
from vision_pipeline.services.storage import batch_image_thumbnail

# Batch statuses in the colours of the runs' statuses they resemble.
BATCH_COLOURS = {"pending": Palette.WAITING, "processing": Palette.BUSY, "completed": Palette.OK,
                 "failed": Palette.BAD, "cancelled": Palette.OFF}
IMAGE_COLOURS = {"pending": Palette.WAITING, "working": Palette.BUSY, "done": Palette.OK, "failed": Palette.BAD}
THUMBNAIL_LONG_SIDE = 320  # pixels: sharp at the grid's 160 CSS pixels on a high-density screen
THUMBNAIL_MAX_AGE = 24 * 3600  # a batch's images never change


def flag_label(flag: str) -> str:
    return str(flag).replace("_", " ").capitalize()


def flag_chips(flags, counts: dict | None = None):
    """Flags as chips (``Possible rust ×3``), not a JSON list."""
    if not flags:
        return format_html('<span class="vb-none">{}</span>', "No flags")
    items = [(flag, flag_label(flag), f" ×{counts[flag]}" if counts and counts.get(flag) is not None else "")
             for flag in flags]
    return format_html_join("", '<span class="vb-chip vb-chip-{}">{}{}</span>', items)


@admin.register(Batch)
class BatchAdmin(RefreshingListMixin, ReadOnlyAdmin):
    change_form_template = "admin/vision_pipeline/batch/change_form.html"
    # Seven narrow columns: no sideways scroll at 1,400 px beside the sidebars.
    list_display = ("batch_display", "status_badge", "progress", "flagged", "model", "created", "report_link")
    list_display_links = ("batch_display",)
    list_filter = ("status", "source", "model", "organization")
    search_fields = ("id", "vision_analysis_id", "run_code", "user_query")
    fieldsets = [
        ("Batch", {"fields": ["id", "source", "model", "user_query", "created", "started", "completed", "error"]}),
        ("Where it came from", {"fields": ["vision_analysis_id", "run_code", "organization_name",
                                           "external_organization_id", "owner", "organization"]}),
        ("Runs", {"fields": ["run_link", "chunk_runs"]}),
    ]
    readonly_fields = ["id", "source", "model", "user_query", "created", "started", "completed", "error",
                       "vision_analysis_id", "run_code", "organization_name", "external_organization_id", "owner",
                       "organization", "run_link", "chunk_runs"]

    class Media(ReadOnlyAdmin.Media):
        css = {"all": [*ReadOnlyAdmin.Media.css["all"], "vision_pipeline/admin/batches.css"]}

    def get_fieldsets(self, request, obj=None):
        fieldsets = [(name, dict(options)) for name, options in self.fieldsets]
        if obj is not None and obj.source != Batch.Source.CRON:  # only a cron batch comes from the external API
            fieldsets[1][1]["classes"] = ["collapse"]
        return fieldsets

    def get_queryset(self, request):
        return scope_to_user(super().get_queryset(request).select_related("execution", "owner", "organization"),
                             request.user)

    def is_going(self, obj) -> bool:  # the list reloads itself while a batch is pending or processing
        return obj.status in Batch.ACTIVE_STATUSES

    # -- columns ----------------------------------------------------------------
    @admin.display(description="Batch", ordering="created_at")
    def batch_display(self, obj):
        query = " ".join((obj.user_query or "").split())
        query = query if len(query) <= 40 else query[:39] + "…"
        return format_html('<strong class="ops-nowrap" title="{}">{}</strong><br><span class="ops-sub">{}{}</span>',
                           obj.pk, str(obj.pk)[:8], obj.get_source_display(), f" · {query}" if query else "")

    @admin.display(description="Flagged", ordering="flagged_images")
    def flagged(self, obj):
        return f"{obj.flagged_images} of {obj.total_images}" if obj.total_images else "-"

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        status = obj.effective_status
        return badge(status, Batch.Status(status).label, colours=BATCH_COLOURS)

    @admin.display(description="Progress")
    def progress(self, obj):
        if not obj.total_images:
            return "-"
        return progress_bar(obj.progress, failed_percent=100.0 * obj.failed_images / obj.total_images,
                            label=f"{obj.processed_images}/{obj.total_images}")

    @admin.display(description="Created", ordering="created_at")
    def created(self, obj):
        return relative_when(obj.created_at)

    @admin.display(description="Started")
    def started(self, obj):
        return when(obj.started_at)

    @admin.display(description="Completed")
    def completed(self, obj):
        return when(obj.completed_at)

    @admin.display(description="Run (traceback, log)")
    def run_link(self, obj):
        if not obj.execution_id:
            return "—"
        url = admin_change_url(obj.execution)
        return format_html('<a href="{}">{}</a>', url, obj.execution) if url else str(obj.execution)

    @admin.display(description="Chunk runs")
    def chunk_runs(self, obj):
        ids = [pk for pk in obj.chunk_execution_ids or [] if isinstance(pk, int)]
        if not ids:
            return "—"
        return format_html_join(", ", '<a href="{}">Run {}</a>',
                                ((reverse("admin:scheduling_execution_change", args=[pk]), pk) for pk in ids))

    @admin.display(description="Report")
    def report_link(self, obj):
        if obj.status != Batch.Status.COMPLETED:
            return "—"
        return format_html('<a href="{}">report</a>', report_url(obj))

    # -- the page ----------------------------------------------------------------
    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if obj is not None:
            extra["batch_view"] = self._overview(obj)
        response = super().change_view(request, object_id, form_url, extra)
        return refreshing(response, obj is not None and obj.status in Batch.ACTIVE_STATUSES)

    def _overview(self, batch: Batch) -> dict:
        summary = batch.summary if isinstance(batch.summary, dict) else {}
        counts = summary.get("flags") if isinstance(summary.get("flags"), dict) else {}
        answer = summary.get("answer")
        if isinstance(answer, dict):
            answer_text, answer_model = str(answer.get("answer") or ""), str(answer.get("model") or "")
        else:
            answer_text, answer_model = (str(answer) if answer else ""), ""
        images = list(batch.images.all())
        return {
            "status": self.status_badge(batch),
            "progress": self.progress(batch),
            "report_url": report_url(batch) if batch.status == Batch.Status.COMPLETED else "",
            "run": self.run_link(batch),
            "flag_chips": flag_chips(sorted(counts, key=lambda f: (-counts[f], f)), counts) if counts else "",
            "counts": [("Images", batch.total_images), ("Analysed", batch.processed_images),
                       ("Flagged", batch.flagged_images), ("Failed", batch.failed_images)],
            "answer": answer_text, "answer_model": answer_model,
            "images": [{
                "row": row,
                "thumbnail_url": reverse("admin:vision_pipeline_batch_thumbnail", args=[batch.pk, row.position]),
                "status": badge(row.status, row.get_status_display(), colours=IMAGE_COLOURS),
                "flags": flag_chips(row.flags if isinstance(row.flags, list) else []),
                "findings": [str(f) for f in row.findings] if isinstance(row.findings, list) else [],
                "has_picture": bool(row.stored_name or row.thumbnail),
            } for row in images],
        }

    # -- thumbnails ----------------------------------------------------------------
    def get_urls(self):
        own = [path("<uuid:batch_id>/images/<int:position>/thumbnail/",
                    self.admin_site.admin_view(self.thumbnail_view), name="vision_pipeline_batch_thumbnail")]
        return [*own, *super().get_urls()]

    def thumbnail_view(self, request, batch_id, position: int):
        """A small JPEG of one image of a batch this user may see (others' : 404)."""
        batch = self.get_queryset(request).filter(pk=batch_id).first()
        if batch is None:
            raise Http404("No such batch visible to you.")
        if not self.has_view_permission(request, batch):
            raise PermissionDenied
        row = BatchImage.objects.filter(batch=batch, position=position).first()
        if row is None:
            raise Http404("No such image in this batch.")
        etag = '"{}"'.format(hashlib.sha256(
            f"{batch.pk}/{row.position}/{row.stored_name}/{row.size_bytes}/{len(row.thumbnail)}/{THUMBNAIL_LONG_SIDE}"
            .encode()).hexdigest()[:32])
        cache = f"private, max-age={THUMBNAIL_MAX_AGE}"
        if request.headers.get("If-None-Match") == etag:
            response = HttpResponseNotModified()
        else:
            try:
                picture = batch_image_thumbnail(batch, row, long_side=THUMBNAIL_LONG_SIDE)
            except ApplicationError as exc:
                raise Http404(exc.message) from None
            response = HttpResponse(picture, content_type="image/jpeg")
            response["X-Content-Type-Options"] = "nosniff"
        response["ETag"], response["Cache-Control"] = etag, cache
        return response


def report_url(batch: Batch) -> str:
    return reverse("vision-batch-report", kwargs={"batch_id": str(batch.pk)})

