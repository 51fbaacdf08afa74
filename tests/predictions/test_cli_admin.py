"""`./manage predictions ...` and the BulkUploadJob admin."""
import io

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from predictions.models import BulkUploadJob
from scheduling import services as scheduling_services
from tests.predictions_files import annual_row, csv_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _storage(settings, tmp_path):
    settings.PREDICTIONS_STORAGE_DIR = tmp_path / "storage"


def manage(*args) -> str:
    out = io.StringIO()
    call_command("predictions", *args, stdout=out, stderr=out)
    return out.getvalue()


def run(upload_id) -> BulkUploadJob:
    upload = BulkUploadJob.objects.get(pk=upload_id)
    scheduling_services.execution_run(execution_id=upload.execution_id, task_id=upload.execution.celery_task_id,
                                      worker="test pid 0")
    return BulkUploadJob.objects.get(pk=upload_id)


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "companies.csv"
    path.write_bytes(csv_bytes([annual_row(i, **({"sector": ""} if i == 2 else {})) for i in range(5)]))
    return path


def test_cli_upload_follow_list_show_results_delete(data_file, user, tmp_path):
    out = manage("upload", str(data_file), "--type", "annual", "--user", "alice", "--no-follow")
    upload = BulkUploadJob.objects.get()
    assert f"Job {upload.pk} created (annual, 5 rows" in out
    assert (upload.owner, upload.execution.trigger) == (user, "cli")
    run(upload.pk)
    out = manage("follow", str(upload.pk))
    assert "100.0%" in out and "Completed: 4 predictions, 1 row errors" in out
    assert str(upload.pk) in manage("list", "--status", "completed")
    assert '"failed_rows": 1' in manage("show", str(upload.pk), "--errors", "--json")
    target = tmp_path / "out.csv"
    manage("results", str(upload.pk), "-o", str(target))
    assert target.read_text().splitlines()[0].startswith("row,company_symbol")
    assert len(target.read_text().splitlines()) == 5
    assert "deleted successfully" in manage("delete", str(upload.pk), "--force")
    assert not BulkUploadJob.objects.exists()


def test_cli_cancel_and_errors(data_file, tmp_path):
    manage("upload", str(data_file), "--type", "annual", "--no-follow")
    upload = BulkUploadJob.objects.get()
    assert "cancelled" in manage("cancel", str(upload.pk))
    with pytest.raises(CommandError, match="Cannot cancel job with status 'failed'"):
        manage("cancel", str(upload.pk))
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"symbol,price\nA,1\n")
    with pytest.raises(CommandError, match="missing required columns"):
        manage("upload", str(bad), "--type", "annual")
    with pytest.raises(CommandError, match="Job not found or access denied"):
        manage("show", "00000000-0000-0000-0000-000000000000")


def test_admin_lists_shows_errors_and_cancels(superuser, data_file):
    manage("upload", str(data_file), "--type", "annual", "--no-follow")
    pending = BulkUploadJob.objects.get()
    manage("upload", str(data_file), "--type", "annual", "--no-follow")
    done = run(BulkUploadJob.objects.exclude(pk=pending.pk).get().pk)
    client = Client()
    client.force_login(superuser)
    changelist = client.get("/admin/predictions/bulkuploadjob/")
    assert changelist.status_code == 200 and b'aria-valuenow="100"' in changelist.content
    assert client.get("/admin/predictions/bulkuploadjob/?status=completed").status_code == 200
    page = client.get(f"/admin/predictions/bulkuploadjob/{done.pk}/change/")
    assert page.status_code == 200 and b"Missing required field: sector" in page.content
    response = client.post("/admin/predictions/bulkuploadjob/", {
        "action": "cancel_selected", "_selected_action": [str(pending.pk)]})
    assert response.status_code == 302
    assert BulkUploadJob.objects.get(pk=pending.pk).status == "failed"
    client.post("/admin/predictions/bulkuploadjob/", {
        "action": "delete_selected_uploads", "_selected_action": [str(pending.pk), str(done.pk)]})
    assert not BulkUploadJob.objects.exists()
