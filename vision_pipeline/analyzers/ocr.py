"""``ocr``: the text in document photos, read offline.

The engine is RapidOCR (``pip install '.[ocr]'``: the ``rapidocr`` package,
whose wheel ships PaddleOCR's PP-OCR detection, orientation and recognition
models as ONNX files, run by ``onnxruntime``). The models are loaded from the
installed package by explicit path, so nothing is ever downloaded: with no
network at all the engine starts and reads (tests/vision/test_ocr.py runs it
with every socket connect refused).

- ``ocr`` (this analyzer): the inspector's measurements plus the text.
- ``inspector`` (the default) adds the text too when the package is installed,
  unless ``VISION_OCR`` is ``off``. ``auto`` (the default): only on the images
  a cheap text check (vision_pipeline.analyzers.text_detector, a few ms)
  says likely hold text, so inspection photos cost no OCR (~1 s each) and a
  photo of a page, a label or a plate is still read in full; ``on``: every
  image, a missing package fails the batch clearly. A job or batch that wants
  every image read whatever the check says picks the ``ocr`` analyzer.

Text is read on the working copy (long side ≤ 1024 px, see
vision_pipeline.images), one ONNX Runtime thread per worker process (more
threads only fight the other worker processes for the same cores). Lines
below ``MIN_LINE_CONFIDENCE`` or without two letters or digits are dropped:
on inspection photos (seams, rivets, rust) the detector otherwise reports
stray "text". The image's ``metrics["ocr"]`` has the text, the mean confidence
weighted by line length and each line with its confidence and box; the
finding quotes the text.
"""
from __future__ import annotations

import functools
import importlib.util
import re
import threading
from pathlib import Path
from typing import Any

from django.conf import settings

from vision_pipeline.analyzers.base import ImageAnalysis, ModelError
from vision_pipeline.analyzers.inspector import InspectorAnalyzer
from vision_pipeline.images import LoadedImage

MIN_LINE_CONFIDENCE = 0.6
MAX_TEXT_CHARS = 4000
QUOTE_CHARS = 160
DET_SIDE = 1024  # the detector's input, long side (the working copy's size: no upscaling)
_WORDISH = re.compile(r"[^\W_]{2}")

_engine = None
_engine_lock = threading.Lock()


class OCRUnavailable(ModelError):
    """The OCR package or its bundled models are missing (a handled failure of the batch)."""


def _models_dir() -> Path | None:
    spec = importlib.util.find_spec("rapidocr")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def bundled_models() -> dict[str, Path]:
    """The detection, orientation and recognition models the wheel ships ({} when missing)."""
    folder = _models_dir()
    if folder is None or not folder.is_dir():
        return {}
    found = {}
    for task in ("det", "cls", "rec"):
        matches = sorted(folder.glob(f"*_{task}_*.onnx"))
        if matches:
            found[task] = matches[0]
    return found if len(found) == 3 else {}


def status() -> tuple[bool, str]:
    """(usable, why not); looked up once per process."""
    return _status()


@functools.lru_cache(maxsize=1)
def _status() -> tuple[bool, str]:
    if importlib.util.find_spec("rapidocr") is None or importlib.util.find_spec("onnxruntime") is None:
        return False, "Install the OCR extra: pip install 'jobsite[ocr]' (rapidocr and onnxruntime)."
    if not bundled_models():
        return False, "The installed rapidocr package has no bundled ONNX models (it would download them)."
    return True, ""


def mode() -> str:
    value = str(settings.VISION_OCR).strip().lower()
    return value if value in ("auto", "on", "off") else "auto"


def in_default_analyzer() -> bool:
    """Whether ``inspector`` may read text (VISION_OCR, see the module docstring);
    under ``auto`` the text check decides image by image (``add_text_when_enabled``)."""
    setting = mode()
    if setting == "off":
        return False
    return True if setting == "on" else status()[0]


def engine():
    """The process's RapidOCR engine, built on first use from the bundled models only."""
    global _engine
    if _engine is not None:
        return _engine
    with _engine_lock:
        if _engine is None:
            ok, why = status()
            if not ok:
                raise OCRUnavailable(f"OCR is not available: {why}")
            from rapidocr import RapidOCR

            models = bundled_models()
            params = {
                "Global.log_level": "error",
                "Det.model_path": str(models["det"]),
                "Cls.model_path": str(models["cls"]),
                "Rec.model_path": str(models["rec"]),
                "Det.limit_type": "max",
                "Det.limit_side_len": DET_SIDE,
                "EngineConfig.onnxruntime.intra_op_num_threads": 1,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            }
            _engine = RapidOCR(params=params)
    return _engine


def read_text(rgb) -> dict[str, Any]:
    """The text of one image (uint8 RGB array): ``{"text", "confidence", "lines": [...]}``."""
    import numpy as np

    try:
        output = engine()(np.ascontiguousarray(rgb[:, :, ::-1]))  # RapidOCR takes OpenCV's BGR order
    except OCRUnavailable:
        raise
    except Exception as exc:  # a damaged or degenerate input is no text, not a crashed batch
        return {"text": "", "confidence": None, "lines": [], "error": f"{type(exc).__name__}: {exc}"[:200]}
    texts = list(getattr(output, "txts", None) or ())
    scores = list(getattr(output, "scores", None) or ())
    boxes = getattr(output, "boxes", None)
    lines = []
    for index, (text, score) in enumerate(zip(texts, scores)):
        text = " ".join(str(text).split())
        if float(score) < MIN_LINE_CONFIDENCE or not _WORDISH.search(text):
            continue
        box = []
        if boxes is not None and index < len(boxes):
            box = [[int(round(float(x))), int(round(float(y)))] for x, y in boxes[index]]
        lines.append({"text": text, "confidence": round(float(score), 3), "box": box})
    total = sum(len(line["text"]) for line in lines)
    confidence = (round(sum(line["confidence"] * len(line["text"]) for line in lines) / total, 3)
                  if total else None)
    return {"text": "\n".join(line["text"] for line in lines)[:MAX_TEXT_CHARS], "confidence": confidence,
            "lines": lines[:200]}


def quote(text: str, limit: int = QUOTE_CHARS) -> str:
    flat = " / ".join(part for part in text.splitlines() if part)
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def add_text(analysis: ImageAnalysis, image: LoadedImage, description: str) -> ImageAnalysis:
    """Read ``image``'s text into ``analysis`` (metrics and a finding that quotes it)."""
    reading = read_text(image.rgb)
    analysis.metrics["ocr"] = reading
    if reading["text"]:
        subject = f"{image.filename} ({description})" if description else image.filename
        count = len(reading["lines"])
        analysis.findings.append(
            f"{subject} reads “{quote(reading['text'])}” (OCR, {count} line{'s' if count != 1 else ''}, "
            f"confidence {100 * reading['confidence']:.0f}%)."
        )
    return analysis


def add_text_when_enabled(analysis: ImageAnalysis, image: LoadedImage, description: str) -> ImageAnalysis:
    """The other analyzers' reader: ``add_text`` when ``VISION_OCR`` allows and,
    under ``auto``, the text check finds likely text (see the module docstring)."""
    if not in_default_analyzer():
        return analysis
    if mode() == "auto":
        from vision_pipeline.analyzers.text_detector import likely_text

        if not likely_text(image.rgb):
            return analysis
    return add_text(analysis, image, description)


class OCRAnalyzer(InspectorAnalyzer):
    name = "ocr"
    label = "OCR (text in document photos) with the inspector's measurements"
    description = ("Reads the text in each image offline with RapidOCR's bundled PP-OCR ONNX models (the 'ocr' extra) "
                   "and quotes it in the findings, beside the inspector's measurements.")

    def __init__(self) -> None:
        super().__init__(read_text=add_text)

    def available(self) -> tuple[bool, str]:
        return status()
