"""The default analyzer: real measurements of each image, no model download.

Everything is measured on the working copy (long side ≤ 1024 px, see
vision_pipeline.images), so thresholds hold whatever the camera resolution.
The thresholds below were calibrated on generated images with known blur,
noise, exposure, colour cast, rust patches and line cracks
(tests/vision/test_inspector.py keeps them honest).

| metric | how | flag |
| --- | --- | --- |
| ``noise_sigma`` | Immerkær's fast estimate (3x3 second-difference kernel) over non-edge pixels, grey levels | ``noisy`` above NOISE_SIGMA_MAX |
| ``sharpness``, ``sharpness_index`` | variance of the Laplacian minus what the noise alone explains (20 σ² for the 4-neighbour kernel); the index divides it by the grey-level variance (floored at CONTRAST_FLOOR²), so exposure and contrast, which scale the Laplacian too, do not read as blur | ``blurry`` when the index is below SHARPNESS_INDEX_MIN |
| ``brightness``, ``clipped_highlights``, ``clipped_shadows`` | mean grey level; share of pixels ≥ 250 / ≤ 5 | ``overexposed`` / ``underexposed`` |
| ``contrast`` | standard deviation of the grey levels | ``low_contrast`` below CONTRAST_MIN |
| ``cast_a``, ``cast_b``, ``colour_cast`` | mean a*, b* in CIE Lab; their distance from neutral | ``colour_cast`` above CAST_MAX, named by its hue |
| ``rust_share`` | after grey-world white balance: share of pixels with an orange-brown hue (10°-44°), saturation ≥ 100/255 and value 40-230 | ``possible_rust`` at RUST_SHARE_MIN or more |
| ``crack_segments``, ``crack_length_ratio`` | median denoise, black-hat (dark thin lines), threshold, probabilistic Hough segments ≥ 6 % of the diagonal | ``possible_cracks`` at CRACK_SEGMENTS_MIN segments and CRACK_LENGTH_MIN total length (in diagonals) |
| ``edge_density`` | share of Canny edge pixels | (context for the others) |
| ``dominant_colours`` | 64-bin colour histogram of a 64x64 copy, top 3 | — |
"""
from __future__ import annotations

import math
from typing import Any, Callable

from vision_pipeline.analyzers.base import Analyzer, BatchContext, ImageAnalysis
from vision_pipeline.images import LoadedImage, opencv

# Adds an image's text to its analysis: (analysis, image, description) -> analysis.
TextReader = Callable[[ImageAnalysis, LoadedImage, str], ImageAnalysis]

# Thresholds (documented in README "Vision analysis"; calibrated in tests/vision/test_inspector.py).
SHARPNESS_INDEX_MIN = 0.05
CONTRAST_FLOOR = 10.0
NOISE_SIGMA_MAX = 3.0
BRIGHTNESS_MIN = 50.0
BRIGHTNESS_MAX = 205.0
CLIPPED_SHADOWS_MAX = 0.30
CLIPPED_HIGHLIGHTS_MAX = 0.15
CONTRAST_MIN = 18.0
CAST_MAX = 12.0
RUST_SHARE_MIN = 0.02
CRACK_SEGMENTS_MIN = 2
RUST_HUE = (5, 22)  # OpenCV hue units (degrees / 2): 10°-44°
RUST_MIN_SATURATION = 100
RUST_VALUE = (40, 230)
CRACK_LENGTH_MIN = 0.25

FLAG_TEXT = {
    "blurry": "looks blurry",
    "noisy": "is noisy",
    "underexposed": "is underexposed",
    "overexposed": "is overexposed",
    "low_contrast": "has low contrast",
    "colour_cast": "has a colour cast",
    "possible_rust": "shows rust-coloured areas",
    "possible_cracks": "shows crack-like lines",
}


def _hue_name(a: float, b: float) -> str:
    angle = math.degrees(math.atan2(b, a)) % 360
    for limit, name in ((35, "red/magenta"), (75, "orange"), (110, "yellow"), (170, "yellow-green"),
                        (215, "green"), (260, "cyan"), (305, "blue"), (360, "magenta")):
        if angle < limit:
            return name
    return "red"


def measure(rgb) -> dict[str, Any]:
    """The measurements of one working copy (uint8 RGB array)."""
    import numpy as np

    cv2 = opencv()

    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    height, width = gray.shape
    pixels = float(height * width)

    # Edges first: the noise estimate ignores them.
    edges = cv2.Canny(gray, 100, 200)
    edge_density = float(np.count_nonzero(edges)) / pixels

    # Noise (Immerkær 1996) over flat areas only; texture would read as noise.
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
    response = cv2.filter2D(gray, cv2.CV_32F, kernel, borderType=cv2.BORDER_REFLECT)
    np.abs(response, out=response)
    flat = cv2.bitwise_not(cv2.dilate(edges, np.ones((5, 5), np.uint8)))
    flat[0, :] = flat[-1, :] = flat[:, 0] = flat[:, -1] = 0
    if cv2.countNonZero(flat) > 0.05 * pixels:
        mean_response = cv2.mean(response, mask=flat)[0]
    else:
        mean_response = float(response[1:-1, 1:-1].mean())
    noise_sigma = mean_response * math.sqrt(math.pi / 2) / 6.0

    _, lap_std = cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_32F))
    laplacian_var = float(lap_std[0][0]) ** 2
    sharpness = max(0.0, laplacian_var - 20.0 * noise_sigma ** 2)

    mean, std = cv2.meanStdDev(gray)
    brightness, contrast = float(mean[0][0]), float(std[0][0])
    # Scale-free: exposure and contrast multiply the Laplacian too, focus does not.
    sharpness_index = sharpness / max(contrast, CONTRAST_FLOOR) ** 2
    histogram = np.bincount(gray.ravel(), minlength=256)
    clipped_high = float(histogram[250:].sum()) / pixels
    clipped_low = float(histogram[:6].sum()) / pixels

    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    _, lab_a, lab_b, _ = cv2.mean(lab)
    cast_a, cast_b = lab_a - 128.0, lab_b - 128.0
    cast = math.hypot(cast_a, cast_b)

    # Rust: grey-world white balance (gains bounded, so a mostly-rust picture is not balanced away).
    means = np.array(cv2.mean(rgb)[:3]) + 1e-6
    gains = np.clip(means.mean() / means, 0.6, 1.6)
    balanced = cv2.transform(rgb, np.diag(gains).astype(np.float32))  # saturating uint8
    hsv = cv2.cvtColor(balanced, cv2.COLOR_RGB2HSV)
    rust = cv2.inRange(hsv, (RUST_HUE[0], RUST_MIN_SATURATION, RUST_VALUE[0]),
                       (RUST_HUE[1], 255, RUST_VALUE[1]))
    rust_share = cv2.countNonZero(rust) / pixels

    # Cracks: thin dark lines survive a black-hat after the noise is smoothed away.
    denoised = cv2.medianBlur(gray, 5)
    structure = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    blackhat = cv2.morphologyEx(denoised, cv2.MORPH_BLACKHAT, structure)
    level = max(25.0, float(blackhat.mean()) + 3.0 * float(blackhat.std()))
    _, mask = cv2.threshold(blackhat, level, 255, cv2.THRESH_BINARY)
    diagonal = math.hypot(width, height)
    segments = cv2.HoughLinesP(mask, 1, math.pi / 180, threshold=30, minLineLength=int(0.06 * diagonal),
                               maxLineGap=6)
    lengths = [] if segments is None else [math.hypot(x2 - x1, y2 - y1) for x1, y1, x2, y2 in segments.reshape(-1, 4)]
    crack_segments = len(lengths)
    crack_length_ratio = sum(lengths) / diagonal if lengths else 0.0

    small = cv2.resize(rgb, (64, 64), interpolation=cv2.INTER_AREA).reshape(-1, 3)
    bins = (small[:, 0] >> 6).astype(np.int32) * 16 + (small[:, 1] >> 6) * 4 + (small[:, 2] >> 6)
    counts = np.bincount(bins, minlength=64)
    dominant = []
    for index in np.argsort(counts)[::-1][:3]:
        share = counts[index] / len(bins)
        if share < 0.05:
            break
        colour = small[bins == index].mean(axis=0).astype(int)
        dominant.append({"hex": "#{:02x}{:02x}{:02x}".format(*colour), "share": round(float(share), 3)})

    return {
        "sharpness": round(sharpness, 1),
        "sharpness_index": round(sharpness_index, 3),
        "laplacian_variance": round(laplacian_var, 1),
        "noise_sigma": round(noise_sigma, 2),
        "brightness": round(brightness, 1),
        "contrast": round(contrast, 1),
        "clipped_highlights": round(clipped_high, 4),
        "clipped_shadows": round(clipped_low, 4),
        "cast_a": round(cast_a, 1),
        "cast_b": round(cast_b, 1),
        "colour_cast": round(cast, 1),
        "cast_hue": _hue_name(cast_a, cast_b) if cast > 1 else "",
        "rust_share": round(rust_share, 4),
        "crack_segments": crack_segments,
        "crack_length_ratio": round(crack_length_ratio, 2),
        "edge_density": round(edge_density, 4),
        "dominant_colours": dominant,
        "working_size": [int(width), int(height)],
    }


def flags_for(m: dict[str, Any]) -> list[str]:
    flags = []
    if m["sharpness_index"] < SHARPNESS_INDEX_MIN:
        flags.append("blurry")
    if m["noise_sigma"] > NOISE_SIGMA_MAX:
        flags.append("noisy")
    if m["brightness"] < BRIGHTNESS_MIN or m["clipped_shadows"] > CLIPPED_SHADOWS_MAX:
        flags.append("underexposed")
    if m["brightness"] > BRIGHTNESS_MAX or m["clipped_highlights"] > CLIPPED_HIGHLIGHTS_MAX:
        flags.append("overexposed")
    if m["contrast"] < CONTRAST_MIN:
        flags.append("low_contrast")
    if m["colour_cast"] > CAST_MAX:
        flags.append("colour_cast")
    if m["rust_share"] >= RUST_SHARE_MIN:
        flags.append("possible_rust")
    if m["crack_segments"] >= CRACK_SEGMENTS_MIN and m["crack_length_ratio"] >= CRACK_LENGTH_MIN:
        flags.append("possible_cracks")
    return flags


def finding_sentence(filename: str, description: str, metrics: dict[str, Any], flags: list[str]) -> str:
    """One sentence per image that cites its description and names what was measured."""
    subject = f"{filename} ({description})" if description else filename
    if not flags:
        return (f"{subject}: no quality or defect indicator outside its threshold "
                f"(sharpness {metrics['sharpness']:g}, noise σ {metrics['noise_sigma']:g}, "
                f"brightness {metrics['brightness']:g}).")
    parts = []
    for flag in flags:
        text = FLAG_TEXT[flag]
        if flag == "blurry":
            text += f" (sharpness index {metrics['sharpness_index']:g} < {SHARPNESS_INDEX_MIN:g})"
        elif flag == "noisy":
            text += f" (noise σ {metrics['noise_sigma']:g} > {NOISE_SIGMA_MAX:g})"
        elif flag in ("underexposed", "overexposed"):
            text += f" (mean brightness {metrics['brightness']:g})"
        elif flag == "colour_cast":
            text += f" towards {metrics['cast_hue'] or 'a hue'} (Δ {metrics['colour_cast']:g} in Lab)"
        elif flag == "possible_rust":
            text += f" on {100 * metrics['rust_share']:.1f}% of the area"
        elif flag == "possible_cracks":
            text += f" ({metrics['crack_segments']} segments)"
        parts.append(text)
    joined = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{subject} {joined}."


class InspectorAnalyzer(Analyzer):
    name = "inspector"
    label = "Inspector (image quality and defect indicators)"
    description = ("Measures sharpness, noise, exposure, colour cast, rust-coloured areas, crack-like lines and "
                   "dominant colours with OpenCV; no model download.")

    def __init__(self, *, read_text: TextReader | None = None) -> None:
        # Reads the text too when given a reader: the OCR one, as vision_pipeline.analyzers composes it.
        self.read_text = read_text

    def analyze_image(self, image: LoadedImage, *, description: str, context: BatchContext) -> ImageAnalysis:
        metrics = measure(image.rgb)
        metrics.update(width=image.width, height=image.height, format=image.format, megapixels=image.megapixels,
                       size_bytes=image.size_bytes, exif=image.exif)
        flags = flags_for(metrics)
        analysis = ImageAnalysis(metrics=metrics, flags=flags,
                                 findings=[finding_sentence(image.filename, description, metrics, flags)])
        if self.read_text is not None:
            self.read_text(analysis, image, description)
        return analysis
