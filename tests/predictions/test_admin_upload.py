"""Bulk predictions in the admin: the upload form files an upload exactly as
the API does (same job, same checks, the API's messages as form errors),
the predictions and errors.csv download, and progress shows failed rows."""
from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from predictions.models import BulkUploadJob
from scheduling import services as scheduling_services
from tests.predictions_files import annual_row, csv_bytes, xlsx_bytes

pytestmark = pytest.mark.django_db

ADD = "/admin/predictions/bulkuploadjob/add/"
API_UPLOAD = "/api/v1/predictions/annual/bulk-upload-async"


@pytest.fixture(autouse=True)
def _storage(settings, tmp_path):
    settings.PREDICTIONS_STORAGE_DIR = tmp_path / "storage"


def stored_files(settings) -> list[Path]:
    folder = Path(settings.PREDICTIONS_STORAGE_DIR) / "uploads"
    return sorted(folder.iterdir()) if folder.exists() else []


@pytest.fixture
def admin_browser(superuser):
    client = Client()
    client.force_login(superuser)
    return client


def rows_csv(failing=(2,)) -> bytes:
    return csv_bytes([annual_row(i, **({"sector": ""} if i in failing else {})) for i in range(5)])


def upload(client, content: bytes, name="companies.csv", job_type="annual"):
    return client.post(ADD, {"job_type": job_type, "file": SimpleUploadedFile(name, content)})


def run(upload_id) -> BulkUploadJob:
    found = BulkUploadJob.objects.get(pk=upload_id)
    scheduling_services.execution_run(execution_id=found.execution_id, task_id=found.execution.celery_task_id,
                                      worker="test pid 0")
    return BulkUploadJob.objects.get(pk=upload_id)


def test_the_form_files_the_same_upload_as_the_api(admin_browser, admin_api, superuser, settings):
    page = admin_browser.get(ADD)
    assert page.status_code == 200 and b'enctype="multipart/form-data"' in page.content
    assert b"Upload and score" in page.content
    # when the same file goes through the admin and through the API
    response = upload(admin_browser, rows_csv())
    by_admin = BulkUploadJob.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/{by_admin.pk}/change/")
    api = admin_api.post(API_UPLOAD, {"file": SimpleUploadedFile("companies.csv", rows_csv())}, format="multipart")
    assert api.status_code == 202, api.content
    by_api = BulkUploadJob.objects.exclude(pk=by_admin.pk).get()
    # then both are runs of the one bulk-predictions job, with the same checks' results
    assert by_admin.execution.job_id == by_api.execution.job_id
    assert by_admin.execution.job.name == "predictions.bulk-upload"
    fields = ("job_type", "file_format", "file_size", "header", "total_rows", "status", "owner_id", "organization_id")
    assert [getattr(by_admin, f) for f in fields] == [getattr(by_api, f) for f in fields]
    assert (by_admin.execution.trigger, by_api.execution.trigger) == ("manual", "api")
    assert len(stored_files(settings)) == 2
    # and it is scored like any upload
    done = run(by_admin.pk)
    assert (done.status, done.successful_rows, done.failed_rows) == ("completed", 4, 1)


def test_an_xlsx_workbook_is_accepted_too(admin_browser):
    response = upload(admin_browser, xlsx_bytes([annual_row(0), annual_row(1)]), name="companies.xlsx")
    assert response.status_code == 302
    assert BulkUploadJob.objects.get().file_format == "xlsx"


@pytest.mark.parametrize(("name", "content"), [
    ("companies.txt", b"a,b\n1,2\n"),                         # refused while it streams: the type
    ("companies.csv", b"symbol,price\nA,1\n"),                # refused by the service: the header
    ("companies.csv", b"company_symbol,\xff\xfe\n"),          # not UTF-8
    ("companies.csv", b"PK\x03\x04 not really a csv"),        # a zip named .csv
])
def test_a_bad_file_is_a_form_error_with_the_apis_message_and_nothing_is_stored(admin_browser, admin_api, settings,
                                                                                name, content):
    api = admin_api.post(API_UPLOAD, {"file": SimpleUploadedFile(name, content)}, format="multipart")
    assert api.status_code == 400
    response = upload(admin_browser, content, name=name)
    assert response.status_code == 200
    form = response.context["form"]
    assert form.errors["file"] == [api.json()["detail"]]
    assert b"Please correct the error below." in response.content
    assert not BulkUploadJob.objects.exists() and stored_files(settings) == []


def test_no_file_or_no_type_is_a_form_error(admin_browser, settings):
    response = admin_browser.post(ADD, {"job_type": "annual"})
    assert response.status_code == 200 and response.context["form"].errors["file"] == ["This field is required."]
    response = admin_browser.post(ADD, {"job_type": "weekly", "file": SimpleUploadedFile("c.csv", rows_csv())})
    assert response.status_code == 200 and "job_type" in response.context["form"].errors
    assert not BulkUploadJob.objects.exists() and stored_files(settings) == []


def test_a_file_over_the_limit_is_refused_before_it_is_stored(admin_browser, settings):
    settings.PREDICTIONS_MAX_UPLOAD_MB = 1
    response = upload(admin_browser, b"company_symbol\n" + b"A\n" * 700_000)
    assert response.status_code == 200
    assert "File too large" in response.context["form"].errors["file"][0]
    assert not BulkUploadJob.objects.exists() and stored_files(settings) == []


def test_the_upload_needs_a_csrf_token_and_the_add_permission(superuser, make_user, settings):
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser)
    assert upload(client, rows_csv()).status_code == 403
    assert not BulkUploadJob.objects.exists() and stored_files(settings) == []
    staff = make_user("staff")
    staff.is_staff = True
    staff.save()
    staff.user_permissions.add(Permission.objects.get(codename="view_bulkuploadjob"))
    viewer = Client()
    viewer.force_login(staff)
    assert viewer.get(ADD).status_code == 403
    assert upload(viewer, rows_csv()).status_code == 403
    assert b"pu-upload" not in viewer.get("/admin/predictions/bulkuploadjob/").content  # no Upload button
    staff.user_permissions.add(Permission.objects.get(codename="add_bulkuploadjob"))
    assert upload(viewer, rows_csv()).status_code == 302


def test_downloads_and_progress_with_failed_rows(admin_browser):
    upload(admin_browser, rows_csv())
    pending = BulkUploadJob.objects.get()
    page = admin_browser.get(f"/admin/predictions/bulkuploadjob/{pending.pk}/change/").content.decode()
    assert "Downloads are ready once the upload has finished." in page
    early = admin_browser.get(f"/admin/predictions/bulkuploadjob/{pending.pk}/results.csv")
    assert early.status_code == 302  # back to the page, saying why
    assert "results can be downloaded once it has completed" in admin_browser.get(early["Location"]).content.decode()
    done = run(pending.pk)
    page = admin_browser.get(f"/admin/predictions/bulkuploadjob/{done.pk}/change/").content.decode()
    assert 'id="pu-results"' in page and 'id="pu-errors"' in page
    assert page.index('id="pu-results"') < page.index("<fieldset")
    assert 'class="ops-progress-failed" style="width:20.00%"' in page and "1 failed" in page
    results = admin_browser.get(f"/admin/predictions/bulkuploadjob/{done.pk}/results.csv")
    assert results.status_code == 200 and results["Content-Type"].startswith("text/csv")
    lines = b"".join(results.streaming_content).decode().splitlines()
    assert lines[0].startswith("row,company_symbol") and len(lines) == 5
    errors = admin_browser.get(f"/admin/predictions/bulkuploadjob/{done.pk}/errors.csv")
    assert errors.status_code == 200 and "attachment" in errors["Content-Disposition"]
    assert "sector" in b"".join(errors.streaming_content).decode()
    listing = admin_browser.get("/admin/predictions/bulkuploadjob/").content.decode()
    assert 'class="ops-progress-failed" style="width:20.00%"' in listing and 'id="pu-upload"' in listing


def test_someone_elses_upload_cannot_be_downloaded(admin_browser, make_user, other_org):
    upload(admin_browser, rows_csv())
    done = run(BulkUploadJob.objects.get().pk)
    stranger = make_user("stranger", organization=other_org)
    stranger.is_staff = True
    stranger.save()
    stranger.user_permissions.add(Permission.objects.get(codename="view_bulkuploadjob"))
    client = Client()
    client.force_login(stranger)
    assert client.get(f"/admin/predictions/bulkuploadjob/{done.pk}/results.csv").status_code == 404
    assert client.get(f"/admin/predictions/bulkuploadjob/{done.pk}/errors.csv").status_code == 404


def test_the_upload_list_costs_the_same_queries_for_more_rows(admin_browser):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_browser.get("/admin/predictions/bulkuploadjob/").status_code == 200
        return len(captured)

    upload(admin_browser, rows_csv())
    few = queries()
    for _ in range(4):
        upload(admin_browser, rows_csv())
    assert BulkUploadJob.objects.count() == 5 and queries() == few
