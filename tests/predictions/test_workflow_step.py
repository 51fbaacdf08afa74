"""The bulk_prediction workflow step (predictions/workflow_steps.py): found
by the workflows app, downloads through the outbound client, files an upload."""
from pathlib import Path

import pytest

from predictions.models import BulkUploadJob
from scheduling import services as scheduling_services
from scheduling.workflows.steps import StepContext, step_type_for, validate_steps

pytestmark = pytest.mark.django_db
SAMPLES = Path(__file__).resolve().parents[2] / "predictions" / "samples"


@pytest.fixture(autouse=True)
def _storage(settings, tmp_path):
    settings.PREDICTIONS_STORAGE_DIR = tmp_path / "predictions"


@pytest.fixture
def file_server(serve_directory):
    return serve_directory(SAMPLES)



def context_for(user) -> StepContext:
    return StepContext(workflow_id="wf", job_id="job", execution_id=None, owner=user, input="", timeout_seconds=60)


def test_the_step_type_is_registered_by_the_predictions_app():
    assert step_type_for("bulk_prediction") is not None


def test_bad_step_definitions_are_named(user, settings):
    settings.OUTBOUND_HTTP_ALLOW_HOSTS = []
    settings.OUTBOUND_HTTP_ALLOW_LOOPBACK = False
    step = step_type_for("bulk_prediction")
    assert "file_url" in step.validate({"file_url": "ftp://x/y.csv"}, owner=user)
    assert "file_url" in step.validate({"file_url": "http://127.0.0.1:1/y.csv"}, owner=user)  # loopback refused
    assert "job_type" in step.validate({"file_url": "https://example.com/a.csv", "job_type": "monthly"}, owner=user)
    assert "colour" in step.validate({"file_url": "https://example.com/a.csv", "colour": "red"}, owner=user)
    assert step.validate({"file_url": "https://example.com/${input}.csv"}, owner=user) == {}


def test_the_step_downloads_the_file_and_files_an_upload_that_scores(user, file_server):
    # given a workflow step pointing at a CSV on a (local, allow-listed) server
    step = step_type_for("bulk_prediction")
    config = {"file_url": f"{file_server}/annual_sample.csv", "job_type": "annual"}
    assert step.validate(config, owner=user) == {}
    # when the step runs
    output = step.run(config, context_for(user))
    # then an upload of alice's is pending, linked to its own execution
    upload = BulkUploadJob.objects.get(pk=output["upload_id"])
    assert (upload.owner, upload.original_filename, output["status"]) == (user, "annual_sample.csv", "pending")
    assert output["total_rows"] == upload.total_rows > 0
    # and its run (what the worker does) scores every row of the sample
    scheduling_services.execution_run(execution_id=upload.execution_id, task_id=upload.execution.celery_task_id,
                                      worker="pytest pid 0")
    upload.refresh_from_db()
    assert upload.successful_rows == upload.total_rows and upload.failed_rows == 0


def test_a_file_the_upload_api_would_refuse_fails_the_step_with_its_message(user, file_server, tmp_path):
    step = step_type_for("bulk_prediction")
    with pytest.raises(RuntimeError, match="The file was refused"):
        step.run({"file_url": f"{file_server}/quarterly_sample.csv", "job_type": "annual"}, context_for(user))
    assert not BulkUploadJob.objects.exists()


def test_a_workflow_definition_accepts_the_step(user):
    steps = validate_steps([{"name": "score", "type": "bulk_prediction", "file_url": "https://example.com/${input}"}],
                           owner=user)
    assert steps[0]["type"] == "bulk_prediction"
