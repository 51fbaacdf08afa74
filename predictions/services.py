"""Services: the only code that writes bulk uploads, their predictions and
row errors, and that starts or stops their runs (through the core's run
lifecycle: ``scheduling.services``)."""
from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from jobsite.exceptions import ApplicationError, Conflict
from jobsite.parsers import unstorable_value
from predictions.errors import ErrorCode
from predictions.models import BulkUploadJob, Prediction, RowError
from predictions.schema import RETRY_EXTRA_COLUMNS, header_problems
from predictions.uploads import StoredUpload, remove_stored, stored_file
from scheduling import services as scheduling_services
from scheduling.executors import RunResult
from scheduling.models import Execution, Job

logger = logging.getLogger(__name__)

MANUAL_JOB_NAME = "predictions.bulk-upload"
KIND = "bulk_prediction"
QUEUE = "predictions"
PROGRESS_STATE = "PROGRESS"
CELERY_STATE_EVERY_SECONDS = 1.0
# Scored batches are stored and counted together, in one transaction, once they
# took this long to score or hold this many rows: progress moves about every
# half second, and commits (one lock, one COPY, one counter update) stay few.
COMMIT_EVERY_SECONDS = 0.25
COMMIT_MAX_ROWS = 50_000


def bulk_upload_job() -> Job:
    """The manual job every upload is a run of (created on first use)."""
    return scheduling_services.job_ensure_manual(
        name=MANUAL_JOB_NAME, kind=KIND, queue=QUEUE, timeout_seconds=settings.PREDICTIONS_TIMEOUT_SECONDS,
        title="Bulk predictions",
        description="Scores uploaded CSV/XLSX files (/api/v1/predictions). Each upload is one run; tune the queue, "
                    "timeout and retries here.",
    )


def _inspect(stored: StoredUpload, file_format: str):
    from predictions import readers

    if stored.problem is not None:
        raise stored.problem
    if file_format == "xlsx":
        return readers.inspect_xlsx(stored.path)
    return readers.inspect_csv(stored)


def upload_create(
    *, user, job_type: str, stored: StoredUpload, file_format: str, retry_of: BulkUploadJob | None = None,
    actor_label: str = "", trigger: str = Execution.Trigger.API,
) -> BulkUploadJob:
    """Check the stored file (type, header), record the upload as ``pending``
    and queue its run. The stored file is removed when anything is refused."""
    from jobsite.tenancy import user_default_organization

    try:
        if job_type not in BulkUploadJob.JobType.values:
            raise ApplicationError(f"Unknown job type '{job_type}': use annual or quarterly.", status=400,
                                   code=ErrorCode.JOB_TYPE)
        problem = unstorable_value(stored.name or "", "file (file name)")
        if problem:
            raise ApplicationError(problem, status=400, code=ErrorCode.TEXT_INVALID)
        inspection = _inspect(stored, file_format)
        problem = header_problems(inspection.header, job_type, allow_extra=RETRY_EXTRA_COLUMNS if retry_of else ())
        if problem:
            raise ApplicationError(problem, status=400, code=ErrorCode.HEADER_INVALID)
        total_rows = inspection.total_rows
        if retry_of is not None:
            total_rows = min(total_rows, retry_of.failed_rows) if total_rows else retry_of.failed_rows
        with transaction.atomic():
            job = bulk_upload_job()
            organization = retry_of.organization if retry_of is not None else user_default_organization(user)
            upload = BulkUploadJob.objects.create(
                job_type=job_type, original_filename=(stored.name or "")[:255], file_format=file_format,
                file_size=stored.size, stored_path=stored.relative_path, header=inspection.header,
                total_rows=total_rows, retry_of=retry_of,
                owner=user if getattr(user, "pk", None) else None, organization=organization,
                created_by=getattr(user, "username", "") or actor_label,
            )
            scheduling_services.job_execute_for(
                obj=upload, job=job, actor=user if getattr(user, "pk", None) else None, actor_label=actor_label,
                trigger=trigger, override_kwargs={"upload_id": str(upload.pk)},
                paused_message=f"Bulk predictions are paused by an operator (job '{job.name}'); try again later.",
            )
    except BaseException:
        remove_stored(stored.relative_path)
        raise
    return upload


# ---------------------------------------------------------------------------
# The run (in the worker, inside the execution's Celery task)
# ---------------------------------------------------------------------------
class _Cancelled(Exception):
    pass


def _still_running(execution_id: int) -> bool:
    """Inside the chunk's transaction: lock the execution row, so a cancel
    either commits first (and this chunk is dropped) or waits for it."""
    status = list(Execution.objects.select_for_update().filter(pk=execution_id).values_list("status", flat=True))
    return bool(status) and status[0] == Execution.Status.RUNNING


def _celery_progress(meta: dict) -> None:
    from celery import current_task

    task = current_task._get_current_object()  # None outside a worker task
    if task is None or not getattr(task.request, "id", None):
        return
    try:
        task.update_state(state=PROGRESS_STATE, meta=meta)
    except Exception:  # the result backend is for display; never fail the run for it
        logger.warning("could not publish progress of task %s", task.request.id, exc_info=True)


def upload_process(*, execution: Execution, upload_id: str) -> RunResult:
    """Score the upload's file in bounded batches: validate, score, store in
    bulk, update the counters (and the Celery task state) after every batch,
    and stop as soon as the execution is no longer running (cancelled)."""
    import numpy as np

    from predictions import readers, rows, storage

    upload = BulkUploadJob.objects.filter(pk=upload_id).first()
    if upload is None:
        return RunResult(ok=False, output=f"Upload {upload_id} was deleted before it ran.")
    path = stored_file(upload.stored_path)
    if not path.exists():
        return RunResult(ok=False, output="The uploaded file is missing from storage.")

    # A re-run (the previous worker was lost) starts over.
    Prediction.objects.filter(upload=upload).delete()
    RowError.objects.filter(upload=upload).delete()

    only_rows = None
    if upload.retry_of_id:
        from predictions.selectors import upload_failed_row_numbers

        only_rows = np.asarray(upload_failed_row_numbers(upload=upload.retry_of) if upload.retry_of else [],
                               dtype=np.int64)
    uses_row_column = "row" in upload.header
    upload_key = str(upload.pk)
    # The key as the database stores it (hex on SQLite, uuid on PostgreSQL): rows are written raw.
    db_key = str(BulkUploadJob._meta.pk.get_db_prep_value(upload.pk, connection))

    started = time.monotonic()
    counts = {"processed_rows": 0, "successful_rows": 0, "failed_rows": 0, "total_rows": upload.total_rows}
    last_celery = 0.0

    def commit(group: list) -> None:
        """Store a group of scored batches and the new counters in one
        transaction; first lock the execution row, so that a cancel either
        committed before (this group is dropped and the run stops) or waits
        for this commit (its rows are counted before the cancel answers)."""
        nonlocal last_celery
        with transaction.atomic():
            if connection.vendor == "postgresql":
                # Safe to lose on a database crash: the counters are in the same transaction, and a
                # re-run starts over. Saves a WAL flush (tens of ms on a slow disk) per commit.
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL synchronous_commit TO OFF")
            if not _still_running(execution.pk):
                raise _Cancelled
            import pyarrow as pa

            storage.predictions_store(pa.concat_tables([outcome.predictions for outcome in group]))
            storage.row_errors_store(upload.pk, [failure for outcome in group for failure in outcome.failures])
            for outcome in group:
                counts["processed_rows"] += outcome.processed
                counts["successful_rows"] += outcome.predictions.num_rows
                counts["failed_rows"] += len(outcome.failures)
            counts["total_rows"] = max(counts["total_rows"], counts["processed_rows"])
            BulkUploadJob.objects.filter(pk=upload.pk).update(**counts, updated_at=timezone.now())
        now = time.monotonic()
        if now - last_celery >= CELERY_STATE_EVERY_SECONDS:
            last_celery = now
            _celery_progress({"upload_id": upload_key, **counts})

    try:
        group, group_started = [], time.monotonic()
        for batch in readers.batches(path, upload.file_format, upload.header):
            if only_rows is not None:
                batch = _retry_rows(batch, only_rows, uses_row_column)
            group.append(rows.score_batch(batch, job_type=upload.job_type, upload_id=db_key))
            if (time.monotonic() - group_started >= COMMIT_EVERY_SECONDS
                    or sum(outcome.processed for outcome in group) >= COMMIT_MAX_ROWS):
                commit(group)
                group, group_started = [], time.monotonic()
        if group:
            commit(group)
    except _Cancelled:
        return RunResult(ok=False, output=f"Cancelled after {counts['processed_rows']} rows.")
    except ApplicationError as exc:  # the file turned out unreadable mid-way
        return RunResult(ok=False, output=exc.message, result={k: v for k, v in counts.items() if k != "total_rows"})
    processed, successful, failed = counts["processed_rows"], counts["successful_rows"], counts["failed_rows"]
    BulkUploadJob.objects.filter(pk=upload.pk).update(total_rows=processed, updated_at=timezone.now())
    elapsed = time.monotonic() - started
    rate = processed / elapsed if elapsed > 0 else None
    return RunResult(
        output=f"{successful} predictions, {failed} row errors, {processed} rows"
               + (f" ({rate:,.0f} rows/s)" if rate else ""),
        result={**_counts(processed, successful, failed), "upload_id": upload_key,
                "rows_per_second": round(rate, 1) if rate else None},
    )


def _counts(processed: int, successful: int, failed: int) -> dict[str, int]:
    return {"processed_rows": processed, "successful_rows": successful, "failed_rows": failed}


def _retry_rows(batch, only_rows, uses_row_column: bool):
    """Keep the rows that failed in the earlier job. A corrected errors.csv
    names them in its ``row`` column; the original file, by position."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from predictions.readers import Batch
    from predictions.rows import parse_numbers

    if uses_row_column:
        numbers, _ = parse_numbers(pc.utf8_trim_whitespace(batch.table.column("row").combine_chunks()))
        with np.errstate(invalid="ignore"):
            row_numbers = np.where(np.isfinite(numbers), numbers, -1).astype(np.int64)
    else:
        row_numbers = batch.row_numbers
    keep = np.isin(row_numbers, only_rows)
    malformed = [] if uses_row_column else [item for item in batch.malformed if item[0] in set(only_rows.tolist())]
    return Batch(table=batch.table.filter(pa.array(keep)), row_numbers=row_numbers[keep], malformed=malformed)


# ---------------------------------------------------------------------------
# Cancel, delete
# ---------------------------------------------------------------------------
def _cannot_cancel(status: str) -> ApplicationError:
    return ApplicationError(
        f"Cannot cancel job with status '{status}'. Only pending or processing jobs can be cancelled.",
        status=400, code=ErrorCode.CANNOT_CANCEL,
    )


@transaction.atomic
def upload_cancel(*, upload: BulkUploadJob, actor=None, actor_label: str = "",
                  reason: str = "job cancelled") -> tuple[BulkUploadJob, bool]:
    """Cancel a pending or processing upload: its execution is cancelled and
    its Celery task revoked with terminate (scheduling.services.execution_cancel).
    Returns the upload and whether a task was revoked."""
    upload = BulkUploadJob.objects.select_related("execution").get(pk=upload.pk)
    if upload.execution is None or not upload.is_active:
        raise _cannot_cancel(upload.status)
    try:
        execution = scheduling_services.execution_cancel(
            execution=upload.execution, actor=actor, actor_label=actor_label, reason=reason,
        )
    except Conflict:  # it finished in the meantime
        upload.execution.refresh_from_db()
        raise _cannot_cancel(upload.status) from None
    upload.execution = execution
    return upload, bool(execution.celery_task_id)


@transaction.atomic
def upload_delete(*, upload: BulkUploadJob, actor=None, actor_label: str = "") -> dict[str, Any]:
    """Delete an upload that is not processing, with its predictions, row
    errors and stored file; a pending one is cancelled first so it never runs."""
    upload = BulkUploadJob.objects.select_related("execution").get(pk=upload.pk)
    if upload.execution_id:
        Execution.objects.select_for_update().filter(pk=upload.execution_id).first()
        upload.execution.refresh_from_db()
    status = upload.status
    if status == BulkUploadJob.Status.PROCESSING:
        raise ApplicationError(
            "Cannot delete job that is currently processing. Please cancel the job first or wait for it to complete.",
            status=400, code=ErrorCode.CANNOT_DELETE,
        )
    if status == BulkUploadJob.Status.PENDING and upload.execution is not None:
        scheduling_services.execution_cancel(execution=upload.execution, actor=actor, actor_label=actor_label,
                                             reason="job deleted")
    deleted = {"id": str(upload.pk), "status": status, "job_type": upload.job_type,
               "original_filename": upload.original_filename}
    relative = upload.stored_path
    # Predictions and row errors go in one DELETE each (no per-row signals).
    Prediction.objects.filter(upload=upload).delete()
    RowError.objects.filter(upload=upload).delete()
    upload.delete()
    transaction.on_commit(lambda: remove_stored(relative))
    return deleted


def upload_retry_failed(*, upload: BulkUploadJob, user, stored: StoredUpload, file_format: str) -> BulkUploadJob:
    """A new upload, linked to ``upload``, that scores only the rows that
    failed there: from a corrected errors.csv (its ``row`` column says which
    row each line is) or from the same file again."""
    if upload.is_active:
        remove_stored(stored.relative_path)
        raise ApplicationError(
            f"Job {upload.pk} is still {upload.status}: retry its failed rows once it has finished.",
            status=400, code=ErrorCode.NOT_COMPLETED,
        )
    if not upload.failed_rows:
        remove_stored(stored.relative_path)
        raise ApplicationError(f"Job {upload.pk} has no failed rows to retry.", status=400,
                               code=ErrorCode.NOTHING_TO_RETRY)
    return upload_create(user=user, job_type=upload.job_type, stored=stored, file_format=file_format, retry_of=upload)
