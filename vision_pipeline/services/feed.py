"""An analysis's images streamed into its batch (``ImageFeed``): a /cron-jobs
run records the batch before its images are downloaded, queues its chunk runs
at once, and adds each image (a pending ``BatchImage`` row) as soon as it is
on disk and its header checked, so its run and the chunk runs analyse the
first images while the rest download (docs/benchmarks.md, section 8: the
downloads were the serial head of every run).

The downloads run ``VISION_DOWNLOAD_CONCURRENCY`` at a time in threads that
never touch the database. The rows are added (a few a statement) by one of two:

* when chunk runs share the batch (``store``), a recorder thread of the feed's
  own, with its own database connection, as soon as each image lands: the
  run's own thread is busy analysing an image for ~0.1 s at a time, and the
  chunk runs would wait that long for the first images (docs/benchmarks.md,
  "the serial head");
* else, or when the run is inside a transaction (a row another connection
  added would not be part of it), the run's own thread (``pump``) before each
  claim and after each image it analyses.

A batch with fewer rows than ``total_images`` is still arriving
(``claims.arriving``): its runs wait for more rather than end. A download that
fails is raised by the run's next ``pump``: the run fails the batch, which
stops every run on it, and its analysis fails with that image's error."""
from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction

from vision_pipeline import external
from vision_pipeline.images import ImageRefused, check_header
from vision_pipeline.models import Batch, BatchImage
from vision_pipeline.services.storage import storage_dir


class ImageFeed:
    """Downloads ``documents`` (position = index) for ``batch``: into its storage
    when ``store`` (chunk runs read them there), else into ``workdir`` (``paths``)."""

    def __init__(self, batch: Batch, documents: list[external.Document], *, store: bool, workdir: Path, key: str,
                 api_url: str, timeout: float | tuple[float, float] | None = None):
        self.batch = batch
        self.documents = documents
        self.store = store
        self.directory = storage_dir(batch) / "images" if store else workdir
        self.key = key
        self.api_url = api_url
        self.timeout = timeout
        self.paths: dict[int, Path] = {}  # position → local file, set before its row exists
        self.added = 0
        self._new = threading.Event()  # a download finished
        self._pool: ThreadPoolExecutor | None = None
        self._waiting: list[Future] = []
        self._lock = threading.Lock()  # one adds rows at a time: the run's thread or the recorder
        self._recorder: threading.Thread | None = None
        self._recorded = threading.Event()  # the recorder added rows, failed or stopped
        self._recorder_error: BaseException | None = None
        self._closing = False
        self._counted = 0  # rows the run's thread has been told of (pump's answer)

    def start(self) -> ImageFeed:
        self.directory.mkdir(parents=True, exist_ok=True)
        workers = max(1, min(int(settings.VISION_DOWNLOAD_CONCURRENCY), len(self.documents)))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vision-download")
        self._waiting = [self._pool.submit(self._fetch, index, document)
                         for index, document in enumerate(self.documents)]
        for future in self._waiting:
            future.add_done_callback(lambda _future: self._new.set())
        if self.store and not transaction.get_connection().in_atomic_block:
            self._recorder = threading.Thread(target=self._record, name="vision-feed-recorder", daemon=True)
            self._recorder.start()
        return self

    @property
    def arrived(self) -> bool:
        """Every image is in the batch."""
        return not self._waiting

    def pump(self) -> int:
        """How many images were added since the last call: those that landed, added
        now in the caller's thread, or those the recorder added meanwhile. Raises
        the first failed download (ExternalAPIError naming it)."""
        if self._recorder is None:
            return self._add_landed()
        if self._recorder_error is not None:
            raise self._recorder_error
        added = self.added - self._counted
        self._counted += added
        return added

    def wait(self, seconds: float) -> int:
        """``pump``, waiting up to ``seconds`` for images to be added if none were."""
        deadline = time.monotonic() + seconds
        event = self._new if self._recorder is None else self._recorded
        while True:
            added = self.pump()
            remaining = deadline - time.monotonic()
            if added or remaining <= 0 or self.arrived:
                return added
            event.wait(remaining)
            event.clear()  # (one set just before is not lost: the next pump looks at every download)

    def close(self) -> None:
        """Drop the downloads that have not started and wait for those that have
        (their files are then safe to remove), and for the recorder."""
        self._closing = True
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._recorder is not None:
            self._new.set()
            self._recorder.join()

    def _record(self) -> None:
        """The recorder thread: add each image as it lands, until all are in, a
        download fails, or the feed is closed."""
        try:
            while self._waiting and not self._closing:
                self._new.wait(1.0)
                self._new.clear()
                if not self._closing and self._add_landed():
                    self._recorded.set()
        except BaseException as exc:  # the run's thread raises it (pump)
            self._recorder_error = exc
        finally:
            self._recorded.set()
            connection.close()  # this thread's own

    def _add_landed(self) -> int:
        """Add the images that landed since the last call; how many."""
        with self._lock:
            done = [future for future in self._waiting if future.done()]
            if not done:
                return 0
            landed = sorted((future.result() for future in done), key=lambda item: item[0])
            descriptions = self.batch.descriptions or {}
            rows = []
            for index, document, target in landed:
                self.paths[index] = target
                rows.append(BatchImage(batch=self.batch, position=index, filename=document.name[:255],
                                       stored_name=target.name if self.store else "",
                                       description=descriptions.get(document.name, ""),
                                       size_bytes=target.stat().st_size))
            BatchImage.objects.bulk_create(rows)
            # only now: a feed that has "arrived" has every row in the batch (and before
            # ``added``: a pump that reports the last rows finds the feed arrived)
            self._waiting = [future for future in self._waiting if future not in done]
            self.added += len(rows)
            return len(rows)

    def _fetch(self, index: int, document: external.Document) -> tuple[int, external.Document, Path]:
        target = self.directory / external.safe_filename(document.name, index)
        external.download_image(document, target, key=self.key, api_url=self.api_url, timeout=self.timeout)
        try:
            check_header(target, filename=document.name)
        except ImageRefused as exc:
            raise external.ExternalAPIError(f"Image {exc}") from None
        return index, document, target
