"""Seed 004's response shapes. Output is built from the model's derived
properties (status, progress, performance) in one place, for the API, the
admin and the CLI alike."""
from __future__ import annotations

import logging

from rest_framework import serializers

from predictions.models import BulkUploadJob
from predictions.selectors import STATUS_ALIASES

logger = logging.getLogger(__name__)

MAX_ERRORS_IN_DETAIL = 1000


def _iso(value):
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def human_duration(seconds: float | int | None) -> str | None:
    """``1m 25s``, ``45s``, ``2h 3m 4s``."""
    if seconds is None:
        return None
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def celery_info(upload: BulkUploadJob) -> dict:
    """The run's Celery task: its id (the execution's), state and progress meta."""
    task_id = upload.execution.celery_task_id if upload.execution else None
    info = {"task_id": task_id, "celery_status": None, "celery_meta": None}
    if not task_id:
        return info
    try:
        from celery.result import AsyncResult

        from jobsite.celery import app

        result = AsyncResult(task_id, app=app)
        info["celery_status"] = result.state
        meta = result.info
        info["celery_meta"] = meta if isinstance(meta, dict) else None
    except Exception:  # the result backend is for display only
        logger.warning("celery state of task %s unavailable", task_id, exc_info=True)
        info["celery_status"] = "UNKNOWN"
    return info


def progress(upload: BulkUploadJob) -> dict:
    return {
        "total_rows": upload.total_rows,
        "processed_rows": upload.processed_rows,
        "successful_rows": upload.successful_rows,
        "failed_rows": upload.failed_rows,
        "progress_percentage": upload.progress_percentage,
        "remaining_rows": upload.remaining_rows,
    }


def performance(upload: BulkUploadJob) -> dict:
    elapsed = upload.processing_time_seconds
    rate = upload.rows_per_second
    data = {
        "processing_time_seconds": round(elapsed, 2) if elapsed is not None else None,
        "rows_per_second": round(rate, 2) if rate is not None else None,
    }
    if upload.status == BulkUploadJob.Status.PROCESSING:
        eta = upload.estimated_completion_seconds
        data["estimated_completion_seconds"] = eta
        data["estimated_completion_time"] = human_duration(eta)
    else:
        data["estimated_completion_time"] = None
    return data


def error_details(upload: BulkUploadJob) -> dict:
    from predictions.selectors import upload_row_errors

    errors = [
        {"row": e.row_number, "company_symbol": e.company_symbol, "error": e.error}
        for e in upload_row_errors(upload=upload, limit=MAX_ERRORS_IN_DETAIL)
    ]
    return {"errors": errors, "truncated": upload.failed_rows > len(errors),
            "errors_csv_url": f"/api/v1/predictions/jobs/{upload.pk}/errors.csv"}


def job_detail(upload: BulkUploadJob, *, include_errors: bool = False) -> dict:
    """The seed's full ``job`` object."""
    message = upload.error_message
    errors = {
        "has_errors": bool(upload.failed_rows or message),
        "error_message": message,
        "error_count": upload.failed_rows,
    }
    if include_errors:
        errors["error_details"] = error_details(upload)
    return {
        "id": str(upload.pk),
        "status": upload.status,
        "job_type": upload.job_type,
        "file_info": {
            "original_filename": upload.original_filename,
            "file_size": upload.file_size,
            "file_size_mb": round(upload.file_size / (1024 * 1024), 2),
            "file_format": upload.file_format,
        },
        "progress": progress(upload),
        "performance": performance(upload),
        "timestamps": {
            "created_at": _iso(upload.created_at),
            "started_at": _iso(upload.started_at),
            "completed_at": _iso(upload.completed_at),
            "updated_at": _iso(upload.updated_at),
        },
        "context": {
            "user_id": str(upload.owner_id) if upload.owner_id else None,
            "organization_id": str(upload.organization_id) if upload.organization_id else None,
            "created_by": upload.created_by or None,
            "retry_of": str(upload.retry_of_id) if upload.retry_of_id else None,
        },
        "errors": errors,
        "celery_info": celery_info(upload),
    }


def job_status(upload: BulkUploadJob) -> dict:
    """The small status answer (for polling)."""
    perf = performance(upload)
    return {
        "success": True,
        "job_id": str(upload.pk),
        "status": upload.status,
        "job_type": upload.job_type,
        **progress(upload),
        "rows_per_second": perf["rows_per_second"],
        "estimated_completion_seconds": perf.get("estimated_completion_seconds"),
        "estimated_completion_time": perf["estimated_completion_time"],
        "error_message": upload.error_message,
        "updated_at": _iso(upload.updated_at),
    }


def job_summary(upload: BulkUploadJob) -> dict:
    return {
        "id": str(upload.pk),
        "status": upload.status,
        "job_type": upload.job_type,
        "original_filename": upload.original_filename,
        "file_size": upload.file_size,
        **progress(upload),
        "error_message": upload.error_message,
        "created_at": _iso(upload.created_at),
        "started_at": _iso(upload.started_at),
        "completed_at": _iso(upload.completed_at),
        "created_by": upload.created_by or None,
    }


def job_links(upload: BulkUploadJob) -> dict:
    base = f"/api/v1/predictions/jobs/{upload.pk}"
    return {"status_url": f"{base}/status", "job_url": base, "results_url": f"{base}/results",
            "cancel_url": f"{base}/cancel", "errors_csv_url": f"{base}/errors.csv"}


def upload_accepted(upload: BulkUploadJob) -> dict:
    return {
        "success": True,
        "message": f"File accepted: job {upload.pk} is {upload.status}; follow it at the status URL.",
        "job_id": str(upload.pk),
        "status": upload.status,
        "job_type": upload.job_type,
        "original_filename": upload.original_filename,
        "file_size": upload.file_size,
        "total_rows": upload.total_rows,
        "task_id": upload.execution.celery_task_id if upload.execution else None,
        **job_links(upload),
    }


def upload_cancelled(upload: BulkUploadJob, *, revoked: bool) -> dict:
    """The answer to POST .../jobs/{job_id}/cancel; ``revoked``: a Celery task was revoked."""
    return {
        "success": True,
        "message": f"Job {upload.pk} cancelled successfully",
        "cancelled_job": {
            "id": str(upload.pk), "status": upload.status, "job_type": upload.job_type,
            "original_filename": upload.original_filename, "celery_cancelled": revoked,
            "error_message": upload.error_message,
            "completed_at": _iso(upload.completed_at),
        },
    }


# ---------------------------------------------------------------------------
# Query parameters
# ---------------------------------------------------------------------------
class JobListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=[*BulkUploadJob.Status.values, *STATUS_ALIASES], required=False,
        help_text="pending (or queued), processing, completed or failed.",
    )
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=50)


class JobDetailQuerySerializer(serializers.Serializer):
    include_errors = serializers.BooleanField(default=False, help_text="Add error_details (the first 1,000 row errors).")


class UploadSerializer(serializers.Serializer):
    """For the OpenAPI schema and the browsable API form (the file itself is
    streamed to storage by predictions.uploads, not by this serializer)."""

    file = serializers.FileField(help_text="The CSV or XLSX file (multipart field 'file').")
