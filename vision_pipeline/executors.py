"""The vision pipeline's job kinds, found by the core's autodiscovery.

- ``vision_analysis``: a ``/cron-jobs`` job (seed 000). Each run fetches the
  unprocessed analyses of the external API and processes them
  (vision_pipeline.services.cron_run).
- ``vision_batch``: one run analyses one batch uploaded through
  ``/api/v1/vision/batches`` (runs of the ``vision.batch`` manual job).
- ``vision_batch_chunk``: a run that shares a large batch's images with the
  batch's own run, on another worker process (runs of the
  ``vision.batch-chunk`` manual job, queued by the batch's run).
"""
import uuid

from django.core.exceptions import ValidationError
from rest_framework import serializers

from scheduling.executors import Executor, register


class VisionAnalysisConfig(serializers.Serializer):
    """``Job.config`` of a vision_analysis job (the key is in the job's secrets)."""

    external_api_get_url = serializers.URLField(max_length=2000)
    external_api_post_url = serializers.URLField(max_length=2000)
    backend_api_url = serializers.URLField(max_length=2000, required=False, default="http://localhost:8000")
    organization_id = serializers.CharField(max_length=100)
    analyzer = serializers.CharField(max_length=64, required=False, default="inspector")
    analysis_timeout_seconds = serializers.IntegerField(min_value=1, max_value=24 * 3600, required=False)
    page_size = serializers.IntegerField(min_value=1, max_value=1000, required=False)

    def validate(self, attrs):
        # The URLs are checked when the job is saved, not first when it runs.
        from vision_pipeline.services.cron_jobs import outbound_url_problems

        problems = outbound_url_problems(attrs)
        if problems:
            raise serializers.ValidationError(problems)
        return attrs

    def validate_analyzer(self, value):
        from vision_pipeline import analyzers

        if value not in analyzers.names():
            raise serializers.ValidationError(f"Unknown analyzer '{value}'. Use one of: {', '.join(analyzers.names())}.")
        return value


@register
class VisionAnalysisExecutor(Executor):
    kind = "vision_analysis"
    label = "Vision analysis (a /cron-jobs job: analyses fetched from the document API)"
    config_serializer = VisionAnalysisConfig

    def run(self, job, execution, params):
        # Imported here: OpenCV and numpy load in the worker, not in every web process.
        from vision_pipeline.services import cron_run

        outcome = cron_run(job=job, execution=execution)
        # The every-minute poll mostly finds nothing: such a run says so, and the
        # admin's run list hides it unless asked (scheduling.executors.RunResult).
        outcome.did_nothing = outcome.ok and not (outcome.result or {}).get("total")
        return outcome


@register
class VisionBatchExecutor(Executor):
    kind = "vision_batch"
    label = "Vision batch (uploaded through /api/v1/vision/batches)"
    internal = True  # its one job is the batches' manual job (scheduling.kinds: internal kinds)

    def validate_params(self, job, params):
        try:
            uuid.UUID(str(params.get("batch_id")))
        except ValueError:
            raise ValidationError({"override_kwargs": ["batch_id must be the id (UUID) of a vision batch."]}) from None

    def run(self, job, execution, params):
        from vision_pipeline.services import batch_run

        return batch_run(execution=execution, batch_id=params["batch_id"])


@register
class VisionBatchChunkExecutor(Executor):
    kind = "vision_batch_chunk"
    label = "Vision batch chunk (shares a large batch's images with its run)"
    internal = True  # its one job is the batch chunks' manual job

    def validate_params(self, job, params):
        errors = []
        try:
            uuid.UUID(str(params.get("batch_id")))
        except ValueError:
            errors.append("batch_id must be the id (UUID) of a vision batch.")
        parent = params.get("parent_execution_id")
        if not isinstance(parent, int) or isinstance(parent, bool) or parent < 1:
            errors.append("parent_execution_id must be the id of the batch's own run.")
        if errors:
            raise ValidationError({"override_kwargs": errors})

    def run(self, job, execution, params):
        from vision_pipeline.services import batch_chunk_run

        return batch_chunk_run(execution=execution, batch_id=params["batch_id"],
                               parent_execution_id=params["parent_execution_id"])
