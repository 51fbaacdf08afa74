"""Seed 003's REST API: /api/v1/jobs and /api/v1/executions.

Thin viewsets: a serializer validates the input, one service or selector does
the work, a serializer shapes the output. Reads go through selectors with
``user=request.user``, so someone else's job answers 404 before any
permission check can answer 403 (DESIGN.md §4, tenancy).

Who may do what (seed 003 "Security"): every authenticated user reads what
they can see; creating, changing, deleting, running, pausing and resuming
jobs is for superusers. Cancelling an execution is also open to the owner of
its job — stopping one's own run is not modifying the job.
"""
from __future__ import annotations

from contextlib import contextmanager

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import exceptions, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticated
from rest_framework.response import Response

from jobsite.exceptions import django_validation_error_detail
from jobsite.openapi import links
from jobsite.parsers import StrictJSONParser
from jobsite.tenancy import user_default_organization
from scheduling import manifest, selectors, services
from scheduling.beat import schedule_preview
from scheduling.calendars import calendars_named
from scheduling.executors import schedulable_tasks
from scheduling.models import Backfill, Execution, Job
from scheduling.pagination import keyset_page, list_envelope, paginate, paginate_large
from scheduling.code_serializers import (
    ApplyErrorSerializer,
    ApplyPlanSerializer,
    ApplyQuerySerializer,
    BackfillInputSerializer,
    BackfillPreviewSerializer,
    BackfillSerializer,
    JobCalendarsSerializer,
)
from scheduling.serializers import (
    AllExecutionsQuerySerializer,
    DetailSerializer,
    ErrorSerializer,
    ExecutionListQuerySerializer,
    ExecutionPageSerializer,
    ExecutionSerializer,
    JobCreateSerializer,
    JobExecuteSerializer,
    JobListQuerySerializer,
    JobOverdueListSerializer,
    JobPageSerializer,
    JobSerializer,
    JobStatisticsSerializer,
    JobStatsOverviewSerializer,
    JobUpdateSerializer,
    ScheduleValidateInputSerializer,
    ScheduleValidationSerializer,
    SchedulableTaskListSerializer,
    query_params,
    request_body,
)

# Services name model fields; the API names some differently (seed 003).
API_FIELD_NAMES = {
    "queue": "task_queue",
    "priority": "task_priority",
    "timeout_seconds": "timeout",
    "organization": "organization_id",
}

_400 = OpenApiResponse(ErrorSerializer, description="Invalid input; `detail` names the field.")
_403 = OpenApiResponse(ErrorSerializer, description="Only superusers can create or modify jobs.")
_404 = OpenApiResponse(ErrorSerializer, description="No such job visible to you.")
_409 = OpenApiResponse(ErrorSerializer, description="Refused by the job's state (or the name is taken).")


@contextmanager
def api_field_names():
    """Re-raise a service's ValidationError with the API's field names."""
    try:
        yield
    except DjangoValidationError as exc:
        if not hasattr(exc, "error_dict"):
            raise
        detail = django_validation_error_detail(exc)
        raise exceptions.ValidationError({API_FIELD_NAMES.get(f, f): m for f, m in detail.items()}) from exc


def _execution_page(queryset, params) -> Response:
    """By cursor when one is given, else the page/size contract (scheduling.pagination)."""
    if "cursor" in params:
        page = keyset_page(queryset, size=params["size"], cursor=params["cursor"])
    else:
        page = paginate_large(queryset, page=params["page"], size=params["size"])
    return Response(page.envelope(ExecutionSerializer(page.items, many=True).data))


class PageEnvelopeSchema(AutoSchema):
    """The list actions answer one page envelope (``{"items": [...], ...}``),
    not the bare array drf-spectacular assumes for an action named ``list``."""

    def _is_list_view(self, serializer=None) -> bool:
        return False


class IsSuperuserToModify(BasePermission):
    """Reads for everyone authenticated; writes for superusers. Checked on the
    object for detail routes, so an invisible job is a 404 first."""

    message = "Only superusers can create or modify jobs."

    def has_permission(self, request, view) -> bool:
        if view.action == "create":
            return bool(request.user and request.user.is_superuser)
        return True

    def has_object_permission(self, request, view, obj) -> bool:
        return request.method in SAFE_METHODS or bool(request.user and request.user.is_superuser)


class CanCancelExecution(BasePermission):
    message = "Only superusers and the job's owner can cancel its executions."

    def has_object_permission(self, request, view, obj: Execution) -> bool:
        if request.method in SAFE_METHODS or request.user.is_superuser:
            return True
        return obj.job.owner_id == request.user.pk


class JobViewSet(viewsets.GenericViewSet):
    """Jobs of every kind: create, read, change, delete, run now, pause and resume."""

    # Reads go through selectors (tenancy-scoped); this only types the {id}
    # path parameter in the OpenAPI schema.
    queryset = Job.objects.none()
    serializer_class = JobSerializer
    permission_classes = [IsAuthenticated, IsSuperuserToModify]
    parser_classes = [StrictJSONParser]
    filter_backends: list = []
    pagination_class = None
    schema = PageEnvelopeSchema()

    # The browsable API renders its forms from these; the schema from @extend_schema.
    input_serializers = {
        "create": JobCreateSerializer, "update": JobUpdateSerializer, "partial_update": JobUpdateSerializer,
        "execute": JobExecuteSerializer, "validate_schedule": ScheduleValidateInputSerializer,
    }

    def get_serializer_class(self):
        return self.input_serializers.get(self.action, JobSerializer)

    def get_object(self, *, row_only: bool = False) -> Job:
        job = selectors.job_get(user=self.request.user, job_id=self.kwargs["pk"], row_only=row_only)
        self.check_object_permissions(self.request, job)
        return job

    # -- collection --------------------------------------------------------
    @extend_schema(
        tags=["jobs"], summary="List jobs", operation_id="api_v1_jobs_list", parameters=[JobListQuerySerializer],
        responses={200: JobPageSerializer, 400: _400},
        extensions=links({"/api/v1/jobs/{id}": "items/0/id", "/api/v1/jobs/{job_id}": "items/0/id"}),
    )
    def list(self, request):
        params = query_params(JobListQuerySerializer, request)
        filters = {key: params.get(key) for key in ("status", "is_enabled", "job_type", "kind", "search", "overdue")}
        page = paginate(selectors.job_list(user=request.user, filters=filters), page=params["page"], size=params["size"])
        return Response(page.envelope(JobSerializer(page.items, many=True).data))

    @extend_schema(
        tags=["jobs"], summary="Create a job", request=JobCreateSerializer,
        responses={201: JobSerializer, 400: _400, 403: _403, 409: _409},
        extensions=links({"/api/v1/jobs/{id}": "id", "/api/v1/jobs/{job_id}": "id"}),
    )
    def create(self, request):
        data = request_body(JobCreateSerializer, request)
        if "organization" not in data:
            data["organization"] = user_default_organization(request.user)
        with api_field_names():
            job = services.job_create(actor=request.user, **data)
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)

    # -- one job -----------------------------------------------------------
    @extend_schema(tags=["jobs"], summary="Get a job", responses={200: JobSerializer, 404: _404})
    def retrieve(self, request, pk=None):
        return Response(JobSerializer(self.get_object()).data)

    @extend_schema(
        tags=["jobs"], summary="Update a job (partial)",
        description="Any subset of the create fields except `kind`; a schedule change re-syncs beat.",
        # partial: PUT takes any subset as PATCH does, so its body requires nothing
        request=JobUpdateSerializer(partial=True),
        responses={200: JobSerializer, 400: _400, 403: _403, 404: _404, 409: _409},
    )
    def update(self, request, pk=None):
        # Seed 003's PUT example sends two fields: PUT is partial, like PATCH.
        job = self.get_object()
        data = request_body(JobUpdateSerializer, request, partial=True)
        with api_field_names():
            job = services.job_update(job=job, actor=request.user, data=data)
        return Response(JobSerializer(job).data)

    @extend_schema(
        tags=["jobs"], summary="Update a job (partial)", request=JobUpdateSerializer,
        responses={200: JobSerializer, 400: _400, 403: _403, 404: _404, 409: _409},
    )
    def partial_update(self, request, pk=None):
        return self.update(request, pk=pk)

    @extend_schema(
        tags=["jobs"], summary="Delete a job",
        description="Deletes the job, its beat entry and its history; revokes runs still going.",
        responses={200: DetailSerializer, 403: _403, 404: _404},
    )
    def destroy(self, request, pk=None):
        # 200 with a message rather than 204: the CLI and curl users see what happened.
        job = self.get_object()
        job_id = job.pk
        services.job_delete(job=job, actor=request.user)
        return Response({"detail": f"Job {job_id} deleted."})

    # -- actions on one job ------------------------------------------------
    @extend_schema(
        tags=["jobs"], summary="Run a job now", request=JobExecuteSerializer,
        responses={202: ExecutionSerializer, 400: _400, 403: _403, 404: _404, 409: _409},
        extensions=links({"/api/v1/executions/{id}": "id"}),
    )
    @action(detail=True, methods=["post"])
    def execute(self, request, pk=None):
        job = self.get_object(row_only=True)
        data = request_body(JobExecuteSerializer, request)
        with api_field_names():
            execution = services.job_execute(
                job=job, actor=request.user, trigger=Execution.Trigger.API,
                force=data["force"], override_kwargs=data["override_kwargs"],
            )
        return Response(ExecutionSerializer(execution).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        tags=["jobs"], summary="Pause scheduled runs", request=None,
        responses={200: JobSerializer, 403: _403, 404: _404},
    )
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        job = services.job_pause(job=self.get_object(), actor=request.user)
        return Response(JobSerializer(job).data)

    @extend_schema(
        tags=["jobs"], summary="Resume scheduled runs", request=None,
        responses={200: JobSerializer, 403: _403, 404: _404},
    )
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        job = services.job_resume(job=self.get_object(), actor=request.user)
        return Response(JobSerializer(job).data)

    @extend_schema(
        tags=["jobs"], summary="Backfill a past range",
        description="One run per due time of the job's schedule in [start, end), in the job's time zone, oldest "
                    "first, each with `scheduled_for` = its due time; due times that already have a run are not run "
                    "again. The runs go one at a time (GET /api/v1/backfills/{id} shows the progress). `dry_run`: "
                    "the due times and which already ran. More than JOBS_BACKFILL_MAX due times: 400.",
        request=BackfillInputSerializer,
        responses={200: BackfillPreviewSerializer, 202: BackfillSerializer, 400: _400, 403: _403, 404: _404},
    )
    @action(detail=True, methods=["post"])
    def backfill(self, request, pk=None):
        job = self.get_object()
        data = request_body(BackfillInputSerializer, request)
        with api_field_names():
            if data["dry_run"]:
                preview = services.backfill_preview(job=job, start=data["start"], end=data["end"])
                return Response(BackfillPreviewSerializer(preview.as_dict()).data)
            backfill = services.job_backfill(job=job, start=data["start"], end=data["end"], actor=request.user)
        return Response(BackfillSerializer(services.backfill_progress(backfill)).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        tags=["jobs"], summary="The calendars a job skips (PUT: replace them)", request=JobCalendarsSerializer,
        responses={200: JobCalendarsSerializer, 400: _400, 403: _403, 404: _404},
    )
    @action(detail=True, methods=["get", "put"])
    def calendars(self, request, pk=None):
        job = self.get_object()
        if request.method == "PUT":
            data = request_body(JobCalendarsSerializer, request)
            job = services.job_set_calendars(job=job, names=data["calendars"], actor=request.user)
        return Response({"calendars": sorted(c.name for c in job.calendars.all())})

    @extend_schema(
        tags=["jobs"], summary="A job's executions", parameters=[ExecutionListQuerySerializer],
        responses={200: ExecutionPageSerializer, 400: _400, 404: _404},
    )
    @action(detail=True, methods=["get"])
    def executions(self, request, pk=None):
        job = self.get_object()
        params = query_params(ExecutionListQuerySerializer, request)
        queryset = selectors.execution_list(user=request.user, job=job, status=params.get("status") or None)
        return _execution_page(queryset, params)

    @extend_schema(
        tags=["jobs"], summary="A job's statistics",
        responses={200: JobStatisticsSerializer, 404: _404},
    )
    @action(detail=True, methods=["get"])
    def stats(self, request, pk=None):
        job = self.get_object()
        stats = {"job_id": job.pk, "name": job.name, **selectors.job_statistics(job=job)}
        return Response(JobStatisticsSerializer(stats).data)

    # -- collection-level actions ------------------------------------------
    @extend_schema(tags=["jobs"], summary="Overdue jobs", responses={200: JobOverdueListSerializer})
    @action(detail=False, methods=["get"], url_path="overdue/list", url_name="overdue-list")
    def overdue(self, request):
        jobs = list(selectors.job_overdue_list(user=request.user))
        return Response(list_envelope(JobSerializer(jobs, many=True).data))

    @extend_schema(tags=["jobs"], summary="Statistics over all visible jobs", responses={200: JobStatsOverviewSerializer})
    @action(detail=False, methods=["get"], url_path="stats/overview", url_name="stats-overview")
    def stats_overview(self, request):
        return Response(JobStatsOverviewSerializer(selectors.job_stats_overview(user=request.user)).data)

    @extend_schema(
        tags=["jobs"], summary="Validate a schedule",
        request=ScheduleValidateInputSerializer,
        responses={
            200: OpenApiResponse(ScheduleValidationSerializer, description="`valid` says whether the schedule parses."),
            400: OpenApiResponse(ErrorSerializer, description="A field is missing, the body is malformed, or "
                                                              "`calendars` names a calendar you cannot see."),
        },
    )
    @action(detail=False, methods=["post"], url_path="validate-schedule", url_name="validate-schedule")
    def validate_schedule(self, request):
        """Check a schedule and preview its next 5 runs.

        An invalid schedule is a successful call of a validator: it answers 200
        with ``valid: false`` and an ``error`` naming the field at fault
        (``schedule_type``, ``schedule_expression`` or ``timezone``). Only a
        request the endpoint cannot answer — a missing field, a malformed
        body, a calendar (``calendars``) you cannot see — is a 400. With
        ``calendars``, the next runs leave out due times inside them.
        """
        data = request_body(ScheduleValidateInputSerializer, request)
        calendars = calendars_named(data.get("calendars", []), user=request.user)
        preview = schedule_preview(data["schedule_type"], data["schedule_expression"], data["timezone"],
                                   jitter_seconds=data["jitter_seconds"], calendars=calendars)
        if preview["valid"]:
            preview["next_runs"] = [run.isoformat() for run in preview["next_runs"]]
            if "start_windows" in preview:
                preview["start_windows"] = [{"due": due.isoformat(), "starts_by": by.isoformat()}
                                            for due, by in preview["start_windows"]]
        return Response(ScheduleValidationSerializer(preview).data)

    @extend_schema(tags=["jobs"], summary="Schedulable task names", responses={200: SchedulableTaskListSerializer})
    @action(detail=False, methods=["get"])
    def tasks(self, request):
        """The allow-listed values a job of kind ``task`` may use as ``task_name``."""
        tasks = list(schedulable_tasks().values())
        return Response(SchedulableTaskListSerializer(list_envelope(tasks)).data)

    @extend_schema(
        tags=["jobs"], summary="Apply a jobs-as-code file",
        description="The body is the file: YAML or JSON text (`Content-Type: application/yaml`, `text/plain`) or "
                    "parsed JSON. Answers the plan (create; update with each changed field as [before, after]; "
                    "delete with `prune=1`) and applies it in one transaction, unless `dry_run=1`. Any problem: "
                    "400 naming file, document and field, and nothing is written. See the jobs-as-code guide.",
        parameters=[ApplyQuerySerializer], request={"application/yaml": str, "application/json": dict},
        responses={200: ApplyPlanSerializer, 403: _403, 400: OpenApiResponse(
            PolymorphicProxySerializer(component_name="ApplyOrQueryError",
                                       serializers=[ApplyErrorSerializer, ErrorSerializer],
                                       resource_type_field_name=None),
            description="The file cannot be applied (problems listed), or a query parameter is wrong (by "
                        "name); nothing was changed.")},
    )
    @action(detail=False, methods=["post"], parser_classes=[StrictJSONParser, *manifest.TEXT_PARSERS])
    def apply(self, request):
        if not request.user.is_superuser:
            raise exceptions.PermissionDenied(IsSuperuserToModify.message)
        params = query_params(ApplyQuerySerializer, request)
        documents = manifest.read_request_data(request.data)
        plan = services.manifest_apply(documents=documents, actor=request.user, file="request body", **params)
        return Response(ApplyPlanSerializer(plan.as_dict()).data)


class ExecutionViewSet(viewsets.GenericViewSet):
    """Runs of jobs, across every job the user can see."""

    queryset = Execution.objects.none()  # types the {id} path parameter only
    serializer_class = ExecutionSerializer
    permission_classes = [IsAuthenticated, CanCancelExecution]
    parser_classes = [StrictJSONParser]
    filter_backends: list = []
    pagination_class = None
    schema = PageEnvelopeSchema()

    def get_object(self) -> Execution:
        execution = selectors.execution_get(user=self.request.user, execution_id=self.kwargs["pk"])
        self.check_object_permissions(self.request, execution)
        return execution

    @extend_schema(
        tags=["executions"], summary="List executions", operation_id="api_v1_executions_list",
        parameters=[AllExecutionsQuerySerializer],
        responses={200: ExecutionPageSerializer, 400: _400},
        extensions=links({"/api/v1/executions/{id}": "items/0/id"}),
    )
    def list(self, request):
        params = query_params(AllExecutionsQuerySerializer, request)
        queryset = selectors.execution_list(
            user=request.user, job_id=params.get("job_id") or None, status=params.get("status") or None
        )
        return _execution_page(queryset, params)

    @extend_schema(
        tags=["executions"], summary="Get an execution",
        responses={200: ExecutionSerializer, 404: OpenApiResponse(ErrorSerializer, description="No such execution visible to you.")},
    )
    def retrieve(self, request, pk=None):
        return Response(ExecutionSerializer(self.get_object()).data)

    @extend_schema(
        tags=["executions"], summary="Cancel a queued or running execution", request=None,
        responses={
            200: ExecutionSerializer,
            403: OpenApiResponse(ErrorSerializer, description="Only superusers and the job's owner can cancel."),
            404: OpenApiResponse(ErrorSerializer, description="No such execution visible to you."),
            409: OpenApiResponse(ErrorSerializer, description="The execution is no longer queued or running."),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        execution = services.execution_cancel(execution=self.get_object(), actor=request.user)
        return Response(ExecutionSerializer(execution).data)


class BackfillViewSet(viewsets.GenericViewSet):
    """A backfill's progress, and its cancel (what has not run is never queued)."""

    queryset = Backfill.objects.none()  # types the {id} path parameter only
    serializer_class = BackfillSerializer
    permission_classes = [IsAuthenticated]
    parser_classes = [StrictJSONParser]
    filter_backends: list = []
    pagination_class = None

    def get_object(self) -> Backfill:
        backfill = Backfill.objects.select_related("job").filter(pk=self.kwargs["pk"]).first() if str(
            self.kwargs["pk"]).isdigit() else None
        if backfill is None:
            raise exceptions.NotFound("No such backfill.")
        selectors.job_get(user=self.request.user, job_id=backfill.job_id)  # 404 unless its job is visible
        return backfill

    @extend_schema(tags=["jobs"], summary="A backfill's progress", responses={200: BackfillSerializer, 404: _404})
    def retrieve(self, request, pk=None):
        return Response(BackfillSerializer(services.backfill_progress(self.get_object())).data)

    @extend_schema(
        tags=["jobs"], summary="Cancel a backfill", request=None,
        responses={200: BackfillSerializer, 403: _403, 404: _404, 409: _409},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        backfill = self.get_object()
        if not (request.user.is_superuser or backfill.job.owner_id == request.user.pk):
            raise exceptions.PermissionDenied("Only superusers and the job's owner can cancel its backfills.")
        backfill = services.backfill_cancel(backfill=backfill, actor=request.user)
        return Response(BackfillSerializer(services.backfill_progress(backfill)).data)
