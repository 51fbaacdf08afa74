"""The inspector's thresholds, calibrated on generated images with known
properties (vision_pipeline.samples), the safe image reader, and the report."""
import tracemalloc
from datetime import datetime, timezone

import pytest

from vision_pipeline import samples
from vision_pipeline.analyzers import BatchContext, catalogue, get
from vision_pipeline.analyzers.inspector import measure
from vision_pipeline.images import ImageRefused, check_header, load_image
from vision_pipeline.report import render_report

EXPECTED = {
    "clean": set(),
    "blurred": {"blurry"},
    "noisy": {"noisy"},
    "dark": {"underexposed", "low_contrast"},
    "bright": {"overexposed", "low_contrast"},
    "cast": {"colour_cast"},
    "rust": {"possible_rust"},
    "cracks": {"possible_cracks"},
}


@pytest.fixture(autouse=True)
def no_ocr(settings):
    """These tests check the inspector's measurements and flags; the text it reads
    is tests/vision/test_ocr.py's, and reading it costs more than measuring."""
    settings.VISION_OCR = "off"


def analyse(tmp_path, kind, seed=0, size=(1600, 1200), fmt="JPEG"):
    path = tmp_path / f"{kind}-{seed}.{fmt.lower()}"
    path.write_bytes(samples.encode(samples.variant(kind, *size, seed=seed), fmt))
    image = load_image(path)
    return get("inspector").analyze_image(image, description="Port side hull", context=BatchContext())


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", samples.VARIANTS)
def test_each_known_defect_raises_exactly_its_flags(tmp_path, kind, seed):
    result = analyse(tmp_path, kind, seed)
    assert set(result.flags) == EXPECTED[kind], result.metrics


def test_thresholds_hold_at_another_resolution_and_format(tmp_path):
    for kind in ("clean", "blurred", "rust", "cracks"):
        assert set(analyse(tmp_path, kind, size=(4000, 3000)).flags) == EXPECTED[kind]
        assert set(analyse(tmp_path, kind, size=(800, 600), fmt="PNG").flags) == EXPECTED[kind]


def test_the_finding_cites_the_description_and_the_measure(tmp_path):
    result = analyse(tmp_path, "rust")
    assert result.findings[0].startswith("rust-0.jpeg (Port side hull) shows rust-coloured areas on ")
    assert result.metrics["rust_share"] > 0.02 and result.metrics["width"] == 1600
    assert result.metrics["dominant_colours"][0]["hex"].startswith("#")
    colour = analyse(tmp_path, "cast").metrics
    assert colour["cast_b"] > 10 and colour["cast_hue"] in ("orange", "yellow")


def test_exif_is_read(tmp_path):
    from PIL import Image

    image = Image.fromarray(samples.variant("clean", 320, 240))
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Oceanix", "Inspector <script>"
    path = tmp_path / "exif.jpg"
    image.save(path, "JPEG", exif=exif)
    assert load_image(path).exif == {"Make": "Oceanix", "Model": "Inspector <script>"}


@pytest.mark.parametrize("payload, message", [
    (b"GIF89a-not-really", "not an image"),
    (b"%PDF-1.4 ...", "not an image"),
    (b"", "not an image"),
])
def test_content_that_is_not_an_image_is_refused(tmp_path, payload, message):
    path = tmp_path / "fake.jpg"
    path.write_bytes(payload)
    with pytest.raises(ImageRefused, match=message):
        check_header(path)


def test_a_decompression_bomb_is_refused_without_decoding_it(tmp_path):
    # how fast the refusal is, and the inspector's images/s, are measured by
    # benchmarks/bench_vision.py; here: refused, and never decoded (memory)
    path = tmp_path / "bomb.png"
    path.write_bytes(samples.decompression_bomb())
    assert path.stat().st_size < 100_000
    tracemalloc.start()
    with pytest.raises(ImageRefused, match="decompression bomb|over the limit"):
        load_image(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 100 * 1024 * 1024


def test_over_the_pixel_limit_is_refused_from_the_header(tmp_path, settings):
    settings.VISION_MAX_IMAGE_PIXELS = 1_000_000
    path = tmp_path / "big.png"
    path.write_bytes(samples.encode(samples.variant("clean", 1200, 1000), "PNG"))
    with pytest.raises(ImageRefused, match=r"1200 x 1000 pixels is over the limit of 1,000,000 pixels"):
        load_image(path)


def test_the_report_is_self_contained_and_escaped():
    hostile = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    html = render_report(
        batch_id="b-1", run_code=hostile, organization="LexCorp & Co", user_query=hostile, model="inspector",
        created=datetime(2025, 1, 20, 10, 30, tzinfo=timezone.utc),
        images=[
            {"filename": hostile, "description": hostile, "status": "done", "flags": ["possible_rust"],
             "findings": [hostile], "thumbnail": "data:image/jpeg;base64,AAAA",
             "metrics": {"width": 10, "height": 10, "exif": {"Model": hostile},
                         "dominant_colours": [{"hex": "#aabbcc", "share": 0.5}, {"hex": "red;x:url(http://e)",
                                                                                   "share": 0.2}]}},
            {"filename": "x.jpg", "status": "done", "flags": [], "findings": [], "metrics": {},
             "thumbnail": "javascript:alert(3)"},
            {"filename": "y.jpg", "status": "failed", "error": hostile},
        ],
        answer={"answer": hostile, "model": "m"},
    )
    assert "<script>" not in html and "onerror=alert" not in html.replace("onerror=alert(2)&gt;", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "javascript:" not in html and "http://e" not in html and "url(" not in html
    assert "LexCorp &amp; Co" in html and "src=\"data:image/jpeg;base64,AAAA\"" in html
    for needle in ("http://", "https://", "<link", "<script"):
        assert needle not in html


def test_the_catalogue_lists_the_default_and_the_model_analyzer(settings):
    settings.VISION_OPENAI_BASE_URL = ""
    models = {m["id"]: m for m in catalogue()}
    assert models["inspector"]["default"] and models["inspector"]["available"]
    assert not models["openai-compatible"]["available"]
    assert "VISION_OPENAI_BASE_URL" in models["openai-compatible"]["reason"]
