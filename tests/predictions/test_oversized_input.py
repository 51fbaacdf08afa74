"""Oversized lines and cells in a bulk upload: a line over
PREDICTIONS_MAX_LINE_BYTES is a 400 at upload (seen while the file streams),
a cell over PREDICTIONS_MAX_CELL_BYTES a row error, and a row that spans lines
(a quoted cell with line breaks) and is too long for the reader fails its run
in plain words on the real worker. Nothing is stored for a refused upload."""
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from predictions.models import BulkUploadJob, RowError
from predictions.schema import column_names
from scheduling import services as scheduling_services
from tests.predictions_files import annual_row, csv_bytes
from tests.worker import wait_for

ANNUAL = "/api/v1/predictions/annual/bulk-upload-async"
JOBS = "/api/v1/predictions/jobs"
HEADER = ",".join(column_names("annual")).encode()


def good_lines(n: int, start: int = 0) -> bytes:
    return csv_bytes([annual_row(i) for i in range(start, start + n)]).split(b"\n", 1)[1]


def post(api, content: bytes, name="data.csv"):
    return api.post(ANNUAL, {"file": SimpleUploadedFile(name, content)}, format="multipart")


def stored(settings):
    folder = settings.PREDICTIONS_STORAGE_DIR / "uploads"
    return sorted(folder.iterdir()) if folder.exists() else []


@pytest.fixture
def private_storage(settings, tmp_path):
    settings.PREDICTIONS_STORAGE_DIR = tmp_path / "storage"


@pytest.mark.django_db
@pytest.mark.parametrize("content, line", [
    # the reported case: one 50 MB line (the first data row)
    (HEADER + b"\n" + b"A" * (50 * 1024 * 1024) + b"\n", 2),
    # after good rows, and the last line of the file with no line break after it
    (HEADER + b"\n" + good_lines(30) + b"B" * (1024 * 1024 + 1), 32),
    # a long header is a long line too
    (b"x" * (2 * 1024 * 1024) + b"\n" + good_lines(1), 1),
])
def test_a_line_over_the_limit_is_a_400_at_upload_and_nothing_is_kept(api, settings, private_storage, content, line):
    response = post(api, content)
    assert response.status_code == 400, response.content[:500]
    body = response.json()
    assert body["code"] == "prediction_line_too_long"
    assert body["detail"] == (f"Line {line} of the file is longer than 1,048,576 bytes, the limit per line "
                              "(PREDICTIONS_MAX_LINE_BYTES): each row must be one line of at most that size.")
    assert not BulkUploadJob.objects.exists() and stored(settings) == []


@pytest.mark.django_db
def test_a_long_line_inside_one_streamed_chunk_is_found_too(api, settings, private_storage):
    # given a limit far below the upload's chunk size, so one chunk holds short and long lines
    settings.PREDICTIONS_MAX_LINE_BYTES = 2000
    content = HEADER + b"\n" + good_lines(10) + b"SYM," + b"C" * 2500 + b"\n" + good_lines(10, start=10)
    # when it is uploaded, then the long line (12: header, ten rows, then it) is named
    response = post(api, content)
    assert response.status_code == 400, response.content[:500]
    assert response.json()["detail"].startswith("Line 12 of the file is longer than 2,000 bytes")
    assert stored(settings) == []
    # and a file whose longest line is exactly at the limit is accepted
    base = len(good_lines(1).rstrip(b"\n")) - len("Company 0")
    at_limit = good_lines(1).replace(b"Company 0", b"x" * (2000 - base))
    assert len(at_limit.rstrip(b"\n")) == 2000
    assert post(api, HEADER + b"\n" + at_limit).status_code == 202


@pytest.mark.django_db
def test_a_cell_over_the_limit_is_a_row_error_with_the_cell_cut(api, settings, private_storage):
    # given a file whose row 3 has a 100 KB company name (a line under 1 MB, a cell over 64 KB)
    rows = [annual_row(0), annual_row(1, company_name="N" * 100_000), annual_row(2)]
    response = post(api, csv_bytes(rows))
    assert response.status_code == 202, response.json()
    # when it runs (here, as the worker would)
    upload = BulkUploadJob.objects.get(pk=response.json()["job_id"])
    scheduling_services.execution_run(execution_id=upload.execution_id, task_id=upload.execution.celery_task_id,
                                      worker="test pid 0")
    # then the other rows are scored and that row is an error in plain words
    upload.refresh_from_db()
    assert upload.status == "completed"
    assert (upload.successful_rows, upload.failed_rows) == (2, 1)
    error = RowError.objects.get(upload=upload)
    assert error.row_number == 3
    assert error.error.startswith("Cell company_name is longer than 65,536 bytes (PREDICTIONS_MAX_CELL_BYTES)")
    assert len(error.values["company_name"]) == 65_536  # kept for the errors download, cut to the limit


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_row_spanning_lines_too_long_for_the_reader_fails_its_run_in_plain_words(celery_worker_process, api):
    # given 20 rows, then one whose quoted cell holds 6 MB of short lines (each line is under the limit)
    cell = "x" * 59 + "\n"
    giant = "SYMX,\"" + cell * 100_000 + "\",Technology,2024,1500,1000,600,400,200,150,80,50,40,120\n"
    content = HEADER + b"\n" + good_lines(20) + giant.encode() + good_lines(5, start=20)
    response = post(api, content)
    assert response.status_code == 202, response.json()
    job_id = response.json()["job_id"]
    # when the real worker runs it
    status = wait_for(lambda: (s := api.get(f"{JOBS}/{job_id}/status").json())["status"] in ("completed", "failed")
                      and s, timeout=60, message="the run to end")
    # then it failed, saying why in plain words (not pyarrow's "straddling object" error)
    assert status["status"] == "failed", status
    message = status["error_message"]
    assert message.startswith("The CSV file could not be read after row 21: a row there is longer than 1,114,112 "
                              "bytes (PREDICTIONS_MAX_LINE_BYTES)"), message
    assert "quoted cell with line breaks" in message
    assert "straddl" not in message and "ArrowInvalid" not in message
