"""A cheap "does this image likely hold text?" check, in front of OCR.

OCR costs ~0.7-1.5 s an image on one core (the detector network alone is
most of it); this check costs a few milliseconds on the working copy, so
``VISION_OCR=auto`` runs OCR only on the images it passes
(vision_pipeline.analyzers.ocr). It looks for what printed text is made of:
rows of small, high-contrast strokes.

1. Morphological gradient (3x3) of the grey working copy, thresholded with
   Otsu but never below ``MIN_EDGE``: stroke edges.
2. Closed with a short horizontal bar (about a character's gap) so the
   letters of a word or line merge into one blob, on the image and on its
   transpose (vertical text).
3. A blob counts as a text line when it is a few pixels to a fifth of the
   image high, at least ``MIN_ASPECT`` times as wide as high and
   ``MIN_WIDTH_PX`` wide, mostly filled, and its middle row crosses strokes
   often (letters, not a seam or a crack: a crack is one long dark line whose
   middle row crosses twice).

Calibrated on the generated photos of vision_pipeline.samples (every
inspection variant: 0 lines; every printed page, tilted up to 4°: ≥ 2) and
kept honest by tests/vision/test_text_detector.py. It errs toward yes: a
false yes only costs OCR's time (and, the first time in a worker process,
OCR's ~150 MB engine), a false no loses text; ``VISION_OCR=on`` or the
``ocr`` analyzer read every image when that is not acceptable. The one
thing it does not look for: a photo whose only text is a word narrower than
``MIN_WIDTH_PX`` (about a twentieth of the photo's long side). Specks of
texture that narrow made 7 of 100 inspection photos of 1633 x 1225 pass,
each then read by OCR for nothing (docs/benchmarks.md, 2026-12-08); the
narrowest line of any page of text measured 77 px.
"""
from __future__ import annotations

from vision_pipeline.images import opencv

MIN_LINES = 1
MIN_ASPECT = 2.5
MIN_WIDTH_PX = 24  # on the check's copy: ~4 characters at the smallest height (the specks of texture: 10-21 px)
MIN_FILL = 0.45
CHECK_SIDE = 512  # the check's copy, long side: half the working copy, a quarter of its pixels
MIN_HEIGHT_PX = 4  # on that copy; text smaller than this is near OCR's own limit on the working copy
MAX_HEIGHT_SHARE = 0.2
MIN_EDGE = 20  # grey levels across a stroke's edge (printed text: 60-110; a blurred photo's texture: ~7)
CLOSE_WIDTH_SHARE = 0.018  # the closing bar: ~9 px on the 512 px copy


def text_lines(rgb) -> int:
    """How many text-line-like blobs ``rgb`` (uint8 RGB, the working copy) has, across both orientations."""
    import numpy as np

    cv2 = opencv()
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    scale = CHECK_SIDE / max(grey.shape)
    if scale < 1:
        grey = cv2.resize(grey, (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    gradient = cv2.morphologyEx(grey, cv2.MORPH_GRADIENT, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    threshold, strokes = cv2.threshold(gradient, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    if threshold < MIN_EDGE:  # a soft image: its "strokes" are texture, and text this faint is unreadable anyway
        _threshold, strokes = cv2.threshold(gradient, MIN_EDGE, 255, cv2.THRESH_BINARY)
    bar = max(3, round(CLOSE_WIDTH_SHARE * max(grey.shape)))
    return _lines(strokes, bar) + _lines(np.ascontiguousarray(strokes.T), bar)


def _lines(strokes, bar: int) -> int:
    import numpy as np

    cv2 = opencv()
    height = strokes.shape[0]
    closed = cv2.morphologyEx(strokes, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (bar, 1)))
    count, _labels, stats, _centroids = cv2.connectedComponentsWithStats(closed, connectivity=8)
    found = 0
    for x, y, width, box_height, area in stats[1:]:
        if box_height < MIN_HEIGHT_PX or box_height > height * MAX_HEIGHT_SHARE or width < MIN_ASPECT * box_height:
            continue
        if width < MIN_WIDTH_PX:
            continue
        if area < MIN_FILL * width * box_height:
            continue
        row = strokes[y + box_height // 2, x:x + width] > 0
        crossings = int(np.count_nonzero(row[1:] != row[:-1]))
        if crossings >= width / box_height:  # about one stroke edge per character height, as letters have
            found += 1
    return found


def likely_text(rgb) -> bool:
    """Whether OCR could find text in ``rgb`` (see the module docstring)."""
    return text_lines(rgb) >= MIN_LINES
