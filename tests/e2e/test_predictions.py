"""Bulk predictions end to end: the API, the real Redis broker and a real
Celery worker process (tests/worker.py) — what only they can show: the run on
the worker, progress and ETA while it runs, cancel terminating the task."""
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from predictions.models import BulkUploadJob, Prediction, RowError
from predictions.schema import column_names
from predictions.uploads import stored_file
from tests.predictions_files import annual_row, csv_bytes
from tests.worker import pid_alive, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ANNUAL = "/api/v1/predictions/annual/bulk-upload-async"
JOBS = "/api/v1/predictions/jobs"


def large_csv(rows: int) -> bytes:
    line = ",Company {i},Technology,2024,1500,1000,600,400,200,150,80,50,40,120\n"
    body = "".join("SYM" + str(i) + line.replace("{i}", str(i)) for i in range(rows))
    return (",".join(column_names("annual")) + "\n" + body).encode()


def test_a_1000_row_file_with_15_bad_rows_completes_on_the_worker(celery_worker_process, api):
    bad_rows = {i * 60 + 7: ({"sector": ""} if i % 2 else {"market_cap": "n/a"}) for i in range(15)}
    rows = [annual_row(i, **bad_rows.get(i, {})) for i in range(1000)]
    response = api.post(ANNUAL, {"file": SimpleUploadedFile("thousand.csv", csv_bytes(rows))}, format="multipart")
    assert response.status_code == 202, response.json()
    job_id = response.json()["job_id"]
    status = wait_for(lambda: (s := api.get(f"{JOBS}/{job_id}/status").json())["status"] in ("completed", "failed") and s,
                      timeout=30, message="the job to finish")
    assert status["status"] == "completed", status
    job = api.get(f"{JOBS}/{job_id}?include_errors=true").json()["job"]
    assert (job["progress"]["successful_rows"], job["progress"]["failed_rows"]) == (985, 15)
    errors = job["errors"]["error_details"]["errors"]
    assert [e["row"] for e in errors] == sorted(i + 2 for i in bad_rows)
    assert errors[0] == {"row": 9, "company_symbol": "SYM7", "error": "Invalid market cap value"}
    assert errors[1] == {"row": 69, "company_symbol": "SYM67", "error": "Missing required field: sector"}
    assert job["celery_info"]["celery_status"] == "SUCCESS"
    assert job["performance"]["rows_per_second"] > 0
    assert Prediction.objects.filter(upload_id=job_id).count() == 985


def test_a_large_file_shows_progress_then_cancel_stops_the_worker(celery_worker_process, api):
    response = api.post(ANNUAL, {"file": SimpleUploadedFile("large.csv", large_csv(600_000))}, format="multipart")
    assert response.status_code == 202, response.json()
    job_id = response.json()["job_id"]
    upload = BulkUploadJob.objects.get(pk=job_id)

    # progress rises and an ETA is shown while it runs
    first = wait_for(lambda: (j := api.get(f"{JOBS}/{job_id}").json()["job"])["progress"]["processed_rows"] > 0 and j,
                     interval=0.1, message="progress")
    assert first["status"] == "processing"
    second = wait_for(
        lambda: (j := api.get(f"{JOBS}/{job_id}").json()["job"])["progress"]["processed_rows"]
        > first["progress"]["processed_rows"] and j, timeout=5, interval=0.1, message="rising progress")
    assert second["status"] == "processing", "the file finished too fast to watch; make it larger"
    assert second["performance"]["estimated_completion_seconds"] > 0
    assert second["performance"]["estimated_completion_time"].endswith("s")
    assert 0 < second["progress"]["progress_percentage"] < 100
    assert second["celery_info"]["celery_status"] in ("PROGRESS", "STARTED")

    # delete refuses a processing job
    refused = api.delete(f"{JOBS}/{job_id}")
    assert refused.status_code == 400 and "currently processing" in refused.json()["detail"]

    # cancel: answered at once, the task's pool process is terminated, no row after the answer
    upload.execution.refresh_from_db()
    pid = int(upload.execution.worker.rsplit("pid ", 1)[1])
    started = time.monotonic()
    response = api.post(f"{JOBS}/{job_id}/cancel")
    assert response.status_code == 200, response.json()
    assert time.monotonic() - started < 2
    cancelled = response.json()["cancelled_job"]
    assert (cancelled["status"], cancelled["celery_cancelled"]) == ("failed", True)
    processed_at_cancel = BulkUploadJob.objects.get(pk=job_id).processed_rows
    stored_at_cancel = Prediction.objects.filter(upload_id=job_id).count()
    wait_for(lambda: not pid_alive(pid), timeout=10, message=f"pool process {pid} to be terminated")
    time.sleep(1.0)
    job = api.get(f"{JOBS}/{job_id}").json()["job"]
    assert job["status"] == "failed"
    assert job["progress"]["processed_rows"] == processed_at_cancel < 600_000
    assert Prediction.objects.filter(upload_id=job_id).count() == stored_at_cancel
    assert "Cancelled by alice" in job["errors"]["error_message"]
    assert job["timestamps"]["completed_at"] is not None
    assert job["performance"]["estimated_completion_time"] is None

    # and a finished job is deleted with its predictions and file
    path = stored_file(upload.stored_path)
    assert api.delete(f"{JOBS}/{job_id}").status_code == 200
    assert not Prediction.objects.filter(upload_id=job_id).exists()
    assert not RowError.objects.filter(upload_id=job_id).exists()
    wait_for(lambda: not path.exists(), timeout=5, message="the stored file to be removed")
