"""A vision run records how far it is while it runs (services.progress): the
images done of its total in the run's result, where the dashboard's active
runs and a run's admin page read every kind's progress, at most once a
``PROGRESS_EVERY_SECONDS`` a run. Each test reads the run's row from the
database while an image is being analysed, as the admin would."""
import pytest

from scheduling.dashboard import run_progress
from scheduling.models import Execution
from vision_pipeline import analyzers, samples, services
from vision_pipeline.demo import DEMO_ORGANIZATION_ID, DemoExternalAPI
from vision_pipeline.models import Batch
from vision_pipeline.services import progress as progress_module

pytestmark = pytest.mark.django_db

KEY = "progress-key"


@pytest.fixture(autouse=True)
def storage(settings, tmp_path):
    settings.VISION_STORAGE_DIR = str(tmp_path / "vision")
    settings.JOBS_TEMP_DIR = str(tmp_path / "tmp")
    settings.VISION_OCR = "off"


@pytest.fixture
def api(settings):
    server = DemoExternalAPI(key=KEY).start()
    settings.OUTBOUND_HTTP_ALLOW_HOSTS = [f"127.0.0.1:{server.port}"]
    yield server
    server.stop()


def jpeg(seed: int) -> bytes:
    return samples.encode(samples.variant("rust" if seed % 2 else "clean", 160, 120, seed=seed))


@pytest.fixture
def seen(monkeypatch):
    """The run's recorded result each time an image's analysis begins."""
    inspector = analyzers.get("inspector")
    original = inspector.analyze_image
    snapshots: list[tuple[int, dict]] = []

    def analyse_and_look(*args, **kwargs):
        for execution in Execution.objects.filter(status=Execution.Status.RUNNING):
            snapshots.append((execution.pk, dict(execution.result or {})))
        return original(*args, **kwargs)

    monkeypatch.setattr(inspector, "analyze_image", analyse_and_look)
    return snapshots


def running_run() -> Execution:
    return Execution.objects.create(job=services.chunk_job(), status=Execution.Status.RUNNING)


@pytest.mark.parametrize("every, expected", [
    (0, [0, 1, 2, 3, 4, 5]),  # recorded as each image ends
    (3600, [0, 0, 0, 0, 4, 4]),  # throttled: the first record, then once the first analysis is over
])
def test_a_cron_run_records_its_images_done_of_every_analysis_it_fetched(api, seen, monkeypatch, every, expected):
    # given two analyses of 4 and 2 photos, and a run of a /cron-jobs job
    monkeypatch.setattr(progress_module, "PROGRESS_EVERY_SECONDS", every)
    api.add_analysis(images=[(f"a{n}.jpg", jpeg(n)) for n in range(4)])
    api.add_analysis(images=[(f"b{n}.jpg", jpeg(n)) for n in range(2)])
    run = running_run()
    config = services.ProcessorConfig(external_api_get_url=api.get_url, external_api_post_url=api.post_url,
                                      external_api_key=KEY, organization_id=DEMO_ORGANIZATION_ID)
    # when it processes them
    summary = services.process_analyses(config=config, execution=run)
    assert summary.ok, summary.as_result()
    # then while each image was analysed the run's row said how many were done of the 6
    mine = [result for pk, result in seen if pk == run.pk]
    assert [result["processed_images"] for result in mine] == expected
    assert {result["total_images"] for result in mine} == {6}
    assert {result["failed_images"] for result in mine} == {0}
    # which the dashboard reads as the run's progress (no longer "no progress reported")
    assert run_progress(mine[-1]) == (pytest.approx(100 * expected[-1] / 6), 0.0)
    run.refresh_from_db()
    assert run.result["processed_images"] == 6  # the last record, after the second analysis


def test_an_api_batch_run_and_a_chunk_run_record_their_batch_progress(tmp_path, seen, monkeypatch):
    monkeypatch.setattr(progress_module, "PROGRESS_EVERY_SECONDS", 0)
    files = []
    for n in range(4):
        path = tmp_path / f"i{n}.jpg"
        path.write_bytes(jpeg(n))
        files.append((path.name, path))
    # a chunk run on a batch of 4 (its run still going), then the batch's run on another batch of 4
    shared = services.batch_create(source=Batch.Source.API, files=files)
    parent, chunk = running_run(), running_run()
    outcome = services.batch_chunk_run(execution=chunk, batch_id=str(shared.pk), parent_execution_id=parent.pk)
    assert outcome.result["analysed"] == 4
    Execution.objects.filter(pk__in=[parent.pk, chunk.pk]).update(status=Execution.Status.SUCCESS)
    batch = services.batch_create(source=Batch.Source.API, files=files)
    own = running_run()
    Batch.objects.filter(pk=batch.pk).update(execution=own)
    outcome = services.batch_run(execution=own, batch_id=str(batch.pk))
    assert outcome.ok, outcome.output
    # each recorded its batch's images done of 4 while it analysed them
    for run, batch_id in ((chunk, shared.pk), (own, batch.pk)):
        mine = [result for pk, result in seen if pk == run.pk]
        assert [(r["processed_images"], r["total_images"]) for r in mine] == [(0, 4), (1, 4), (2, 4), (3, 4)]
        assert {r["batch_id"] for r in mine} == {str(batch_id)}
    assert not [result for pk, result in seen if pk == parent.pk and result]  # the parent only waited here


def test_progress_is_recorded_only_while_the_run_is_running(tmp_path):
    # given a run cancelled meanwhile: its row is never overwritten by a late record
    run = Execution.objects.create(job=services.chunk_job(), status=Execution.Status.CANCELLED,
                                   result={"cancelled": True})
    reporter = progress_module.RunProgress(run, total_images=3, every=0)
    reporter.end_batch(3)
    run.refresh_from_db()
    assert run.result == {"cancelled": True}
