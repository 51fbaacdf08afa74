"""The workflows facade's REST API.

- Seed 002 ``/api/cron/jobs``: paths, fields, messages and status codes as the
  seed writes them (200 with ``{"status": "success", ...}``; 403 with the
  seed's messages for someone else's job; 404 ``Job {job_id} not found``).
- ``/api/workflows/``: CRUD of the workflows themselves, and
  ``/api/workflows/runs/{execution_id}`` to follow a run step by step, cancel
  it, or re-run it from its failed step.

Thin viewsets: a serializer checks the input's shape, one service or
selector does the work.
"""
from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from jobsite.exceptions import ApplicationError, Forbidden
from jobsite.openapi import links
from jobsite.parsers import StrictJSONParser
from scheduling import services as core_services
from scheduling.models import Job
from scheduling.pagination import list_envelope
from scheduling.serializers import DetailSerializer, ErrorSerializer, ExecutionSerializer, query_params, request_body
from scheduling.workflows import selectors, services
from scheduling.workflows.errors import ErrorCode
from scheduling.workflows.models import Workflow
from scheduling.workflows.serializers import (
    CronJobCreateSerializer,
    IntervalJobCreateSerializer,
    ScheduleActionResponseSerializer,
    ScheduleExecutionsQuerySerializer,
    ScheduleExecutionsResponseSerializer,
    ScheduleListResponseSerializer,
    ScheduleResponseSerializer,
    WorkflowCreateSerializer,
    WorkflowListSerializer,
    WorkflowRunListQuerySerializer,
    WorkflowRunListSerializer,
    WorkflowRunSerializer,
    WorkflowSerializer,
    WorkflowUpdateSerializer,
    run_data,
    schedule_job_data,
)

#: The OpenAPI tag of /api/cron/jobs (described in SPECTACULAR_SETTINGS["TAGS"]).
TAG = "workflow schedules"
_400 = OpenApiResponse(ErrorSerializer, description="Invalid input; `detail` names the field (or the step and field).")
_403 = OpenApiResponse(ErrorSerializer, description="Someone else's job, or a workflow you may not use "
                                                     "(neither yours nor shared with you).")
_404 = OpenApiResponse(ErrorSerializer, description="`Job {job_id} not found`.")
_409 = OpenApiResponse(ErrorSerializer, description="Refused by the object's state.")


# ---------------------------------------------------------------------------
# Seed 002: /api/cron/jobs
# ---------------------------------------------------------------------------
class CronJobViewSet(viewsets.GenericViewSet):
    """Workflow schedules: the caller's jobs of kind ``workflow``."""

    queryset = Job.objects.none()  # reads go through selectors; this only types the path parameter
    permission_classes = [IsAuthenticated]
    parser_classes = [StrictJSONParser]
    filter_backends: list = []
    pagination_class = None
    lookup_url_kwarg = "job_id"
    lookup_value_regex = "[^/]+"
    serializer_class = ScheduleResponseSerializer
    input_serializers = {"cron": CronJobCreateSerializer, "interval": IntervalJobCreateSerializer}

    def get_serializer_class(self):
        return self.input_serializers.get(self.action, ScheduleResponseSerializer)

    def _job(self, forbidden: str = "You don't have permission to access this job") -> Job:
        return selectors.schedule_get(user=self.request.user, job_id=self.kwargs["job_id"], forbidden=forbidden)

    def _save(self, request, schedule_type: str, serializer_class, label: str) -> Response:
        data = request_body(serializer_class, request)
        job, _created = services.workflow_schedule_save(actor=request.user, schedule_type=schedule_type, **data)
        return Response({
            "status": "success",
            "message": f"{label} job {data['job_id']} created successfully",
            "job": schedule_job_data(job),
        })

    @extend_schema(tags=[TAG], summary="Create (or replace) a cron job",
                   request=CronJobCreateSerializer, responses={200: ScheduleResponseSerializer, 400: _400, 403: _403},
                   extensions=links({"/api/cron/jobs/{job_id}": "job/job_id"}))
    @action(detail=False, methods=["post"])
    def cron(self, request):
        return self._save(request, Job.ScheduleType.CRON, CronJobCreateSerializer, "Cron")

    @extend_schema(tags=[TAG], summary="Create (or replace) an interval job",
                   request=IntervalJobCreateSerializer,
                   responses={200: ScheduleResponseSerializer, 400: _400, 403: _403},
                   extensions=links({"/api/cron/jobs/{job_id}": "job/job_id"}))
    @action(detail=False, methods=["post"])
    def interval(self, request):
        return self._save(request, Job.ScheduleType.INTERVAL, IntervalJobCreateSerializer, "Interval")

    @extend_schema(tags=[TAG], summary="The caller's jobs",
                   responses={200: ScheduleListResponseSerializer},
                   extensions=links({"/api/cron/jobs/{job_id}": "jobs/0/job_id"}))
    def list(self, request):
        jobs = [schedule_job_data(job) for job in selectors.schedule_list(user=request.user)]
        return Response({"status": "success", "user_id": selectors.user_seed_id(request.user),
                         "total_jobs": len(jobs), "jobs": jobs})

    @extend_schema(tags=[TAG], summary="Every workflow job (superusers)",
                   responses={200: ScheduleListResponseSerializer, 403: _403})
    @action(detail=False, methods=["get"], url_path="all", url_name="all")
    def all_jobs(self, request):
        if not request.user.is_superuser:
            raise ApplicationError("Only administrators can list all jobs.", status=403, code=ErrorCode.ADMIN_ONLY)
        jobs = [schedule_job_data(job) for job in selectors.schedule_list_all(user=request.user)]
        return Response({"status": "success", "total_jobs": len(jobs), "jobs": jobs})

    @extend_schema(tags=[TAG], summary="Get a job",
                   responses={200: ScheduleResponseSerializer, 403: _403, 404: _404})
    def retrieve(self, request, job_id=None):
        return Response({"status": "success", "job": schedule_job_data(self._job())})

    @extend_schema(tags=[TAG], summary="Run a job now (schedule unchanged)", request=None,
                   responses={200: ScheduleActionResponseSerializer, 403: _403, 404: _404},
                   extensions=links({"/api/workflows/runs/{id}": "execution_id", "/api/v1/executions/{id}": "execution_id"}))
    @action(detail=True, methods=["post"])
    def trigger(self, request, job_id=None):
        job = self._job("You don't have permission to trigger this job")
        execution = services.workflow_schedule_trigger(job=job, actor=request.user)
        return Response({"status": "success", "message": f"Job {job_id} triggered successfully", "job_id": job_id,
                         "execution_id": execution.pk})

    @extend_schema(tags=[TAG], summary="Pause a job (next_run_time becomes null)", request=None,
                   responses={200: ScheduleActionResponseSerializer, 403: _403, 404: _404})
    @action(detail=True, methods=["post"])
    def pause(self, request, job_id=None):
        services.workflow_schedule_pause(job=self._job("You don't have permission to pause this job"), actor=request.user)
        return Response({"status": "success", "message": f"Job {job_id} paused successfully", "job_id": job_id})

    @extend_schema(tags=[TAG], summary="Resume a paused job", request=None,
                   responses={200: ScheduleActionResponseSerializer, 403: _403, 404: _404})
    @action(detail=True, methods=["post"])
    def resume(self, request, job_id=None):
        services.workflow_schedule_resume(job=self._job("You don't have permission to resume this job"),
                                          actor=request.user)
        return Response({"status": "success", "message": f"Job {job_id} resumed successfully", "job_id": job_id})

    @extend_schema(tags=[TAG], summary="Delete a job (and its beat entry)",
                   responses={200: ScheduleActionResponseSerializer, 403: _403, 404: _404})
    def destroy(self, request, job_id=None):
        services.workflow_schedule_delete(job=self._job("You don't have permission to delete this job"),
                                          actor=request.user)
        return Response({"status": "success", "message": f"Job {job_id} deleted successfully", "job_id": job_id})

    @extend_schema(tags=[TAG], summary="A job's execution history, newest first",
                   parameters=[ScheduleExecutionsQuerySerializer],
                   responses={200: ScheduleExecutionsResponseSerializer, 400: _400, 403: _403, 404: _404})
    @action(detail=True, methods=["get"])
    def executions(self, request, job_id=None):
        job = self._job()
        params = query_params(ScheduleExecutionsQuerySerializer, request)
        executions = selectors.schedule_executions(user=request.user, job=job)
        return Response({
            "status": "success", "job_id": job_id, "total_executions": executions.count(),
            "executions": ExecutionSerializer(executions[: params["limit"]], many=True).data,
        })


# ---------------------------------------------------------------------------
# /api/workflows/
# ---------------------------------------------------------------------------
class WorkflowViewSet(viewsets.GenericViewSet):
    """Workflows: ordered steps, data not code. Everyone sees their own and
    their organization's; the owner (or a superuser) changes them. Only the
    owner schedules, triggers and re-runs a workflow, unless they share it with
    its organization (`shared_with_organization`, set with PATCH)."""

    queryset = Workflow.objects.none()
    permission_classes = [IsAuthenticated]
    parser_classes = [StrictJSONParser]
    filter_backends: list = []
    pagination_class = None
    serializer_class = WorkflowSerializer
    lookup_value_regex = "[A-Za-z0-9_-]+"
    input_serializers = {"create": WorkflowCreateSerializer, "update": WorkflowUpdateSerializer,
                         "partial_update": WorkflowUpdateSerializer}

    def get_serializer_class(self):
        return self.input_serializers.get(self.action, WorkflowSerializer)

    def _workflow(self, *, modify: bool = False):
        workflow = selectors.workflow_get(user=self.request.user, workflow_id=self.kwargs["pk"])
        if modify and not services.workflow_can_modify(workflow, self.request.user):
            raise Forbidden("Only the workflow's owner can change or delete it.")
        return workflow

    @extend_schema(tags=["workflows"], summary="List workflows", responses={200: WorkflowListSerializer},
                   extensions=links({"/api/workflows/{id}": "items/0/id"}))
    def list(self, request):
        workflows = list(selectors.workflow_list(user=request.user))
        return Response(list_envelope(WorkflowSerializer(workflows, many=True).data))

    @extend_schema(tags=["workflows"], summary="Create a workflow", request=WorkflowCreateSerializer,
                   responses={201: WorkflowSerializer, 400: _400, 409: _409},
                   extensions=links({"/api/workflows/{id}": "id"}))
    def create(self, request):
        workflow = services.workflow_create(actor=request.user, **request_body(WorkflowCreateSerializer, request))
        return Response(WorkflowSerializer(workflow).data, status=status.HTTP_201_CREATED)

    @extend_schema(tags=["workflows"], summary="Get a workflow", responses={200: WorkflowSerializer, 404: _404})
    def retrieve(self, request, pk=None):
        return Response(WorkflowSerializer(self._workflow()).data)

    @extend_schema(tags=["workflows"], summary="Update a workflow (partial)", request=WorkflowUpdateSerializer,
                   responses={200: WorkflowSerializer, 400: _400, 403: _403, 404: _404})
    def update(self, request, pk=None):
        workflow = self._workflow(modify=True)
        data = request_body(WorkflowUpdateSerializer, request, partial=True)
        return Response(WorkflowSerializer(services.workflow_update(workflow=workflow, actor=request.user, data=data)).data)

    @extend_schema(tags=["workflows"], summary="Update a workflow (partial)", request=WorkflowUpdateSerializer,
                   responses={200: WorkflowSerializer, 400: _400, 403: _403, 404: _404})
    def partial_update(self, request, pk=None):
        return self.update(request, pk=pk)

    @extend_schema(tags=["workflows"], summary="Delete a workflow no job uses",
                   responses={200: DetailSerializer, 403: _403, 404: _404, 409: _409})
    def destroy(self, request, pk=None):
        workflow = self._workflow(modify=True)
        services.workflow_delete(workflow=workflow, actor=request.user)
        return Response({"detail": f"Workflow {pk} deleted."})


class WorkflowRunViewSet(viewsets.GenericViewSet):
    """Runs of workflow jobs (Executions), with their steps as they happen."""

    queryset = Job.objects.none()
    permission_classes = [IsAuthenticated]
    parser_classes = [StrictJSONParser]
    filter_backends: list = []
    pagination_class = None
    serializer_class = WorkflowRunSerializer

    def _run(self, *, act: bool = False):
        execution = selectors.run_get(user=self.request.user, execution_id=self.kwargs["pk"])
        if act and not (self.request.user.is_superuser or execution.job.owner_id == self.request.user.pk):
            raise Forbidden("Only the job's owner can cancel or re-run its runs.")
        return execution

    @extend_schema(tags=["workflows"], summary="Workflow runs, newest first", parameters=[WorkflowRunListQuerySerializer],
                   responses={200: WorkflowRunListSerializer, 400: _400},
                   extensions=links({"/api/workflows/runs/{id}": "items/0/execution_id"}))
    def list(self, request):
        params = query_params(WorkflowRunListQuerySerializer, request)
        runs = selectors.run_list(user=request.user, workflow_id=params.get("workflow_id"), status=params.get("status"))
        items = [run_data(execution) for execution in runs[: params["limit"]]]
        return Response(list_envelope(WorkflowRunSerializer(items, many=True).data, total=runs.count()))

    @extend_schema(tags=["workflows"], summary="A run, step by step (live while it runs)",
                   responses={200: WorkflowRunSerializer, 404: _404})
    def retrieve(self, request, pk=None):
        return Response(WorkflowRunSerializer(run_data(self._run())).data)

    @extend_schema(tags=["workflows"], summary="Cancel a queued or running run", request=None,
                   responses={200: WorkflowRunSerializer, 403: _403, 404: _404, 409: _409})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        execution = core_services.execution_cancel(execution=self._run(act=True), actor=request.user)
        # read again: the step it was in has been closed as cancelled since (workflows.receivers)
        execution = selectors.run_get(user=request.user, execution_id=execution.pk)
        return Response(WorkflowRunSerializer(run_data(execution)).data)

    @extend_schema(tags=["workflows"], summary="Re-run a failed run from its failed step", request=None,
                   responses={202: WorkflowRunSerializer, 403: _403, 404: _404, 409: _409})
    @action(detail=True, methods=["post"])
    def rerun(self, request, pk=None):
        execution = services.workflow_run_rerun(execution=self._run(act=True), actor=request.user)
        return Response(WorkflowRunSerializer(run_data(execution)).data, status=status.HTTP_202_ACCEPTED)
