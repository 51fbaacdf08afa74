"""Admin for bulk uploads: an upload form, progress (failed rows in red),
filters, the row errors, downloads of the predictions and of errors.csv, and
cancel and delete actions — all through the services the API uses (the
core's cancel revokes the run's task; delete removes the predictions and the
stored file).

The upload form streams the file into storage with the API's own upload
handler (``predictions.uploads.StoredUploadHandler``: size, type and UTF-8
checked on the way) and files it with ``services.upload_create``, so a file
the API refuses is refused here with the same message, as a form error."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect, StreamingHttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.csrf import csrf_exempt

from jobsite.admin.base import RefreshingListMixin, act_on_each
from jobsite.admin.widgets import OpsMedia, Palette, admin_change_url, badge, progress_bar, refreshing, relative_when
from jobsite.exceptions import ApplicationError, error_message
from jobsite.tenancy import scope_to_user
from predictions import exports, serializers, services
from predictions.models import BulkUploadJob
from predictions.selectors import STATUS_FILTERS, upload_row_errors
from predictions.uploads import UPLOAD_FIELD, StoredUpload, StoredUploadHandler, file_format_for, max_upload_bytes
from scheduling.models import Execution

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


class UploadForm(forms.Form):
    job_type = forms.ChoiceField(label="Figures", choices=BulkUploadJob.JobType.choices,
                                 initial=BulkUploadJob.JobType.ANNUAL, widget=forms.RadioSelect,
                                 help_text="Which scoring model reads the rows.")
    file = forms.FileField(label="CSV or XLSX file", widget=forms.ClearableFileInput(attrs={"accept": ".csv,.xlsx"}))

    def __init__(self, *args, refusal: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.refusal = refusal  # why the file was refused while it streamed (the body is then unread)
        if refusal:
            for field in self.fields.values():
                field.required = False
        self.fields["file"].help_text = (
            f"One company a row with the template's header (up to {max_upload_bytes() // (1024 * 1024)} MB). "
            "Rows that cannot be scored are reported in errors.csv; the others are scored.")

    def clean(self):
        cleaned = super().clean()
        if self.refusal:
            self.add_error("file", self.refusal)
        return cleaned


def stored_file_of(request, handler: StoredUploadHandler) -> tuple[StoredUpload | None, str | None]:
    """Read the multipart body through ``handler`` (the file goes straight to
    storage): (the stored file or None, the refusal or None)."""
    try:
        stored = request.FILES.get(UPLOAD_FIELD)
    except ApplicationError as exc:  # too large, wrong type: refused while it streamed
        handler.discard()
        request._mark_post_parse_error()  # the body is unread: POST and FILES are empty, not parsed again
        return None, exc.message
    return (stored, None) if isinstance(stored, StoredUpload) else (None, None)


@admin.register(BulkUploadJob)
class BulkUploadJobAdmin(RefreshingListMixin, admin.ModelAdmin):
    change_list_template = "admin/predictions/bulkuploadjob/change_list.html"
    change_form_template = "admin/predictions/bulkuploadjob/change_form.html"
    # Five narrow columns: no sideways scroll at 1,400 px beside the sidebars.
    list_display = ["upload_display", "status_badge", "progress", "rows", "created"]
    list_display_links = ["upload_display"]
    list_filter = [SeedStatusFilter, "job_type", "file_format", "organization", "created_at"]
    search_fields = ["id", "original_filename", "created_by", "owner__username"]
    date_hierarchy = "created_at"
    list_select_related = ["execution", "owner", "organization"]
    actions = ["cancel_selected", "delete_selected_uploads"]
    fieldsets = [
        ("File", {"fields": ["id", "job_type", "original_filename", "file_format", "size", "header_columns"]}),
        ("Rows", {"fields": ["total_rows", "processed_rows", "successful_rows", "failed_rows", "performance",
                             "failure"]}),
        ("Run", {"fields": ["run_link", "retry_of", "owner", "organization", "created_by", "created_at",
                            "updated_at"]}),
        ("Row errors", {"fields": ["row_errors_table"]}),
    ]
    readonly_fields = ["id", "job_type", "original_filename", "file_format", "size", "header_columns",
                       "total_rows", "processed_rows", "successful_rows", "failed_rows", "performance",
                       "failure", "run_link", "retry_of", "owner", "organization", "created_by", "created_at",
                       "updated_at", "row_errors_table"]

    class Media(OpsMedia):
        css = {"all": [*OpsMedia.css["all"], "predictions/admin/uploads.css"]}

    def get_queryset(self, request):
        return scope_to_user(super().get_queryset(request).select_related("execution", "owner", "organization"),
                             request.user)

    def is_going(self, obj) -> bool:  # the list reloads itself while an upload is pending or processing
        return obj.is_active

    def has_change_permission(self, request, obj=None):
        return False  # uploads are written by their runs; the form here only adds

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # ours goes through the service
        return actions

    # -- columns -------------------------------------------------------------
    @admin.display(description="Status")
    def status_badge(self, obj: BulkUploadJob):
        return badge(obj.status, colours=STATUS_COLOURS)

    @admin.display(description="Upload", ordering="original_filename")
    def upload_display(self, obj: BulkUploadJob):
        return format_html('<strong title="{}">{}</strong><br><span class="ops-sub">{} · {} · {}</span>', obj.pk,
                           obj.original_filename or str(obj.pk)[:8], obj.get_job_type_display(),
                           obj.file_format.upper(), obj.created_by or "-")

    @admin.display(description="Scored / rows", ordering="successful_rows")
    def rows(self, obj: BulkUploadJob):
        return format_html('<span class="ops-nowrap">{} / {}</span>', f"{obj.successful_rows:,}", f"{obj.total_rows:,}")

    @admin.display(description="Progress")
    def progress(self, obj: BulkUploadJob):
        failed = 100.0 * obj.failed_rows / obj.total_rows if obj.total_rows else 0.0
        eta = obj.estimated_completion_seconds if obj.status == BulkUploadJob.Status.PROCESSING else None
        label = f"{obj.progress_percentage:.0f}%" + (f" · {obj.failed_rows:,} failed" if obj.failed_rows else "")
        return progress_bar(obj.progress_percentage, failed_percent=failed, eta_seconds=eta, label=label)

    @admin.display(description="Created", ordering="created_at")
    def created(self, obj: BulkUploadJob):
        return relative_when(obj.created_at)

    @admin.display(description="File size")
    def size(self, obj: BulkUploadJob):
        return format_html('<span title="{} bytes">{}</span>', f"{obj.file_size:,}", filesizeformat(obj.file_size))

    @admin.display(description="Why it failed")
    def failure(self, obj: BulkUploadJob):
        return obj.error_message or "-"

    @admin.display(description="Header")
    def header_columns(self, obj: BulkUploadJob):
        columns = obj.header if isinstance(obj.header, list) else []
        if not columns:
            return "-"
        return format_html('<span class="pu-columns">{}</span>',
                           format_html_join("", '<code class="pu-column">{}</code>', ((c,) for c in columns)))

    @admin.display(description="Run (log, traceback)")
    def run_link(self, obj: BulkUploadJob):
        if not obj.execution_id:
            return "-"
        url = admin_change_url(obj.execution)
        return format_html('<a href="{}">{}</a>', url, obj.execution) if url else str(obj.execution)

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

    # -- the page: status, progress and downloads first ------------------------
    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if obj is not None:
            extra["upload_view"] = {
                "status": self.status_badge(obj), "progress": self.progress(obj), "run": self.run_link(obj),
                "counts": [("Rows", obj.total_rows), ("Processed", obj.processed_rows),
                           ("Scored", obj.successful_rows), ("Failed", obj.failed_rows)],
                "results_url": reverse("admin:predictions_bulkuploadjob_results", args=[obj.pk])
                if obj.status == BulkUploadJob.Status.COMPLETED else "",
                "errors_url": reverse("admin:predictions_bulkuploadjob_errors", args=[obj.pk])
                if not obj.is_active else "",
            }
        response = super().change_view(request, object_id, form_url, extra)
        return refreshing(response, obj is not None and obj.is_active)  # reloads itself while it runs

    # -- pages of our own: the upload form and the downloads --------------------
    def get_urls(self):
        wrap = self.admin_site.admin_view
        own = [
            path("add/", wrap(self.upload_view), name="predictions_bulkuploadjob_add"),
            path("<uuid:upload_id>/results.csv", wrap(self.results_view), name="predictions_bulkuploadjob_results"),
            path("<uuid:upload_id>/errors.csv", wrap(self.errors_view), name="predictions_bulkuploadjob_errors"),
        ]
        return [*own, *super().get_urls()]

    @csrf_exempt  # checked below, once the file has streamed through the upload handler
    def upload_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form, problem = UploadForm(), None
        if request.method == "POST":
            handler = StoredUploadHandler(request)
            request.upload_handlers = [handler]
            stored, problem = stored_file_of(request, handler)  # reads the body: the file is in storage now
            if problem is not None:  # nothing was kept: say why, as the API would
                form = UploadForm({}, refusal=problem)
                form.is_valid()
            else:
                rejected = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
                if rejected is not None:
                    handler.discard()
                    return rejected
                form = UploadForm(request.POST, request.FILES if stored is not None else None)
                if form.is_valid():
                    upload, problem = self._file(request, stored, form.cleaned_data["job_type"])
                    if upload is not None:
                        self.message_user(request, f"Uploaded {upload.original_filename}: {upload.total_rows:,} "
                                                   "rows queued for scoring.", messages.SUCCESS)
                        return HttpResponseRedirect(reverse("admin:predictions_bulkuploadjob_change",
                                                            args=[upload.pk]))
                    form.add_error("file", problem)
                elif stored is not None:
                    handler.discard()  # another field was wrong: nothing is kept
        context = {**self.admin_site.each_context(request), "opts": self.opts, "form": form,
                   "title": "Upload a file for bulk predictions", "media": self.media + form.media,
                   "templates": [(t.label, reverse(f"prediction-{t.value}-template")) for t in BulkUploadJob.JobType]}
        return TemplateResponse(request, "admin/predictions/bulkuploadjob/upload.html", context)

    def _file(self, request, stored: StoredUpload, job_type: str):
        """The upload filed through the API's service, or (None, its refusal)."""
        try:
            upload = services.upload_create(user=request.user, job_type=job_type, stored=stored,
                                            file_format=file_format_for(stored.name),
                                            trigger=Execution.Trigger.MANUAL)
        except (ApplicationError, ValidationError) as exc:  # the service removed the stored file
            return None, error_message(exc)
        return upload, None

    def _download(self, request, upload_id, make, filename: str):
        if not self.has_view_permission(request):
            raise PermissionDenied
        upload = self.get_object(request, str(upload_id))
        if upload is None:
            raise Http404(f"No upload {upload_id} visible to you.")
        try:
            chunks = make(upload)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.WARNING)
            return HttpResponseRedirect(reverse("admin:predictions_bulkuploadjob_change", args=[upload.pk]))
        response = StreamingHttpResponse(chunks, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename.format(id=upload.pk)}"'
        return response

    def results_view(self, request, upload_id):
        return self._download(request, upload_id, exports.results_download, "predictions_{id}.csv")

    def errors_view(self, request, upload_id):
        return self._download(request, upload_id, exports.errors_download, "errors_{id}.csv")

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
