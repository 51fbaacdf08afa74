"""An analysis's images streamed into its batch (``ImageFeed``): a /cron-jobs
run records the batch before its images are downloaded, queues its chunk runs
at once, and adds each image (a pending ``BatchImage`` row) as soon as it is
on disk and its header checked, so its run and the chunk runs analyse the
first images while the rest download (docs/benchmarks.md, section 8: the
downloads were the serial head of every run).

The downloads run ``VISION_DOWNLOAD_CONCURRENCY`` at a time in threads that
never touch the database; the run's own thread adds the images that landed
(``pump``, a few rows a statement) before each claim and after each image it
analyses, so the rows are written by the run's connection and inside its
transaction, if any. A batch with fewer rows than ``total_images`` is still
arriving (``claims.arriving``): its runs wait for more rather than end. A
download that fails is raised by the next ``pump``: the run fails the batch,
which stops every run on it, and its analysis fails with that image's error."""
from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from django.conf import settings

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

    def start(self) -> ImageFeed:
        self.directory.mkdir(parents=True, exist_ok=True)
        workers = max(1, min(int(settings.VISION_DOWNLOAD_CONCURRENCY), len(self.documents)))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vision-download")
        self._waiting = [self._pool.submit(self._fetch, index, document)
                         for index, document in enumerate(self.documents)]
        for future in self._waiting:
            future.add_done_callback(lambda _future: self._new.set())
        return self

    @property
    def arrived(self) -> bool:
        """Every image is in the batch."""
        return not self._waiting

    def pump(self) -> int:
        """Add the images that landed since the last call (in the caller's thread);
        how many. Raises the first failed download (ExternalAPIError naming it)."""
        done = [future for future in self._waiting if future.done()]
        if not done:
            return 0
        self._waiting = [future for future in self._waiting if future not in done]
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
        self.added += len(rows)
        return len(rows)

    def wait(self, seconds: float) -> int:
        """Wait up to ``seconds`` for a download to land, then ``pump``."""
        self._new.wait(seconds)
        self._new.clear()
        return self.pump()

    def close(self) -> None:
        """Drop the downloads that have not started and wait for those that have
        (their files are then safe to remove)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _fetch(self, index: int, document: external.Document) -> tuple[int, external.Document, Path]:
        target = self.directory / external.safe_filename(document.name, index)
        external.download_image(document, target, key=self.key, api_url=self.api_url, timeout=self.timeout)
        try:
            check_header(target, filename=document.name)
        except ImageRefused as exc:
            raise external.ExternalAPIError(f"Image {exc}") from None
        return index, document, target
