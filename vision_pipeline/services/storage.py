"""Where a batch's files live: its stored images and its report, under
``VISION_STORAGE_DIR/<batch id>/``."""
from __future__ import annotations

from pathlib import Path

from django.conf import settings

from jobsite.exceptions import ApplicationError
from vision_pipeline.errors import ErrorCode

from vision_pipeline.models import Batch, BatchImage


def storage_dir(batch: Batch | str) -> Path:
    return Path(settings.VISION_STORAGE_DIR) / str(getattr(batch, "pk", batch))


def batch_report_path(batch: Batch) -> Path:
    return Path(settings.VISION_STORAGE_DIR) / batch.report_path


def batch_report_file(batch: Batch) -> Path:
    """The stored HTML report of a completed batch; a 409 while there is none."""
    path = batch_report_path(batch) if batch.report_path else None
    if batch.status != Batch.Status.COMPLETED or path is None or not path.exists():
        raise ApplicationError(f"Batch {batch.pk} is {batch.effective_status}: its report is not ready.",
                               status=409, code=ErrorCode.REPORT_NOT_READY)
    return path


def image_path(batch: Batch, row: BatchImage, paths: dict[int, Path]) -> Path:
    """Where to read image ``row``: the caller's own file for its position, else the stored copy."""
    return paths.get(row.position) or storage_dir(batch) / "images" / row.stored_name


def batch_image_thumbnail(batch: Batch, row: BatchImage, *, long_side: int = 240) -> bytes:
    """A JPEG of image ``row`` no larger than ``long_side``: from its stored
    copy (checked like an upload first), else from the small thumbnail the
    analysis kept (a cron batch stores no copies). A 404 when there is neither."""
    import base64

    from vision_pipeline.images import ImageRefused, check_header, jpeg_base64

    path = storage_dir(batch) / "images" / row.stored_name if row.stored_name else None
    if path is not None and path.is_file():
        try:
            check_header(path, filename=row.filename)
            return base64.b64decode(jpeg_base64(path, long_side=long_side, quality=80))
        except (ImageRefused, OSError, ValueError, SyntaxError):
            pass  # a damaged image: its analysis thumbnail, if it has one
    prefix = "data:image/jpeg;base64,"
    if row.thumbnail.startswith(prefix):
        try:
            return base64.b64decode(row.thumbnail[len(prefix):], validate=True)
        except ValueError:
            pass
    raise ApplicationError(f"Image {row.position + 1} of batch {batch.pk} has no picture to show.", status=404,
                           code=ErrorCode.BATCH_NOT_FOUND)
