"""Lean workers (issue 30): the heavy vision libraries are imported only by the
code that uses them, and a worker process that loaded them (OpenCV, the OCR
engine and its models) is replaced after its task instead of keeping that
memory for every later run (jobsite/settings/celery.py,
CELERY_WORKER_MAX_MEMORY_PER_CHILD)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.worker import wait_for
from vision_pipeline import samples
from vision_pipeline.analyzers import ocr

HEAVY = ("cv2", "numpy", "rapidocr", "onnxruntime")
IDLE_LIMIT_MB = 250


def test_a_worker_or_web_process_loads_no_heavy_library_until_a_vision_run_needs_it():
    # Everything a worker and the web process import at start: the apps (admin
    # included), the tasks, the executors, the vision services and API.
    script = (
        "import json, sys, django; django.setup()\n"
        "from jobsite.celery import app; app.loader.import_default_modules()\n"
        "import jobsite.urls, vision_pipeline.services, vision_pipeline.executors, vision_pipeline.apis\n"
        "import vision_pipeline.analyzers\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=str(django_settings.BASE_DIR), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_worker_processes_are_replaced_past_the_memory_limit():
    from jobsite.celery import app

    assert app.conf.worker_max_memory_per_child == 240 * 1024  # KiB, the process's peak


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not ocr.status()[0], reason=f"OCR extra not installed: {ocr.status()[1]}")
def test_after_an_ocr_run_no_worker_process_stays_heavy(celery_worker_process, api, settings):
    settings.VISION_STORAGE_DIR = str(settings.VAR_DIR / "vision")  # the worker's (default) directory
    before = set(celery_worker_process.child_pids())
    # given a batch read by the OCR engine (the heaviest kind: ~450 MB in the process that ran it)
    page = SimpleUploadedFile("page.jpg", samples.encode(samples.document()), "image/jpeg")
    response = api.post("/api/v1/vision/batches", {"images": [page], "model": "ocr"}, format="multipart")
    assert response.status_code == 202, response.content
    batch_id = response.json()["batch_id"]
    status = wait_for(lambda: (lambda s: s if s["status"] not in ("pending", "processing") else None)(
        api.get(f"/api/v1/vision/batches/{batch_id}").json()), timeout=120, message="the batch to finish")
    assert status["status"] == "completed", status
    # then the process that ran it is replaced, and every process of the worker is lean at idle
    # (one wait for all three: while a process is replaced, the pool has one fewer for a moment)
    def settled():
        pids = celery_worker_process.child_pids()
        return (len(pids) == 2 and set(pids) - before
                and all(0 < rss_mb(pid) <= IDLE_LIMIT_MB for pid in pids))

    wait_for(settled, timeout=30, message="both pool processes, one of them fresh, every one under the limit")
