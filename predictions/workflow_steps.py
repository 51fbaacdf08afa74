"""The ``bulk_prediction`` workflow step: score a CSV/XLSX file fetched from a URL.

Found by the workflows app (docs/architecture.md, "Workflow step types")
without either app importing the other: this module only lists the type, built
on the core's step-type base (scheduling.steps).
The step downloads the file through the one outbound client (size cap, SSRF
guard), then files it exactly like an upload to
``POST /api/v1/predictions/{annual,quarterly}/bulk-upload-async`` on behalf of
the workflow's owner; its output is the upload's id and status, for later
steps (``${steps.<name>.output.upload_id}``).
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from rest_framework import serializers

from jobsite import http
from jobsite.exceptions import error_message
from predictions.models import BulkUploadJob
from scheduling.steps import StepField, StepType


class BulkPredictionStepConfig(serializers.Serializer):
    file_url = serializers.CharField(max_length=2000, help_text="http(s) URL of the CSV or XLSX file; may use ${...}.")
    job_type = serializers.ChoiceField(choices=BulkUploadJob.JobType.choices, default=BulkUploadJob.JobType.ANNUAL)
    file_format = serializers.ChoiceField(choices=["csv", "xlsx"], default="csv")


class BulkPredictionStep(StepType):
    """Download a CSV or XLSX file and score it like a bulk upload; the output
    is the upload's id and where to follow it."""

    type = "bulk_prediction"
    label = "Bulk default-risk predictions"
    templated_fields = ("file_url",)
    config_serializer = BulkPredictionStepConfig
    fields = (
        StepField("file_url", "url", "File URL", required=True, placeholder="https://files.example.com/companies.csv",
                  help="http(s) URL of the CSV or XLSX file; may use ${...}."),
        StepField("job_type", "choice", "Figures", choices=tuple(BulkUploadJob.JobType.values),
                  default=BulkUploadJob.JobType.ANNUAL, help="Annual or quarterly figures."),
        StepField("file_format", "choice", "File format", choices=("csv", "xlsx"), default="csv"),
    )
    default_timeout_seconds = 600  # the download and the header check; scoring runs as its own execution

    def check(self, config: dict, *, owner) -> dict[str, list[str]]:
        url = config["file_url"].strip()
        if not re.match(r"^https?://", url, re.IGNORECASE):
            return {"file_url": ["Must start with http:// or https:// (a placeholder may not supply the scheme)."]}
        if "${" not in url:  # a templated URL is checked when it is known, at run time
            try:
                http.check_url(url)
            except ValueError as exc:
                return {"file_url": [str(exc)]}
        return {}

    def run(self, config: dict, context) -> dict:
        from predictions import services
        from predictions.uploads import store_local_file

        data = BulkPredictionStepConfig(data=config)
        data.is_valid(raise_exception=True)
        options = data.validated_data
        name = Path(urlsplit(options["file_url"]).path).name or f"workflow-upload.{options['file_format']}"
        with tempfile.TemporaryDirectory(prefix="jobsite-wf-predictions-") as tmp:
            local = Path(tmp) / name
            http.download(options["file_url"], local, max_bytes=settings.PREDICTIONS_MAX_UPLOAD_MB * 1024 * 1024)
            stored = store_local_file(local)
        try:
            upload = services.upload_create(
                user=context.owner, job_type=options["job_type"], stored=stored, file_format=options["file_format"],
                actor_label=f"workflow {context.workflow_id}",
            )
        except Exception as exc:  # a refused file fails the step with the upload API's own message
            raise RuntimeError(f"The file was refused: {error_message(exc)}") from None
        return {"upload_id": str(upload.pk), "status": "pending", "total_rows": upload.total_rows,
                "status_url": f"/api/v1/predictions/jobs/{upload.pk}/status"}


WORKFLOW_STEP_TYPES = [BulkPredictionStep]
