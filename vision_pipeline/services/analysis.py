"""A batch's analysis: record it with its images (``batch_create``), analyse
every image with whichever runs share the batch, and write its report
(``batch_analyze``)."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable

from django.db import transaction
from django.utils import timezone

from jobsite.exceptions import ApplicationError
from jobsite.parsers import unstorable_value
from scheduling.models import Execution
from vision_pipeline import analyzers, external
from vision_pipeline.errors import ErrorCode
from vision_pipeline.images import warm_up
from vision_pipeline.models import Batch, BatchImage
from vision_pipeline.report import render_report
from vision_pipeline.services.claims import WAIT_POLL_SECONDS, analyse_pending, wait_for_others
from vision_pipeline.services.deadlines import AnalysisTimeout, BatchStopped, check_deadline, check_running
from vision_pipeline.services.feed import ImageFeed
from vision_pipeline.services.progress import RunProgress
from vision_pipeline.services.storage import image_path, storage_dir


def batch_create(*, source: str, files: list[tuple[str, Path]], user_query: str = "",
                 descriptions: dict[str, str] | None = None, model: str = analyzers.DEFAULT,
                 execution: Execution | None = None, owner=None, organization=None, vision_analysis_id: str = "",
                 run_code: str = "", external_organization_id: str = "", organization_name: str = "",
                 store_images: bool = True, arriving: list[str] | None = None) -> Batch:
    """Record a batch and its images (copied into storage when ``store_images``).
    ``arriving``: instead of ``files``, the names of the images a feed adds as
    they download (services.feed); the batch then has no image rows yet.

    Text no database can hold is a 400 naming its field before anything is
    written. The rows are written first and the files after them, and the
    files are removed if anything fails before this returns, so a failure
    leaves neither (a caller whose own transaction fails later calls
    ``batch_discard_files``)."""
    try:
        analyzers.get(model)
    except LookupError as exc:
        raise ApplicationError(str(exc), status=400, code=ErrorCode.UNKNOWN_MODEL) from None
    descriptions = descriptions or {}
    _check_text({"user_query": user_query, "descriptions": descriptions, "model": model,
                 "organization_id": external_organization_id, "organization_name": organization_name,
                 "vision_analysis_id": vision_analysis_id, "run_code": run_code,
                 "images": [name for name, _path in files] + list(arriving or [])})
    batch = None
    try:
        with transaction.atomic():
            batch = Batch.objects.create(
                source=source, execution=execution, user_query=user_query, model=model, descriptions=descriptions,
                total_images=len(files) + len(arriving or []), owner=owner if getattr(owner, "pk", None) else None,
                organization=organization, vision_analysis_id=vision_analysis_id, run_code=run_code,
                external_organization_id=external_organization_id, organization_name=organization_name,
            )
            rows = [BatchImage(batch=batch, position=position, filename=name[:255],
                               stored_name=external.safe_filename(name, position) if store_images else "",
                               description=descriptions.get(name, ""), size_bytes=Path(path).stat().st_size)
                    for position, (name, path) in enumerate(files)]
            BatchImage.objects.bulk_create(rows)
            if store_images:
                for row, (_name, path) in zip(rows, files):
                    target = storage_dir(batch) / "images" / row.stored_name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, target)
    except BaseException:
        if batch is not None:
            batch_discard_files(batch)
        raise
    return batch


def _check_text(fields: dict[str, Any]) -> None:
    problem = unstorable_value(fields)
    if problem:
        if problem.startswith("images["):
            problem = problem.replace(":", " (file name):", 1)
        raise ApplicationError(problem, status=400, code=ErrorCode.TEXT_INVALID)


def batch_discard_files(batch: Batch) -> None:
    """Remove a batch's stored files (its rows were not kept)."""
    shutil.rmtree(storage_dir(batch), ignore_errors=True)


def batch_forget_images(batch: Batch) -> None:
    """Remove a batch's stored images once analysed, keeping its report; its
    pictures are then the thumbnails its analysis kept (a /cron-jobs batch
    stores its images only while chunk runs share it)."""
    shutil.rmtree(storage_dir(batch) / "images", ignore_errors=True)
    BatchImage.objects.filter(batch=batch).exclude(stored_name="").update(stored_name="")


def batch_analyze(*, batch: Batch, files: list[tuple[str, Path]] | None = None, deadline: float | None = None,
                  timeout_seconds: float = 0, should_stop: Callable[[], bool] | None = None,
                  execution: Execution | None = None, feed: ImageFeed | None = None,
                  progress: RunProgress | None = None) -> Batch:
    """Analyse every image of ``batch`` — with whichever chunk runs share it —
    and write its report. ``files`` (name, path) in position order, else the
    stored images, else those ``feed`` adds as they download (its error, a
    failed download, is raised). ``execution`` is the run doing it (its claims
    carry its id); ``progress`` records how far it is. A damaged image is
    recorded on its card; a timeout, a stop request or an analyzer failure
    fails the batch (``status`` and ``error``)."""
    analyzer = analyzers.get(batch.model)
    now = timezone.now()
    Batch.objects.filter(pk=batch.pk, status__in=Batch.ACTIVE_STATUSES).update(
        status=Batch.Status.PROCESSING, started_at=now, updated_at=now)
    context = analyzers.BatchContext(user_query=batch.user_query, descriptions=batch.descriptions or {},
                                     deadline=deadline)
    paths = feed.paths if feed is not None else {
        position: Path(path) for position, (_name, path) in enumerate(files or [])}
    claimer_id = execution.pk if execution is not None else None
    if progress is not None:
        progress.start_batch(batch.pk)

    def step() -> None:  # before each claim and after each image: add what downloaded, say how far it is
        if feed is not None:
            feed.pump()
        if progress is not None:
            progress.tick()

    options = {"deadline": deadline, "timeout_seconds": timeout_seconds, "should_stop": should_stop}
    if feed is not None:
        warm_up()  # while the first images download
    try:
        while True:
            analyse_pending(batch, analyzer, context, claimer_id=claimer_id, paths=paths, step=step, **options)
            if feed is not None and not feed.arrived:  # more images are on their way
                feed.wait(WAIT_POLL_SECONDS)
                check_running(deadline, timeout_seconds, should_stop)
                continue
            if not wait_for_others(batch, claimer_id=claimer_id, step=step, **options):
                break
        check_deadline(deadline, timeout_seconds)
        rows = list(batch.images.all())  # every image is over: read once, for the answer and the report
        done = [row for row in rows if row.status == BatchImage.Status.DONE]
        context.image_paths = [(row.filename, str(image_path(batch, row, paths))) for row in done]
        results = [(row.filename, analyzers.ImageAnalysis(metrics=row.metrics, flags=row.flags,
                                                          findings=row.findings)) for row in done]
        answer = analyzer.summarize(context, results) if results else {}
    except (AnalysisTimeout, BatchStopped) as exc:
        batch_fail(batch, str(exc), cancelled=isinstance(exc, BatchStopped))
        if isinstance(exc, AnalysisTimeout):
            raise
        batch.refresh_from_db()
        return batch
    except analyzers.ModelError as exc:
        batch_fail(batch, str(exc))
        batch.refresh_from_db()
        return batch
    batch.refresh_from_db()
    flag_counts: dict[str, int] = {}
    for _name, analysis in results:
        for flag in analysis.flags:
            flag_counts[flag] = flag_counts.get(flag, 0) + 1
    html = render_report(
        batch_id=str(batch.pk), run_code=batch.run_code, organization=batch.organization_name
        or batch.external_organization_id, user_query=batch.user_query, model=batch.model, created=timezone.now(),
        images=[_image_dict(row) for row in rows], answer=answer,
    ).encode("utf-8")
    target = storage_dir(batch) / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(html)
    Batch.objects.filter(pk=batch.pk, status__in=Batch.ACTIVE_STATUSES).update(
        status=Batch.Status.COMPLETED, completed_at=timezone.now(), report_path=f"{batch.pk}/report.html",
        report_size=len(html), summary={"flags": flag_counts, **({"answer": answer} if answer else {})},
        updated_at=timezone.now(),
    )
    batch.refresh_from_db()
    return batch


def _image_dict(row: BatchImage) -> dict[str, Any]:
    return {"filename": row.filename, "description": row.description, "status": row.status, "metrics": row.metrics,
            "flags": row.flags, "findings": row.findings, "thumbnail": row.thumbnail, "error": row.error}


def batch_fail(batch: Batch, error: str, *, cancelled: bool = False) -> None:
    """Mark an active batch failed (or cancelled) with ``error``."""
    Batch.objects.filter(pk=batch.pk, status__in=Batch.ACTIVE_STATUSES).update(
        status=Batch.Status.CANCELLED if cancelled else Batch.Status.FAILED, error=error[:2000],
        completed_at=timezone.now(), updated_at=timezone.now(),
    )
