"""A vision run's progress while it runs, where the core wants it: the run's
``Execution.result`` through ``scheduling.services.execution_record_progress``,
as ``processed_images`` of ``total_images`` (and ``failed_images``), which the
dashboard's active runs and a run's admin page read for every kind.

Recorded as the run's images finish (a claim's images, or those other runs
finished while this one waits), at most once every ``PROGRESS_EVERY_SECONDS``
a run: two small statements then (read the batch's counters, write the run's
row), never a write per image. A /cron-jobs run counts the images of every
analysis it fetched; a chunk run shows its batch's progress."""
from __future__ import annotations

import time

from scheduling import services as core
from scheduling.models import Execution
from vision_pipeline.models import Batch

PROGRESS_EVERY_SECONDS = 1.0


class RunProgress:
    """The progress of ``execution`` over ``total_images`` images, batch by batch."""

    def __init__(self, execution: Execution | None, *, total_images: int, every: float | None = None):
        self.execution = execution
        self.total_images = total_images
        self.every = PROGRESS_EVERY_SECONDS if every is None else every
        self.batch_id = None
        self.done_before = 0  # images of the batches this run finished before the current one
        self.failed_before = 0
        self.records = 0
        self._next = 0.0  # the first tick records

    def start_batch(self, batch_id) -> None:
        self.batch_id = batch_id

    def end_batch(self, images: int, failed: int = 0) -> None:
        """The current batch (or an analysis that made none) is over: its ``images`` count as done."""
        self.batch_id = None
        self.done_before += images
        self.failed_before += failed
        self.tick(force=True)

    def tick(self, *, force: bool = False) -> None:
        """Record where the run is, unless it did less than ``every`` seconds ago."""
        if self.execution is None or self.execution.pk is None:
            return
        now = time.monotonic()
        if not force and now < self._next:
            return
        self._next = now + self.every
        processed = failed = 0
        if self.batch_id is not None:
            processed, failed = Batch.objects.filter(pk=self.batch_id).values_list(
                "processed_images", "failed_images").first() or (0, 0)
        result = {"processed_images": min(self.total_images, self.done_before + processed),
                  "total_images": self.total_images, "failed_images": self.failed_before + failed}
        if self.batch_id is not None:
            result["batch_id"] = str(self.batch_id)
        core.execution_record_progress(execution=self.execution, result=result)
        self.records += 1
