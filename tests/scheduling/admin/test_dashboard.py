"""The admin index as an operations dashboard (scheduling.dashboard and
scheduling.admin.dashboard): its selectors, the page, its query count,
tenancy, the operator-warning banner, /health as a page, and the beat
heartbeat's threshold. Real Redis throughout (the broker's queues and
heartbeats are written as Celery, the workers and beat write them)."""
from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from jobsite.runtime import free_port
from jobsite.services_health import BEAT_DOWN_AFTER_SECONDS, health_report, record_beat_heartbeat
from jobsite.tenancy import SYSTEM
from scheduling import dashboard, heartbeat, services
from scheduling.models import AuditLog, DailyJobStatistics, Execution
from tests.factories import ExecutionFactory, JobFactory

pytestmark = pytest.mark.django_db
PROJECT_QUEUES = tuple(settings.JOBS_QUEUES)  # what a real worker of the session consumes


@pytest.fixture(autouse=True)
def no_cached_history():
    """The older hours of the runs chart are cached per process: each test reads its own."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def queued_message(client, queue: str, execution: Execution) -> None:
    """A message as kombu's Redis transport stores it (LPUSH onto the queue's list), on a
    queue of the test's own: a real worker of this process (another test's) consumes the
    project's queues, and this stand-in is no message it can take (its consumer fails on
    it and reconnects)."""
    assert queue not in PROJECT_QUEUES, f"queue {queue!r} is one a real worker consumes"
    body = {"body": "", "headers": {"id": execution.celery_task_id, "task": "scheduling.run_execution"},
            "properties": {"correlation_id": execution.celery_task_id, "delivery_tag": str(uuid.uuid4())}}
    client.lpush(queue, json.dumps(body))


def created(execution: Execution, ago: timedelta) -> Execution:
    Execution.objects.filter(pk=execution.pk).update(created_at=timezone.now() - ago)
    execution.refresh_from_db()
    return execution


# ---------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------
def test_runs_per_hour_counts_each_outcome_in_its_hour():
    now = timezone.now().replace(minute=30, second=0, microsecond=0)
    job = JobFactory(task_name="tests.noop")
    for status, hours_ago in [("success", 0), ("success", 0), ("failed", 0), ("timeout", 2), ("skipped", 2),
                              ("running", 0), ("success", 30), ("success", 24 * 8)]:
        execution = ExecutionFactory(job=job, status=status)
        Execution.objects.filter(pk=execution.pk).update(created_at=now - timedelta(hours=hours_ago))

    data = dashboard.runs_per_hour(user=SYSTEM, now=now)

    assert len(data["hours"]) == 168 and data["hours"][-1] == now.replace(minute=0)
    series = data["series"]
    assert (series["success"][-1], series["failed"][-1], series["active"][-1]) == (2, 1, 1)
    assert (series["failed"][-3], series["skipped"][-3]) == (1, 1)
    assert series["success"][-31] == 1
    assert data["total"] == 7  # the run of 8 days ago is before the chart


def test_the_older_hours_are_read_once_then_from_the_cache(django_assert_num_queries):
    now = timezone.now()
    job = JobFactory(task_name="tests.noop")
    old = ExecutionFactory(job=job, status="success")
    Execution.objects.filter(pk=old.pk).update(created_at=now - timedelta(hours=5))
    with django_assert_num_queries(2):  # the older hours, the live ones
        first = dashboard.runs_per_hour(user=SYSTEM, now=now)
    Execution.objects.filter(pk=old.pk).update(status="failed")  # history rewritten: seen when the cache expires
    ExecutionFactory(job=job, status="failed")

    with django_assert_num_queries(1):  # the live hours only
        second = dashboard.runs_per_hour(user=SYSTEM, now=now)

    assert first["series"]["success"][-6] == second["series"]["success"][-6] == 1
    assert second["series"]["failed"][-1] == 1 and second["total"] == 2


@pytest.mark.parametrize("result, percent, failed", [
    ({"percent": 25.0}, 25.0, 0.0),
    ({"steps": [{"status": "success"}, {"status": "failed"}, {"status": "running"}, {"status": "pending"}]}, 50.0, 25.0),
    ({"processed_rows": 30, "total_rows": 120, "failed_rows": 6}, 25.0, 5.0),
    ({"output": "nothing about progress"}, None, None),
])
def test_run_progress_reads_every_kind_of_report(result, percent, failed):
    progress = dashboard.run_progress(result)
    assert (progress or (None, None)) == (percent, failed)


def test_active_runs_running_first_with_progress_and_eta_then_queued():
    now = timezone.now()
    job = JobFactory(task_name="tests.noop")
    queued = created(ExecutionFactory(job=job, status="queued"), timedelta(minutes=3))
    running = ExecutionFactory(job=job, status="running", started_at=now - timedelta(seconds=60), result={"percent": 25})
    ExecutionFactory(job=job, status="success")

    runs, total = dashboard.active_runs(user=SYSTEM, now=now)

    assert total == 2
    assert [run.execution.pk for run in runs] == [running.pk, queued.pk]
    assert runs[0].percent == 25 and runs[0].eta_seconds == pytest.approx(180, abs=1)
    assert runs[1].percent is None and runs[1].waiting_seconds == pytest.approx(180, abs=2)


def test_latest_failures_are_the_newest_failed_timed_out_or_errored_runs():
    job = JobFactory(task_name="tests.noop")
    old = created(ExecutionFactory(job=job, status="failed"), timedelta(hours=3))
    ExecutionFactory(job=job, status="success")
    timeout = created(ExecutionFactory(job=job, status="timeout"), timedelta(hours=1))
    error = ExecutionFactory(job=job, status="error")

    assert [e.pk for e in dashboard.latest_failures(user=SYSTEM)] == [error.pk, timeout.pk, old.pk]


# ---------------------------------------------------------------------------
# Jobs
# ---------------------------------------------------------------------------
def test_upcoming_runs_mark_each_fire_and_band_a_dense_schedule():
    now = timezone.now()
    every_6h = JobFactory(name="six-hourly", schedule_type="cron", schedule_expression="0 */6 * * *")
    every_minute = JobFactory(name="minutely", schedule_type="cron", schedule_expression="* * * * *")
    JobFactory(name="paused", schedule_type="cron", schedule_expression="0 * * * *")
    services.job_pause(job=JobFactory(name="paused-2", schedule_type="cron", schedule_expression="0 * * * *"),
                       actor_label="test")

    lanes, total = dashboard.upcoming_runs(user=SYSTEM, now=now)

    by_name = {lane.job.name: lane for lane in lanes}
    assert "paused-2" not in by_name and total == 3
    assert len(by_name["six-hourly"].runs) == 4 and not by_name["six-hourly"].more
    assert by_name["minutely"].more and len(by_name["minutely"].runs) == 48
    assert all(now <= run < now + timedelta(hours=24) for lane in lanes for run in lane.runs)


def test_overdue_jobs_most_overdue_first_and_counted_up_to_a_cap(monkeypatch):
    from scheduling.dashboard import jobs as dashboard_jobs
    from scheduling.models import Job

    now = timezone.now()
    late = [JobFactory(name=f"late-{i}", schedule_type="cron", schedule_expression="0 * * * *") for i in range(8)]
    for i, job in enumerate(late):
        Job.objects.filter(pk=job.pk).update(next_run_at=now - timedelta(hours=1, minutes=i))
    JobFactory(name="on-time", schedule_type="cron", schedule_expression="0 * * * *")

    jobs, total = dashboard.overdue_jobs(user=SYSTEM)
    assert [job.name for job in jobs] == [f"late-{i}" for i in range(7, 1, -1)] and total == 8

    monkeypatch.setattr(dashboard_jobs, "OVERDUE_COUNT_CAP", 3)
    assert dashboard.overdue_jobs(user=SYSTEM)[1] == 4  # more than the cap: "3+"


def test_daily_statistics_say_why_they_are_empty_and_when_they_come():
    assert "No job computes them" in dashboard.daily_statistics_state()["reason"]

    job = JobFactory(name="analytics_aggregation", task_name="scheduling.analytics_aggregation",
                     schedule_type="daily", schedule_expression="01:00")
    state = dashboard.daily_statistics_state()
    assert state["job"].pk == job.pk and state["next_at"] == job.next_run_at
    assert "computed the night after" in state["reason"] and "01:00" in state["reason"]

    DailyJobStatistics.objects.create(day=timezone.localdate() - timedelta(days=1), runs=3)
    assert dashboard.daily_statistics_state()["reason"] == ""

    services.job_set_enabled(job=job, enabled=False, actor_label="test")
    assert "is disabled" in dashboard.daily_statistics_state()["reason"]


def test_the_audit_trail_a_member_sees_is_their_organizations(user, job, foreign_job, root):
    services.job_pause(job=job, actor=root)
    services.job_pause(job=foreign_job, actor=root)

    mine = dashboard.audit_trail(user=user)
    everything = dashboard.audit_trail(user=root)

    assert {(e.object_type, e.object_id) for e in mine if e.action == "pause"} == {("job", str(job.pk))}
    assert {e.object_id for e in everything if e.action == "pause"} == {str(job.pk), str(foreign_job.pk)}


# ---------------------------------------------------------------------------
# Cluster: queues, workers, beat, warnings
# ---------------------------------------------------------------------------
def test_queues_show_depth_latency_and_their_live_consumers(broker, settings):
    # "reports" and "exports": queues of their own, which no real worker (started by another test
    # of this process, consuming the project's queues) drains or heartbeats for.
    settings.JOBS_QUEUES = [*settings.JOBS_QUEUES, "reports", "exports"]
    job = JobFactory(task_name="tests.noop")
    oldest = created(ExecutionFactory(job=job, status="queued", celery_task_id=str(uuid.uuid4())), timedelta(minutes=4))
    newest = ExecutionFactory(job=job, status="queued", celery_task_id=str(uuid.uuid4()))
    queued_message(broker, "reports", oldest)
    queued_message(broker, "reports", newest)
    heartbeat.beat_once("worker-a@host", queues=["reports", "maintenance"])
    heartbeat.beat_once("worker-old@host", queues=["exports"])
    broker.hset(heartbeat.HEARTBEATS_KEY, "worker-old@host", int(broker.time()[0]) - 600)  # silent for 10 minutes

    state = dashboard.cluster_state()

    queues = {queue.name: queue for queue in state.queues}
    assert queues["reports"].depth == 2 and queues["reports"].oldest_seconds == pytest.approx(240, abs=5)
    assert queues["reports"].consumers == ["worker-a@host"]
    assert queues["exports"].consumers == [] and not queues["exports"].unconsumed  # nothing waits there
    ours = [(w.name, w.alive) for w in state.workers if w.name.endswith("@host")]
    assert ours == [("worker-a@host", True), ("worker-old@host", False)]


def test_a_queue_with_waiting_runs_and_no_worker_raises_a_warning(broker, settings):
    settings.JOBS_QUEUES = [*settings.JOBS_QUEUES, "reports"]  # no real worker consumes it (see above)
    job = JobFactory(task_name="tests.noop")
    execution = created(ExecutionFactory(job=job, status="queued", celery_task_id=str(uuid.uuid4())),
                        timedelta(minutes=2))
    queued_message(broker, "reports", execution)
    heartbeat.beat_once("worker-a@host", queues=["default"])
    record_beat_heartbeat()

    warnings = [w.text for w in dashboard.operator_warnings()]

    assert len(warnings) == 1
    assert "No worker consumes the queue 'reports' (1 message waiting, the oldest for 2m" in warnings[0]

    heartbeat.beat_once("worker-b@host", queues=["reports"])
    assert dashboard.operator_warnings() == []


def test_beat_is_down_for_the_banner_and_health_once_its_heartbeat_is_older_than_its_threshold(broker):
    record_beat_heartbeat(at=time.time() - (BEAT_DOWN_AFTER_SECONDS - 3))
    assert dashboard.operator_warnings() == []
    assert health_report(include_workers=False)["checks"]["beat"]["ok"] is True

    record_beat_heartbeat(at=time.time() - (BEAT_DOWN_AFTER_SECONDS + 1))
    [warning] = dashboard.operator_warnings()
    assert warning.text.startswith("Beat's last heartbeat was 2") and "not being fired" in warning.text
    beat = health_report(include_workers=False)["checks"]["beat"]
    assert beat["ok"] is False and f"older than {BEAT_DOWN_AFTER_SECONDS:.0f}s" in beat["detail"]
    assert BEAT_DOWN_AFTER_SECONDS <= 30  # /health marks beat down within 30 s of it stopping


def test_an_unreachable_broker_is_the_one_warning(settings, broker):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"

    [warning] = dashboard.operator_warnings()

    assert "cannot be reached" in warning.text and "ConnectionError" in warning.text


# ---------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------
def make_history(count: int) -> None:
    for i in range(count):
        job = JobFactory(task_name="tests.noop", schedule_type="cron", schedule_expression=f"{i % 60} * * * *")
        ExecutionFactory(job=job, status="failed", error=f"boom {i}")
        ExecutionFactory(job=job, status="running", started_at=timezone.now(), result={"percent": 10})
        ExecutionFactory(job=job, status="success")
        services.job_pause(job=job, actor_label="test") if i % 5 == 0 else None


def test_the_index_is_the_dashboard_with_every_panel(admin_client, broker):
    job = JobFactory(name="nightly-report", title="Nightly report", task_name="tests.noop")
    failed = ExecutionFactory(job=job, status="failed", error="boom: the report server said 500")
    heartbeat.beat_once("worker-a@host", queues=list(settings.JOBS_QUEUES))
    record_beat_heartbeat()

    response = admin_client.get(reverse("admin:index"))

    assert response.status_code == 200
    html = response.content.decode()
    for panel in ("kpi-active", "panel-runs-24h", "panel-runs-7d", "panel-active", "panel-cluster", "panel-upcoming",
                  "panel-failures", "panel-overdue", "panel-audit", "panel-statistics", "app-list"):
        assert f'id="{panel}"' in html
    assert "boom: the report server said 500" in html
    assert reverse("admin:scheduling_execution_rerun", args=[failed.pk]) in html
    assert "worker-a@host" in html
    assert html.count('class="ops-svg-chart"') == 2
    assert "<script" not in html.split('id="ops-dashboard"')[1].split('id="app-list"')[0]  # no JavaScript charts
    assert 'class="ops-internal"' in html and "Clocked" in html.split('class="ops-internal"')[1]
    assert "No action recorded yet" not in html  # the audit trail, not Django's empty LogEntry list
    assert "ops-warning" not in html


# session, user; runs per hour; active runs and their count; failures; overdue jobs and
# their stale runs (and count); the next 24 hours (and count, and the calendars its jobs skip);
# audit; statistics and their job; the queues' oldest runs; the maintenance pauses in force (the
# banner). Counts are asked only past a panel's rows.
DASHBOARD_MAX_QUERIES = 17


@pytest.mark.parametrize("jobs", [2, 14])
def test_the_dashboard_makes_a_fixed_number_of_queries(admin_client, broker, django_assert_max_num_queries, jobs,
                                                      settings):
    settings.JOBS_QUEUES = [*settings.JOBS_QUEUES, "reports"]  # no real worker consumes it (see queued_message)
    make_history(jobs)
    job = JobFactory(task_name="tests.noop")
    queued_message(broker, "reports", ExecutionFactory(job=job, status="queued", celery_task_id=str(uuid.uuid4())))
    admin_client.get(reverse("admin:index"))

    with django_assert_max_num_queries(DASHBOARD_MAX_QUERIES):
        response = admin_client.get(reverse("admin:index"))

    assert response.status_code == 200


def test_a_member_sees_only_their_organizations_runs(client, user, job, foreign_job, broker,
                                                     django_assert_max_num_queries):
    from django.contrib.auth.models import Permission

    user.is_staff = True
    user.save()
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="scheduling"))
    ExecutionFactory(job=job, status="failed", error="ours broke")
    ExecutionFactory(job=foreign_job, status="failed", error="theirs broke")
    client.force_login(user)

    html = client.get(reverse("admin:index")).content.decode()

    assert "ours broke" in html and "theirs broke" not in html
    assert "globex-job" not in html
    with django_assert_max_num_queries(DASHBOARD_MAX_QUERIES + 2):  # + memberships, permissions
        client.get(reverse("admin:index"))


def test_the_failed_runs_re_run_button_queues_a_new_run(admin_client, broker):
    job = JobFactory(name="flaky", task_name="tests.noop")
    failed = ExecutionFactory(job=job, status="failed", error="boom")

    response = admin_client.post(reverse("admin:scheduling_execution_rerun", args=[failed.pk]))

    rerun = Execution.objects.exclude(pk=failed.pk).get(job=job)
    assert response.status_code == 302 and response["Location"].endswith(f"/execution/{rerun.pk}/change/")
    assert rerun.trigger == Execution.Trigger.MANUAL


def test_the_banner_shows_on_the_dashboard(admin_client, broker):
    html = admin_client.get(reverse("admin:index")).content.decode()

    assert html.count('class="ops-warning"') == 1
    assert "Beat has never ticked here" in html


def test_the_banner_shows_on_every_admin_page(admin_client, broker):
    for url in (reverse("admin:scheduling_job_changelist"), reverse("admin:auth_user_changelist"),
                reverse("admin:notifications_destination_add")):
        html = admin_client.get(url).content.decode()

        assert html.count('class="ops-warning"') == 1 and "Beat has never ticked here" in html, url


def test_the_flower_link_shows_when_flower_runs(admin_client, broker, settings):
    from django.template import Context, Template

    settings.FLOWER_URL = "http://127.0.0.1:5555/"
    rendered = Template("{% load ops_console %}{% flower_url %}").render(Context())
    assert rendered == "http://127.0.0.1:5555/"
    settings.FLOWER_URL = ""
    assert Template("{% load ops_console %}{% flower_url %}").render(Context()) == ""


# ---------------------------------------------------------------------------
# /health in a browser
# ---------------------------------------------------------------------------
def test_health_is_a_page_for_a_browser_and_json_for_clients(admin_client, broker, settings):
    settings.HEALTH_DISK_MIN_FREE_MB = 1
    record_beat_heartbeat()

    page = admin_client.get("/health", HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    data = admin_client.get("/health", HTTP_ACCEPT="*/*")

    assert page["Content-Type"].startswith("text/html")
    html = page.content.decode()
    assert "<table>" in html and 'id="check-beat"' in html and 'id="check-database"' in html
    assert data["Content-Type"] == "application/json" and "checks" in data.json()


def test_health_sends_a_signed_out_browser_to_the_login(client):
    response = client.get("/health", HTTP_ACCEPT="text/html")

    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
    assert client.get("/health", HTTP_ACCEPT="application/json").status_code == 401


# ---------------------------------------------------------------------------
# Notification destinations: "Send test"
# ---------------------------------------------------------------------------
def test_send_test_posts_to_a_webhook_and_records_it(admin_client, serve_directory, tmp_path):
    from scheduling.notifications.models import Destination
    from scheduling.notifications.services import destination_create

    (tmp_path / "hook").write_text("ok")
    base = serve_directory(tmp_path)  # answers POST with 501: a failure, recorded as one
    destination = destination_create(name="ops-hook", kind="webhook", url=f"{base}/hook")

    response = admin_client.post(reverse("admin:notifications_destination_send_test", args=[destination.pk]),
                                 follow=True)

    message = str(list(response.context["messages"])[0])
    assert message.startswith("Test to ops-hook failed: HTTP 501")
    entry = AuditLog.objects.get(object_type="destination", object_id=str(destination.pk))
    assert entry.actor_label == "root" and entry.changes["test_delivery"][1].startswith("failed: HTTP 501")
    assert Destination.objects.get(pk=destination.pk).secret == ""


def test_send_test_sends_an_email(admin_client, mailoutbox):
    from scheduling.notifications.services import destination_create

    destination = destination_create(name="ops-mail", kind="email", email_to="ops@example.com")

    response = admin_client.post(reverse("admin:notifications_destination_send_test", args=[destination.pk]),
                                 follow=True)

    assert str(list(response.context["messages"])[0]) == "Test to ops-mail sent to 1 recipient(s)."
    assert mailoutbox[0].subject == "[jobsite] Test notification" and mailoutbox[0].to == ["ops@example.com"]


def test_send_test_is_a_post(admin_client):
    from scheduling.notifications.services import destination_create

    destination = destination_create(name="ops-mail", kind="email", email_to="ops@example.com")

    assert admin_client.get(reverse("admin:notifications_destination_send_test",
                                    args=[destination.pk])).status_code == 405


def test_each_panel_links_to_a_list_that_accepts_its_filter(admin_client, broker):
    import re
    from html import unescape

    job = JobFactory(task_name="tests.noop", schedule_type="cron", schedule_expression="0 * * * *")
    ExecutionFactory(job=job, status="failed", error="boom")
    html = admin_client.get(reverse("admin:index")).content.decode()
    panel_links = {unescape(href) for href in re.findall(r'<h2><a href="([^"]+)"', html)}
    kpi_links = {unescape(href) for href in re.findall(r'class="ops-kpi[^"]*" href="([^"]+)"', html)}
    hour_links = {unescape(href) for href in re.findall(r'<a href="([^"]+created_at__lt[^"]+)"', html)}

    assert len(panel_links) >= 9 and len(kpi_links) >= 6 and len(hour_links) == 7 * 24
    for link in sorted(panel_links | kpi_links | set(sorted(hour_links)[-3:])):
        if link == "/health":
            continue
        response = admin_client.get(link)
        assert response.status_code == 200, link  # an unknown filter would redirect to ?e=1


def test_staff_without_the_runs_permission_get_the_app_list_only(client, make_user, broker):
    staff = make_user("viewer")
    staff.is_staff = True
    staff.save()
    client.force_login(staff)

    response = client.get(reverse("admin:index"))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="ops-dashboard"' not in html and 'id="app-list"' in html


def test_the_login_page_asks_nothing_of_redis(client, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"  # a banner would say it is unreachable

    html = client.get(reverse("admin:login")).content.decode()

    assert "ops-warning" not in html


def test_a_real_worker_records_the_queues_it_consumes(celery_worker_process):
    from tests.worker import wait_for

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    recorded = wait_for(lambda: client.hget(heartbeat.QUEUES_KEY, celery_worker_process.nodename), timeout=30,
                        message="the worker's queues in its heartbeat")

    assert set(recorded.decode().split(",")) == set(settings.JOBS_QUEUES)
    worker = next(w for w in dashboard.cluster_state().workers if w.name == celery_worker_process.nodename)
    assert worker.alive and set(worker.queues) == set(settings.JOBS_QUEUES)


def test_beats_tables_come_last_in_the_sidebar(admin_client):
    html = admin_client.get(reverse("admin:notifications_destination_changelist")).content.decode()
    sidebar = html.split('id="nav-sidebar"')[1]

    assert sidebar.index("app-django_celery_beat") > sidebar.index("app-workflows")
    assert sidebar.index("app-django_celery_beat") > sidebar.index("app-scheduling")
