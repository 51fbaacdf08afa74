"""The admin as an ops console: buttons that call the services, execution
pages that explain a run, a job list that says what is running, choices and a
schedule preview on the job form, self-refreshing lists, and the Workers and
queues page (real Redis; a real worker where it matters)."""
import re
import time
from datetime import timedelta

import pytest
from django.contrib import admin as django_admin
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobsite.admin.widgets import human_duration
from jobsite.runtime import free_port
from scheduling import cluster, services
from scheduling.models import AuditLog, Execution
from tests.factories import ExecutionFactory, JobFactory
from tests.scheduling.admin.conftest import url

pytestmark = pytest.mark.django_db
TIME_WITH_ZONE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


@pytest.fixture
def job():
    return JobFactory(name="nightly-cleanup", task_name="demo.sleep", task_kwargs={"seconds": 1},
                      schedule_type="daily", schedule_expression="02:00")


# -- durations and times -----------------------------------------------------------------------
@pytest.mark.parametrize("seconds, shown", [
    (None, "-"), (0, "0.0s"), (1.00937, "1.0s"), (59.94, "59.9s"), (60, "1m"), (123, "2m 3s"),
    (3600, "1h"), (3900, "1h 5m"), (2 * 86400 + 3 * 3600, "2d 3h"), (timedelta(seconds=90), "1m 30s"),
])
def test_human_duration(seconds, shown):
    assert human_duration(seconds) == shown


def test_execution_title_names_the_run_its_job_and_status(job):
    execution = ExecutionFactory(job=job, status="failed")
    assert str(execution) == f"Run {execution.pk} of nightly-cleanup (failed)"


# -- job page buttons -------------------------------------------------------------------------------
def test_job_page_has_run_pause_and_disable_buttons(admin_client, job):
    html = admin_client.get(url("job_change", job.pk)).content.decode()
    assert f'action="{url("job_run", job.pk)}"' in html and ">Run now</button>" in html
    assert f'action="{url("job_state", job.pk, "pause")}"' in html
    assert f'action="{url("job_state", job.pk, "disable")}"' in html
    assert "resume" not in re.findall(r'action="[^"]*/state/(\w+)/"', html)


def test_run_now_button_queues_a_manual_run_and_opens_it(admin_client, job, root, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client.post(url("job_run", job.pk))
    execution = Execution.objects.get(job=job)
    assert response.status_code == 302 and response["Location"] == url("execution_change", execution.pk)
    assert (execution.status, execution.trigger, execution.triggered_by) == ("queued", "manual", root)
    assert len(callbacks) == 1  # the Celery message goes out on commit


@pytest.mark.parametrize("change, expected_state", [("pause", "paused"), ("disable", "disabled")])
def test_state_buttons_go_through_the_services(admin_client, job, root, change, expected_state):
    response = admin_client.post(url("job_state", job.pk, change), follow=True)
    job.refresh_from_db()
    assert job.state == expected_state and job.periodic_task.enabled is False
    assert AuditLog.objects.filter(actor=root, object_id=str(job.pk), action="pause").exists()
    html = response.content.decode()
    back = {"pause": "resume", "disable": "enable"}[change]
    assert f'action="{url("job_state", job.pk, back)}"' in html  # the page now offers the way back
    assert ">Run now (though " in html and 'name="force" value="1"' in html
    admin_client.post(url("job_state", job.pk, back))
    job.refresh_from_db()
    assert job.state == "active" and job.periodic_task.enabled is True


def test_run_now_on_a_paused_job_without_force_is_a_warning(admin_client, job):
    services.job_pause(job=job)
    response = admin_client.post(url("job_run", job.pk), follow=True)
    assert "is paused; use force" in response.content.decode()
    assert not Execution.objects.exists()


def test_buttons_want_post_and_a_visible_job(admin_client, job, make_user):
    assert admin_client.get(url("job_run", job.pk)).status_code == 405
    assert admin_client.post(url("job_state", job.pk, "explode")).status_code == 404
    assert admin_client.post(url("job_run", 999999)).status_code == 404
    staff = make_user("viewer")
    staff.is_staff = True
    staff.save()
    client = Client()
    client.force_login(staff)
    assert client.post(url("job_run", job.pk)).status_code in (403, 404)  # not theirs, no permission
    assert not Execution.objects.exists()


# -- execution page -------------------------------------------------------------------------------
def test_execution_page_explains_the_run(admin_client, job):
    failed = ExecutionFactory(
        job=job, status="failed", duration_seconds=123.4, started_at=timezone.now(), completed_at=timezone.now(),
        error="RuntimeError: asked to fail", override_kwargs={"seconds": 5},
        traceback='Traceback (most recent call last):\n  File "x.py", line 1\nRuntimeError: <script>alert(1)</script>',
        log="2026-01-01 INFO demo: step 1\n",
    )
    retry = ExecutionFactory(job=job, status="success", attempt=2, retry_of=failed, trigger="retry")
    html = admin_client.get(url("execution_change", failed.pk)).content.decode()
    assert f"Run {failed.pk} of nightly-cleanup (failed)" in html
    assert 'class="ops-badge ops-badge-failed"' in html
    assert "2m 3s" in html
    assert f'Retried as <a href="{url("execution_change", retry.pk)}">run {retry.pk}</a>' in html
    assert '<pre class="ops-pre">Traceback (most recent call last):' in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert "INFO demo: step 1" in html
    assert TIME_WITH_ZONE.search(html)
    retry_html = admin_client.get(url("execution_change", retry.pk)).content.decode()
    assert f'Retries <a href="{url("execution_change", failed.pk)}">run {failed.pk}</a>' in retry_html
    # finished: re-run offered, cancel not
    assert 'id="ops-rerun"' in html and 'id="ops-cancel"' not in html


def test_cancel_button_cancels_a_queued_run(admin_client, job, django_capture_on_commit_callbacks):
    queued = services.job_execute(job=job)
    html = admin_client.get(url("execution_change", queued.pk)).content.decode()
    assert 'id="ops-cancel"' in html
    # a queued run's page follows it live (its log endpoint; executions.js reloads it when the status changes)
    assert 'id="ops-log"' in html and 'data-live="1"' in html and 'data-status="queued"' in html
    assert '<meta name="ops-autorefresh"' not in html  # not reloaded wholesale: the log tail would start over
    with django_capture_on_commit_callbacks(execute=False):  # the revoke goes out after commit
        response = admin_client.post(url("execution_cancel", queued.pk), follow=True)
    queued.refresh_from_db()
    assert queued.status == "cancelled" and queued.error == "Cancelled by root: cancelled in the admin"
    assert f"Cancelled run {queued.pk} of nightly-cleanup." in response.content.decode()
    again = admin_client.post(url("execution_cancel", queued.pk), follow=True).content.decode()
    assert "already cancelled" in again


def test_rerun_button_runs_the_job_again_with_the_same_parameters(admin_client, job, django_capture_on_commit_callbacks):
    original = ExecutionFactory(job=job, status="failed", override_kwargs={"seconds": 2, "fail": True})
    with django_capture_on_commit_callbacks(execute=False):
        response = admin_client.post(url("execution_rerun", original.pk))
    rerun = Execution.objects.exclude(pk=original.pk).get()
    assert response["Location"] == url("execution_change", rerun.pk)
    assert (rerun.status, rerun.trigger, rerun.override_kwargs) == ("queued", "manual", {"seconds": 2, "fail": True})


# -- job list ------------------------------------------------------------------------------------
def test_job_list_shows_state_running_since_and_times_with_zone(admin_client, job):
    paused = JobFactory(name="paused-job", task_name="tests.noop")
    services.job_pause(job=paused)
    disabled = JobFactory(name="disabled-job", task_name="tests.noop")
    services.job_set_enabled(job=disabled, enabled=False)
    started = timezone.now() - timedelta(seconds=125)
    ExecutionFactory(job=job, status="running", started_at=started)
    html = admin_client.get(url("job_changelist")).content.decode()
    table = html[html.index('id="result_list"'):]
    table = table[:table.index("</table>")]
    rows = {name: row for row in table.split("<tr")[1:] for name in ("nightly-cleanup", "paused-job", "disabled-job")
            if f">{name}" in row}
    assert "ops-badge-active" in rows["nightly-cleanup"] and "since" in rows["nightly-cleanup"]
    assert "for 2m" in rows["nightly-cleanup"]
    assert "ops-badge-paused" in rows["paused-job"] and "ops-badge-active" not in rows["paused-job"]
    assert "ops-badge-disabled" in rows["disabled-job"] and ">Active<" not in rows["disabled-job"]
    # next run: relative on one line, the exact time (seconds and zone) on hover
    assert re.search(r'<time class="ops-when" datetime="[^"]+" title="\d{4}-\d\d-\d\d 02:00:00 UTC">in \d',
                     rows["nightly-cleanup"])
    assert "At 02:00" in rows["nightly-cleanup"]  # the schedule in words
    assert '<meta name="ops-autorefresh"' in html  # a run is going: the list refreshes itself


def test_job_list_does_not_refresh_when_nothing_runs(admin_client, job):
    ExecutionFactory(job=job, status="success")
    html = admin_client.get(url("job_changelist")).content.decode()
    assert 'name="ops-autorefresh"' not in html


def test_job_list_costs_the_same_queries_for_3_and_12_busy_jobs(admin_client):
    def busy_jobs(count):
        for _ in range(count):
            busy = JobFactory(task_name="tests.noop")
            ExecutionFactory(job=busy, status="running", started_at=timezone.now())
            ExecutionFactory(job=busy, status="queued")

    def queries():
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(url("job_changelist")).status_code == 200
        return len(ctx.captured_queries)

    busy_jobs(3)
    few = queries()
    busy_jobs(9)
    assert queries() == few


def test_execution_list_refreshes_while_a_run_is_active(admin_client, job):
    ExecutionFactory(job=job, status="success")
    assert 'name="ops-autorefresh"' not in admin_client.get(url("execution_changelist")).content.decode()
    ExecutionFactory(job=job, status="queued")
    html = admin_client.get(url("execution_changelist")).content.decode()
    assert 'name="ops-autorefresh"' in html and "this list refreshes every 5 s" in html


# -- job form ----------------------------------------------------------------------------------
def test_task_queue_and_timezone_are_choices(admin_client, job):
    html = admin_client.get(url("job_add")).content.decode()
    assert '<select name="task_name"' in html and '<option value="demo.sleep">' in html
    assert '<select name="queue"' in html and '<option value="maintenance">' in html
    assert '<select name="timezone"' in html and '<option value="America/New_York">' in html
    assert 'id="schedule-preview"' in html and "job_form.js" in html


def test_change_page_renders_the_saved_schedule_preview(admin_client, job):
    html = admin_client.get(url("job_change", job.pk)).content.decode()
    assert "In words: <strong>At 02:00 (UTC)</strong>" in html
    preview = html[html.index('id="schedule-preview"'):]
    assert preview.count("02:00:00 UTC</li>") == 5


def test_schedule_preview_view(admin_client):
    preview_url = url("job_schedule_preview")
    body = admin_client.get(preview_url, {"schedule_type": "weekly", "schedule_expression": "0:09:30",
                                          "timezone": "America/New_York"}).json()
    assert body["valid"] is True and "09:30" in body["description"]
    assert len(body["next_runs_display"]) == 5
    assert all(re.fullmatch(r"Mon \d{4}-\d\d-\d\d 09:30:00 E[SD]T", run) for run in body["next_runs_display"])
    bad = admin_client.get(preview_url, {"schedule_type": "cron", "schedule_expression": "61 * * * *", "timezone": "UTC"})
    assert bad.status_code == 200 and bad.json()["valid"] is False and "Invalid cron expression" in bad.json()["error"]
    assert admin_client.get(preview_url, {"schedule_type": "manual"}).json()["note"] == "Runs only when triggered."
    anonymous = Client().get(preview_url, {"schedule_type": "daily", "schedule_expression": "09:00"})
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]


# -- labels -----------------------------------------------------------------------------------
def test_every_admin_label_is_a_proper_plural():
    # Django's default plural adds an "s": "external identitys", "daily job statisticss"
    for model in django_admin.site._registry:
        singular, plural = str(model._meta.verbose_name), str(model._meta.verbose_name_plural)
        if re.search(r"([^aeiou]y|s|x|ch|sh)$", singular):
            assert plural != singular + "s", f"{model.__name__}: {plural!r}"


def test_workers_page_is_in_the_app_list(admin_client):
    html = admin_client.get("/admin/").content.decode()
    assert f'<a href="{url("workers")}">Workers and queues</a>' in html


# -- Workers and queues --------------------------------------------------------------------------
def test_queue_keys_follow_kombus_priority_lists():
    assert cluster.redis_queue_keys("default") == ["default", "default\x06\x163", "default\x06\x166", "default\x06\x169"]
    assert cluster.redis_queue_keys("q", {"global_keyprefix": "p:", "priority_steps": [0, 5]}) == ["p:q", "p:q\x06\x165"]


def test_queue_depths_count_every_priority_of_a_queue(settings):
    import redis

    # a Redis database of its own: no worker consumes there, so nothing moves
    settings.CELERY_BROKER_URL = settings.REDIS_URL.rsplit("/", 1)[0] + "/13"
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.flushdb()
    try:
        client.lpush("default", "a", "b")
        client.lpush("default\x06\x163", "c")
        client.lpush("default\x06\x169", "d")
        client.lpush("maintenance", "e")
        client.hset("unacked", "tag", "x")
        depths, unacked = cluster.queue_depths()
    finally:
        client.flushdb()
    counts = {queue.name: queue.messages for queue in depths}
    assert counts == {name: {"default": 4, "maintenance": 1}.get(name, 0) for name in settings.JOBS_QUEUES}
    assert unacked == 1


def test_workers_page_with_the_broker_down_is_no_500(admin_client, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    started = time.monotonic()
    response = admin_client.get(url("workers"))
    assert response.status_code == 200
    assert time.monotonic() - started < 5
    html = response.content.decode()
    assert 'id="ops-broker-down"' in html and "unreachable" in html and "ConnectionError" in html


def test_workers_page_without_workers_answers_fast(admin_client, settings):
    settings.CELERY_BROKER_URL = settings.REDIS_URL.rsplit("/", 1)[0] + "/14"  # a broker no worker listens on
    settings.ADMIN_INSPECT_TIMEOUT_SECONDS = 0.5
    started = time.monotonic()
    response = admin_client.get(url("workers"))
    elapsed = time.monotonic() - started
    html = response.content.decode()
    # not a hang waiting for answers or retrying the broker (generous: a loaded machine renders slowly)
    assert response.status_code == 200 and elapsed < 10, elapsed
    assert 'id="ops-no-workers"' in html and "<code>default</code>" in html
    assert "no worker" in html


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_workers_page_shows_the_worker_and_the_run_it_is_running(celery_worker_process, django_user_model):
    root = django_user_model.objects.create_superuser("ops", email="ops@example.com", password=None)
    client = Client()
    client.force_login(root)
    job = JobFactory(name="sleepy", task_name="demo.sleep", task_kwargs={"seconds": 30})
    execution = services.job_execute(job=job)
    try:
        deadline = time.monotonic() + 20
        while Execution.objects.get(pk=execution.pk).status != "running":
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.1)
        html = client.get(url("workers")).content.decode()
        assert celery_worker_process.nodename in html
        assert f"Run {execution.pk} of sleepy (running)" in html
        assert "prefork" in html and "<code>default</code>" in html
        snapshot = cluster.cluster_snapshot(user=root, timeout=1.0)
        worker = next(w for w in snapshot.workers if w.name == celery_worker_process.nodename)
        assert [task.execution.pk for task in worker.active if task.execution] == [execution.pk]
        assert "default" in worker.queues
    finally:
        services.execution_cancel(execution=execution, actor_label="test")
