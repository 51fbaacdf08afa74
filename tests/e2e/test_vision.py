"""The vision pipeline end to end: a /cron-jobs job on a one-minute schedule, fired
as beat fires it, run by the real Celery worker against a real local HTTP server
standing in for the external API."""
import pytest

from scheduling import services as core
from scheduling.models import Execution, Job
from tests.worker import wait_for
from vision_pipeline import samples
from vision_pipeline.demo import DEMO_ORGANIZATION_ID, DemoExternalAPI
from vision_pipeline.models import Batch

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

KEY = "e2e-secret-jwt-token"


@pytest.fixture
def external():
    # The worker subprocess allows loopback (tests/plugin.py sets OUTBOUND_HTTP_ALLOW_LOOPBACK for the session).
    server = DemoExternalAPI(key=KEY).start()
    yield server
    server.stop()


def finished(execution_id):
    execution = Execution.objects.get(pk=execution_id)
    return execution if execution.status not in Execution.ACTIVE_STATUSES else None


def test_a_cron_job_uploads_two_reports_then_records_a_500_and_stops_when_deactivated(
        celery_worker_process, external, api):
    # given two unprocessed analyses and a job on a one-minute schedule
    for n in range(2):
        external.add_analysis(images=[(f"img{n}.jpg", samples.encode(samples.variant("rust", 800, 600, seed=n)))],
                              descriptions={f"img{n}.jpg": "Port side hull"})
    response = api.post("/cron-jobs", {
        "name": "Every minute", "schedule": "* * * * *", "external_api_get_url": external.get_url,
        "external_api_post_url": external.post_url, "external_api_key": KEY,
        "organization_id": DEMO_ORGANIZATION_ID,
    }, format="json")
    assert response.status_code == 201, response.json()
    job_id = response.json()["job_id"]
    job = Job.objects.get(uuid=job_id)
    assert job.periodic_task.enabled and job.periodic_task.crontab is not None

    # when beat fires it, the worker runs it: two reports uploaded with the key
    execution = core.job_dispatch_scheduled(job_id=job.pk)
    done = wait_for(lambda: finished(execution.pk), timeout=60, message="the first run")
    assert done.status == "success", (done.output, done.error)
    assert done.output == "Processed 2 analyses: 2 succeeded, 0 failed (2 images)"
    assert len(external.uploads) == 2
    assert {u["authorization"] for u in external.uploads} == {f"Bearer {KEY}"}
    batch_ids = done.result["batch_ids"]
    assert [u["files"]["file"]["filename"] for u in external.uploads] == [f"report_{b}.html" for b in batch_ids]
    assert Batch.objects.filter(pk__in=batch_ids, status="completed").count() == 2

    # and the history shows it, with the batch ids
    history = api.get(f"/cron-jobs/{job_id}/executions").json()["executions"]
    assert history[0]["status"] == "success" and history[0]["batch_id"] == ", ".join(batch_ids)

    # a run where the external API answers 500 is failed with the error in output
    external.get_status = 500
    execution = core.job_dispatch_scheduled(job_id=job.pk)
    done = wait_for(lambda: finished(execution.pk), timeout=60, message="the failing run")
    history = api.get(f"/cron-jobs/{job_id}/executions").json()["executions"]
    assert (history[0]["status"], history[0]["batch_id"]) == ("failed", None)
    assert history[0]["output"].startswith("Error: External API returned 500")
    assert KEY not in str(history) and KEY not in done.error

    # deactivated, beat's entry is off and a late fire runs nothing
    assert api.post(f"/cron-jobs/{job_id}/deactivate").status_code == 200
    job.refresh_from_db()
    assert not job.periodic_task.enabled
    assert core.job_dispatch_scheduled(job_id=job.pk) is None
    assert job.executions.count() == 2
