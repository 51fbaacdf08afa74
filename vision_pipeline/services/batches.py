"""Batches made through the API: each is a run of the ``vision.batch`` manual
job, so cancel is the core's ``execution_cancel``. A large batch's run shares
its images with runs of the ``vision.batch-chunk`` manual job on other worker
processes."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from django.conf import settings
from django.db import transaction

from jobsite.exceptions import ApplicationError, Conflict
from scheduling import services as core
from scheduling.executors import RunResult
from scheduling.models import Execution, Job
from vision_pipeline import analyzers
from vision_pipeline.errors import ErrorCode
from vision_pipeline.images import warm_up
from vision_pipeline.models import Batch, BatchImage
from vision_pipeline.services.analysis import batch_analyze, batch_create, batch_discard_files, batch_fail
from vision_pipeline.services.claims import analyse_pending, arriving, poll_pauses
from vision_pipeline.services.deadlines import AnalysisTimeout, BatchStopped, check_running
from vision_pipeline.services.progress import RunProgress

logger = logging.getLogger(__name__)

BATCH_KIND = "vision_batch"
BATCH_JOB_NAME = "vision.batch"
CHUNK_KIND = "vision_batch_chunk"
CHUNK_JOB_NAME = "vision.batch-chunk"


def _manual_job(*, name: str, kind: str, title: str, description: str) -> Job:
    return core.job_ensure_manual(name=name, kind=kind, queue=settings.VISION_QUEUE,
                                  timeout_seconds=settings.VISION_ANALYSIS_TIMEOUT_SECONDS, title=title,
                                  description=description)


def batch_job() -> Job:
    return _manual_job(
        name=BATCH_JOB_NAME, kind=BATCH_KIND, title="Vision batches",
        description="Analyses batches uploaded to /api/v1/vision/batches. Each batch is one run; tune the queue, "
                    "timeout and retries here.",
    )


def chunk_job() -> Job:
    return _manual_job(
        name=CHUNK_JOB_NAME, kind=CHUNK_KIND, title="Vision batch chunks",
        description="Share the images of a large vision batch with its own run, on other worker processes. "
                    "Cancelled with their batch; pause this job to analyse each batch in its own run only.",
    )


def chunk_runs_for(pending: int) -> int:
    """How many chunk runs to queue beside a batch's own run for ``pending`` images:
    one per ``VISION_CHUNK_SIZE`` images beyond the first chunk, at most
    ``VISION_MAX_CHUNKS`` runs in all."""
    size = max(1, settings.VISION_CHUNK_SIZE)
    most = max(1, settings.VISION_MAX_CHUNKS)
    return max(0, min(-(-pending // size), most) - 1)


def batch_submit(*, user, files: list[tuple[str, Path]], user_query: str, descriptions: dict[str, str],
                 model: str, organization_id: str = "") -> Batch:
    """Record an uploaded batch and queue its analysis (202)."""
    from jobsite.tenancy import user_default_organization

    if model != analyzers.DEFAULT:
        try:
            ok, why = analyzers.get(model).available()
        except LookupError as exc:
            raise ApplicationError(str(exc), status=400, code=ErrorCode.UNKNOWN_MODEL) from None
        if not ok:
            raise ApplicationError(f"Model '{model}' is not available: {why}", status=400,
                                   code=ErrorCode.MODEL_NOT_CONFIGURED)
    batch = None
    try:
        with transaction.atomic():
            owner = user if getattr(user, "pk", None) else None
            batch = batch_create(source=Batch.Source.API, files=files, user_query=user_query,
                                 descriptions=descriptions, model=model, owner=owner,
                                 organization=user_default_organization(owner),
                                 external_organization_id=organization_id)
            core.job_execute_for(
                obj=batch, job=batch_job(), actor=owner, actor_label=getattr(user, "username", ""),
                override_kwargs={"batch_id": str(batch.pk)},
                paused_message=f"Vision batches are paused by an operator (job '{BATCH_JOB_NAME}'); try again later.",
            )
    except BaseException:
        if batch is not None:  # its rows were rolled back: so go its files
            batch_discard_files(batch)
        raise
    return batch


def batch_fan_out(*, batch: Batch, execution: Execution) -> list[int]:
    """Queue the chunk runs that share ``batch``'s pending images with its own
    run ``execution``; their ids are recorded on the batch (cancel cancels
    them). None when the batch is small, or the chunk job is paused or cannot
    be queued: the batch's own run then analyses every image. Counted on the
    images not yet analysed, also those still downloading (services.feed)."""
    count = chunk_runs_for(batch.total_images - batch.images.exclude(status=BatchImage.Status.PENDING).count())
    if not count:
        return []
    ids: list[int] = []
    try:
        job = chunk_job()
        # one at a time, each sent as it commits: the first starts on a free
        # process while the rest are queued (with 2 processes only the first works)
        for _ in range(count):
            with transaction.atomic():
                chunk = core.job_execute(job=job, actor_label=f"vision batch {batch.pk}",
                                         override_kwargs={"batch_id": str(batch.pk),
                                                          "parent_execution_id": execution.pk})
                ids.append(chunk.pk)
                Batch.objects.filter(pk=batch.pk).update(
                    chunk_execution_ids=[*(batch.chunk_execution_ids or []), *ids])
    except (Conflict, ApplicationError) as exc:  # paused, or the broker is down: this run does the rest
        logger.warning("batch %s: %s chunk runs (%s); its own run analyses the rest", batch.pk,
                       len(ids) or "no", exc)
    batch.chunk_execution_ids = [*(batch.chunk_execution_ids or []), *ids]
    return ids


def batch_run(*, execution: Execution, batch_id: str) -> RunResult:
    """The vision.batch executor's run: queue the chunk runs, analyse the stored
    batch with them, write the report."""
    batch = Batch.objects.filter(pk=batch_id).first()
    if batch is None:
        return RunResult(ok=False, output=f"Batch {batch_id} was deleted before it ran.")
    if batch.status not in Batch.ACTIVE_STATUSES:
        return RunResult(ok=False, output=f"Batch {batch_id} is already {batch.status}.", batch_id=str(batch.pk))
    chunks = batch_fan_out(batch=batch, execution=execution)

    def stopped() -> bool:
        return not core.execution_is_running(execution=execution)

    try:
        batch = batch_analyze(batch=batch, should_stop=stopped, execution=execution,
                              progress=RunProgress(execution, total_images=batch.total_images))
    except AnalysisTimeout as exc:
        return RunResult(ok=False, output=str(exc), batch_id=str(batch.pk))
    ok = batch.status == Batch.Status.COMPLETED
    mine = BatchImage.objects.filter(batch=batch, claimed_by=execution).count()
    output = (f"Analysed {batch.processed_images - batch.failed_images} of {batch.total_images} images, "
              f"{batch.flagged_images} with findings" if ok else f"Batch failed: {batch.error}")
    if ok and chunks:
        output += f" ({mine} here, the rest in {len(chunks)} chunk runs)"
    return RunResult(ok=ok, output=output, batch_id=str(batch.pk),
                     result={"batch_id": str(batch.pk), "total_images": batch.total_images,
                             "failed_images": batch.failed_images, "flagged_images": batch.flagged_images,
                             "chunk_execution_ids": chunks, "analysed_here": mine})


def batch_chunk_run(*, execution: Execution, batch_id: str, parent_execution_id: int) -> RunResult:
    """A vision.batch-chunk run: analyse pending images of the batch while its own run goes on."""
    batch = Batch.objects.filter(pk=batch_id).first()
    if batch is None:
        return RunResult(output=f"Nothing to do: batch {batch_id} was deleted.")
    runs = [execution.pk, int(parent_execution_id)]

    def stopped() -> bool:  # this run cancelled, the batch's own run gone (cancelled, failed, finished), or
        # the batch over while that run goes on (a /cron-jobs run whose analysis timed out moves to the next one)
        return (Execution.objects.filter(pk__in=runs, status=Execution.Status.RUNNING).count() < len(runs)
                or not Batch.objects.filter(pk=batch.pk, status__in=Batch.ACTIVE_STATUSES).exists())

    if batch.status not in Batch.ACTIVE_STATUSES or stopped():
        return RunResult(output=f"Nothing to do: batch {batch.pk} is {batch.effective_status}.", batch_id=str(batch.pk))
    context = analyzers.BatchContext(user_query=batch.user_query, descriptions=batch.descriptions or {})
    analyzer = analyzers.get(batch.model)
    warm_up()  # before it claims: its images are not held while it imports
    progress = RunProgress(execution, total_images=batch.total_images)
    progress.start_batch(batch.pk)
    analysed = 0
    pauses = poll_pauses()
    try:
        while True:
            done = analyse_pending(batch, analyzer, context, claimer_id=execution.pk, paths={}, deadline=None,
                                   timeout_seconds=0, should_stop=stopped, step=progress.tick)
            analysed += done
            if not arriving(batch):  # else its run is still downloading images: wait for more
                break
            if done:
                pauses = poll_pauses()  # images came: the next wait starts short again
            check_running(None, 0, stopped)
            time.sleep(next(pauses))
    except BatchStopped:
        return RunResult(output=f"Stopped: batch {batch.pk} is no longer being analysed.", batch_id=str(batch.pk),
                         result={"batch_id": str(batch.pk), "analysed": analysed})
    return RunResult(output=f"Analysed {analysed} images of batch {batch.pk}", batch_id=str(batch.pk),
                     result={"batch_id": str(batch.pk), "analysed": analysed})


def batch_cancel(*, batch: Batch, actor) -> Batch:
    """Cancel a pending or processing batch: its run and its chunk runs are
    cancelled (revoked) by the core."""
    if batch.effective_status not in Batch.ACTIVE_STATUSES or batch.execution is None \
            or batch.source != Batch.Source.API:
        raise ApplicationError(f"Batch {batch.pk} is {batch.effective_status}; only pending or processing batches "
                               f"uploaded through the API can be cancelled.", status=409,
                               code=ErrorCode.BATCH_NOT_ACTIVE)
    by = {"actor": actor if getattr(actor, "pk", None) else None, "actor_label": getattr(actor, "username", "")}
    runs = [batch.execution, *Execution.objects.filter(pk__in=batch.chunk_execution_ids or [],
                                                       status__in=Execution.ACTIVE_STATUSES)]
    for run in runs:
        try:
            core.execution_cancel(execution=run, reason="batch cancelled through the API", **by)
        except Conflict:
            pass  # finished meanwhile
    batch_fail(batch, "Cancelled", cancelled=True)
    batch.refresh_from_db()
    return batch
