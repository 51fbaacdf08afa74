"""Every run that shares a batch (its own run and its chunk runs) claims the
batch's pending images a few at a time, so the runs balance by themselves
whatever each image costs. A claim is a conditional update, so two runs never
get the same image; an outcome counts only while its run's claim holds; the
images of a run that is gone, or whose claim is stale, go back to pending.

A batch whose run streams its images in (services.feed) has fewer rows than
``total_images`` while they download: its runs wait for more (``arriving``)
instead of ending when nothing is pending yet."""
from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterator

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
# Near the end (few pending) a run claims one image at a time, so the last
# images spread over the runs instead of one run finishing two while another idles.
CLAIM_ONE_BELOW = 2 * CLAIM_SIZE
# How often a waiting run looks again, at most: the batch's own run waits for the
# last images of other runs before its report, so the wait is part of every run's
# tail. It looks soon at first (``poll_pauses``): most waits are for one image.
WAIT_POLL_SECONDS = 0.05
FIRST_POLL_SECONDS = 0.01
# A claim this old is taken over even if its run still reads "running" (a hung worker).
CLAIM_STALE_SECONDS = 600


def poll_pauses() -> Iterator[float]:
    """The pauses of a run waiting for other runs or for images: 10 ms, then each
    twice the last, up to ``WAIT_POLL_SECONDS``."""
    pause = FIRST_POLL_SECONDS
    while True:
        yield pause
        pause = min(pause * 2, WAIT_POLL_SECONDS)


def claim(batch_id, claimer_id: int | None, limit: int | None = None) -> list[BatchImage]:
    """Up to ``limit`` pending images of the batch, now claimed by ``claimer_id``
    (a conditional update: two runs never get the same image). [] when none is
    pending. No ``limit``: ``CLAIM_SIZE``, or one while few are pending."""
    while True:
        pending = list(BatchImage.objects.filter(batch_id=batch_id, status=BatchImage.Status.PENDING)
                       .order_by("position").values_list("pk", flat=True)[:max(limit or 0, CLAIM_ONE_BELOW + 1)])
        if not pending:
            return []
        take = limit if limit is not None else 1 if len(pending) <= CLAIM_ONE_BELOW else CLAIM_SIZE
        pending = pending[:take]
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
                    should_stop: Callable[[], bool] | None, step: Callable[[], None] | None = None) -> int:
    """Claim and analyse the batch's pending images until none is left; how many this run analysed.
    A damaged image is recorded on its card and the next one goes on. ``step`` is
    called before each claim and after each image (the run's progress, which
    throttles itself: services.progress; the images its downloads added: services.feed)."""
    analysed = 0
    while True:
        if step is not None:
            step()
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
            else:
                analysis = analyzer.analyze_image(image, description=description, context=context)
                if record(batch, row, analysis=analysis, thumbnail=image.thumbnail):
                    analysed += 1
            if step is not None:
                step()


def arriving(batch: Batch) -> bool:
    """Whether the batch's images are still being added (streamed in as they download)."""
    return BatchImage.objects.filter(batch_id=batch.pk).count() < batch.total_images


def wait_for_others(batch: Batch, *, claimer_id: int | None, deadline: float | None, timeout_seconds: float,
                    should_stop: Callable[[], bool] | None, step: Callable[[], None] | None = None) -> bool:
    """Wait while other runs finish the images they claimed. An image whose run
    is no longer running (cancelled, failed, lost) or whose claim is stale goes
    back to pending: True then, and the caller analyses it."""
    pauses = poll_pauses()
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
        if step is not None:
            step()
        time.sleep(next(pauses))
