"""Reads of bulk uploads, tenancy-scoped inside (``user=`` is always explicit:
the request's user, or ``jobsite.tenancy.SYSTEM`` for the CLI and tasks)."""
from __future__ import annotations

import uuid

from django.db.models import Q, QuerySet

from jobsite.exceptions import ApplicationError
from jobsite.tenancy import get_visible, scope_to_user
from predictions.errors import ErrorCode
from predictions.models import BulkUploadJob, Prediction, RowError
from scheduling.models import Execution

NOT_FOUND = "Job not found or access denied"

#: Seed status → the execution statuses it reads.
STATUS_FILTERS = {
    BulkUploadJob.Status.PENDING: Q(execution__isnull=True) | Q(execution__status=Execution.Status.QUEUED),
    BulkUploadJob.Status.PROCESSING: Q(execution__status=Execution.Status.RUNNING),
    BulkUploadJob.Status.COMPLETED: Q(execution__status=Execution.Status.SUCCESS),
    BulkUploadJob.Status.FAILED: Q(execution__isnull=False) & ~Q(
        execution__status__in=[Execution.Status.QUEUED, Execution.Status.RUNNING, Execution.Status.SUCCESS]
    ),
}
#: Seed 004 also names a ``queued`` status (its DELETE rules): the same as pending here.
STATUS_ALIASES = {"queued": BulkUploadJob.Status.PENDING}


class NotFoundError(ApplicationError):
    def __init__(self):
        super().__init__(NOT_FOUND, status=404, code=ErrorCode.JOB_NOT_FOUND)


def _uploads() -> QuerySet[BulkUploadJob]:
    return BulkUploadJob.objects.select_related("execution", "owner", "organization")


def upload_list(*, user, status: str | None = None, limit: int | None = None) -> QuerySet[BulkUploadJob]:
    """Uploads ``user`` may see, newest first, optionally of one seed status."""
    qs = scope_to_user(_uploads(), user)
    if status:
        qs = qs.filter(STATUS_FILTERS[STATUS_ALIASES.get(status, status)])
    qs = qs.order_by("-created_at", "-pk")
    return qs[:limit] if limit else qs


def upload_get(*, user, job_id) -> BulkUploadJob:
    """One upload ``user`` may see; anything else (someone else's, unknown,
    not even a UUID) is the seed's 404."""
    try:
        key = uuid.UUID(str(job_id))
    except ValueError:
        raise NotFoundError() from None
    try:
        return get_visible(_uploads(), user, lookup={"pk": key}, not_found=NOT_FOUND)
    except ApplicationError as exc:
        if exc.status == 404:
            raise NotFoundError() from None
        raise


def upload_row_errors(*, upload: BulkUploadJob, limit: int | None = None) -> QuerySet[RowError]:
    qs = RowError.objects.filter(upload=upload).order_by("row_number", "id")
    return qs[:limit] if limit else qs


def upload_failed_row_numbers(*, upload: BulkUploadJob) -> list[int]:
    return list(RowError.objects.filter(upload=upload).order_by("row_number").values_list("row_number", flat=True))


def upload_predictions(*, upload: BulkUploadJob) -> QuerySet[Prediction]:
    return Prediction.objects.filter(upload=upload).order_by("row_number")
