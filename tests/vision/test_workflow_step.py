"""The vision_analysis workflow step (vision_pipeline/workflow_steps.py): found
by the workflows app, downloads the images through the outbound client from a
real local file server, files a batch of the workflow's owner."""

import pytest

from scheduling import services as scheduling_services
from scheduling.workflows.steps import StepContext, step_type_for, validate_steps
from vision_pipeline import samples
from vision_pipeline.models import Batch

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _storage(settings, tmp_path):
    settings.VISION_STORAGE_DIR = str(tmp_path / "vision")
    settings.JOBS_TEMP_DIR = str(tmp_path / "tmp")
    settings.VISION_OCR = "off"


@pytest.fixture
def file_server(serve_directory, tmp_path):
    folder = tmp_path / "www"
    folder.mkdir()
    (folder / "hull.jpg").write_bytes(samples.encode(samples.variant("rust", 640, 480)))
    (folder / "deck.jpg").write_bytes(samples.encode(samples.variant("blurred", 640, 480)))
    (folder / "page.html").write_bytes(b"<html>not an image</html>")
    return serve_directory(folder)


def context_for(user) -> StepContext:
    return StepContext(workflow_id="wf", job_id="job", execution_id=None, owner=user, input="", timeout_seconds=60)


def test_the_step_type_is_registered_by_the_vision_app():
    assert step_type_for("vision_analysis") is not None


def test_bad_step_definitions_are_named(user, settings):
    settings.OUTBOUND_HTTP_ALLOW_HOSTS = []
    settings.OUTBOUND_HTTP_ALLOW_LOOPBACK = False
    step = step_type_for("vision_analysis")
    assert "image_urls" in step.validate({}, owner=user)
    assert "image_urls" in step.validate({"image_urls": []}, owner=user)
    assert "image_urls" in step.validate({"image_urls": "https://example.com/a.jpg"}, owner=user)
    assert "Item 1" in step.validate({"image_urls": ["ftp://x/y.jpg"]}, owner=user)["image_urls"][0]
    assert "Item 2" in step.validate({"image_urls": ["https://example.com/a.jpg", "http://127.0.0.1:1/y.jpg"]},
                                     owner=user)["image_urls"][0]  # loopback refused
    assert "model" in step.validate({"image_urls": ["https://example.com/a.jpg"], "model": "gpt-99"}, owner=user)
    assert "colour" in step.validate({"image_urls": ["https://example.com/a.jpg"], "colour": "red"}, owner=user)
    settings.VISION_MAX_IMAGES_PER_BATCH = 1
    assert "image_urls" in step.validate({"image_urls": ["https://example.com/a.jpg"] * 2}, owner=user)
    settings.VISION_MAX_IMAGES_PER_BATCH = 500
    assert step.validate({"image_urls": ["https://example.com/${input}.jpg"], "query": "${input}"}, owner=user) == {}


def test_the_step_downloads_the_images_and_files_a_batch_that_is_analysed(user, file_server):
    # given a step naming two images on a (local, allow-listed) server
    step = step_type_for("vision_analysis")
    config = {"image_urls": [f"{file_server}/hull.jpg", f"{file_server}/deck.jpg"], "query": "Any <rust>?",
              "descriptions": {"hull.jpg": "Port side hull"}, "organization_id": "ORG-1"}
    assert step.validate(config, owner=user) == {}
    # when the step runs
    output = step.run(config, context_for(user))
    # then a batch of alice's is pending, queued as its own run
    batch = Batch.objects.get(pk=output["batch_id"])
    assert output == {"batch_id": str(batch.pk), "status": "pending", "total_images": 2,
                      "status_url": f"/api/v1/vision/batches/{batch.pk}",
                      "report_url": f"/api/v1/vision/batches/{batch.pk}/report"}
    assert (batch.owner, batch.source, batch.user_query, batch.external_organization_id) == (
        user, "api", "Any <rust>?", "ORG-1")
    assert [(i.filename, i.description) for i in batch.images.all()] == [("hull.jpg", "Port side hull"),
                                                                         ("deck.jpg", "")]
    assert batch.execution.job.name == "vision.batch" and batch.execution.celery_task_id
    # and its run (what the worker does) analyses both
    scheduling_services.execution_run(execution_id=batch.execution_id, task_id=batch.execution.celery_task_id,
                                      worker="pytest pid 0")
    batch.refresh_from_db()
    assert batch.status == "completed" and batch.summary["flags"] == {"possible_rust": 1, "blurry": 1}


def test_a_download_that_is_not_an_image_or_missing_fails_the_step_and_files_nothing(user, file_server):
    step = step_type_for("vision_analysis")
    with pytest.raises(RuntimeError, match=r"Image 2: page.html: not an image"):
        step.run({"image_urls": [f"{file_server}/hull.jpg", f"{file_server}/page.html"]}, context_for(user))
    with pytest.raises(RuntimeError, match=r"Image 1 \(gone.jpg\) could not be downloaded: .*404"):
        step.run({"image_urls": [f"{file_server}/gone.jpg"]}, context_for(user))
    assert not Batch.objects.exists()


def test_a_private_url_is_refused_at_run_time_too(user, settings):
    settings.OUTBOUND_HTTP_ALLOW_HOSTS = []
    settings.OUTBOUND_HTTP_ALLOW_LOOPBACK = False
    with pytest.raises(RuntimeError, match="could not be downloaded"):
        step_type_for("vision_analysis").run({"image_urls": ["http://127.0.0.1:9/a.jpg"]}, context_for(user))
    assert not Batch.objects.exists()


def test_same_file_names_stay_apart(user, file_server):
    output = step_type_for("vision_analysis").run(
        {"image_urls": [f"{file_server}/hull.jpg", f"{file_server}/hull.jpg?v=2"]}, context_for(user))
    batch = Batch.objects.get(pk=output["batch_id"])
    assert [i.filename for i in batch.images.all()] == ["hull.jpg", "hull-2.jpg"]


def test_a_workflow_definition_accepts_the_step(user):
    steps = validate_steps([{"name": "inspect", "type": "vision_analysis",
                             "image_urls": ["https://example.com/${input}.jpg"], "query": "Defects?"}], owner=user)
    assert steps[0]["type"] == "vision_analysis"
