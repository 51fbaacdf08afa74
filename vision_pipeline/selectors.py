"""Selectors of the vision pipeline: every read, tenancy-scoped (``user=``)."""
from __future__ import annotations

import uuid

from django.db.models import QuerySet

from jobsite.exceptions import ApplicationError
from jobsite.tenancy import get_visible, scope_to_user
from scheduling import selectors as core_selectors
from scheduling.models import Execution, Job
from vision_pipeline.errors import ErrorCode
from vision_pipeline.models import Batch

KIND = "vision_analysis"


def _not_found(message: str, code) -> ApplicationError:
    return ApplicationError(message, status=404, code=code)


def cron_job_list(*, user, enabled_only: bool = False) -> QuerySet[Job]:
    filters = {"kind": KIND, "is_enabled": True if enabled_only else None}
    return core_selectors.job_list(user=user, filters=filters).select_related("periodic_task")


def cron_job_get(*, user, job_id) -> Job:
    """A vision_analysis job by its public id (Job.uuid); anything else is a 404."""
    message = f"Cron job {job_id} not found"
    try:
        public_id = uuid.UUID(str(job_id))
    except ValueError:
        raise _not_found(message, ErrorCode.CRON_JOB_NOT_FOUND) from None
    queryset = Job.objects.filter(kind=KIND).select_related("periodic_task", "owner", "organization")
    try:
        return get_visible(queryset, user, lookup={"uuid": public_id}, not_found=message)
    except ApplicationError as exc:
        raise _not_found(exc.message, ErrorCode.CRON_JOB_NOT_FOUND) from None


def cron_job_executions(*, user, job: Job, limit: int) -> list[Execution]:
    return list(core_selectors.execution_list(user=user, job=job)[:limit])


def batch_list(*, user, limit: int = 50) -> list[Batch]:
    return list(scope_to_user(Batch.objects.select_related("execution"), user).order_by("-created_at")[:limit])


def batch_get(*, user, batch_id) -> Batch:
    message = f"Batch {batch_id} not found"
    try:
        key = uuid.UUID(str(batch_id))
    except ValueError:
        raise _not_found(message, ErrorCode.BATCH_NOT_FOUND) from None
    try:
        return get_visible(Batch.objects.select_related("execution"), user, lookup={"pk": key}, not_found=message)
    except ApplicationError as exc:
        raise _not_found(exc.message, ErrorCode.BATCH_NOT_FOUND) from None
