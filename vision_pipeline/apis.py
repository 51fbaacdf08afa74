"""The vision pipeline's REST API. Thin viewsets: a serializer checks the
input, one service or selector does the work, vision_pipeline.serializers
shapes the answer.

- Seed 000 ``/cron-jobs``: paths, fields, messages and status codes as the seed
  writes them (201 on create; ``{"detail": ...}`` errors). Like every endpoint
  here, it needs a JWT (DESIGN §4 changes the seed's token-less examples).
- Seed 001 ``/available_models`` and the batch backend under ``/api/v1/vision/``.
"""
from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.response import Response

from jobsite.openapi import links
from scheduling.apis import PageEnvelopeSchema
from scheduling.serializers import query_params, request_body, validated
from vision_pipeline import analyzers, selectors, serializers, services, uploads
from vision_pipeline.models import Batch

# OpenAPI tags of /cron-jobs and of the batch API (described in SPECTACULAR_SETTINGS["TAGS"]).
TAG = "vision cron jobs"
BATCH_TAG = "vision batches"
_ERR = OpenApiResponse(description='`{"detail": ...}` naming the problem.')


# The viewsets have no docstrings: drf-spectacular would show one as every
# operation's description. Their routes (and the parsers of the routes that
# read a body) are in vision_pipeline/urls.py.

# Seed 000's scheduled vision-analysis jobs, by job_id (the job's uuid).
class CronJobViewSet(viewsets.ViewSet):
    schema = PageEnvelopeSchema()  # list answers {"cron_jobs": [...]}, not a bare array

    def _job(self):
        return selectors.cron_job_get(user=self.request.user, job_id=self.kwargs["job_id"])

    @extend_schema(tags=[TAG], summary="List cron jobs", operation_id="cron_jobs_list",
                   parameters=[serializers.CronJobListQuerySerializer],
                   responses={200: serializers.VisionCronJobListSerializer},
                   extensions=links({"/cron-jobs/{job_id}": "cron_jobs/0/job_id"}))
    def list(self, request):
        query = query_params(serializers.CronJobListQuerySerializer, request)
        jobs = selectors.cron_job_list(user=request.user, enabled_only=query["enabled_only"])
        return Response({"cron_jobs": [serializers.cron_job_data(job) for job in jobs]})

    @extend_schema(tags=[TAG], summary="Create a cron job", request=serializers.CronJobCreateSerializer,
                   responses={201: serializers.VisionCronJobCreatedSerializer, 400: _ERR},
                   extensions=links({"/cron-jobs/{job_id}": "job_id"}))
    def create(self, request):
        job = services.cron_job_create(actor=request.user, **request_body(serializers.CronJobCreateSerializer, request))
        return Response(serializers.cron_job_created(job), status=status.HTTP_201_CREATED)

    @extend_schema(tags=[TAG], summary="Get a cron job",
                   responses={200: serializers.VisionCronJobSerializer, 404: _ERR})
    def retrieve(self, request, job_id=None):
        return Response(serializers.cron_job_data(self._job()))

    @extend_schema(tags=[TAG], summary="Delete a cron job", responses={200: OpenApiTypes.OBJECT, 404: _ERR})
    def destroy(self, request, job_id=None):
        services.cron_job_delete(job=self._job(), actor=request.user)
        return Response({"status": "success", "message": f"Cron job {job_id} deleted"})

    @extend_schema(tags=[TAG], summary="Activate or deactivate a cron job", request=None,
                   responses={200: OpenApiTypes.OBJECT, 404: _ERR})
    def activate(self, request, job_id=None):
        return self._set_enabled(job_id, enabled=True)

    @extend_schema(tags=[TAG], summary="Activate or deactivate a cron job", request=None,
                   responses={200: OpenApiTypes.OBJECT, 404: _ERR})
    def deactivate(self, request, job_id=None):
        return self._set_enabled(job_id, enabled=False)

    def _set_enabled(self, job_id, *, enabled: bool) -> Response:
        services.cron_job_set_enabled(job=self._job(), enabled=enabled, actor=self.request.user)
        word = "activated" if enabled else "deactivated"
        return Response({"status": "success", "message": f"Cron job {job_id} {word}"})

    @extend_schema(tags=[TAG], summary="Execution history of a cron job",
                   parameters=[serializers.CronJobExecutionsQuerySerializer],
                   responses={200: serializers.VisionCronJobExecutionsSerializer, 400: _ERR, 404: _ERR})
    def executions(self, request, job_id=None):
        query = query_params(serializers.CronJobExecutionsQuerySerializer, request)
        job = self._job()
        executions = selectors.cron_job_executions(user=request.user, job=job, limit=query["limit"])
        return Response({"job_id": str(job.uuid),
                         "executions": [serializers.execution_data(e, job) for e in executions]})


class AvailableModelViewSet(viewsets.ViewSet):
    @extend_schema(tags=[BATCH_TAG], summary="Analyzers a batch can use", responses={200: OpenApiTypes.OBJECT})
    def list(self, request):
        return Response({"models": analyzers.catalogue(), "default": analyzers.DEFAULT})


# Seed 001's batch backend: upload images, follow the analysis, fetch the report.
class BatchViewSet(viewsets.ViewSet):
    def _batch(self) -> Batch:
        return selectors.batch_get(user=self.request.user, batch_id=self.kwargs["batch_id"])

    @extend_schema(tags=[BATCH_TAG], summary="The caller's batches (newest first)",
                   operation_id="api_v1_vision_batches_list",
                   parameters=[serializers.CronJobExecutionsQuerySerializer], responses={200: OpenApiTypes.OBJECT},
                   extensions=links({"/api/v1/vision/batches/{batch_id}": "batches/0/batch_id"}))
    def list(self, request):
        query = query_params(serializers.CronJobExecutionsQuerySerializer, request)
        batches = selectors.batch_list(user=request.user, limit=query["limit"])
        return Response({"batches": [serializers.batch_data(b) for b in batches], "count": len(batches)})

    @extend_schema(tags=[BATCH_TAG], summary="Upload images and queue their analysis",
                   request={"multipart/form-data": serializers.BatchCreateSerializer},
                   responses={202: OpenApiTypes.OBJECT, 400: _ERR},
                   extensions=links({"/api/v1/vision/batches/{batch_id}": "batch_id"}))
    def create(self, request):
        data = validated(serializers.BatchCreateSerializer, uploads.batch_form(request))
        descriptions = uploads.form_descriptions(data["descriptions"])
        with uploads.staged_images(data["images"]) as files:
            batch = services.batch_submit(user=request.user, files=files, user_query=data["user_query"],
                                          descriptions=descriptions, model=data["model"],
                                          organization_id=data["organization_id"])
        return Response(serializers.batch_data(batch), status=status.HTTP_202_ACCEPTED)

    @extend_schema(tags=[BATCH_TAG], summary="Batch status and progress",
                   responses={200: OpenApiTypes.OBJECT, 404: _ERR})
    def retrieve(self, request, batch_id=None):
        return Response(serializers.batch_data(self._batch()))

    @extend_schema(tags=[BATCH_TAG], summary="The batch's HTML report",
                   responses={(200, "text/html"): OpenApiTypes.BINARY, 404: _ERR, 409: _ERR})
    def report(self, request, batch_id=None):
        batch = self._batch()
        path = services.batch_report_file(batch)
        response = HttpResponse(path.read_bytes(), content_type="text/html; charset=utf-8")
        response["Content-Disposition"] = f'inline; filename="report_{batch.pk}.html"'
        # The report is data, never a page of this site: no script, nothing remote.
        response["Content-Security-Policy"] = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
        response["X-Content-Type-Options"] = "nosniff"
        return response

    @extend_schema(tags=[BATCH_TAG], summary="Cancel a pending or processing batch", request=None,
                   responses={200: OpenApiTypes.OBJECT, 404: _ERR, 409: _ERR})
    def cancel(self, request, batch_id=None):
        batch = services.batch_cancel(batch=self._batch(), actor=request.user)
        return Response({"status": "success", "message": f"Batch {batch_id} cancelled",
                         "batch": serializers.batch_data(batch)})
