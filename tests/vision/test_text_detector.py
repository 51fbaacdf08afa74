"""The text check in front of OCR (vision_pipeline/analyzers/text_detector.py):
inspection photos say no, photos of printed pages (the OCR tests' images) and
a label on a photo say yes; under ``VISION_OCR=auto`` the default analyzer
reads text only where the check says yes, and reads it as well as before."""
import time

import numpy as np
import pytest

from vision_pipeline import analyzers, samples
from vision_pipeline.analyzers import BatchContext, ocr
from vision_pipeline.analyzers.text_detector import likely_text, text_lines
from vision_pipeline.images import load_image

INSTALLED, WHY = ocr.status()
needs_ocr = pytest.mark.skipif(not INSTALLED, reason=f"OCR extra not installed: {WHY}")

PAGE_LINES = ("INSPECTION REPORT 2024-007", "Vessel: MV Oceanix Hull No. 4471", "Corrosion found on plate C8",
              "Next survey due: 2025-03-01")


def working_copy(tmp_path, array, name="image.jpg"):
    path = tmp_path / name
    path.write_bytes(samples.encode(array))
    return load_image(path)


def pages():
    """The OCR tests' and the benchmark's pages of text."""
    yield "page", samples.document()
    yield "tilted", samples.document(("Invoice 4471", "Total due 348.50 EUR"), 1600, 1000, font_size=64, rotate=4,
                                     seed=3)
    for n in range(5):
        yield f"report{n}", samples.document(PAGE_LINES, 1600, 1200, font_size=56, rotate=(n % 5) - 2, seed=n)
    yield "small print", samples.document(font_size=24, width=1600, height=1200)
    yield "light on dark", 255 - samples.document()
    yield "turned a quarter", np.ascontiguousarray(np.rot90(samples.document()))
    scene = samples.variant("rust", 1600, 1200, seed=2).copy()
    scene[500:620, 600:1000] = samples.document(("HULL 4471",), 400, 120, font_size=48)
    yield "label on a hull", scene


# Every variant at 1600 x 1200, and the benchmark's 2-megapixel photos (1633 x 1225) where
# a few letter-sized specks of texture once passed for a line of text.
INSPECTION_PHOTOS = [(kind, seed, 1600, 1200) for seed in (0, 1, 2) for kind in samples.VARIANTS] + [
    (kind, seed, 1633, 1225) for kind, seed in (("noisy", 18), ("dark", 19), ("clean", 32), ("noisy", 50),
                                                ("dark", 51), ("bright", 68), ("blurred", 81))]


@pytest.mark.parametrize("kind, seed, width, height", INSPECTION_PHOTOS)
def test_inspection_photos_hold_no_text(kind, seed, width, height, tmp_path):
    image = working_copy(tmp_path, samples.variant(kind, width, height, seed=seed))
    assert text_lines(image.rgb) == 0


@pytest.mark.parametrize("name, array", list(pages()), ids=[name for name, _ in pages()])
def test_photos_of_text_are_seen(name, array, tmp_path):
    assert likely_text(working_copy(tmp_path, array).rgb)


def test_the_check_is_cheap_beside_ocr(tmp_path):
    image = working_copy(tmp_path, samples.variant("rust", 1600, 1200))
    likely_text(image.rgb)  # OpenCV's first call
    started = time.perf_counter()
    for _ in range(10):
        likely_text(image.rgb)
    assert (time.perf_counter() - started) / 10 < 0.1  # ~3-5 ms here; OCR takes ~700 ms a page


def inspector_on(tmp_path, array, name="x.jpg"):
    return analyzers.get("inspector").analyze_image(working_copy(tmp_path, array, name), description="",
                                                    context=BatchContext())


@needs_ocr
def test_auto_reads_no_photo_without_text_and_every_page_as_well_as_ocr_does(tmp_path, settings, monkeypatch):
    settings.VISION_OCR = "auto"
    reads = []
    original = ocr.read_text
    monkeypatch.setattr(ocr, "read_text", lambda rgb: reads.append(1) or original(rgb))
    # a photo without text: no OCR at all
    assert "ocr" not in inspector_on(tmp_path, samples.variant("cracks", 1600, 1200)).metrics and reads == []
    # a page: read, the same text and confidence as the ocr analyzer's
    page = samples.document(PAGE_LINES, 1600, 1200, font_size=56, rotate=-2, seed=7)
    reading = inspector_on(tmp_path, page, "page.jpg").metrics["ocr"]
    assert reading["text"].splitlines() == list(PAGE_LINES) and reading["confidence"] > 0.9
    explicit = analyzers.get("ocr").analyze_image(working_copy(tmp_path, page, "page2.jpg"), description="",
                                                  context=BatchContext()).metrics["ocr"]
    assert explicit["text"] == reading["text"]


@needs_ocr
def test_on_and_the_ocr_analyzer_read_every_image_whatever_the_check_says(tmp_path, settings):
    settings.VISION_OCR = "on"
    assert inspector_on(tmp_path, samples.variant("clean", 1600, 1200)).metrics["ocr"]["text"] == ""
    settings.VISION_OCR = "auto"
    photo = working_copy(tmp_path, samples.variant("clean", 1600, 1200), "y.jpg")
    assert analyzers.get("ocr").analyze_image(photo, description="", context=BatchContext()).metrics["ocr"] == {
        "text": "", "confidence": None, "lines": []}


def test_off_never_checks(tmp_path, settings, monkeypatch):
    settings.VISION_OCR = "off"
    from vision_pipeline.analyzers import text_detector

    monkeypatch.setattr(text_detector, "likely_text", lambda rgb: pytest.fail("checked with OCR off"))
    assert "ocr" not in inspector_on(tmp_path, samples.document()).metrics
