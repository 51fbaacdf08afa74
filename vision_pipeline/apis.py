"""The vision pipeline's REST API. Thin: a serializer checks the input, one
service or selector does the work.

- Seed 000 ``/cron-jobs``: paths, fields, messages and status codes as the seed
  writes them (201 on create; ``{"detail": ...}`` errors). Like every endpoint
  here, it needs a JWT (DESIGN §4 changes the seed's token-less examples).
- Seed 001 ``/available_models`` and the batch backend under ``/api/v1/vision/``.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFilesSent
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from jobsite.exceptions import ApplicationError
from vision_pipeline import analyzers, selectors, serializers, services
from vision_pipeline.errors import ErrorCode
from vision_pipeline.external import ExternalAPIError, parse_descriptions
from vision_pipeline.images import ImageRefused, check_header
from vision_pipeline.models import Batch

TAG = "vision cron jobs (seed 000)"
BATCH_TAG = "vision batches (seed 001)"
_ERR = OpenApiResponse(description='`{"detail": ...}` naming the problem.')


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


# ---------------------------------------------------------------------------
# /cron-jobs
# ---------------------------------------------------------------------------
class CronJobListApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema(tags=[TAG], summary="List cron jobs", operation_id="cron_jobs_list",
                   parameters=[serializers.CronJobListQuerySerializer], responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        query = _valid(serializers.CronJobListQuerySerializer, request.query_params.dict())
        jobs = selectors.cron_job_list(user=request.user, enabled_only=query["enabled_only"])
        return Response({"cron_jobs": [serializers.cron_job_data(job) for job in jobs]})

    @extend_schema(tags=[TAG], summary="Create a cron job", request=serializers.CronJobCreateSerializer,
                   responses={201: OpenApiTypes.OBJECT, 400: _ERR})
    def post(self, request):
        data = _valid(serializers.CronJobCreateSerializer, request.data)
        job = services.cron_job_create(actor=request.user, **data)
        return Response({"status": "success", "job_id": str(job.uuid), "name": job.title, "schedule":
                         job.schedule_expression, "enabled": job.is_enabled}, status=status.HTTP_201_CREATED)


class CronJobDetailApi(APIView):
    @extend_schema(tags=[TAG], summary="Get a cron job", responses={200: OpenApiTypes.OBJECT, 404: _ERR})
    def get(self, request, job_id):
        return Response(serializers.cron_job_data(selectors.cron_job_get(user=request.user, job_id=job_id)))

    @extend_schema(tags=[TAG], summary="Delete a cron job", responses={200: OpenApiTypes.OBJECT, 404: _ERR})
    def delete(self, request, job_id):
        job = selectors.cron_job_get(user=request.user, job_id=job_id)
        services.cron_job_delete(job=job, actor=request.user)
        return Response({"status": "success", "message": f"Cron job {job_id} deleted"})


class CronJobStateApi(APIView):
    enabled = True

    @extend_schema(tags=[TAG], summary="Activate or deactivate a cron job", request=None,
                   responses={200: OpenApiTypes.OBJECT, 404: _ERR})
    def post(self, request, job_id):
        job = selectors.cron_job_get(user=request.user, job_id=job_id)
        services.cron_job_set_enabled(job=job, enabled=self.enabled, actor=request.user)
        word = "activated" if self.enabled else "deactivated"
        return Response({"status": "success", "message": f"Cron job {job_id} {word}"})


class CronJobExecutionsApi(APIView):
    @extend_schema(tags=[TAG], summary="Execution history of a cron job",
                   parameters=[serializers.CronJobExecutionsQuerySerializer],
                   responses={200: OpenApiTypes.OBJECT, 400: _ERR, 404: _ERR})
    def get(self, request, job_id):
        query = _valid(serializers.CronJobExecutionsQuerySerializer, request.query_params.dict())
        job = selectors.cron_job_get(user=request.user, job_id=job_id)
        executions = selectors.cron_job_executions(user=request.user, job=job, limit=query["limit"])
        return Response({"job_id": str(job.uuid),
                         "executions": [serializers.execution_data(e, job) for e in executions]})


# ---------------------------------------------------------------------------
# Seed 001 backend
# ---------------------------------------------------------------------------
class AvailableModelsApi(APIView):
    @extend_schema(tags=[BATCH_TAG], summary="Analyzers a batch can use", responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        return Response({"models": analyzers.catalogue(), "default": analyzers.DEFAULT})


class BatchListApi(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(tags=[BATCH_TAG], summary="The caller's batches (newest first)",
                   operation_id="api_v1_vision_batches_list",
                   parameters=[serializers.CronJobExecutionsQuerySerializer], responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        query = _valid(serializers.CronJobExecutionsQuerySerializer, request.query_params.dict())
        batches = selectors.batch_list(user=request.user, limit=query["limit"])
        return Response({"batches": [serializers.batch_data(b) for b in batches], "count": len(batches)})

    @extend_schema(tags=[BATCH_TAG], summary="Upload images and queue their analysis",
                   request={"multipart/form-data": serializers.BatchCreateSerializer},
                   responses={202: OpenApiTypes.OBJECT, 400: _ERR})
    def post(self, request):
        try:
            images = request.FILES.getlist("images")
        except (TooManyFilesSent, RequestDataTooBig) as exc:
            raise ApplicationError(f"Too many files or too large a form: {exc}", status=400,
                                   code=ErrorCode.TOO_MANY_IMAGES) from None
        data = _valid(serializers.BatchCreateSerializer, {
            "images": images,
            **{name: request.data.get(name) for name in ("user_query", "descriptions", "organization_id", "model")
               if request.data.get(name) is not None},
        })
        try:
            descriptions = parse_descriptions(data["descriptions"]) if data["descriptions"].strip() else {}
        except ExternalAPIError as exc:
            raise ApplicationError(f"descriptions: {str(exc).split(': ', 1)[-1]}", status=400,
                                   code=ErrorCode.DESCRIPTIONS_INVALID) from None
        workdir = Path(tempfile.mkdtemp(prefix="vision-upload-", dir=_temp_root()))
        try:
            files = []
            for index, upload in enumerate(data["images"]):
                name = Path(upload.name or f"image{index}").name
                if upload.size > settings.VISION_MAX_IMAGE_BYTES:
                    raise ApplicationError(f"{name}: {upload.size:,} bytes is over the limit of "
                                           f"{settings.VISION_MAX_IMAGE_BYTES:,} bytes", status=400,
                                           code=ErrorCode.IMAGE_REFUSED)
                target = workdir / f"{index:04d}"
                with open(target, "wb") as out:
                    for chunk in upload.chunks():
                        out.write(chunk)
                try:
                    check_header(target, filename=name)
                except ImageRefused as exc:
                    raise ApplicationError(str(exc), status=400, code=ErrorCode.IMAGE_REFUSED) from None
                files.append((name, target))
            batch = services.batch_submit(user=request.user, files=files, user_query=data["user_query"],
                                          descriptions=descriptions, model=data["model"],
                                          organization_id=data["organization_id"])
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return Response(serializers.batch_data(batch), status=status.HTTP_202_ACCEPTED)


def _temp_root() -> Path:
    root = Path(settings.JOBS_TEMP_DIR)
    root.mkdir(parents=True, exist_ok=True)
    return root


class BatchDetailApi(APIView):
    @extend_schema(tags=[BATCH_TAG], summary="Batch status and progress", responses={200: OpenApiTypes.OBJECT,
                                                                                   404: _ERR})
    def get(self, request, batch_id):
        return Response(serializers.batch_data(selectors.batch_get(user=request.user, batch_id=batch_id)))


class BatchReportApi(APIView):
    @extend_schema(tags=[BATCH_TAG], summary="The batch's HTML report", responses={200: OpenApiTypes.BINARY,
                                                                                 404: _ERR, 409: _ERR})
    def get(self, request, batch_id):
        batch = selectors.batch_get(user=request.user, batch_id=batch_id)
        path = services.batch_report_path(batch) if batch.report_path else None
        if batch.status != Batch.Status.COMPLETED or path is None or not path.exists():
            raise ApplicationError(f"Batch {batch_id} is {batch.effective_status}: its report is not ready.",
                                   status=409, code=ErrorCode.REPORT_NOT_READY)
        response = HttpResponse(path.read_bytes(), content_type="text/html; charset=utf-8")
        response["Content-Disposition"] = f'inline; filename="report_{batch.pk}.html"'
        # The report is data, never a page of this site: no script, nothing remote.
        response["Content-Security-Policy"] = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
        response["X-Content-Type-Options"] = "nosniff"
        return response


class BatchCancelApi(APIView):
    @extend_schema(tags=[BATCH_TAG], summary="Cancel a pending or processing batch", request=None,
                   responses={200: OpenApiTypes.OBJECT, 404: _ERR, 409: _ERR})
    def post(self, request, batch_id):
        batch = selectors.batch_get(user=request.user, batch_id=batch_id)
        batch = services.batch_cancel(batch=batch, actor=request.user)
        return Response({"status": "success", "message": f"Batch {batch_id} cancelled",
                         "batch": serializers.batch_data(batch)})
