"""Generated inspection photos with known properties.

Used by the tests that calibrate the inspector's thresholds, by the
benchmarks and by ``./manage vision demo-api``: a steel-plate-like scene
(panels, rivets, mild shading) and variants of it with a known defect.
Deterministic for a given seed.
"""
from __future__ import annotations

import io

VARIANTS = ("clean", "blurred", "noisy", "dark", "bright", "cast", "rust", "cracks")


def scene(width: int = 1600, height: int = 1200, *, seed: int = 0):
    """A clean, sharp, neutral scene as a uint8 RGB array."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    shade = 135 + 20 * np.sin(xx / width * 2.1 + seed) * np.cos(yy / height * 1.7)
    image = np.repeat(shade[..., None], 3, axis=2)
    # panels of slightly different greys with crisp borders
    step = max(width, height) // 5
    gap = max(6, round(6 * max(width, height) / 1600))  # seams keep their look at every resolution
    for top in range(0, height, step):
        for left in range(0, width, step):
            tone = float(rng.uniform(-45, 45))
            image[top + gap:top + step - gap, left + gap:left + step - gap] += tone
    # rivets: bright discs with a dark rim, a crisp feature at every scale
    for top in range(step // 2, height, step // 2):
        for left in range(step // 2, width, step // 2):
            cv2.circle(image, (left, top), max(4, width // 120), (205, 205, 205), -1, lineType=cv2.LINE_AA)
            cv2.circle(image, (left, top), max(4, width // 120), (70, 70, 70), 2, lineType=cv2.LINE_AA)
    # a fine, slightly random texture (brushed metal), far below sensor noise levels
    texture = cv2.GaussianBlur(rng.normal(0, 6, (height, width)).astype(np.float32), (0, 0), 1.2)
    image += texture[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


def variant(kind: str, width: int = 1600, height: int = 1200, *, seed: int = 0):
    """``scene`` with one known property (see VARIANTS)."""
    import cv2
    import numpy as np

    if kind not in VARIANTS:
        raise ValueError(f"Unknown variant '{kind}'. Use one of: {', '.join(VARIANTS)}.")
    rng = np.random.default_rng(seed + 1000)
    image = scene(width, height, seed=seed).astype(np.float32)
    scale = max(width, height) / 1024.0  # defects sized for the analyser's working copy
    if kind == "blurred":
        image = cv2.GaussianBlur(image, (0, 0), 4.0 * scale)
    elif kind == "noisy":
        image += rng.normal(0, 16, image.shape).astype(np.float32)
    elif kind == "dark":
        image *= 0.22
    elif kind == "bright":
        image = image * 0.6 + 150
    elif kind == "cast":
        image *= np.array([1.22, 1.0, 0.70], dtype=np.float32)
    elif kind == "rust":
        mask = np.zeros((height, width), np.uint8)
        for _ in range(5):
            center = (int(rng.uniform(0.15, 0.85) * width), int(rng.uniform(0.15, 0.85) * height))
            axes = (int(rng.uniform(0.04, 0.09) * width), int(rng.uniform(0.03, 0.07) * height))
            cv2.ellipse(mask, center, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), 3 * scale) > 127
        grain = rng.normal(0, 12, (height, width, 1)).astype(np.float32)
        rust = np.array([150, 72, 28], dtype=np.float32) + grain
        image[mask] = rust[mask]
    elif kind == "cracks":
        for _ in range(3):
            x, y = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height
            angle = rng.uniform(0, np.pi)
            points = []
            for _ in range(12):
                points.append((int(x), int(y)))
                angle += rng.normal(0, 0.15)
                x += np.cos(angle) * 0.03 * width
                y += np.sin(angle) * 0.03 * width
            cv2.polylines(image, [np.array(points, np.int32)], False, (35, 35, 35), max(2, int(2 * scale)),
                          lineType=cv2.LINE_AA)
    return np.clip(image, 0, 255).astype(np.uint8)


def encode(array, fmt: str = "JPEG", quality: int = 92) -> bytes:
    """An RGB array as image file bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array, "RGB").save(buffer, fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def decompression_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A small valid PNG that declares ``width`` x ``height`` pixels (1-bit,
    all zero: the IDAT deflates to a few kilobytes... per row, so we write
    only the header and a truncated IDAT: enough for any reader to learn the
    size, and a decoder that trusted it would allocate gigabytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    rows = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    data = b"".join(rows.compress(row) for _ in range(64)) + rows.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


DOCUMENT_LINES = ("INSPECTION REPORT 2024-117", "Vessel: MV Oceanix Hull No. 4471",
                  "Corrosion found on port side plate C7", "Next survey due: 2025-03-01")


def document(lines=DOCUMENT_LINES, width: int = 1200, height: int = 900, *, font_size: int = 44,
             rotate: float = 0.0, seed: int = 0):
    """A photo-like page of printed text (Pillow's default font, black on off-white
    paper with mild shading and noise) as a uint8 RGB array: what the OCR reads."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    page = Image.new("RGB", (width, height), (246, 244, 238))
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=font_size)
    top = height // 8
    for line in lines:
        draw.text((width // 12, top), line, fill=(20, 20, 24), font=font)
        top += int(font_size * 1.9)
    if rotate:
        page = page.rotate(rotate, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=(246, 244, 238))
    rng = np.random.default_rng(seed)
    array = np.asarray(page, dtype=np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    array *= (0.92 + 0.08 * np.cos(xx / width * 1.3) * np.cos(yy / height))[..., None]
    array += rng.normal(0, 3, array.shape)
    return np.clip(array, 0, 255).astype(np.uint8)
