"""Vision-analysis batches (seeds 000, 001).

A ``Batch`` is a set of images analysed together against one query, and the
HTML report that came of it; a ``BatchImage`` is one image and its
measurements. Batches are made two ways:

- by a ``vision_analysis`` cron run, one per unprocessed analysis of the
  external API, analysed inside that run (``execution`` is the cron run);
- through ``POST /api/v1/vision/batches``: each is one Execution of the
  ``vision.batch`` manual job (docs/architecture.md, "One run lifecycle"),
  so cancel is the core's ``execution_cancel``. A batch of more than
  ``VISION_CHUNK_SIZE`` images also queues *chunk runs* (Executions of the
  ``vision.batch-chunk`` manual job, ids in ``chunk_execution_ids``) that
  share its images with it on other worker processes: every run claims
  pending images a few at a time (``BatchImage.claimed_by``) until none is
  left; the batch's own run waits for the images others claimed and writes
  the report.
"""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from scheduling.models import Execution


class Batch(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Processing"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE_STATUSES = (Status.PENDING, Status.PROCESSING)

    class Source(models.TextChoices):
        CRON = "cron", "Cron run (external API)"
        API = "api", "Batch API upload"
        CLI = "cli", "One-shot processor"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False, help_text="The batch_id.")
    source = models.CharField(max_length=8, choices=Source.choices, help_text="What created the batch.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING,
                              help_text="Where the analysis is (a cancelled or lost run reads as cancelled/failed).")
    execution = models.ForeignKey(
        Execution, null=True, blank=True, on_delete=models.SET_NULL, related_name="vision_batches",
        help_text="The run that analyses it: its own vision.batch run, or the cron run that fetched it.",
    )
    vision_analysis_id = models.CharField(max_length=100, blank=True, help_text="The external API's analysis id.")
    run_code = models.CharField(max_length=200, blank=True, help_text="vision_analysis_run_code of the analysis.")
    external_organization_id = models.CharField(max_length=100, blank=True,
                                                help_text="organization_id as the external API names it.")
    organization_name = models.CharField(max_length=200, blank=True)
    user_query = models.TextField(blank=True, help_text="What to look for (the analysis prompt).")
    model = models.CharField(max_length=64, default="inspector", help_text="Analyzer name (GET /available_models).")
    descriptions = models.JSONField(default=dict, blank=True, help_text="File name → description.")

    total_images = models.PositiveIntegerField(default=0)
    processed_images = models.PositiveIntegerField(default=0, help_text="Images analysed so far (failed ones included).")
    failed_images = models.PositiveIntegerField(default=0)
    flagged_images = models.PositiveIntegerField(default=0, help_text="Images with at least one flag.")
    summary = models.JSONField(default=dict, blank=True, help_text="Counts per flag and the model's answer.")
    error = models.TextField(blank=True, help_text="Why the batch failed.")
    report_path = models.CharField(max_length=500, blank=True, help_text="Report file under VISION_STORAGE_DIR.")
    report_size = models.PositiveIntegerField(default=0)
    chunk_execution_ids = models.JSONField(
        default=list, blank=True,
        help_text="Executions of the vision.batch-chunk job sharing this batch's images (cancelled with it).",
    )

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="vision_batches",
        help_text="Who the batch belongs to (the uploader, or the cron job's owner).",
    )
    organization = models.ForeignKey(
        "jobsite.Organization", null=True, blank=True, on_delete=models.SET_NULL, related_name="vision_batches",
        help_text="Members of this organization see the batch.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "batches"
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="vbatch_owner_created"),
            models.Index(fields=["organization", "-created_at"], name="vbatch_org_created"),
            models.Index(fields=["execution"], name="vbatch_execution"),
        ]

    def __str__(self) -> str:
        return f"batch {self.pk} ({self.status})"

    @property
    def effective_status(self) -> str:
        """The stored status, corrected by the run's: a batch whose run was
        cancelled or died before it finished is cancelled/failed."""
        if self.status in self.ACTIVE_STATUSES and self.execution is not None:
            run = self.execution.status
            if run == Execution.Status.CANCELLED:
                return self.Status.CANCELLED
            if run in Execution.FAILURE_STATUSES or run == Execution.Status.SUCCESS:
                return self.Status.FAILED
        return self.status

    @property
    def progress(self) -> float:
        return round(100.0 * self.processed_images / self.total_images, 1) if self.total_images else 0.0


class BatchImage(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        WORKING = "working", "Being analysed"
        DONE = "done", "Analysed"
        FAILED = "failed", "Failed"

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="images")
    position = models.PositiveIntegerField(help_text="Order in the batch (and the report).")
    filename = models.CharField(max_length=255, help_text="The file name as sent (document_name).")
    stored_name = models.CharField(max_length=255, blank=True, help_text="File under the batch's storage directory.")
    description = models.TextField(blank=True)
    size_bytes = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    metrics = models.JSONField(default=dict, blank=True, help_text="Measurements (see vision_pipeline.analyzers).")
    flags = models.JSONField(default=list, blank=True, help_text="Names of the thresholds it falls outside of.")
    findings = models.JSONField(default=list, blank=True, help_text="Sentences for the report.")
    thumbnail = models.TextField(blank=True, help_text="A small JPEG as a data: URI, for the report.")
    error = models.TextField(blank=True)
    claimed_by = models.ForeignKey(
        Execution, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The run analysing it (the batch's own run or one of its chunk runs).",
    )
    claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["batch", "position"]
        constraints = [models.UniqueConstraint(fields=["batch", "position"], name="vbatchimage_position_unique")]
        indexes = [models.Index(fields=["batch", "status", "position"], name="vbatchimage_claim")]

    def __str__(self) -> str:
        return f"{self.filename} ({self.status})"
