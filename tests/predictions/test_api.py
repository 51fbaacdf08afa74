"""Seed 004's API: uploads and their validation, job details/status/list,
cancel, delete, downloads, access rules. Runs are executed in-process
through the core's run lifecycle (scheduling.services.execution_run); the
real worker is in tests/e2e/test_predictions.py."""
import csv
import io
import resource
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from predictions.models import BulkUploadJob, Prediction, RowError
from predictions.uploads import stored_file
from scheduling import services as scheduling_services
from scheduling.models import Execution, Job
from tests.predictions_files import (
    annual_row,
    billion_laughs,
    csv_bytes,
    quarterly_row,
    replace_in_zip,
    xlsx_bytes,
    zip_bomb_xlsx,
)

pytestmark = pytest.mark.django_db

ANNUAL = "/api/v1/predictions/annual/bulk-upload-async"
QUARTERLY = "/api/v1/predictions/quarterly/bulk-upload-async"
JOBS = "/api/v1/predictions/jobs"
NOT_FOUND = "Job not found or access denied"


@pytest.fixture(autouse=True)
def _storage(settings, tmp_path):
    settings.PREDICTIONS_STORAGE_DIR = tmp_path / "storage"


def upload(client, content: bytes, name="data.csv", url=ANNUAL):
    return client.post(url, {"file": SimpleUploadedFile(name, content)}, format="multipart")


def run(job_id) -> BulkUploadJob:
    """Run the upload's queued execution here, as the worker would."""
    upload_job = BulkUploadJob.objects.get(pk=job_id)
    execution = upload_job.execution
    scheduling_services.execution_run(execution_id=execution.pk, task_id=execution.celery_task_id, worker="test pid 0")
    return BulkUploadJob.objects.select_related("execution").get(pk=job_id)


def rows_with_bad(n=40, bad=None):
    bad = bad or {}
    return [annual_row(i, **bad.get(i, {})) for i in range(n)]


def stored_files(settings):
    folder = settings.PREDICTIONS_STORAGE_DIR / "uploads"
    return sorted(folder.iterdir()) if folder.exists() else []


# -- upload ----------------------------------------------------------------
def test_csv_upload_is_accepted_and_scored(api, settings):
    bad = {3: {"sector": ""}, 7: {"market_cap": "lots"}, 9: {"total_assets": "-5", "fiscal_year": "20x4"},
           11: {"market_cap": "-1", "fiscal_year": "2024.5"}}
    response = upload(api, csv_bytes(rows_with_bad(40, bad)))
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "pending" and body["total_rows"] == 40
    assert body["status_url"] == f"{JOBS}/{body['job_id']}/status"
    execution = Execution.objects.get(pk=BulkUploadJob.objects.get(pk=body["job_id"]).execution_id)
    assert (execution.job.name, execution.job.kind, execution.job.queue) == ("predictions.bulk-upload", "bulk_prediction", "predictions")
    assert execution.override_kwargs == {"upload_id": body["job_id"]}
    assert body["task_id"] == execution.celery_task_id

    job = run(body["job_id"])
    assert job.status == "completed"
    assert (job.total_rows, job.processed_rows, job.successful_rows, job.failed_rows) == (40, 40, 36, 4)
    errors = list(RowError.objects.filter(upload=job).values_list("row_number", "company_symbol", "error"))
    assert errors == [
        (5, "SYM3", "Missing required field: sector"),
        (9, "SYM7", "Invalid market cap value"),
        (11, "SYM9", "Invalid fiscal year value; "
                     "Invalid total assets value (must be greater than 0)"),
        (13, "SYM11", "Invalid fiscal year value (a whole number from 1900 to 2100); "
                      "Invalid market cap value (must be at least 0)"),
    ]
    assert Prediction.objects.filter(upload=job).count() == 36


def test_xlsx_upload_is_scored_like_csv(api):
    rows = rows_with_bad(12, {2: {"net_income": "n/a"}})
    response = upload(api, xlsx_bytes(rows), name="data.xlsx")
    assert response.status_code == 202, response.json()
    job = run(response.json()["job_id"])
    assert (job.file_format, job.status, job.successful_rows, job.failed_rows) == ("xlsx", "completed", 11, 1)
    error = RowError.objects.get(upload=job)
    assert (error.row_number, error.error) == (4, "Invalid net income value")
    csv_job = run(upload(api, csv_bytes(rows)).json()["job_id"])
    from_xlsx = list(Prediction.objects.filter(upload=job).values_list("row_number", "probability_of_default", "risk_band"))
    from_csv = list(Prediction.objects.filter(upload=csv_job).values_list("row_number", "probability_of_default", "risk_band"))
    assert from_xlsx == from_csv


def test_quarterly_upload_annualises_flows(api):
    response = upload(api, csv_bytes([quarterly_row(0)], "quarterly"), url=QUARTERLY)
    assert response.status_code == 202, response.json()
    job = run(response.json()["job_id"])
    prediction = Prediction.objects.get(upload=job)
    # the quarter's flows ×4 are the annual example's: same T (tests/predictions/test_scoring.py)
    assert prediction.o_score == pytest.approx(-4.272416, abs=1e-5)
    assert (prediction.fiscal_quarter, prediction.risk_band) == (2, "safe")


@pytest.mark.parametrize("content, name, status, message", [
    (b"", "empty.csv", 400, "The file is empty"),
    (csv_bytes([]), "header.csv", 400, "header row but no data rows"),
    (csv_bytes([]) + b"\n\r\n  \n", "blank.csv", 400, "header row but no data rows"),
    (b"symbol,price\nACME,3\n", "wrong.csv", 400, "missing required columns: company_symbol, sector"),
    (b"caf\xe9,sector\n", "latin1.csv", 400, "not valid UTF-8 text: byte 0xE9 at line 1"),
    (b"\xff\xfec\x00o\x00", "utf16.csv", 400, "UTF-16"),
    (b"\x7fELF\x02\x01\x01\x00\x00\x00", "binary.csv", 400, "NUL bytes"),
    (b"%PDF-1.4 not a workbook", "report.xlsx", 400, "not a valid XLSX workbook"),
    (b"a,b\n1,2\n", "data.xls", 400, "Unsupported file type '.xls'"),
    (b"a,b\n1,2\n", "data.txt", 400, "Unsupported file type '.txt'"),
])
def test_bad_files_are_refused_at_once(api, settings, content, name, status, message):
    response = upload(api, content, name=name)
    assert response.status_code == status, response.json()
    assert message in response.json()["detail"]
    assert not BulkUploadJob.objects.exists()
    assert stored_files(settings) == []  # nothing left behind


def test_unknown_and_duplicated_columns_are_named(api):
    header = ["company_symbol", "sector", "sector", "colour", *[c for c in csv_bytes([]).decode().strip().split(",")
                                                          if c not in ("company_symbol", "sector")]]
    response = upload(api, csv_bytes([annual_row()], header=header))
    detail = response.json()["detail"]
    assert response.status_code == 400
    assert "duplicated columns: sector" in detail and "unknown columns: 'colour'" in detail


def test_non_utf8_bytes_deep_in_the_file_are_found(api):
    content = csv_bytes(rows_with_bad(2000)) + b"ZZZ,Caf\xe9,Energy\n"
    response = upload(api, content)
    assert response.status_code == 400
    assert "line 2002" in response.json()["detail"]


def test_a_file_without_the_file_field_is_a_400(api):
    response = api.post(ANNUAL, {"upload": SimpleUploadedFile("a.csv", b"x")}, format="multipart")
    assert response.status_code == 400
    assert "multipart form field 'file'" in response.json()["detail"]


def test_a_json_body_is_refused(api):
    response = api.post(ANNUAL, {"file": "x"}, format="json")
    assert response.status_code == 415


@pytest.mark.parametrize("extra", [256 * 1024, 16 * 1024])  # refused from Content-Length / while streaming
def test_oversize_upload_is_413(api, settings, extra):
    settings.PREDICTIONS_MAX_UPLOAD_MB = 1
    content = csv_bytes([annual_row()]) + b"#" * (1024 * 1024 + extra)
    response = upload(api, content)
    assert response.status_code == 413
    assert response.json()["detail"].startswith("File too large") and "1 MB" in response.json()["detail"]
    assert stored_files(settings) == []


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture
def warmed_up(api):
    """A first valid XLSX upload, so that imports (openpyxl, pyarrow) are not counted as bomb memory."""
    assert upload(api, xlsx_bytes([annual_row()]), name="warm.xlsx").status_code == 202


def test_xlsx_zip_bomb_is_refused_fast_with_flat_memory(api, settings, warmed_up):
    bomb = zip_bomb_xlsx(uncompressed_mb=60)
    assert len(bomb) < 200_000
    before = _peak_rss_mb()
    started = time.monotonic()
    response = upload(api, bomb, name="bomb.xlsx")
    assert time.monotonic() - started < 1.0
    assert response.status_code == 400
    assert "possible zip bomb" in response.json()["detail"]
    assert _peak_rss_mb() - before < 30
    assert len(stored_files(settings)) == 1  # only the warm-up's


@pytest.mark.parametrize("member, root", [("xl/worksheets/sheet1.xml", "worksheet"), ("xl/workbook.xml", "workbook"),
                                          ("xl/styles.xml", "styleSheet")])
def test_xlsx_billion_laughs_is_refused_fast_with_flat_memory(api, member, root, warmed_up):
    import zipfile

    valid = xlsx_bytes([annual_row()], numbers=False)
    names = zipfile.ZipFile(io.BytesIO(valid)).namelist()
    if member not in names:
        pytest.skip(f"{member} not written by this openpyxl")
    evil = replace_in_zip(valid, member, billion_laughs(root))
    before = _peak_rss_mb()
    started = time.monotonic()
    response = upload(api, evil, name="laughs.xlsx")
    assert time.monotonic() - started < 1.0
    assert response.status_code == 400, response.json()
    assert "possible XML bomb" in response.json()["detail"]
    assert _peak_rss_mb() - before < 30


def test_xlsx_header_only_and_wrong_columns(api):
    response = upload(api, xlsx_bytes([]), name="empty.xlsx")
    assert response.status_code == 400 and "no data rows" in response.json()["detail"]


# -- job API ---------------------------------------------------------------
def test_job_detail_has_the_seed_shape(api):
    job_id = upload(api, csv_bytes(rows_with_bad(20, {4: {"sector": " "}}))).json()["job_id"]
    pending = api.get(f"{JOBS}/{job_id}").json()["job"]
    assert pending["status"] == "pending" and pending["timestamps"]["started_at"] is None
    run(job_id)
    response = api.get(f"{JOBS}/{job_id}?include_errors=true")
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    job = body["job"]
    assert set(job) == {"id", "status", "job_type", "file_info", "progress", "performance", "timestamps", "context",
                        "errors", "celery_info"}
    assert job["status"] == "completed" and job["job_type"] == "annual"
    assert job["file_info"]["original_filename"] == "data.csv" and job["file_info"]["file_size"] > 0
    assert job["progress"] == {"total_rows": 20, "processed_rows": 20, "successful_rows": 19, "failed_rows": 1,
                               "progress_percentage": 100.0, "remaining_rows": 0}
    assert job["performance"]["estimated_completion_time"] is None
    assert job["performance"]["rows_per_second"] > 0
    assert job["timestamps"]["completed_at"] and job["timestamps"]["started_at"]
    assert job["context"]["created_by"] == "alice"
    assert job["errors"]["has_errors"] is True and job["errors"]["error_count"] == 1
    assert job["errors"]["error_details"]["errors"] == [
        {"row": 6, "company_symbol": "SYM4", "error": "Missing required field: sector"}]
    assert job["celery_info"]["task_id"] == BulkUploadJob.objects.get(pk=job_id).execution.celery_task_id
    assert "error_details" not in api.get(f"{JOBS}/{job_id}").json()["job"]["errors"]


def test_active_job_shows_eta(api):
    from datetime import timedelta

    from django.utils import timezone

    job_id = upload(api, csv_bytes(rows_with_bad(10))).json()["job_id"]
    job = BulkUploadJob.objects.get(pk=job_id)
    Execution.objects.filter(pk=job.execution_id).update(status="running", started_at=timezone.now() - timedelta(seconds=10))
    BulkUploadJob.objects.filter(pk=job_id).update(total_rows=1000, processed_rows=100)
    perf = api.get(f"{JOBS}/{job_id}").json()["job"]["performance"]
    assert perf["estimated_completion_seconds"] == pytest.approx(90, abs=2)
    assert perf["estimated_completion_time"] in ("1m 29s", "1m 30s", "1m 31s")
    status = api.get(f"{JOBS}/{job_id}/status").json()
    assert (status["status"], status["progress_percentage"], status["processed_rows"]) == ("processing", 10.0, 100)


def test_list_filters_by_status_and_limit(api):
    done = upload(api, csv_bytes(rows_with_bad(3))).json()["job_id"]
    run(done)
    pending = upload(api, csv_bytes(rows_with_bad(3))).json()["job_id"]
    body = api.get(f"{JOBS}?limit=10").json()
    assert [j["id"] for j in body["jobs"]] == [pending, done]
    assert [j["id"] for j in api.get(f"{JOBS}?status=completed").json()["jobs"]] == [done]
    assert [j["id"] for j in api.get(f"{JOBS}?status=pending").json()["jobs"]] == [pending]
    assert api.get(f"{JOBS}?status=failed").json()["jobs"] == []
    assert len(api.get(f"{JOBS}?limit=1").json()["jobs"]) == 1
    bad = api.get(f"{JOBS}?status=done")
    assert bad.status_code == 400 and "status" in bad.json()["detail"]
    assert api.get(f"{JOBS}?limit=0").status_code == 400


def test_cancel_pending_job_marks_it_failed_and_it_never_runs(api):
    job_id = upload(api, csv_bytes(rows_with_bad(5))).json()["job_id"]
    response = api.post(f"{JOBS}/{job_id}/cancel")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["message"] == f"Job {job_id} cancelled successfully"
    assert body["cancelled_job"]["status"] == "failed" and body["cancelled_job"]["celery_cancelled"] is True
    assert "Cancelled by alice" in body["cancelled_job"]["error_message"]
    job = run(job_id)  # a late message finds the execution cancelled: nothing runs
    assert (job.status, job.processed_rows, job.completed_at is not None) == ("failed", 0, True)
    again = api.post(f"{JOBS}/{job_id}/cancel")
    assert again.status_code == 400
    assert again.json()["detail"] == ("Cannot cancel job with status 'failed'. "
                                      "Only pending or processing jobs can be cancelled.")


def test_downloads_wait_for_the_upload_to_finish(api):
    # given an upload not run yet
    job_id = upload(api, csv_bytes(rows_with_bad(3))).json()["job_id"]
    # then neither its results nor its errors can be downloaded
    results = api.get(f"{JOBS}/{job_id}/results")
    assert results.status_code == 400 and results.json()["detail"] == (
        f"Job {job_id} is pending: results can be downloaded once it has completed.")
    errors = api.get(f"{JOBS}/{job_id}/errors.csv")
    assert errors.status_code == 400 and errors.json()["detail"] == (
        f"Job {job_id} is pending: its errors can be downloaded once it has finished.")
    # when it has run, both are served
    run(job_id)
    assert api.get(f"{JOBS}/{job_id}/results").status_code == 200
    assert api.get(f"{JOBS}/{job_id}/errors.csv").status_code == 200


def test_cancel_completed_job_is_400(api):
    job_id = upload(api, csv_bytes(rows_with_bad(2))).json()["job_id"]
    run(job_id)
    response = api.post(f"{JOBS}/{job_id}/cancel")
    assert response.status_code == 400
    assert response.json()["detail"] == ("Cannot cancel job with status 'completed'. "
                                         "Only pending or processing jobs can be cancelled.")


def test_delete_refuses_processing_and_removes_finished(api, settings):
    job_id = upload(api, csv_bytes(rows_with_bad(6, {1: {"sector": ""}}))).json()["job_id"]
    job = BulkUploadJob.objects.get(pk=job_id)
    path = stored_file(job.stored_path)
    assert path.exists()
    Execution.objects.filter(pk=job.execution_id).update(status="running")
    response = api.delete(f"{JOBS}/{job_id}")
    assert response.status_code == 400
    assert response.json()["detail"] == ("Cannot delete job that is currently processing. "
                                         "Please cancel the job first or wait for it to complete.")
    Execution.objects.filter(pk=job.execution_id).update(status="queued")
    run(job_id)
    response = api.delete(f"{JOBS}/{job_id}")
    assert response.status_code == 200
    assert response.json() == {"success": True, "message": f"Job {job_id} deleted successfully", "deleted_job": {
        "id": job_id, "status": "completed", "job_type": "annual", "original_filename": "data.csv"}}
    assert not BulkUploadJob.objects.filter(pk=job_id).exists()
    assert not Prediction.objects.filter(upload_id=job_id).exists()
    assert not RowError.objects.filter(upload_id=job_id).exists()
    assert api.get(f"{JOBS}/{job_id}").status_code == 404


def test_delete_pending_cancels_its_run(api, settings, django_capture_on_commit_callbacks):
    job_id = upload(api, csv_bytes(rows_with_bad(2))).json()["job_id"]
    job = BulkUploadJob.objects.get(pk=job_id)
    path = stored_file(job.stored_path)
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"{JOBS}/{job_id}").status_code == 200
    assert Execution.objects.get(pk=job.execution_id).status == "cancelled"
    assert not path.exists()


# -- downloads -------------------------------------------------------------
def read_csv(response) -> list[list[str]]:
    content = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(content)))


def test_results_csv_neutralises_formulas(api):
    rows = [annual_row(0, company_name="=HYPERLINK(\"http://evil\",\"x\")"), annual_row(1, company_symbol="@SUM(A1)"),
            annual_row(2, sector="+cmd|' /C calc'!A0"), annual_row(3, company_name="-2+3")]
    job_id = upload(api, csv_bytes(rows)).json()["job_id"]
    assert api.get(f"{JOBS}/{job_id}/results").status_code == 400  # not completed yet
    run(job_id)
    response = api.get(f"{JOBS}/{job_id}/results")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    table = read_csv(response)
    assert table[0] == ["row", "company_symbol", "company_name", "sector", "fiscal_year", "probability_of_default",
                        "o_score", "risk_band", "z_score"]
    assert table[1][2] == "'=HYPERLINK(\"http://evil\",\"x\")"
    assert table[2][1] == "'@SUM(A1)"
    assert table[3][3] == "'+cmd|' /C calc'!A0"
    assert table[4][2] == "'-2+3"
    assert float(table[1][5]) == pytest.approx(0.013756, abs=1e-6) and table[1][7] == "safe"


def test_errors_csv_has_original_columns_and_neutralises_formulas(api):
    rows = [annual_row(0), annual_row(1, sector="", company_name="=1+1", net_income="-12.5"),
            annual_row(2, market_cap="@bad")]
    job_id = upload(api, csv_bytes(rows)).json()["job_id"]
    run(job_id)
    table = read_csv(api.get(f"{JOBS}/{job_id}/errors.csv"))
    assert table[0][:4] == ["row", "company_symbol", "error", "company_name"]
    assert table[1][:4] == ["3", "SYM1", "Missing required field: sector", "'=1+1"]
    assert table[1][table[0].index("net_income")] == "-12.5"  # numbers stay numbers
    assert table[2][table[0].index("market_cap")] == "'@bad"


def test_templates(api):
    response = api.get("/api/v1/predictions/templates/quarterly")
    assert response.status_code == 200
    assert response.content.decode().strip().split(",")[:5] == ["company_symbol", "company_name", "sector",
                                                                 "fiscal_year", "fiscal_quarter"]
    xlsx = api.get("/api/v1/predictions/templates/annual?file_format=xlsx")
    assert xlsx.status_code == 200 and xlsx.content.startswith(b"PK")
    assert api.get("/api/v1/predictions/templates/annual?file_format=pdf").status_code == 400


def test_shipped_samples_score_cleanly(api, settings):
    for job_type, url in (("annual", ANNUAL), ("quarterly", QUARTERLY)):
        content = (settings.BASE_DIR / "predictions" / "samples" / f"{job_type}_sample.csv").read_bytes()
        response = upload(api, content, name=f"{job_type}_sample.csv", url=url)
        assert response.status_code == 202, response.json()
        job = run(response.json()["job_id"])
        assert (job.status, job.failed_rows, job.successful_rows) == ("completed", 0, 12)


# -- access ----------------------------------------------------------------
def test_access_rules(api, client_for, make_user, org, other_org, superuser):
    job_id = upload(api, csv_bytes(rows_with_bad(2))).json()["job_id"]
    org_mate = client_for(make_user("bob", organization=org))
    stranger = client_for(make_user("carol", organization=other_org))
    loner = client_for(make_user("dave"))
    admin = client_for(superuser)
    for client in (org_mate, admin):
        assert client.get(f"{JOBS}/{job_id}").status_code == 200
        assert [j["id"] for j in client.get(JOBS).json()["jobs"]] == [job_id]
    for client in (stranger, loner):
        for method, path in (("get", ""), ("get", "/status"), ("post", "/cancel"), ("delete", ""),
                             ("get", "/results"), ("get", "/errors.csv")):
            response = getattr(client, method)(f"{JOBS}/{job_id}{path}")
            assert response.status_code == 404 and response.json()["detail"] == NOT_FOUND
        assert client.get(JOBS).json()["jobs"] == []
    assert api.get(f"{JOBS}/not-a-uuid").json()["detail"] == NOT_FOUND
    assert api.get(f"{JOBS}/00000000-0000-0000-0000-000000000000").status_code == 404
    assert client_for(None).get(JOBS).status_code == 401
    assert org_mate.post(f"{JOBS}/{job_id}/cancel").status_code == 200  # org members manage org jobs


def test_upload_with_the_manual_job_paused_is_409(api):
    response = upload(api, csv_bytes(rows_with_bad(1)))
    assert response.status_code == 202
    job = Job.objects.get(name="predictions.bulk-upload")
    scheduling_services.job_pause(job=job)
    response = upload(api, csv_bytes(rows_with_bad(1)))
    assert response.status_code == 409 and "paused by an operator" in response.json()["detail"]


# -- retry failed rows ---------------------------------------------------------
def test_retry_failed_from_the_corrected_errors_csv(api):
    rows = rows_with_bad(10, {2: {"sector": ""}, 6: {"market_cap": "n/a"}})
    parent = upload(api, csv_bytes(rows)).json()["job_id"]
    assert api.post(f"{JOBS}/{parent}/retry-failed",
                    {"file": SimpleUploadedFile("x.csv", csv_bytes(rows))}, format="multipart").status_code == 400
    run(parent)
    table = read_csv(api.get(f"{JOBS}/{parent}/errors.csv"))
    header, lines = table[0], table[1:]
    assert [line[0] for line in lines] == ["4", "8"]
    lines[0][header.index("sector")] = "Energy"        # fixed in a spreadsheet
    lines[1][header.index("market_cap")] = "1200"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *lines])
    response = api.post(f"{JOBS}/{parent}/retry-failed",
                        {"file": SimpleUploadedFile("fixed.csv", buffer.getvalue().encode())}, format="multipart")
    assert response.status_code == 202, response.json()
    retry = run(response.json()["job_id"])
    assert (retry.status, retry.successful_rows, retry.failed_rows, str(retry.retry_of_id)) == ("completed", 2, 0, parent)
    assert list(Prediction.objects.filter(upload=retry).values_list("row_number", "company_symbol")) == [
        (4, "SYM2"), (8, "SYM6")]
    assert api.get(f"{JOBS}/{retry.pk}").json()["job"]["context"]["retry_of"] == parent


def test_retry_failed_with_the_whole_corrected_file_scores_only_the_failed_rows(api):
    rows = rows_with_bad(10, {5: {"ebit": "?"}})
    parent = upload(api, csv_bytes(rows)).json()["job_id"]
    run(parent)
    fixed = csv_bytes(rows_with_bad(10))
    response = api.post(f"{JOBS}/{parent}/retry-failed", {"file": SimpleUploadedFile("all.csv", fixed)},
                        format="multipart")
    assert response.status_code == 202, response.json()
    retry = run(response.json()["job_id"])
    assert (retry.processed_rows, retry.successful_rows) == (1, 1)
    assert list(Prediction.objects.filter(upload=retry).values_list("row_number", flat=True)) == [7]
    done = upload(api, csv_bytes(rows_with_bad(2))).json()["job_id"]
    run(done)
    nothing = api.post(f"{JOBS}/{done}/retry-failed", {"file": SimpleUploadedFile("a.csv", fixed)}, format="multipart")
    assert nothing.status_code == 400 and "no failed rows" in nothing.json()["detail"]
