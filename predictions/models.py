"""Bulk prediction uploads (seed 004).

A ``BulkUploadJob`` is one uploaded file and what came of it: progress
counters, predictions and row errors. Its run is an ``Execution`` of the
``predictions.bulk-upload`` manual job (docs/architecture.md, "One run
lifecycle"): claim, finish, cancel by revoking its task id, reap-lost and
timeouts are the core's, and the seed's status is *derived* from the
execution's — there is no second status column.
"""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from scheduling.models import Execution


class BulkUploadJob(models.Model):
    class JobType(models.TextChoices):
        ANNUAL = "annual", "Annual"
        QUARTERLY = "quarterly", "Quarterly"

    class FileFormat(models.TextChoices):
        CSV = "csv", "CSV"
        XLSX = "xlsx", "XLSX"

    class Status(models.TextChoices):
        """Seed 004's statuses: a reading of the execution's, never stored."""

        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Processing"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"

    #: Execution status → seed status (anything else: failed).
    STATUS_OF_EXECUTION = {
        Execution.Status.QUEUED: Status.PENDING,
        Execution.Status.RUNNING: Status.PROCESSING,
        Execution.Status.SUCCESS: Status.COMPLETED,
    }

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False, help_text="The upload's job_id in /api/v1/predictions (a UUID).")
    job_type = models.CharField(max_length=16, choices=JobType.choices, help_text="Which column schema the file follows.")
    execution = models.OneToOneField(
        Execution, null=True, blank=True, on_delete=models.CASCADE, related_name="bulk_upload",
        help_text="The run of the predictions.bulk-upload job that processes this file; its status is the job's.",
    )
    retry_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries",
        help_text="The job whose failed rows this one re-scores (retry-failed).",
    )

    original_filename = models.CharField(max_length=255, help_text="The file name the client sent.")
    file_format = models.CharField(max_length=8, choices=FileFormat.choices, help_text="Detected from the content.")
    file_size = models.BigIntegerField(default=0, help_text="Bytes stored.")
    stored_path = models.CharField(max_length=500, blank=True, help_text="Path under PREDICTIONS_STORAGE_DIR; removed with the job.")
    header = models.JSONField(default=list, blank=True, help_text="The file's column names, in file order.")

    total_rows = models.PositiveIntegerField(default=0, help_text="Data rows in the file (an estimate until the run ends).")
    processed_rows = models.PositiveIntegerField(default=0, help_text="Rows read and scored or rejected so far.")
    successful_rows = models.PositiveIntegerField(default=0, help_text="Rows that got a prediction.")
    failed_rows = models.PositiveIntegerField(default=0, help_text="Rows recorded as errors.")

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="bulk_uploads",
        help_text="Who uploaded it; they and their organization see it.",
    )
    organization = models.ForeignKey(
        "jobsite.Organization", null=True, blank=True, on_delete=models.SET_NULL, related_name="bulk_uploads",
        help_text="Members of this organization see and manage the job.",
    )
    created_by = models.CharField(max_length=150, blank=True, help_text="Username of the uploader at the time.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="Last progress update.")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="bulkupload_owner_created"),
            models.Index(fields=["organization", "-created_at"], name="bulkupload_org_created"),
            models.Index(fields=["-created_at"], name="bulkupload_created"),
        ]

    def __str__(self) -> str:
        return f"{self.job_type} upload {self.original_filename} ({self.pk})"

    # -- derived from the execution ------------------------------------------
    @property
    def status(self) -> str:
        if self.execution is None:
            return self.Status.PENDING
        return self.STATUS_OF_EXECUTION.get(self.execution.status, self.Status.FAILED)

    @property
    def is_active(self) -> bool:
        return self.status in (self.Status.PENDING, self.Status.PROCESSING)

    @property
    def started_at(self):
        return self.execution.started_at if self.execution else None

    @property
    def completed_at(self):
        return self.execution.completed_at if self.execution else None

    @property
    def error_message(self) -> str | None:
        """Why it failed (the run's error, e.g. ``Cancelled by alice: ...``)."""
        if self.status != self.Status.FAILED or self.execution is None:
            return None
        return self.execution.error or self.execution.output or "failed"

    @property
    def processing_time_seconds(self) -> float | None:
        started = self.started_at
        if started is None:
            return None
        end = self.completed_at or timezone.now()
        return max((end - started).total_seconds(), 0.0)

    @property
    def rows_per_second(self) -> float | None:
        elapsed = self.processing_time_seconds
        if not elapsed or not self.processed_rows:
            return None
        return self.processed_rows / elapsed

    @property
    def progress_percentage(self) -> float:
        if self.status == self.Status.COMPLETED:
            return 100.0
        if not self.total_rows:
            return 0.0
        return round(min(100.0, 100.0 * self.processed_rows / self.total_rows), 2)

    @property
    def remaining_rows(self) -> int:
        return max(self.total_rows - self.processed_rows, 0)

    @property
    def estimated_completion_seconds(self) -> int | None:
        """While processing: remaining rows at the rate so far."""
        if self.status != self.Status.PROCESSING:
            return None
        rate = self.rows_per_second
        if not rate:
            return None
        return int(round(self.remaining_rows / rate))


class Prediction(models.Model):
    """One scored row. Written in bulk (COPY on PostgreSQL); the composite key
    (upload, row) is the only index, which is what the results download reads
    and what deleting a job removes."""

    pk = models.CompositePrimaryKey("upload_id", "row_number")
    # No database FK constraint: PostgreSQL checks one per inserted row at commit (~4.5 s per
    # million rows, as long as the COPY itself). Only upload_process writes these rows, with
    # its own upload's key, and deleting an upload deletes them (services and Django's cascade).
    upload = models.ForeignKey(BulkUploadJob, on_delete=models.CASCADE, related_name="predictions", db_index=False,
                               db_constraint=False)
    row_number = models.PositiveIntegerField(help_text="Row in the file as a spreadsheet shows it (the header is row 1).")
    company_symbol = models.CharField(max_length=32)
    company_name = models.CharField(max_length=255, blank=True)
    sector = models.CharField(max_length=100)
    fiscal_year = models.SmallIntegerField()
    fiscal_quarter = models.SmallIntegerField(null=True, blank=True)
    probability_of_default = models.FloatField(help_text="Ohlson (1980) model 1: P(failure within one year).")
    o_score = models.FloatField(help_text="Ohlson's T, the score the probability comes from.")
    z_score = models.FloatField(help_text="Altman's Z''-score, the score the risk band comes from.")
    risk_band = models.CharField(max_length=16, help_text="Altman Z'' zone: safe, grey or distress.")

    class Meta:
        ordering = ["upload", "row_number"]

    def __str__(self) -> str:
        return f"{self.company_symbol} row {self.row_number}: {self.probability_of_default:.4f}"


class RowError(models.Model):
    """A row that could not be scored, with its original values (errors.csv)."""

    id = models.BigAutoField(primary_key=True)
    upload = models.ForeignKey(BulkUploadJob, on_delete=models.CASCADE, related_name="row_errors", db_index=False)
    row_number = models.PositiveIntegerField(help_text="Row in the file as a spreadsheet shows it (the header is row 1).")
    company_symbol = models.CharField(max_length=255, blank=True)
    error = models.TextField(help_text="What is wrong, e.g. 'Missing required field: sector'.")
    values = models.JSONField(default=dict, blank=True, help_text="The row's original cells, by column.")

    class Meta:
        ordering = ["upload", "row_number"]
        indexes = [models.Index(fields=["upload", "row_number"], name="rowerror_upload_row")]

    def __str__(self) -> str:
        return f"row {self.row_number}: {self.error}"
