"""Serializers of the workflows facade: input shapes only (types, required
fields); the services own the rules. Output of seed-002 jobs follows the
seed's ``job`` object literally."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from jobsite.crypto import secrets_decrypt
from jobsite.exceptions import ApplicationError
from scheduling.beat import job_schedule
from scheduling.models import Execution, Job
from scheduling.serializers import ExecutionSerializer, TimeZoneNameField
from scheduling.workflows.models import Workflow

MAX_INTERVAL_PART = 366 * 24 * 3600


# ---------------------------------------------------------------------------
# Seed 002: /api/cron/jobs
# ---------------------------------------------------------------------------
class _ScheduleCreateBase(serializers.Serializer):
    job_id = serializers.CharField(max_length=150, help_text=(
        "Your name for the schedule (letters, digits, _ . : @ -), unique among your schedules; "
        "sending an existing one replaces that schedule."))
    workflow_id = serializers.CharField(max_length=100, help_text="The stored workflow to run (GET /api/workflows).")
    user_id = serializers.CharField(max_length=255, help_text=(
        "Who the schedule is for: your own user id, as GET /api/cron/jobs returns it (your identity "
        "provider's subject when you log in through one, else your numeric user id), or your username. "
        "Another user's id is refused (403)."))
    input = serializers.CharField(allow_blank=True, max_length=100_000, trim_whitespace=False,
                                  help_text="The text each run gives the workflow (its ${input}).")
    timezone = TimeZoneNameField(required=False, default="UTC",
                                 help_text="IANA time zone the schedule is read in (default UTC).")


class CronJobCreateSerializer(_ScheduleCreateBase):
    cron_expression = serializers.CharField(max_length=255, trim_whitespace=False)


class IntervalJobCreateSerializer(_ScheduleCreateBase):
    hours = serializers.IntegerField(min_value=0, max_value=MAX_INTERVAL_PART, default=0)
    minutes = serializers.IntegerField(min_value=0, max_value=MAX_INTERVAL_PART, default=0)
    seconds = serializers.IntegerField(min_value=0, max_value=MAX_INTERVAL_PART, default=0)

    def validate(self, attrs):
        if not (attrs["hours"] or attrs["minutes"] or attrs["seconds"]):
            raise serializers.ValidationError("At least one of hours, minutes or seconds must be greater than 0.")
        return attrs


def _iso(moment: datetime | None, tz_name: str) -> str | None:
    if moment is None:
        return None
    try:
        tz = ZoneInfo(tz_name or "UTC")
    except Exception:  # a zone removed from the tz database since: show UTC
        tz = ZoneInfo("UTC")
    return moment.astimezone(tz).replace(microsecond=0).isoformat()


def schedule_job_data(job: Job) -> dict:
    """The seed's ``job`` object for a workflow schedule."""
    config = job.config or {}
    try:
        schedule = job_schedule(job)
        short, trigger = schedule.short(), schedule.trigger_repr()
    except DjangoValidationError:  # a row changed around the services; never hide the job
        short, trigger = job.schedule_expression, None
    return {
        "job_id": config.get("job_id", job.name),
        "name": job.title or job.name,
        "workflow_id": config.get("workflow_id"),
        "user_id": config.get("user_id"),
        "input_text": (job.task_kwargs or {}).get("input", ""),
        "schedule_type": job.schedule_type,
        "schedule": short,
        "next_run_time": _iso(job.next_run_at, job.timezone) if job.is_schedulable else None,
        "paused": not job.is_schedulable,
        "trigger": trigger,
    }


class ScheduleJobSerializer(serializers.Serializer):
    """A workflow schedule, as /api/cron/jobs shows it."""

    job_id = serializers.CharField(help_text="The schedule's name, as it was created (unique per user).")
    name = serializers.CharField()
    workflow_id = serializers.CharField()
    user_id = serializers.CharField(help_text="Whose schedule it is (see user_id when creating one).")
    input_text = serializers.CharField()
    schedule_type = serializers.CharField()
    schedule = serializers.CharField()
    next_run_time = serializers.CharField(allow_null=True)
    paused = serializers.BooleanField()
    trigger = serializers.CharField(allow_null=True)


class ScheduleResponseSerializer(serializers.Serializer):
    status = serializers.CharField()
    message = serializers.CharField(required=False)
    job = ScheduleJobSerializer()


@extend_schema_serializer(many=False)  # a list action's answer, but one envelope object, not an array
class ScheduleListResponseSerializer(serializers.Serializer):
    status = serializers.CharField()
    user_id = serializers.CharField(required=False)
    total_jobs = serializers.IntegerField()
    jobs = ScheduleJobSerializer(many=True)


class ScheduleActionResponseSerializer(serializers.Serializer):
    status = serializers.CharField()
    message = serializers.CharField()
    job_id = serializers.CharField()
    execution_id = serializers.IntegerField(required=False)


class ScheduleExecutionsQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=500, default=50)


class ScheduleExecutionsResponseSerializer(serializers.Serializer):
    status = serializers.CharField()
    job_id = serializers.CharField()
    total_executions = serializers.IntegerField()
    executions = ExecutionSerializer(many=True)


# ---------------------------------------------------------------------------
# /api/workflows/
# ---------------------------------------------------------------------------
class WorkflowCreateSerializer(serializers.Serializer):
    id = serializers.CharField(max_length=100, help_text="The workflow_id (slug), unique; fixed once created.")
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(allow_blank=True, required=False, default="")
    steps = serializers.JSONField(help_text="Ordered list of step objects (see the README).")
    enabled = serializers.BooleanField(required=False, default=True)
    shared_with_organization = serializers.BooleanField(
        required=False, default=False,
        help_text="Let members of the workflow's organization schedule, trigger and re-run it (default: only you).",
    )
    secrets = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False), required=False, write_only=True,
        help_text="NAME → value, for ${secrets.NAME}; stored encrypted, shown as ***.",
    )


class WorkflowUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(allow_blank=True, required=False)
    steps = serializers.JSONField(required=False)
    enabled = serializers.BooleanField(required=False)
    shared_with_organization = serializers.BooleanField(
        required=False, help_text="Share (true) or stop sharing (false) with the workflow's organization; owner only.",
    )
    secrets = serializers.DictField(child=serializers.CharField(allow_blank=True, trim_whitespace=False),
                                    required=False, write_only=True)

    def validate(self, attrs):
        unknown = sorted(set(self.initial_data) - set(self.fields)) if isinstance(self.initial_data, dict) else []
        if unknown:
            raise serializers.ValidationError({name: ["This field cannot be changed."] for name in unknown})
        return attrs


class WorkflowSerializer(serializers.ModelSerializer):
    owner = serializers.SerializerMethodField()
    organization_id = serializers.UUIDField(allow_null=True, read_only=True)
    secrets = serializers.SerializerMethodField(help_text="The secret names; values are never shown.")

    class Meta:
        model = Workflow
        fields = ["id", "name", "description", "steps", "enabled", "secrets", "owner", "organization_id",
                  "shared_with_organization", "created_at", "updated_at"]
        read_only_fields = fields

    def get_owner(self, workflow: Workflow) -> str | None:
        return workflow.owner.get_username() if workflow.owner else None

    def get_secrets(self, workflow: Workflow) -> dict[str, str]:
        try:
            return {name: "***" for name in sorted(secrets_decrypt(workflow.secrets))}
        except ApplicationError:
            return {}


@extend_schema_serializer(many=False)  # a list action's answer, but one envelope object, not an array
class WorkflowListSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    items = WorkflowSerializer(many=True)


# ---------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------
def run_data(execution: Execution) -> dict:
    """A run as the API shows it. Until the worker writes its first progress
    the run's parameters say where it will start (a re-run: its
    ``resume_from``), so a queued re-run's answer is already true."""
    result = execution.result if isinstance(execution.result, dict) else {}
    params = execution.override_kwargs if isinstance(execution.override_kwargs, dict) else {}
    config = execution.job.config or {}
    return {
        "execution_id": execution.pk,
        "uuid": str(execution.uuid),
        "job_id": config.get("job_id"),
        "workflow_id": result.get("workflow_id", config.get("workflow_id")),
        "status": execution.status,
        "trigger": execution.trigger,
        "attempt": execution.attempt,
        "celery_task_id": execution.celery_task_id,
        "input": result.get("input", params.get("input", (execution.job.task_kwargs or {}).get("input"))),
        "resume_from": result.get("resume_from", params.get("resume_from") or 0),
        "resumed_from_execution": result.get("resumed_from_execution", params.get("resumed_from_execution")),
        "created_at": execution.created_at,
        "started_at": execution.started_at,
        "completed_at": execution.completed_at,
        "duration_seconds": execution.duration_seconds,
        "output": execution.output,
        "error": execution.error,
        "failed_step": result.get("failed_step"),
        "steps": result.get("steps", []),
    }


class WorkflowRunSerializer(serializers.Serializer):
    execution_id = serializers.IntegerField()
    uuid = serializers.CharField()
    job_id = serializers.CharField(allow_null=True)
    workflow_id = serializers.CharField(allow_null=True)
    status = serializers.CharField()
    trigger = serializers.CharField()
    attempt = serializers.IntegerField()
    celery_task_id = serializers.CharField(allow_null=True)
    input = serializers.CharField(allow_null=True)
    resume_from = serializers.IntegerField()
    resumed_from_execution = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    duration_seconds = serializers.FloatField(allow_null=True)
    output = serializers.CharField(allow_blank=True)
    error = serializers.CharField(allow_blank=True)
    failed_step = serializers.CharField(allow_null=True)
    steps = serializers.ListField(child=serializers.DictField())


class WorkflowRunListQuerySerializer(serializers.Serializer):
    workflow_id = serializers.CharField(required=False)
    status = serializers.ChoiceField(choices=Execution.Status.choices, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=500, default=50)


@extend_schema_serializer(many=False)  # a list action's answer, but one envelope object, not an array
class WorkflowRunListSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    items = WorkflowRunSerializer(many=True)
