"""Every run that shares a batch (its own run and its chunk runs) claims the
batch's pending images a few at a time, so the runs balance by themselves
whatever each image costs. A claim is a conditional update, so two runs never
get the same image; an outcome counts only while its run's claim holds; the
images of a run that is gone, or whose claim is stale, go back to pending."""
from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Callable

from django.db.models import F
from django.utils import timezone

from scheduling.models import Execution
from vision_pipeline import analyzers
from vision_pipeline.images import ImageRefused, load_image
from vision_pipeline.models import Batch, BatchImage
from vision_pipeline.services.deadlines import check_running
from vision_pipeline.services.storage import image_path

logger = logging.getLogger(__name__)

CLAIM_SIZE = 2
WAIT_POLL_SECONDS = 0.2
# A claim this old is taken over even if its run still reads "running" (a hung worker).
CLAIM_STALE_SECONDS = 600


def claim(batch_id, claimer_id: int | None, limit: int = CLAIM_SIZE) -> list[BatchImage]:
    """Up to ``limit`` pending images of the batch, now claimed by ``claimer_id``
    (a conditional update: two runs never get the same image). [] when none is pending."""
    while True:
        pending = list(BatchImage.objects.filter(batch_id=batch_id, status=BatchImage.Status.PENDING)
                       .order_by("position").values_list("pk", flat=True)[:limit])
        if not pending:
            return []
        now = timezone.now()
        BatchImage.objects.filter(pk__in=pending, status=BatchImage.Status.PENDING).update(
            status=BatchImage.Status.WORKING, claimed_by_id=claimer_id, claimed_at=now)
        rows = list(BatchImage.objects.filter(pk__in=pending, status=BatchImage.Status.WORKING,
                                              claimed_by_id=claimer_id, claimed_at=now).order_by("position"))
        if rows:
            return rows  # else another run won every one of them: look again


def record(batch: Batch, row: BatchImage, *, analysis: analyzers.ImageAnalysis | None = None,
           thumbnail: str = "", error: str = "") -> bool:
    """Store one image's outcome, only while this run's claim on it holds (a
    claim taken over meanwhile means the other run's outcome counts)."""
    if analysis is not None:
        values = {"status": BatchImage.Status.DONE, "metrics": analysis.metrics, "flags": analysis.flags,
                  "findings": analysis.findings, "thumbnail": thumbnail}
    else:
        values = {"status": BatchImage.Status.FAILED, "error": error}
    updated = BatchImage.objects.filter(pk=row.pk, status=BatchImage.Status.WORKING, claimed_by_id=row.claimed_by_id,
                                        claimed_at=row.claimed_at).update(**values)
    if updated:
        Batch.objects.filter(pk=batch.pk).update(
            processed_images=F("processed_images") + 1,
            failed_images=F("failed_images") + (0 if analysis is not None else 1),
            flagged_images=F("flagged_images") + (1 if analysis is not None and analysis.flags else 0),
            updated_at=timezone.now(),
        )
    return bool(updated)


def analyse_pending(batch: Batch, analyzer: analyzers.Analyzer, context: analyzers.BatchContext, *,
                    claimer_id: int | None, paths: dict[int, Path], deadline: float | None, timeout_seconds: float,
                    should_stop: Callable[[], bool] | None) -> int:
    """Claim and analyse the batch's pending images until none is left; how many this run analysed.
    A damaged image is recorded on its card and the next one goes on."""
    analysed = 0
    while True:
        rows = claim(batch.pk, claimer_id)
        if not rows:
            return analysed
        for row in rows:
            check_running(deadline, timeout_seconds, should_stop)
            description = (batch.descriptions or {}).get(row.filename, "")
            try:
                image = load_image(image_path(batch, row, paths), filename=row.filename)
            except ImageRefused as exc:
                record(batch, row, error=str(exc))
                continue
            analysis = analyzer.analyze_image(image, description=description, context=context)
            if record(batch, row, analysis=analysis, thumbnail=image.thumbnail):
                analysed += 1


def wait_for_others(batch: Batch, *, claimer_id: int | None, deadline: float | None, timeout_seconds: float,
                    should_stop: Callable[[], bool] | None) -> bool:
    """Wait while other runs finish the images they claimed. An image whose run
    is no longer running (cancelled, failed, lost) or whose claim is stale goes
    back to pending: True then, and the caller analyses it."""
    while True:
        working = list(BatchImage.objects.filter(batch_id=batch.pk, status=BatchImage.Status.WORKING)
                       .values_list("pk", "claimed_by_id", "claimed_at"))
        if not working:
            return False
        others = {run for _pk, run, _at in working if run is not None and run != claimer_id}
        alive = set(Execution.objects.filter(pk__in=others, status=Execution.Status.RUNNING)
                    .values_list("pk", flat=True))
        stale = timezone.now() - timedelta(seconds=CLAIM_STALE_SECONDS)
        handed_back = 0
        for pk, run, at in working:
            if run not in alive or (at is not None and at < stale):
                handed_back += BatchImage.objects.filter(pk=pk, status=BatchImage.Status.WORKING, claimed_by_id=run,
                                                         claimed_at=at).update(
                    status=BatchImage.Status.PENDING, claimed_by=None, claimed_at=None)
        if handed_back:
            logger.warning("batch %s: %d image(s) claimed by runs that are gone were handed back", batch.pk,
                           handed_back)
            return True
        check_running(deadline, timeout_seconds, should_stop)
        time.sleep(WAIT_POLL_SECONDS)
