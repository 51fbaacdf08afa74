"""The ``ocr`` analyzer (vision_pipeline/analyzers/ocr.py): text rendered with
Pillow's default font on generated pages is read back offline, with every
network connection refused; the report and the findings quote it; the
default inspector reads text when the package is installed.

Tests that need the engine are skipped, with the reason, when the ``ocr``
extra (rapidocr + onnxruntime) is not installed."""
import socket

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from vision_pipeline import analyzers, samples, services
from vision_pipeline.analyzers import BatchContext, ocr
from vision_pipeline.images import load_image
from vision_pipeline.models import Batch

INSTALLED, WHY = ocr.status()
needs_ocr = pytest.mark.skipif(not INSTALLED, reason=f"OCR extra not installed: {WHY}")


@pytest.fixture(autouse=True)
def storage(settings, tmp_path):
    settings.VISION_STORAGE_DIR = str(tmp_path / "vision")
    settings.JOBS_TEMP_DIR = str(tmp_path / "tmp")


@pytest.fixture
def offline(monkeypatch):
    """No network: every socket connect fails, and the engine is built anew under that rule."""
    def refuse(self, address):
        raise OSError(f"network access attempted in an offline test: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(ocr, "_engine", None)


def write(tmp_path, name, array, fmt="JPEG"):
    path = tmp_path / name
    path.write_bytes(samples.encode(array, fmt))
    return name, path


@needs_ocr
def test_the_wheel_ships_its_models():
    models = ocr.bundled_models()
    assert set(models) == {"det", "cls", "rec"}
    assert all(path.is_file() and path.stat().st_size > 100_000 for path in models.values())


@needs_ocr
def test_rendered_text_is_read_offline_with_its_confidence(offline, tmp_path):
    _name, path = write(tmp_path, "page.jpg", samples.document())
    reading = ocr.read_text(load_image(path).rgb)
    assert reading["text"].splitlines() == list(samples.DOCUMENT_LINES)
    assert 0.9 < reading["confidence"] <= 1.0
    assert [line["text"] for line in reading["lines"]] == list(samples.DOCUMENT_LINES)
    assert all(len(line["box"]) == 4 for line in reading["lines"])


@needs_ocr
def test_a_slightly_rotated_photo_of_a_page_is_read(offline, tmp_path):
    lines = ("Invoice 4471", "Total due 348.50 EUR")
    _name, path = write(tmp_path, "tilted.jpg", samples.document(lines, 1600, 1000, font_size=64, rotate=4, seed=3))
    assert ocr.read_text(load_image(path).rgb)["text"].splitlines() == list(lines)


@needs_ocr
@pytest.mark.parametrize("kind", samples.VARIANTS)
def test_inspection_photos_read_as_no_text(kind, tmp_path):
    _name, path = write(tmp_path, f"{kind}.jpg", samples.variant(kind, 1024, 768, seed=1))
    assert ocr.read_text(load_image(path).rgb) == {"text": "", "confidence": None, "lines": []}


@needs_ocr
@pytest.mark.django_db
def test_the_ocr_analyzer_puts_the_text_in_the_report_and_findings_quote_it(tmp_path):
    files = [write(tmp_path, "page.jpg", samples.document()),
             write(tmp_path, "hull.jpg", samples.variant("rust", 800, 600))]
    batch = services.batch_create(source=Batch.Source.API, files=files, model="ocr", user_query="What does it say?",
                                  descriptions={"page.jpg": "Survey <form>"})
    batch = services.batch_analyze(batch=batch, files=files)
    assert batch.status == "completed", batch.error
    page, hull = batch.images.all()
    assert page.metrics["ocr"]["text"].startswith("INSPECTION REPORT 2024-117")
    assert page.metrics["ocr"]["confidence"] > 0.9
    assert any(f.startswith("page.jpg (Survey <form>) reads “INSPECTION REPORT 2024-117 / Vessel: MV Oceanix")
               and "confidence" in f for f in page.findings)
    assert hull.metrics["ocr"]["text"] == "" and len(hull.findings) == 1 and "possible_rust" in hull.flags
    html = services.batch_report_path(batch).read_text()
    assert "<blockquote class=\"ocr\"" in html and "Corrosion found on port side plate C7" in html
    assert "Survey &lt;form&gt;" in html and "4 lines, confidence" in html and "none found" in html


@needs_ocr
def test_the_default_inspector_reads_text_when_installed_unless_switched_off(tmp_path, settings):
    _name, path = write(tmp_path, "page.png", samples.document(), "PNG")
    inspector = analyzers.get("inspector")
    settings.VISION_OCR = "auto"
    result = inspector.analyze_image(load_image(path), description="", context=BatchContext())
    assert "MV Oceanix" in result.metrics["ocr"]["text"] and len(result.findings) == 2
    settings.VISION_OCR = "off"
    result = inspector.analyze_image(load_image(path), description="", context=BatchContext())
    assert "ocr" not in result.metrics and len(result.findings) == 1


# ---------------------------------------------------------------------------
# Without the package (simulated): clear, never a crash
# ---------------------------------------------------------------------------
@pytest.fixture
def not_installed(monkeypatch):
    monkeypatch.setattr(ocr, "status", lambda: (False, "Install the OCR extra: pip install 'jobsite[ocr]' "
                                                       "(rapidocr and onnxruntime)."))
    monkeypatch.setattr(ocr, "_engine", None)


@pytest.mark.django_db
def test_without_the_package_the_model_is_listed_unavailable_and_refused(not_installed, api):
    models = {m["id"]: m for m in api.get("/available_models").json()["models"]}
    assert models["ocr"]["available"] is False and "jobsite[ocr]" in models["ocr"]["reason"]
    upload = SimpleUploadedFile("a.jpg", samples.encode(samples.variant("clean", 64, 48)), "image/jpeg")
    response = api.post("/api/v1/vision/batches", {"images": [upload], "model": "ocr"}, format="multipart")
    assert response.status_code == 400 and "Model 'ocr' is not available" in response.json()["detail"]


@pytest.mark.django_db
def test_without_the_package_the_inspector_measures_and_on_fails_the_batch_clearly(not_installed, tmp_path,
                                                                                  settings):
    files = [write(tmp_path, "a.jpg", samples.variant("clean", 320, 240))]
    settings.VISION_OCR = "auto"
    batch = services.batch_create(source=Batch.Source.API, files=files)
    batch = services.batch_analyze(batch=batch, files=files)
    assert batch.status == "completed" and "ocr" not in batch.images.get().metrics
    settings.VISION_OCR = "on"
    batch = services.batch_create(source=Batch.Source.API, files=files)
    batch = services.batch_analyze(batch=batch, files=files)
    assert batch.status == "failed" and "OCR is not available" in batch.error
