"""Reading untrusted image files safely.

Every image (downloaded or uploaded) is opened here, and only here:

- the content must really be an image in one of ``ALLOWED_FORMATS``
  (Pillow reads the magic bytes; the file name and Content-Type are ignored);
- the pixel count declared in the header is checked *before* any pixel is
  decoded: over ``VISION_MAX_IMAGE_PIXELS`` the image is refused at once, so a
  decompression bomb (a small PNG that declares 50,000 x 50,000 pixels) costs
  a header read, not gigabytes of memory. Pillow's own bomb check stays on as
  a second line (``Image.MAX_IMAGE_PIXELS``);
- the file size is capped before that (``VISION_MAX_IMAGE_BYTES``; downloads
  are capped while streaming by jobsite.http).

Analysis works on a *working copy* whose long side is at most
``WORKING_SIZE`` pixels (JPEG decodes straight to a reduced scale with
``draft``), so that measurements and their thresholds do not depend on the
camera's resolution, and a 2-megapixel photo is analysed in tens of
milliseconds.
"""
from __future__ import annotations

import base64
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
WORKING_SIZE = 1024
THUMBNAIL_SIZE = 320
THUMBNAIL_QUALITY = 70
EXIF_FIELDS = ("Make", "Model", "DateTime", "DateTimeOriginal", "Software", "Orientation", "LensModel",
               "ExposureTime", "FNumber", "ISOSpeedRatings", "FocalLength")


class ImageRefused(ValueError):
    """Not an image we accept; the message says why (fit for a user)."""


@dataclass
class LoadedImage:
    """A decoded image: its working copy (RGB, long side ≤ WORKING_SIZE) and facts about the original."""

    filename: str
    format: str
    width: int
    height: int
    mode: str
    size_bytes: int
    rgb: Any  # numpy uint8 array (H, W, 3) of the working copy
    exif: dict[str, str] = field(default_factory=dict)
    thumbnail: str = ""  # data:image/jpeg;base64,...

    @property
    def megapixels(self) -> float:
        return round(self.width * self.height / 1e6, 2)


_opencv = None


def opencv():
    """OpenCV, imported on first use (web processes and idle workers never load
    it) and limited to ``VISION_OPENCV_THREADS`` threads a process: a worker
    runs one process per core, so more threads per process only fight the
    other processes (and the OCR engine) for the same cores."""
    global _opencv
    if _opencv is None:
        import cv2

        cv2.setNumThreads(int(settings.VISION_OPENCV_THREADS))
        _opencv = cv2
    return _opencv


def warm_up() -> None:
    """Import what analysing an image needs (numpy, OpenCV) now: a run calls it
    while its first images download, instead of on its first image."""
    import numpy  # noqa: F401

    opencv()


def max_pixels() -> int:
    return int(settings.VISION_MAX_IMAGE_PIXELS)


def max_bytes() -> int:
    return int(settings.VISION_MAX_IMAGE_BYTES)


def check_header(source: str | Path | io.BytesIO, *, filename: str = "") -> tuple[str, int, int]:
    """(format, width, height) from the header alone, or ImageRefused."""
    name = filename or (Path(source).name if isinstance(source, (str, Path)) else "image")
    # Pillow's own bomb check (a header over 2x this raises) stays on above ours, so
    # an image just over our limit gets our clearer message.
    Image.MAX_IMAGE_PIXELS = 4 * max_pixels()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                fmt, (width, height) = image.format or "", image.size
    except Image.DecompressionBombError:
        raise ImageRefused(f"{name}: refused, it declares more pixels than allowed (decompression bomb)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ImageRefused(f"{name}: not an image (the content is not JPEG, PNG, WebP, GIF, BMP or TIFF)") from None
    if fmt not in ALLOWED_FORMATS:
        raise ImageRefused(f"{name}: {fmt or 'unknown'} images are not accepted; use one of "
                           f"{', '.join(ALLOWED_FORMATS)}")
    if width < 1 or height < 1:
        raise ImageRefused(f"{name}: the image has no pixels")
    if width * height > max_pixels():
        raise ImageRefused(f"{name}: {width} x {height} pixels is over the limit of {max_pixels():,} pixels "
                           f"(VISION_MAX_IMAGE_PIXELS)")
    return fmt, width, height


def load_image(path: str | Path, *, filename: str = "", working_size: int = WORKING_SIZE,
               thumbnail: bool = True) -> LoadedImage:
    """Open ``path`` under the rules above and build its working copy."""
    import numpy as np

    path = Path(path)
    name = filename or path.name
    try:
        size = path.stat().st_size
    except OSError:
        raise ImageRefused(f"{name}: the file is missing") from None
    if size > max_bytes():
        raise ImageRefused(f"{name}: {size:,} bytes is over the limit of {max_bytes():,} bytes (VISION_MAX_IMAGE_BYTES)")
    if size == 0:
        raise ImageRefused(f"{name}: the file is empty")
    fmt, width, height = check_header(path, filename=name)
    try:
        with Image.open(path) as image:
            mode = image.mode
            exif = _exif(image)
            if fmt == "JPEG":
                image.draft("RGB", (working_size, working_size))  # decode at 1/2, 1/4 or 1/8 scale
            image.load()
            image = ImageOps.exif_transpose(image)
            if image.mode != "RGB":
                image = _to_rgb(image)
            rgb = np.asarray(image, dtype=np.uint8)
            if max(rgb.shape[:2]) > working_size:
                cv2 = opencv()
                ratio = working_size / max(rgb.shape[:2])
                size = (max(1, round(rgb.shape[1] * ratio)), max(1, round(rgb.shape[0] * ratio)))
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            thumb = thumbnail_data_uri(Image.fromarray(rgb, "RGB")) if thumbnail else ""
    except ImageRefused:
        raise
    except Image.DecompressionBombError:
        raise ImageRefused(f"{name}: refused, it declares more pixels than allowed (decompression bomb)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageRefused(f"{name}: the image data is damaged ({type(exc).__name__})") from None
    return LoadedImage(filename=name, format=fmt, width=width, height=height, mode=mode, size_bytes=size, rgb=rgb,
                       exif=exif, thumbnail=thumb)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        import numpy as np

        array = np.asarray(image, dtype=np.float64)
        peak = array.max() or 1.0
        image = Image.fromarray((array * (255.0 / peak)).astype(np.uint8), "L")
    return image.convert("RGB")


def _exif(image: Image.Image) -> dict[str, str]:
    try:
        raw = image.getexif()
    except Exception:  # a damaged EXIF block is no reason to refuse the picture
        return {}
    out = {}
    tags = dict(raw)
    try:
        tags.update(raw.get_ifd(ExifTags.IFD.Exif))
    except Exception:
        pass
    for tag, value in tags.items():
        name = ExifTags.TAGS.get(tag)
        if name in EXIF_FIELDS:
            text = value.decode("latin-1", "replace") if isinstance(value, bytes) else str(value)
            out[name] = text.strip("\x00 ")[:100]
    return out


def thumbnail_data_uri(image: Image.Image, size: int = THUMBNAIL_SIZE) -> str:
    """A small JPEG of ``image`` as a data: URI (the report embeds these, never the originals)."""
    copy = image.copy()
    copy.thumbnail((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    buffer = io.BytesIO()
    copy.convert("RGB").save(buffer, "JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def jpeg_base64(path: str | Path, *, long_side: int = 1024, quality: int = 85) -> str:
    """The image at ``path`` (already checked) as a base64 JPEG no larger than
    ``long_side`` (what the openai-compatible analyzer sends)."""
    with Image.open(path) as image:
        if image.format == "JPEG":
            image.draft("RGB", (long_side, long_side))
        image = ImageOps.exif_transpose(image)
        image = _to_rgb(image) if image.mode != "RGB" else image
        image.thumbnail((long_side, long_side), Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
