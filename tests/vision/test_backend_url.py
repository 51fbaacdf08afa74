"""``backend_api_url`` at save and at run time: every URL of a vision job goes
through the outbound guard when the job is saved (through /cron-jobs and
through the core's job API alike), except a backend URL naming this
installation, which is never called over HTTP. "This installation" is known
from its own address (JOBSITE_PUBLIC_URL, which `make run` sets to the stack's
web address), VISION_LOCAL_BACKEND_URLS and ALLOWED_HOSTS, not a fixed port."""
import pytest
from django.core.exceptions import ValidationError

from scheduling import services as core
from scheduling.models import Job
from tests.vision.test_cron_api import KEY, body
from vision_pipeline import samples, services
from vision_pipeline.demo import DEMO_ORGANIZATION_ID, DemoExternalAPI
from vision_pipeline.models import Batch
from vision_pipeline.selectors import KIND

pytestmark = pytest.mark.django_db


@pytest.fixture
def guarded(settings):
    """The guard as in production: loopback and private targets refused."""
    settings.OUTBOUND_HTTP_ALLOW_LOOPBACK = False
    settings.OUTBOUND_HTTP_ALLOW_PRIVATE = False
    settings.JOBSITE_PUBLIC_URL = ""
    settings.VISION_LOCAL_BACKEND_URLS = ["http://localhost:8000", "http://127.0.0.1:8000"]
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]


@pytest.mark.parametrize("url, why", [
    ("http://169.254.169.254", "169.254.169.254 is a link-local"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local"),
    ("http://10.0.0.5:8000", "private address"),
    ("http://localhost:9000", "loopback"),
    ("ftp://backend.example.com", "not an http(s) URL"),
])
def test_a_backend_url_the_guard_refuses_is_a_400_at_create(api, guarded, url, why):
    response = api.post("/cron-jobs", body(backend_api_url=url), format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["detail"].startswith("backend_api_url: ")
    assert why in response.json()["detail"]
    assert not Job.objects.filter(kind=KIND).exists()
    assert KEY not in response.content.decode()


@pytest.mark.parametrize("url", [None, "http://localhost:8000", "http://127.0.0.1:8000/",
                                 "https://backend.example.com"])
def test_this_server_and_public_backends_are_accepted(api, guarded, url):
    response = api.post("/cron-jobs", body(backend_api_url=url), format="json")
    assert response.status_code == 201, response.json()


def test_the_core_job_api_checks_the_same_urls_at_save(user, guarded):
    config = {"external_api_get_url": "https://api.example.com/get",
              "external_api_post_url": "https://api.example.com/post",
              "backend_api_url": "http://169.254.169.254", "organization_id": "ORG"}
    with pytest.raises(ValidationError) as refused:
        core.job_create(actor=user, name="vision-core", kind=KIND, job_type=Job.JobType.VISION_ANALYSIS,
                        schedule_type=Job.ScheduleType.CRON, schedule_expression="0 2 * * *", config=config,
                        queue="vision", owner=user)
    assert "backend_api_url" in str(refused.value.message_dict["config"])
    assert "169.254.169.254 is a link-local" in str(refused.value.message_dict["config"])


@pytest.mark.parametrize("public, url, local", [
    # the stack's own address, under any name this site answers to, is this server
    ("http://127.0.0.1:8010", "http://127.0.0.1:8010", True),
    ("http://127.0.0.1:8010", "http://localhost:8010/", True),
    ("https://jobs.example.com", "https://jobs.example.com", True),
    ("https://jobs.example.com", "https://JOBS.example.com:443/", True),
    # seed 000's default stays this server wherever the stack listens
    ("http://127.0.0.1:8010", "http://localhost:8000", True),
    ("", "", True),
    # another port, scheme or host is another server
    ("http://127.0.0.1:8010", "http://127.0.0.1:8011", False),
    ("http://127.0.0.1:8010", "https://127.0.0.1:8010", False),
    ("https://jobs.example.com", "https://other.example.com", False),
    ("", "http://localhost:8010", False),
    ("http://127.0.0.1:8010", "not a url", False),
])
def test_this_server_is_known_from_its_own_address(guarded, settings, public, url, local):
    settings.JOBSITE_PUBLIC_URL = public
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "jobs.example.com"]
    assert services.is_this_server(url) is local


def test_a_wildcard_allowed_host_does_not_make_every_server_this_one(guarded, settings):
    settings.JOBSITE_PUBLIC_URL = "http://127.0.0.1:8010"
    settings.ALLOWED_HOSTS = ["*"]
    assert not services.is_this_server("http://backend.example.com:8010")
    assert services.is_this_server("http://127.0.0.1:8010")


def test_a_stack_on_another_port_runs_its_batches_in_process(settings, tmp_path, user, guarded):
    # given a stack whose web server listens on 8010 (nothing listens there in this test),
    # and a job whose backend_api_url names it, with no backend_api_key
    settings.JOBSITE_PUBLIC_URL = "http://127.0.0.1:8010"
    settings.JOBS_TEMP_DIR = str(tmp_path / "tmp")
    settings.VISION_STORAGE_DIR = str(tmp_path / "vision")
    external = DemoExternalAPI(key=KEY).start()
    settings.OUTBOUND_HTTP_ALLOW_HOSTS = [f"127.0.0.1:{external.port}"]
    try:
        external.add_analysis(images=[("hull.jpg", samples.encode(samples.variant("rust", 320, 240, seed=1)))])
        job = services.cron_job_create(
            actor=user, name="Port 8010", schedule="0 2 * * *", external_api_get_url=external.get_url,
            external_api_post_url=external.post_url, external_api_key=KEY, organization_id=DEMO_ORGANIZATION_ID,
            backend_api_url="http://localhost:8010")
        # when it runs
        execution = core.job_dispatch_scheduled(job_id=job.pk)
        core.execution_run(execution_id=execution.pk, task_id=execution.celery_task_id, worker="test pid 0")
    finally:
        external.stop()
    # then the analysis was made in-process (no "Backend API returned 401") and its report uploaded
    execution.refresh_from_db()
    assert execution.status == "success", (execution.output, execution.error)
    assert execution.output == "Processed 1 analyses: 1 succeeded, 0 failed (1 images)"
    batch = Batch.objects.get(pk=execution.result["batch_ids"][0])
    assert (batch.source, batch.execution_id, batch.status) == ("cron", execution.pk, "completed")
    assert len(external.uploads) == 1


@pytest.mark.parametrize("host, port, public", [
    ("127.0.0.1", 8010, "http://127.0.0.1:8010"),
    ("0.0.0.0", 8020, "http://127.0.0.1:8020"),
    ("::1", 8030, "http://[::1]:8030"),
])
def test_make_run_tells_its_processes_the_stacks_own_address(monkeypatch, tmp_path, host, port, public):
    from jobsite.management.commands.runstack import Command

    monkeypatch.delenv("JOBSITE_PUBLIC_URL", raising=False)
    manager = Command()._manager(host=host, port=port, worker=True, beat=False, concurrency=1, var_dir=tmp_path,
                                 redis_server=None)
    assert {name: entry["obj"].env["JOBSITE_PUBLIC_URL"] for name, entry in manager._processes.items()} \
        == {"web": public, "worker": public}


def test_a_public_url_set_by_the_operator_is_kept(monkeypatch, tmp_path):
    from jobsite.management.commands.runstack import Command

    monkeypatch.setenv("JOBSITE_PUBLIC_URL", "https://jobs.example.com")
    manager = Command()._manager(host="127.0.0.1", port=8010, worker=False, beat=False, concurrency=None,
                                 var_dir=tmp_path, redis_server=None)
    assert manager._processes["web"]["obj"].env["JOBSITE_PUBLIC_URL"] == "https://jobs.example.com"
