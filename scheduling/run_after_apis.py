"""/api/v1/jobs/{id}/run-after: the jobs a job runs after (run control)."""
from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from jobsite.exceptions import django_validation_error_detail
from jobsite.parsers import StrictJSONParser
from scheduling import selectors
from scheduling.models import Job, JobDependency
from scheduling.serializers import ErrorSerializer, StrictInputSerializer, request_body
from scheduling.services.dependencies import job_set_run_after


class RunAfterItemSerializer(StrictInputSerializer):
    job = serializers.CharField(help_text="The upstream job: its id or name.")
    condition = serializers.ChoiceField(choices=JobDependency.Condition.choices, default="success",
                                        help_text="success: after it succeeds; finished: after it ends, any outcome.")


class RunAfterShownSerializer(serializers.Serializer):
    job = serializers.CharField(help_text="The upstream job's name.")
    job_id = serializers.IntegerField()
    condition = serializers.ChoiceField(choices=JobDependency.Condition.choices)


class RunAfterListSerializer(serializers.Serializer):
    run_after = RunAfterShownSerializer(many=True)


class RunAfterSerializer(StrictInputSerializer):
    run_after = RunAfterItemSerializer(many=True, help_text="Every job listed must have ended as its condition says "
                                                             "for the same due time; empty: run after none.")


def _shown(job: Job) -> dict:
    return {"run_after": [{"job": link.upstream.name, "job_id": link.upstream_id, "condition": link.condition}
                          for link in job.upstream_links.select_related("upstream").order_by("upstream__name")]}


class RunAfterViewSet(viewsets.ViewSet):
    """The jobs this job runs after: it starts once their runs for the same due time have succeeded (or
    finished); an upstream failure records its fire `skipped` with the reason. A cycle is a 400 naming it."""

    permission_classes = [IsAuthenticated]
    parser_classes = [StrictJSONParser]

    @extend_schema(tags=["jobs"], summary="The jobs a job runs after", responses={200: RunAfterListSerializer, 404: ErrorSerializer})
    def retrieve(self, request, pk=None):
        return Response(_shown(selectors.job_get(user=request.user, job_id=pk)))

    @extend_schema(tags=["jobs"], summary="Set the jobs a job runs after", request=RunAfterSerializer,
                   responses={200: RunAfterListSerializer, 400: ErrorSerializer, 403: ErrorSerializer,
                              404: ErrorSerializer})
    def update(self, request, pk=None):
        job = selectors.job_get(user=request.user, job_id=pk)
        if not request.user.is_superuser:
            raise exceptions.PermissionDenied("Only superusers can create or modify jobs.")
        data = request_body(RunAfterSerializer, request)
        upstreams = []
        for i, item in enumerate(data["run_after"]):
            try:
                upstreams.append((selectors.job_get(user=request.user, job_id=item["job"]), item["condition"]))
            except Exception:
                raise exceptions.ValidationError(
                    {"run_after": [f"run_after[{i}].job: no job '{item['job']}'."]}) from None
        try:
            job_set_run_after(job=job, upstreams=upstreams, actor=request.user)
        except DjangoValidationError as exc:
            raise exceptions.ValidationError(django_validation_error_detail(exc)) from exc
        return Response(_shown(job))
