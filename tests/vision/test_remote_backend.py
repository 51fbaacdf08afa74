"""The remote backend path: ``backend_api_url`` names another server (not in
VISION_LOCAL_BACKEND_URLS), so the run uploads each analysis's images to that
server's /api/v1/vision/batches over HTTP (jobsite.http), polls the batch and
downloads its report. The "other server" is this same project served for
real by pytest-django's ``live_server`` (its batches analysed by the real
Celery worker), the external document API the local demo server."""
import logging

import pytest

from jobsite import http
from jobsite.auth import access_token_for
from scheduling import services as core
from scheduling.models import Execution, Job
from tests.worker import wait_for
from vision_pipeline import samples, services
from vision_pipeline.demo import DEMO_ORGANIZATION_ID, DemoExternalAPI
from vision_pipeline.models import Batch

KEY = "external-jwt-SECRET-4471"


@pytest.fixture
def external():
    server = DemoExternalAPI(key=KEY).start()
    for n in range(2):
        server.add_analysis(images=[(f"hull{n}.jpg", samples.encode(samples.variant("rust", 640, 480, seed=n))),
                                    (f"deck{n}.jpg", samples.encode(samples.variant("clean", 640, 480, seed=n)))],
                            descriptions={f"hull{n}.jpg": "Port side hull"})
    yield server
    server.stop()


@pytest.fixture
def remote(live_server, settings):
    """The live server as a remote backend: not a local URL, and reachable past the SSRF guard."""
    assert live_server.url not in settings.VISION_LOCAL_BACKEND_URLS
    settings.VISION_STORAGE_DIR = str(settings.VAR_DIR / "vision")  # the worker's (default) directory
    return live_server.url


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_cron_run_uses_the_remote_backend_end_to_end(celery_worker_process, external, remote, api, user):
    # given a /cron-jobs job whose backend is the other server, with a Bearer token for it
    backend_key = access_token_for(user)
    response = api.post("/cron-jobs", {
        "name": "Remote backend", "schedule": "*/5 * * * *", "external_api_get_url": external.get_url,
        "external_api_post_url": external.post_url, "external_api_key": KEY, "backend_api_url": remote,
        "backend_api_key": backend_key, "organization_id": DEMO_ORGANIZATION_ID,
    }, format="json")
    assert response.status_code == 201, response.json()
    job = Job.objects.get(uuid=response.json()["job_id"])
    # when the worker runs it
    execution = core.job_dispatch_scheduled(job_id=job.pk)
    done = wait_for(lambda: (lambda e: e if e.status not in Execution.ACTIVE_STATUSES else None)(
        Execution.objects.get(pk=execution.pk)), timeout=120, message="the cron run")
    # then both analyses went through the remote batch API and their reports were uploaded
    assert done.status == "success", (done.output, done.error, done.result)
    assert done.output == "Processed 2 analyses: 2 succeeded, 0 failed (4 images)"
    batch_ids = done.result["batch_ids"]
    batches = Batch.objects.filter(pk__in=batch_ids)
    # made by the backend's API (as the token's user), not in the cron run
    assert {(b.source, b.owner_id, b.status) for b in batches} == {("api", user.pk, "completed")}
    assert all(b.execution.job.name == "vision.batch" for b in batches)
    assert {b.user_query for b in batches} <= {a["user_query"] for a in external.analyses}
    assert [u["files"]["file"]["filename"] for u in external.uploads] == [f"report_{b}.html" for b in batch_ids]
    assert {u["authorization"] for u in external.uploads} == {f"Bearer {KEY}"}
    html = external.uploads[0]["files"]["file"]["body"].decode()
    assert "Port side hull" in html and "possible rust" in html
    # and neither key is in the run's record, the API's answers or the worker's log
    for secret in (KEY, backend_key):
        assert secret not in f"{done.output} {done.error} {done.result}"
        assert secret not in str(api.get(f"/cron-jobs/{job.uuid}").json())
        assert secret not in str(api.get(f"/cron-jobs/{job.uuid}/executions").json())
        assert secret not in celery_worker_process.log()


@pytest.mark.django_db(transaction=True)
def test_a_refused_backend_token_fails_each_analysis_clearly_and_is_never_shown(external, remote, settings,
                                                                              monkeypatch, caplog):
    monkeypatch.setattr(http, "BACKOFF_SECONDS", 0.01)
    bad_key = "not-a-jwt-BACKEND-SECRET-123"
    caplog.set_level(logging.DEBUG)
    config = services.ProcessorConfig(
        external_api_get_url=external.get_url, external_api_post_url=external.post_url, external_api_key=KEY,
        organization_id=DEMO_ORGANIZATION_ID, backend_api_url=remote, backend_api_key=bad_key,
    )
    summary = services.process_analyses(config=config)
    assert summary.output == "Processed 2 analyses: 0 succeeded, 2 failed (4 images)"
    assert {r["error"] for r in summary.results} == {"Backend API returned 401"}
    assert not external.uploads and not Batch.objects.exists()
    for secret in (KEY, bad_key):
        assert secret not in str(summary.as_result()) and secret not in caplog.text


@pytest.mark.django_db(transaction=True)
def test_without_a_backend_token_the_remote_backend_answers_401(external, remote, monkeypatch):
    monkeypatch.setattr(http, "BACKOFF_SECONDS", 0.01)
    config = services.ProcessorConfig(
        external_api_get_url=external.get_url, external_api_post_url=external.post_url, external_api_key=KEY,
        organization_id=DEMO_ORGANIZATION_ID, backend_api_url=remote,
    )
    results = services.process_analyses(config=config).results
    assert [r["status"] for r in results] == ["failed", "failed"]
    assert results[0]["error"] == "Backend API returned 401"
