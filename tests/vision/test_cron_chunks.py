"""A scheduled /cron-jobs run shares a large analysis with chunk runs, as an
API batch does (vision_pipeline/services/flow.py → services.batch_fan_out):
the images it downloaded are stored while the chunk runs read them, every
image is analysed once, the report is uploaded, and the stored copies are
removed afterwards (a cron batch keeps its thumbnails, not its images)."""
import threading

import pytest

from scheduling import services as core
from scheduling.models import Execution
from tests.worker import wait_for
from vision_pipeline import samples, services
from vision_pipeline.demo import DEMO_ORGANIZATION_ID, DemoExternalAPI
from vision_pipeline.models import Batch
from vision_pipeline.services.storage import storage_dir

KEY = "cron-chunks-key"


@pytest.fixture
def external():
    # The worker subprocess allows loopback (tests/plugin.py sets OUTBOUND_HTTP_ALLOW_LOOPBACK for the session).
    server = DemoExternalAPI(key=KEY).start()
    yield server
    server.stop()


def finished(execution_id):
    execution = Execution.objects.get(pk=execution_id)
    return execution if execution.status not in Execution.ACTIVE_STATUSES else None


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_cron_run_shares_a_large_analysis_with_chunk_runs(celery_worker_process, external, settings):
    settings.VISION_STORAGE_DIR = str(settings.VAR_DIR / "vision")  # the worker's (default) directory
    # given one analysis of 30 photos (the worker's VISION_CHUNK_SIZE is the default 10: 2 chunk runs)
    external.add_analysis(images=[(f"p{n:02d}.jpg", samples.encode(samples.variant(
        "rust" if n % 3 == 0 else "clean", 640, 480, seed=n))) for n in range(30)])
    job = services.cron_job_create(
        actor=None, name="chunked", schedule="0 0 1 1 *", external_api_get_url=external.get_url,
        external_api_post_url=external.post_url, external_api_key=KEY, organization_id=DEMO_ORGANIZATION_ID,
    )
    # when the worker runs it
    execution = core.job_execute(job=job, force=True)
    done = wait_for(lambda: finished(execution.pk), timeout=120, message="the cron run")
    # then the report is uploaded and every image analysed once, by the run and its chunk runs
    assert done.status == "success", (done.output, done.error)
    assert len(external.uploads) == 1
    batch = Batch.objects.get(execution=done)
    assert batch.status == "completed" and (batch.processed_images, batch.flagged_images) == (30, 10)
    assert len(batch.chunk_execution_ids) == 2
    claimers = set(batch.images.values_list("claimed_by_id", flat=True))
    assert claimers <= {done.pk, *batch.chunk_execution_ids} and done.pk in claimers
    # the chunk runs all end, and the stored copies are gone; the thumbnails stay
    wait_for(lambda: not Execution.objects.filter(pk__in=batch.chunk_execution_ids,
                                                  status__in=Execution.ACTIVE_STATUSES).exists(),
             timeout=60, message="the chunk runs to end")
    assert set(Execution.objects.filter(pk__in=batch.chunk_execution_ids).values_list("status", flat=True)) == {
        "success"}
    assert not (storage_dir(batch) / "images").exists()
    assert set(batch.images.values_list("stored_name", flat=True)) == {""}
    assert all(row.thumbnail.startswith("data:image/jpeg;base64,") for row in batch.images.all())


@pytest.mark.django_db
def test_a_small_analysis_or_a_run_outside_the_worker_stores_nothing(external, settings, tmp_path):
    settings.VISION_STORAGE_DIR = str(tmp_path / "vision")
    settings.JOBS_TEMP_DIR = str(tmp_path / "tmp")
    settings.OUTBOUND_HTTP_ALLOW_HOSTS = [f"127.0.0.1:{external.port}"]
    # given 12 photos (over one chunk) processed by the one-shot processor: no run, so no chunk runs
    external.add_analysis(images=[(f"q{n}.jpg", samples.encode(samples.variant("clean", 320, 240, seed=n)))
                                  for n in range(12)])
    config = services.ProcessorConfig(external_api_get_url=external.get_url, external_api_post_url=external.post_url,
                                      external_api_key=KEY, organization_id=DEMO_ORGANIZATION_ID)
    summary = services.process_analyses(config=config, source=Batch.Source.CLI)
    assert summary.ok and summary.images == 12
    batch = Batch.objects.get()
    assert batch.chunk_execution_ids in (None, []) and not (storage_dir(batch) / "images").exists()


@pytest.mark.django_db
def test_a_chunk_run_stops_when_its_batch_fails_while_the_cron_run_goes_on(settings, tmp_path, monkeypatch):
    # given a cron run's batch of 6 and a chunk run sharing it
    settings.VISION_STORAGE_DIR = str(tmp_path / "vision")
    files = []
    for n in range(6):
        path = tmp_path / f"f{n}.jpg"
        path.write_bytes(samples.encode(samples.variant("clean", 96, 72, seed=n)))
        files.append((path.name, path))
    batch = services.batch_create(source=Batch.Source.CRON, files=files)
    cron_run = Execution.objects.create(job=services.chunk_job(), status=Execution.Status.RUNNING)
    chunk = Execution.objects.create(job=services.chunk_job(), status=Execution.Status.RUNNING)
    # when the batch fails (its analysis timed out) while the chunk run analyses its first image,
    # and the cron run goes on to its next analysis (still running)
    from vision_pipeline import analyzers

    inspector = analyzers.get("inspector")
    original = inspector.analyze_image

    def analyse_then_time_out(*args, **kwargs):
        services.batch_fail(batch, "Analysis timed out")
        return original(*args, **kwargs)

    monkeypatch.setattr(inspector, "analyze_image", analyse_then_time_out)
    outcome = services.batch_chunk_run(execution=chunk, batch_id=str(batch.pk), parent_execution_id=cron_run.pk)
    # then the chunk run stops after that image instead of analysing the failed batch's rest
    assert outcome.output.startswith("Stopped"), outcome.output
    assert list(batch.images.filter(status="pending").values_list("position", flat=True)) == [2, 3, 4, 5]


def streaming_analysis(external, count=24):
    """An analysis of ``count`` photos whose last one is held back by the API
    until the test lets it go (the demo API's ``hold``): returns that event."""
    external.add_analysis(images=[(f"s{n:02d}.jpg", samples.encode(samples.variant(
        "rust" if n % 3 == 0 else "clean", 480, 360, seed=n))) for n in range(count)])
    last = threading.Event()
    external.hold[f"{len(external.analyses)}_s{count - 1:02d}.jpg"] = last
    return last


def analysing_while_the_last_downloads(execution_id, count):
    """The run's batch once it has images analysed and a chunk run going while
    its last image is not in it yet (still downloading)."""
    batch = Batch.objects.filter(execution_id=execution_id).first()
    if batch is None or batch.images.count() >= count or not batch.images.filter(status="done").exists():
        return None
    going = Execution.objects.filter(pk__in=batch.chunk_execution_ids or [], status=Execution.Status.RUNNING)
    return batch if going.exists() else None


def held_until_analysing(external, execution_id, count):
    """Wait (as long as the worker takes to get there) for the held last image to
    be asked for, then for analysis to go on meanwhile: within 20 s of that
    request, well inside the worker's 30 s read timeout."""
    wait_for(lambda: any(r["path"].endswith(f"s{count - 1:02d}.jpg") for r in list(external.requests)),
             timeout=120, message="the last image to be asked for")
    return wait_for(lambda: analysing_while_the_last_downloads(execution_id, count), timeout=20,
                    message="analysis while the last image downloads")


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_cron_run_and_its_chunk_runs_start_on_the_first_images_while_the_rest_download(
        celery_worker_process, external, settings):
    settings.VISION_STORAGE_DIR = str(settings.VAR_DIR / "vision")
    # given an analysis of 24 photos whose last one is slow to download
    last = streaming_analysis(external)
    job = services.cron_job_create(
        actor=None, name="streaming", schedule="0 0 1 1 *", external_api_get_url=external.get_url,
        external_api_post_url=external.post_url, external_api_key=KEY, organization_id=DEMO_ORGANIZATION_ID,
    )
    # when the worker runs it
    execution = core.job_execute(job=job, force=True)
    try:
        # then images are analysed, and a chunk run is going, while the last one is still downloading
        batch = held_until_analysing(external, execution.pk, 24)
    finally:
        last.set()
    done = wait_for(lambda: finished(execution.pk), timeout=120, message="the cron run")
    # and the report is complete: every image analysed once, the held one too
    assert done.status == "success", (done.output, done.error)
    batch.refresh_from_db()
    assert batch.status == "completed" and batch.processed_images == 24 and batch.failed_images == 0
    assert batch.images.filter(status="done").count() == 24 and len(external.uploads) == 1
    assert "s23.jpg" in external.uploads[0]["files"]["file"]["body"].decode()
    wait_for(lambda: not Execution.objects.filter(pk__in=batch.chunk_execution_ids,
                                                  status__in=Execution.ACTIVE_STATUSES).exists(),
             timeout=60, message="the chunk runs to end")


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_an_image_that_fails_to_download_midway_fails_the_analysis_and_stops_its_chunk_runs(
        celery_worker_process, external, settings):
    settings.VISION_STORAGE_DIR = str(settings.VAR_DIR / "vision")
    # given an analysis whose last photo, slow to come, then answers 404
    last = streaming_analysis(external)
    del external.files[f"{len(external.analyses)}_s23.jpg"]
    job = services.cron_job_create(
        actor=None, name="streaming-404", schedule="0 0 1 1 *", external_api_get_url=external.get_url,
        external_api_post_url=external.post_url, external_api_key=KEY, organization_id=DEMO_ORGANIZATION_ID,
    )
    execution = core.job_execute(job=job, force=True)
    try:
        batch = held_until_analysing(external, execution.pk, 24)
    finally:
        last.set()
    # then the analysis fails naming the image, nothing is uploaded, and every chunk run ends
    done = wait_for(lambda: finished(execution.pk), timeout=120, message="the cron run")
    assert done.status == "failed"
    assert done.result["analyses"][0]["error"] == "Image s23.jpg: download returned 404"
    assert external.uploads == []
    batch.refresh_from_db()
    assert batch.status == "failed" and "s23.jpg" in batch.error
    wait_for(lambda: not Execution.objects.filter(pk__in=batch.chunk_execution_ids,
                                                  status__in=Execution.ACTIVE_STATUSES).exists(),
             timeout=60, message="the chunk runs to end")
    assert not (storage_dir(batch) / "images").exists()
