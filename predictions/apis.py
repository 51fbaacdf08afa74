"""Seed 004's REST API under /api/v1/predictions/. Thin viewsets: the upload
streams to storage (predictions.uploads), a serializer checks the rest of the
input, one service or selector does the work, the response shapes are in
predictions.serializers."""
from __future__ import annotations

from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from jobsite.exceptions import ApplicationError
from jobsite.openapi import links
from predictions import exports, selectors, serializers, services
from predictions.errors import ErrorCode
from predictions.models import BulkUploadJob
from predictions.uploads import UPLOAD_FIELD, StoredUpload, StoredUploadHandler, file_format_for
from scheduling.serializers import query_params

_ERR = OpenApiResponse(description="`{\"detail\": ...}` naming the problem.")


class StreamedUploadMixin:
    """Installs the storage-streaming upload handler before anything (even a
    CSRF check) reads the body, and hands over the stored file."""

    upload_actions: tuple[str, ...] = ()

    def initial(self, request, *args, **kwargs):
        self._upload_handler = None
        self._upload_kept = False
        if self._handles_upload(request):
            self._upload_handler = StoredUploadHandler(request._request)
            request._request.upload_handlers = [self._upload_handler]
        super().initial(request, *args, **kwargs)

    def _handles_upload(self, request) -> bool:
        if request.method != "POST":
            return False
        return not self.upload_actions or getattr(self, "action", None) in self.upload_actions

    def stored_upload(self, request) -> tuple[StoredUpload, str]:
        try:
            stored = request.FILES.get(UPLOAD_FIELD)
        except BaseException:
            if self._upload_handler is not None:
                self._upload_handler.discard()
            raise
        if not isinstance(stored, StoredUpload):
            raise ApplicationError(
                f"No file uploaded: send the CSV or XLSX file as the multipart form field '{UPLOAD_FIELD}'.",
                status=400, code=ErrorCode.FILE_MISSING,
            )
        return stored, file_format_for(stored.name)

    def handle_exception(self, exc):
        handler = getattr(self, "_upload_handler", None)
        if handler is not None and not getattr(self, "_upload_kept", False):
            handler.discard()
        return super().handle_exception(exc)


class BulkUploadViewSet(StreamedUploadMixin, viewsets.ViewSet):
    """POST /api/v1/predictions/{annual,quarterly}/bulk-upload-async"""

    parser_classes = [MultiPartParser]
    job_type = BulkUploadJob.JobType.ANNUAL  # one route per type (predictions/urls.py)

    @extend_schema(
        tags=["predictions"], summary="Upload a CSV/XLSX file for bulk default-risk predictions",
        request={"multipart/form-data": serializers.UploadSerializer},
        responses={202: OpenApiTypes.OBJECT, 400: _ERR, 413: _ERR},
        extensions=links({"/api/v1/predictions/jobs/{job_id}": "job_id"}),
    )
    def create(self, request):
        stored, file_format = self.stored_upload(request)
        upload = services.upload_create(user=request.user, job_type=self.job_type, stored=stored, file_format=file_format)
        self._upload_kept = True
        return Response(serializers.upload_accepted(upload), status=status.HTTP_202_ACCEPTED)


XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class TemplateViewSet(viewsets.ViewSet):
    """GET /api/v1/predictions/templates/{annual,quarterly}: an empty file with the header row."""

    job_type = BulkUploadJob.JobType.ANNUAL  # one route per type (predictions/urls.py)

    @extend_schema(
        tags=["predictions"], summary="Download an empty upload template (CSV, or ?file_format=xlsx)",
        parameters=[OpenApiParameter("file_format", str, enum=["csv", "xlsx"], required=False)],
        responses={(200, "text/csv"): OpenApiTypes.BINARY, (200, XLSX_MEDIA_TYPE): OpenApiTypes.BINARY, 400: _ERR},
    )
    def retrieve(self, request):
        file_format = request.query_params.get("file_format", "csv")
        if file_format == "xlsx":
            response = HttpResponse(
                exports.template_xlsx(self.job_type),
                content_type=XLSX_MEDIA_TYPE,
            )
        elif file_format == "csv":
            response = HttpResponse(exports.template_csv(self.job_type), content_type="text/csv; charset=utf-8")
        else:
            raise ApplicationError(f"Unknown file_format '{file_format}': use csv or xlsx.", status=400,
                                   code=ErrorCode.FILE_TYPE)
        response["Content-Disposition"] = f'attachment; filename="{self.job_type}_template.{file_format}"'
        return response


def _csv_response(chunks, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class PredictionJobViewSet(StreamedUploadMixin, viewsets.ViewSet):
    """Bulk prediction uploads: list, details, status, cancel, delete,
    results and errors downloads, retry of the failed rows."""

    lookup_field = "job_id"
    lookup_value_regex = "[^/]+"
    upload_actions = ("retry_failed",)

    def get_parsers(self):
        if getattr(self, "action", None) == "retry_failed":
            return [MultiPartParser()]
        return super().get_parsers()

    def _get(self, request, job_id) -> BulkUploadJob:
        return selectors.upload_get(user=request.user, job_id=job_id)

    @extend_schema(tags=["predictions"], summary="List bulk upload jobs", operation_id="api_v1_predictions_jobs_list",
                   parameters=[serializers.JobListQuerySerializer],
                   responses={200: OpenApiTypes.OBJECT, 400: _ERR},
                   extensions=links({"/api/v1/predictions/jobs/{job_id}": "jobs/0/id"}))
    def list(self, request):
        params = query_params(serializers.JobListQuerySerializer, request)
        uploads = list(selectors.upload_list(user=request.user, status=params.get("status"), limit=params["limit"]))
        return Response({"success": True, "jobs": [serializers.job_summary(u) for u in uploads],
                         "count": len(uploads), "limit": params["limit"]})

    @extend_schema(tags=["predictions"], summary="Job details", parameters=[serializers.JobDetailQuerySerializer],
                   responses={200: OpenApiTypes.OBJECT, 404: _ERR})
    def retrieve(self, request, job_id=None):
        params = query_params(serializers.JobDetailQuerySerializer, request)
        upload = self._get(request, job_id)
        return Response({"success": True, "job": serializers.job_detail(upload, include_errors=params["include_errors"])})

    @extend_schema(tags=["predictions"], summary="Delete a job (not while processing)",
                   responses={200: OpenApiTypes.OBJECT, 400: _ERR, 404: _ERR})
    def destroy(self, request, job_id=None):
        upload = self._get(request, job_id)
        deleted = services.upload_delete(upload=upload, actor=request.user)
        return Response({"success": True, "message": f"Job {deleted['id']} deleted successfully",
                         "deleted_job": deleted})

    @extend_schema(tags=["predictions"], summary="Job status (small, for polling)",
                   responses={200: OpenApiTypes.OBJECT, 404: _ERR})
    @action(detail=True, methods=["get"], url_path="status")
    def job_status(self, request, job_id=None):
        return Response(serializers.job_status(self._get(request, job_id)))

    @extend_schema(tags=["predictions"], summary="Cancel a pending or processing job", request=None,
                   responses={200: OpenApiTypes.OBJECT, 400: _ERR, 404: _ERR})
    @action(detail=True, methods=["post"])
    def cancel(self, request, job_id=None):
        upload = self._get(request, job_id)
        upload, revoked = services.upload_cancel(upload=upload, actor=request.user, reason="cancelled through the API")
        return Response(serializers.upload_cancelled(upload, revoked=revoked))

    @extend_schema(tags=["predictions"], summary="Download the predictions (CSV)",
                   responses={(200, "text/csv"): OpenApiTypes.BINARY, 400: _ERR, 404: _ERR})
    @action(detail=True, methods=["get"])
    def results(self, request, job_id=None):
        upload = self._get(request, job_id)
        return _csv_response(exports.results_download(upload), f"predictions_{upload.pk}.csv")

    @extend_schema(tags=["predictions"], summary="Download the row errors with the original columns (CSV)",
                   responses={(200, "text/csv"): OpenApiTypes.BINARY, 400: _ERR, 404: _ERR})
    @action(detail=True, methods=["get"], url_path="errors.csv")
    def errors_csv(self, request, job_id=None):
        upload = self._get(request, job_id)
        return _csv_response(exports.errors_download(upload), f"errors_{upload.pk}.csv")

    @extend_schema(tags=["predictions"], summary="Re-score only the rows that failed, from a corrected file",
                   request={"multipart/form-data": serializers.UploadSerializer},
                   responses={202: OpenApiTypes.OBJECT, 400: _ERR, 404: _ERR, 413: _ERR})
    @action(detail=True, methods=["post"], url_path="retry-failed")
    def retry_failed(self, request, job_id=None):
        upload = self._get(request, job_id)
        stored, file_format = self.stored_upload(request)
        retry = services.upload_retry_failed(upload=upload, user=request.user, stored=stored, file_format=file_format)
        self._upload_kept = True
        return Response(serializers.upload_accepted(retry), status=status.HTTP_202_ACCEPTED)
