"""One batch's images spread over several worker processes: the batch's own
run (vision.batch) queues chunk runs (Executions of the vision.batch-chunk
manual job); every run claims pending images a few at a time; the batch's
run waits for what others claimed, hands back what a run that is gone had
claimed, and writes the report; cancel cancels every run through the core."""
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from scheduling import services as core
from scheduling.models import Execution
from tests.worker import wait_for
from vision_pipeline import samples, services
from vision_pipeline.models import Batch, BatchImage
from vision_pipeline.services import claims

BATCHES = "/api/v1/vision/batches"


@pytest.fixture(autouse=True)
def storage(settings, tmp_path):
    settings.VISION_STORAGE_DIR = str(tmp_path / "vision")
    settings.JOBS_TEMP_DIR = str(tmp_path / "tmp")


def stored_batch(tmp_path, count, kind="clean", size=(96, 72)):
    files = []
    for n in range(count):
        path = tmp_path / f"i{n}.jpg"
        path.write_bytes(samples.encode(samples.variant(kind, *size, seed=n)))
        files.append((f"i{n}.jpg", path))
    return services.batch_create(source=Batch.Source.API, files=files)


def run_of(job, status=Execution.Status.RUNNING):
    return Execution.objects.create(job=job, status=status)


# ---------------------------------------------------------------------------
# The pieces, in one process
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("pending, chunk_size, most, expected", [
    (5, 10, 8, 0), (10, 10, 8, 0), (11, 10, 8, 1), (30, 10, 8, 2), (500, 10, 8, 7), (500, 10, 1, 0), (3, 1, 8, 2),
])
def test_how_many_chunk_runs(settings, pending, chunk_size, most, expected):
    settings.VISION_CHUNK_SIZE, settings.VISION_MAX_CHUNKS = chunk_size, most
    assert services.chunk_runs_for(pending) == expected


@pytest.mark.django_db
def test_two_runs_never_claim_the_same_image_and_a_taken_over_claim_does_not_count(tmp_path):
    batch = stored_batch(tmp_path, 5)
    job = services.chunk_job()
    first, second = run_of(job), run_of(job)
    a = claims.claim(batch.pk, first.pk, limit=2)
    b = claims.claim(batch.pk, second.pk, limit=2)
    c = claims.claim(batch.pk, first.pk, limit=10)
    assert [r.position for r in a] == [0, 1] and [r.position for r in b] == [2, 3] and [r.position for r in c] == [4]
    assert claims.claim(batch.pk, second.pk) == []
    # the claim on image 0 is taken over (handed back and claimed again): the first run's outcome is dropped
    BatchImage.objects.filter(pk=a[0].pk).update(status=BatchImage.Status.PENDING, claimed_by=None, claimed_at=None)
    again = claims.claim(batch.pk, second.pk, limit=1)
    assert not claims.record(batch, a[0], error="late")
    assert claims.record(batch, again[0], error="counted")
    batch.refresh_from_db()
    assert (batch.processed_images, batch.failed_images) == (1, 1)
    assert BatchImage.objects.get(pk=a[0].pk).error == "counted"


@pytest.mark.django_db
def test_images_claimed_by_a_run_that_is_gone_are_handed_back_and_analysed(tmp_path):
    # given a batch of 6 where a chunk run claimed two images, then died (lost: error)
    batch = stored_batch(tmp_path, 6)
    batch_run = run_of(services.batch_job())
    dead = run_of(services.chunk_job())
    claimed = claims.claim(batch.pk, dead.pk)
    Execution.objects.filter(pk=dead.pk).update(status=Execution.Status.ERROR)
    # when the batch's own run analyses it
    batch = services.batch_analyze(batch=batch, execution=batch_run)
    # then it finished the dead run's images too, each counted once
    assert batch.status == "completed", batch.error
    assert (batch.processed_images, batch.failed_images) == (6, 0)
    rows = list(batch.images.all())
    assert {r.status for r in rows} == {"done"} and {r.claimed_by_id for r in rows} == {batch_run.pk}
    assert {r.pk for r in claimed} <= {r.pk for r in rows}


@pytest.mark.django_db
def test_the_batch_run_waits_for_images_a_live_chunk_run_is_analysing(tmp_path, monkeypatch):
    batch = stored_batch(tmp_path, 3)
    batch_run, helper = run_of(services.batch_job()), run_of(services.chunk_job())
    held = claims.claim(batch.pk, helper.pk, limit=1)[0]
    polls = []

    def chunk_finishes_while_we_wait(seconds):  # what the chunk run does meanwhile, in another process
        polls.append(seconds)
        if len(polls) == 3:
            claims.record(batch, held, error="analysed by the chunk run")

    monkeypatch.setattr(claims.time, "sleep", chunk_finishes_while_we_wait)
    batch = services.batch_analyze(batch=batch, execution=batch_run)
    assert batch.status == "completed" and len(polls) == 3
    assert BatchImage.objects.get(pk=held.pk).claimed_by_id == helper.pk


@pytest.mark.django_db
def test_fan_out_records_the_chunk_runs_and_cancel_cancels_them_all(tmp_path, settings, user):
    settings.VISION_CHUNK_SIZE = 2
    batch = stored_batch(tmp_path, 7)
    batch.owner = user
    batch.execution = core.job_execute(job=services.batch_job(), override_kwargs={"batch_id": str(batch.pk)})
    batch.save()
    Execution.objects.filter(pk=batch.execution_id).update(status=Execution.Status.RUNNING)
    chunks = services.batch_fan_out(batch=batch, execution=batch.execution)
    assert len(chunks) == 3 and Batch.objects.get(pk=batch.pk).chunk_execution_ids == chunks
    runs = Execution.objects.filter(pk__in=chunks)
    assert {r.job.name for r in runs} == {"vision.batch-chunk"} and all(r.celery_task_id for r in runs)
    assert {r.override_kwargs["parent_execution_id"] for r in runs} == {batch.execution_id}
    batch = services.batch_cancel(batch=Batch.objects.get(pk=batch.pk), actor=user)
    assert batch.status == "cancelled"
    assert set(Execution.objects.filter(pk__in=[batch.execution_id, *chunks]).values_list("status", flat=True)) == {
        "cancelled"}


@pytest.mark.django_db
def test_a_paused_chunk_job_means_the_batch_run_does_it_all(tmp_path, settings):
    settings.VISION_CHUNK_SIZE = 2
    batch = stored_batch(tmp_path, 5)
    core.job_pause(job=services.chunk_job())
    assert services.batch_fan_out(batch=batch, execution=run_of(services.batch_job())) == []


@pytest.mark.django_db
def test_a_chunk_run_stops_when_the_batch_run_is_gone(tmp_path):
    batch = stored_batch(tmp_path, 4)
    parent = run_of(services.batch_job(), status=Execution.Status.CANCELLED)
    chunk = run_of(services.chunk_job())
    outcome = services.batch_chunk_run(execution=chunk, batch_id=str(batch.pk), parent_execution_id=parent.pk)
    assert outcome.ok and outcome.output.startswith("Nothing to do")
    assert not BatchImage.objects.filter(batch=batch).exclude(status="pending").exists()


# ---------------------------------------------------------------------------
# Through the real worker (prefork, 2 processes)
# ---------------------------------------------------------------------------
def upload(name, kind="clean", size=(480, 360), seed=0):
    return SimpleUploadedFile(name, samples.encode(samples.variant(kind, *size, seed=seed)), "image/jpeg")


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_large_batch_is_shared_by_the_worker_processes(celery_worker_process, api, settings):
    settings.VISION_STORAGE_DIR = str(settings.VAR_DIR / "vision")  # the worker's (default) directory
    # given 40 images (the worker's VISION_CHUNK_SIZE is the default 10: 3 chunk runs)
    images = [upload(f"p{n:02d}.jpg", "rust" if n % 4 == 0 else "clean", seed=n) for n in range(40)]
    batch_id = api.post(BATCHES, {"images": images}, format="multipart").json()["batch_id"]
    # when the worker has finished it
    status = wait_for(lambda: (lambda s: s if s["status"] not in ("pending", "processing") else None)(
        api.get(f"{BATCHES}/{batch_id}").json()), timeout=120, message="the batch to finish")
    # then every image was analysed once, by the batch's run and its chunk runs
    assert status["status"] == "completed", status
    assert (status["processed_images"], status["flagged_images"], status["progress"]) == (40, 10, 100.0)
    assert status["chunks"]["total"] == 3 and len(status["chunks"]["task_ids"]) == 3
    batch = Batch.objects.get(pk=batch_id)
    claimers = set(batch.images.values_list("claimed_by_id", flat=True))
    assert batch.execution_id in claimers and claimers & set(batch.chunk_execution_ids), claimers
    assert claimers <= {batch.execution_id, *batch.chunk_execution_ids}
    # the chunk runs all end (those queued after the work was done have nothing to do)
    wait_for(lambda: not Execution.objects.filter(pk__in=batch.chunk_execution_ids,
                                                  status__in=Execution.ACTIVE_STATUSES).exists(),
             timeout=60, message="the chunk runs to end")
    assert set(Execution.objects.filter(pk__in=batch.chunk_execution_ids).values_list("status", flat=True)) == {
        "success"}
    batch.execution.refresh_from_db()
    assert batch.execution.status == "success" and "chunk runs" in batch.execution.output
    assert api.get(status["report_url"]).status_code == 200


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_cancel_stops_the_batch_run_and_every_chunk_run(celery_worker_process, api, settings):
    settings.VISION_STORAGE_DIR = str(settings.VAR_DIR / "vision")
    images = [upload(f"c{n:02d}.jpg", size=(1600, 1200), seed=n) for n in range(60)]
    batch_id = api.post(BATCHES, {"images": images}, format="multipart").json()["batch_id"]
    wait_for(lambda: Batch.objects.get(pk=batch_id).processed_images >= 2, timeout=60, message="some progress")
    batch = Batch.objects.get(pk=batch_id)
    assert len(batch.chunk_execution_ids) == 5
    response = api.post(f"{BATCHES}/{batch_id}/cancel")
    assert response.status_code == 200 and response.json()["batch"]["status"] == "cancelled"
    runs = Execution.objects.filter(pk__in=[batch.execution_id, *batch.chunk_execution_ids])
    assert not runs.filter(status__in=Execution.ACTIVE_STATUSES).exists()
    assert runs.get(pk=batch.execution_id).status == "cancelled"
    # nothing goes on analysing it: the count stops moving (a run killed mid-image never records it)
    time.sleep(2.0)
    settled = Batch.objects.get(pk=batch_id).processed_images
    time.sleep(2.0)
    assert Batch.objects.get(pk=batch_id).processed_images == settled < 60
    assert api.get(f"{BATCHES}/{batch_id}/report").status_code == 409


def test_a_waiting_run_looks_again_soon_then_less_often():
    # most waits are for one image of another run (~0.1 s): the first looks come soon
    pauses = claims.poll_pauses()
    assert [next(pauses) for _ in range(6)] == [0.01, 0.02, 0.04] + [claims.WAIT_POLL_SECONDS] * 3
