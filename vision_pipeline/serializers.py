"""Shapes of the vision pipeline's API: seed 000's /cron-jobs bodies, the batch API."""
from __future__ import annotations

from datetime import datetime, timezone as dt_timezone

from django.conf import settings
from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from jobsite.redaction import MIN_SECRET_CHARS
from scheduling.models import Execution, Job
from vision_pipeline import analyzers
from vision_pipeline.models import Batch


def seed_time(value: datetime | None) -> str | None:
    """Seed 000 writes times as ``2025-01-21T02:00:00``: UTC, no offset, whole seconds."""
    if value is None:
        return None
    return value.astimezone(dt_timezone.utc).replace(tzinfo=None, microsecond=0).isoformat()


# ---------------------------------------------------------------------------
# /cron-jobs
# ---------------------------------------------------------------------------
# Its own component name: scheduling.workflows has a CronJobCreateSerializer too, and two
# serializers under one component name leave one operation with the other's body schema.
@extend_schema_serializer(component_name="VisionCronJobCreate")
class CronJobCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, help_text=(
        "Descriptive name for the job (in the jobs API its machine name is generated: vision-<16 hex digits>)."))
    schedule = serializers.CharField(max_length=255, help_text="Cron expression: minute hour day month day_of_week.")
    external_api_get_url = serializers.URLField(max_length=2000)
    external_api_post_url = serializers.URLField(max_length=2000)
    external_api_key = serializers.CharField(min_length=MIN_SECRET_CHARS, max_length=8192, write_only=True,
                                             trim_whitespace=True,
                                             help_text="JWT for the external API; stored encrypted, shown as ***.")
    backend_api_url = serializers.URLField(max_length=2000, required=False, default="http://localhost:8000")
    organization_id = serializers.CharField(max_length=100)
    enabled = serializers.BooleanField(required=False, default=True)
    # Extensions (not in seed 000): optional.
    analyzer = serializers.ChoiceField(choices=(), required=False, default=analyzers.DEFAULT,
                                       help_text="GET /available_models.")
    analysis_timeout_seconds = serializers.IntegerField(min_value=1, max_value=24 * 3600, required=False,
                                                        help_text="Per analysis (default 3600).")
    page_size = serializers.IntegerField(min_value=1, max_value=1000, required=False)
    backend_api_key = serializers.CharField(min_length=MIN_SECRET_CHARS, max_length=8192, required=False,
                                            write_only=True, allow_blank=True,
                                            help_text="Bearer token for a remote backend_api_url; stored encrypted.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["analyzer"].choices = analyzers.names()


class CronJobExecutionsQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=1000, required=False, default=50)


class CronJobListQuerySerializer(serializers.Serializer):
    enabled_only = serializers.BooleanField(required=False, default=False)


# The answers' shapes, for the OpenAPI schema (the views build the dicts below).
THREE_IDS = (
    "One vision cron job has three ids, all naming the same job: `job_id` here, a UUID (the "
    "/cron-jobs/{job_id} paths); its numeric `id` in the jobs API (/api/v1/jobs/{id}, "
    "`./manage jobs show ID`, where its runs are executions like any job's); and its machine name "
    "`vision-` followed by 16 hex digits (`name` in /api/v1/jobs and the admin; `./manage jobs` accepts "
    "it in place of the id). `name` here is the descriptive name it was created with."
)
JOB_ID_HELP = "This cron job's id: a UUID, the {job_id} of the /cron-jobs paths (not the jobs API's numeric id)."


class VisionCronJobConfigSerializer(serializers.Serializer):
    external_api_get_url = serializers.CharField()
    external_api_post_url = serializers.CharField()
    external_api_key = serializers.CharField(help_text="Always *** (stored encrypted, never shown).")
    backend_api_url = serializers.CharField()
    organization_id = serializers.CharField()


@extend_schema_serializer(component_name="VisionCronJob")
class VisionCronJobSerializer(serializers.Serializer):
    __doc__ = f"A vision cron job. {THREE_IDS}"

    job_id = serializers.CharField(help_text=JOB_ID_HELP)
    name = serializers.CharField(help_text="The descriptive name given at creation.")
    schedule = serializers.CharField(help_text="Cron expression: minute hour day month day_of_week (UTC).")
    config = VisionCronJobConfigSerializer()
    enabled = serializers.BooleanField()
    scheduled = serializers.BooleanField(help_text="Whether beat will fire it (enabled, and its job not paused).")
    next_run = serializers.CharField(allow_null=True, help_text="UTC, without an offset; null when not scheduled.")
    created_at = serializers.CharField()
    updated_at = serializers.CharField()


class VisionCronJobListSerializer(serializers.Serializer):
    cron_jobs = VisionCronJobSerializer(many=True)


@extend_schema_serializer(component_name="VisionCronJobCreated")
class VisionCronJobCreatedSerializer(serializers.Serializer):
    __doc__ = f"The cron job just created. {THREE_IDS}"

    status = serializers.CharField()
    job_id = serializers.CharField(help_text=JOB_ID_HELP)
    name = serializers.CharField()
    schedule = serializers.CharField()
    enabled = serializers.BooleanField()


class VisionCronJobExecutionSerializer(serializers.Serializer):
    execution_id = serializers.CharField(help_text="The run's UUID (its `uuid` in /api/v1/executions).")
    job_id = serializers.CharField(help_text=JOB_ID_HELP)
    status = serializers.CharField()
    started_at = serializers.CharField(allow_null=True)
    completed_at = serializers.CharField(allow_null=True)
    output = serializers.CharField()
    batch_id = serializers.CharField(allow_null=True, help_text="The run's batch (comma-separated when several).")
    batch_ids = serializers.ListField(child=serializers.CharField(), help_text="/api/v1/vision/batches/{batch_id}.")


class VisionCronJobExecutionsSerializer(serializers.Serializer):
    job_id = serializers.CharField(help_text=JOB_ID_HELP)
    executions = VisionCronJobExecutionSerializer(many=True)


def cron_job_data(job: Job) -> dict:
    config = job.config or {}
    periodic = job.periodic_task
    scheduled = bool(periodic is not None and periodic.enabled and job.is_schedulable)
    return {
        "job_id": str(job.uuid),
        "name": job.title or job.name,
        "schedule": job.schedule_expression,
        "config": {
            "external_api_get_url": config.get("external_api_get_url", ""),
            "external_api_post_url": config.get("external_api_post_url", ""),
            "external_api_key": "***",
            "backend_api_url": config.get("backend_api_url", ""),
            "organization_id": config.get("organization_id", ""),
        },
        "enabled": job.is_enabled,
        "scheduled": scheduled,
        "next_run": seed_time(job.next_run_at) if scheduled else None,
        "created_at": seed_time(job.created_at),
        "updated_at": seed_time(job.updated_at),
    }


def cron_job_created(job: Job) -> dict:
    """Seed 000's answer to POST /cron-jobs (201)."""
    return {"status": "success", "job_id": str(job.uuid), "name": job.title, "schedule": job.schedule_expression,
            "enabled": job.is_enabled}


def execution_data(execution: Execution, job: Job) -> dict:
    result = execution.result if isinstance(execution.result, dict) else {}
    batch_ids = [str(b) for b in result.get("batch_ids") or [] if b]
    batch_id = ", ".join(batch_ids) if batch_ids else execution.batch_id
    return {
        "execution_id": str(execution.uuid),
        "job_id": str(job.uuid),
        "status": execution.status,
        "started_at": seed_time(execution.started_at),
        "completed_at": seed_time(execution.completed_at),
        "output": execution.output or execution.error or "",
        "batch_id": batch_id or None,
        "batch_ids": batch_ids,
    }


# ---------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------
class BatchCreateSerializer(serializers.Serializer):
    images = serializers.ListField(child=serializers.FileField(), help_text="One or more image files.")
    user_query = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)
    descriptions = serializers.CharField(required=False, allow_blank=True, default="",
                                         help_text='JSON object: {"image1.jpg": "description", ...}.')
    organization_id = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)
    model = serializers.CharField(required=False, default=analyzers.DEFAULT, max_length=64)

    def validate_images(self, value):
        if not value:
            raise serializers.ValidationError("Send at least one image.")
        if len(value) > settings.VISION_MAX_IMAGES_PER_BATCH:
            raise serializers.ValidationError(f"At most {settings.VISION_MAX_IMAGES_PER_BATCH} images per batch "
                                              f"(VISION_MAX_IMAGES_PER_BATCH).")
        return value


def batch_data(batch: Batch) -> dict:
    execution = batch.execution
    status = batch.effective_status
    return {
        "batch_id": str(batch.pk),
        "status": status,
        "source": batch.source,
        "model": batch.model,
        "user_query": batch.user_query,
        "organization_id": batch.external_organization_id or None,
        "vision_analysis_id": batch.vision_analysis_id or None,
        "total_images": batch.total_images,
        "processed_images": batch.processed_images,
        "failed_images": batch.failed_images,
        "flagged_images": batch.flagged_images,
        "progress": batch.progress,
        "summary": batch.summary or {},
        "error": batch.error or (execution.error if execution is not None and status in
                                 (Batch.Status.FAILED, Batch.Status.CANCELLED) else "") or None,
        "report_url": f"/api/v1/vision/batches/{batch.pk}/report" if status == Batch.Status.COMPLETED else None,
        "execution_id": execution.pk if execution is not None else None,
        "task_id": execution.celery_task_id if execution is not None else None,
        "chunks": _chunks(batch),
        "created_at": seed_time(batch.created_at),
        "started_at": seed_time(batch.started_at),
        "completed_at": seed_time(batch.completed_at),
    }


def _chunks(batch: Batch) -> dict:
    """The chunk runs sharing the batch's images (cancelled with it)."""
    ids = [int(pk) for pk in batch.chunk_execution_ids or []]
    runs = dict(Execution.objects.filter(pk__in=ids).values_list("pk", "celery_task_id")) if ids else {}
    return {"total": len(ids), "execution_ids": ids, "task_ids": [runs[pk] for pk in ids if runs.get(pk)]}
