"""Receiving a batch upload (POST /api/v1/vision/batches): the form's fields,
its descriptions JSON, and the images staged in a temporary directory,
each checked (size, then header) before the batch is recorded. The
directory is removed whatever happens; the batch keeps its own copies.
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFilesSent

from jobsite.exceptions import ApplicationError
from vision_pipeline.errors import ErrorCode
from vision_pipeline.external import ExternalAPIError, parse_descriptions
from vision_pipeline.images import ImageRefused, check_header

FORM_FIELDS = ("user_query", "descriptions", "organization_id", "model")


def batch_form(request) -> dict:
    """The multipart form as BatchCreateSerializer reads it: the images and
    the text fields that were sent."""
    try:
        images = request.FILES.getlist("images")
    except (TooManyFilesSent, RequestDataTooBig) as exc:
        raise ApplicationError(f"Too many files or too large a form: {exc}", status=400,
                               code=ErrorCode.TOO_MANY_IMAGES) from None
    return {"images": images,
            **{name: request.data.get(name) for name in FORM_FIELDS if request.data.get(name) is not None}}


def form_descriptions(text: str) -> dict[str, str]:
    """The ``descriptions`` field: a JSON object of file name → description, or nothing."""
    if not text.strip():
        return {}
    try:
        return parse_descriptions(text)
    except ExternalAPIError as exc:
        raise ApplicationError(f"descriptions: {str(exc).split(': ', 1)[-1]}", status=400,
                               code=ErrorCode.DESCRIPTIONS_INVALID) from None


@contextmanager
def staged_images(uploads) -> Iterator[list[tuple[str, Path]]]:
    """The uploaded images written to a temporary directory, as (name, path)
    pairs; an image over the size limit or whose header is not an image's
    refuses the whole upload."""
    workdir = Path(tempfile.mkdtemp(prefix="vision-upload-", dir=_temp_root()))
    try:
        yield [_stage(index, upload, workdir) for index, upload in enumerate(uploads)]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _stage(index: int, upload, workdir: Path) -> tuple[str, Path]:
    name = Path(upload.name or f"image{index}").name
    if upload.size > settings.VISION_MAX_IMAGE_BYTES:
        raise ApplicationError(f"{name}: {upload.size:,} bytes is over the limit of "
                               f"{settings.VISION_MAX_IMAGE_BYTES:,} bytes", status=400,
                               code=ErrorCode.IMAGE_REFUSED)
    target = workdir / f"{index:04d}"
    with open(target, "wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    try:
        check_header(target, filename=name)
    except ImageRefused as exc:
        raise ApplicationError(str(exc), status=400, code=ErrorCode.IMAGE_REFUSED) from None
    return name, target


def _temp_root() -> Path:
    root = Path(settings.JOBS_TEMP_DIR)
    root.mkdir(parents=True, exist_ok=True)
    return root
