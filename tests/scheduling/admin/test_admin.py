"""The admin: pages render, actions and saves go through the services, and
``Job.secrets`` never reaches the HTML."""
import re

import pytest
from django.test import Client
from django_celery_beat.models import PeriodicTask

from jobsite.runtime import free_port
from scheduling import services
from scheduling.executors import schedulable
from scheduling.executors.base import RunResult
from scheduling.models import AuditLog, DailyJobStatistics, Execution, Job
from tests.factories import ExecutionFactory, JobFactory
from tests.faults.support import celery_app_on
from tests.scheduling.admin.conftest import url

pytestmark = pytest.mark.django_db
SECRET = "s3cr3t-T0KEN-never-shown"


@schedulable("tests.admin_noop", description="Does nothing (admin test task).")
def noop(*, execution, **kw):
    return RunResult(output="ok")


@pytest.fixture
def job():
    job = JobFactory(name="nightly", schedule_type="daily", schedule_expression="02:00", task_name="tests.admin_noop",
                     secrets={"external_api_key": SECRET})
    ExecutionFactory(job=job, status=Execution.Status.SUCCESS, duration_seconds=1.5, output="all good")
    return job


def form_data(**overrides):
    data = {
        "name": "weekly_report", "title": "Weekly report", "description": "", "kind": "task",
        "job_type": "custom", "schedule_type": "weekly", "schedule_expression": "0:09:00", "timezone": "UTC",
        "task_name": "tests.admin_noop", "task_args": "[]", "task_kwargs": "{}", "config": "{}",
        "queue": "default", "priority": "5", "timeout_seconds": "600", "max_retries": "0",
        "retry_backoff_seconds": "60", "overlap_policy": "skip", "is_enabled": "on", "organization": "",
        "catch_up_policy": "once", "jitter_seconds": "0",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


# -- pages -------------------------------------------------------------------
@pytest.mark.parametrize("page", ["job_changelist", "job_change", "job_add", "execution_changelist", "execution_change",
                                  "auditlog_changelist", "dailyjobstatistics_changelist"])
def test_pages_render(admin_client, job, page):
    DailyJobStatistics.objects.create(day="2030-01-01", job=job, runs=1, successes=1)
    args = {"job_change": [job.pk], "execution_change": [job.executions.first().pk]}.get(page, [])
    response = admin_client.get(url(page, *args))
    assert response.status_code == 200
    assert SECRET not in response.content.decode()


def test_job_changelist_shows_badges_schedule_and_success_rate(admin_client, job):
    html = admin_client.get(url("job_changelist")).content.decode()
    assert "nightly" in html and "daily 02:00 (UTC)" in html
    assert ">Active</span>" in html


def test_job_change_page_shows_statistics_recent_executions_and_no_secrets(admin_client, job):
    html = admin_client.get(url("job_change", job.pk)).content.decode()
    assert "At 02:00 (UTC)" in html  # schedule in words
    summary = html[html.index('id="ops-job-summary"'):html.index('id="job_form"')]
    assert "Success rate" in summary and "100%" in summary
    assert "all good" in summary  # the recent runs
    assert f"job:{job.pk}" in html  # the beat periodic task
    assert SECRET not in html and 'name="secrets"' not in html


def test_job_page_shows_the_10_most_recent_runs(admin_client, job):
    runs = ExecutionFactory.create_batch(25, job=job, output="bulk run")
    html = admin_client.get(url("job_change", job.pk)).content.decode()
    recent = html[html.index('id="ops-recent-runs"'):]
    recent = recent[:recent.index("</table>")]
    shown = [int(pk) for pk in re.findall(r'<a href="/admin/scheduling/execution/(\d+)/change/">#', recent)]
    assert shown == [run.pk for run in reversed(runs[-10:])]


# -- saving through the services ----------------------------------------------------
def test_add_creates_the_job_and_its_beat_task_through_the_service(admin_client, root):
    response = admin_client.post(url("job_add"), form_data())
    assert response.status_code == 302, response.content.decode()[:2000]
    job = Job.objects.get(name="weekly_report")
    assert job.owner == root
    task = PeriodicTask.objects.get(pk=job.periodic_task_id)
    assert (task.crontab.hour, task.crontab.day_of_week) == ("9", "1")
    assert AuditLog.objects.filter(action="create", object_id=str(job.pk), actor=root).exists()


@pytest.mark.parametrize(
    "overrides, error",
    [
        ({"schedule_type": "cron", "schedule_expression": "61 * * * *"}, "Invalid cron expression: 61 * * * *"),
        ({"schedule_expression": "9:09:00"}, "Invalid weekly schedule"),
        ({"task_name": "app.tasks.backup.create_backup"}, "is not a schedulable task"),
        ({"queue": "backup"}, "Unknown queue"),
        ({"timezone": "Mars/Base"}, "Unknown time zone"),
        ({"priority": "12"}, "Priority must be an integer from 0 (lowest) to 9 (highest)."),
    ],
)
def test_add_with_invalid_values_shows_form_errors_not_500(admin_client, overrides, error):
    response = admin_client.post(url("job_add"), form_data(**overrides))
    assert response.status_code == 200
    html = response.content.decode()
    assert "errornote" in html and error in html
    assert not Job.objects.exists() and not PeriodicTask.objects.filter(name__startswith="job:").exists()


def test_add_with_a_taken_name_is_a_form_error(admin_client, job):
    response = admin_client.post(url("job_add"), form_data(name="nightly"))
    assert response.status_code == 200
    assert "already exists" in response.content.decode()


def test_change_updates_beat_through_the_service_and_keeps_secrets(admin_client, job, root):
    data = form_data(name="nightly", schedule_type="daily", schedule_expression="04:15", kind=None)
    response = admin_client.post(url("job_change", job.pk), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    job.refresh_from_db()
    assert job.schedule_expression == "04:15"
    assert services.job_secrets(job) == {"external_api_key": SECRET}
    task = PeriodicTask.objects.get(pk=job.periodic_task_id)
    assert (task.crontab.minute, task.crontab.hour) == ("15", "4")
    audit = AuditLog.objects.get(action="update", object_id=str(job.pk))
    assert audit.actor == root and "schedule_expression" in audit.changes


def test_change_with_an_invalid_schedule_shows_an_error(admin_client, job):
    data = form_data(name="nightly", schedule_type="daily", schedule_expression="25:00", kind=None)
    response = admin_client.post(url("job_change", job.pk), data)
    assert response.status_code == 200
    assert "hour must be 0-23" in response.content.decode()
    job.refresh_from_db()
    assert job.schedule_expression == "02:00"


def test_delete_goes_through_the_service(admin_client, job):
    task_id = job.periodic_task_id
    response = admin_client.post(url("job_delete", job.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not Job.objects.exists() and not PeriodicTask.objects.filter(pk=task_id).exists()
    assert AuditLog.objects.filter(action="delete", object_id=str(job.pk)).exists()


# -- actions -----------------------------------------------------------------------
def action(client, model, name, *objects):
    return client.post(url(f"{model}_changelist"), {"action": name, "_selected_action": [o.pk for o in objects]}, follow=True)


def test_run_now_queues_a_manual_execution(admin_client, job, root, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = action(admin_client, "job", "run_now", job)
    assert response.status_code == 200
    execution = Execution.objects.get(job=job, status=Execution.Status.QUEUED)
    assert (execution.trigger, execution.triggered_by) == ("manual", root)
    assert len(callbacks) == 1  # the Celery message is sent on commit
    assert f"nightly (execution {execution.pk})" in response.content.decode()


def test_run_now_on_a_paused_job_warns_and_forced_run_runs(admin_client, job, django_capture_on_commit_callbacks):
    services.job_pause(job=job)
    response = action(admin_client, "job", "run_now", job)
    assert "is paused; use force" in response.content.decode()
    assert not Execution.objects.filter(status=Execution.Status.QUEUED).exists()
    with django_capture_on_commit_callbacks(execute=False):
        action(admin_client, "job", "run_now_forced", job)
    assert Execution.objects.filter(job=job, status=Execution.Status.QUEUED).count() == 1


def test_pause_and_resume_actions(admin_client, job, root):
    action(admin_client, "job", "pause", job)
    job.refresh_from_db()
    assert job.status == "paused" and job.periodic_task.enabled is False
    action(admin_client, "job", "resume", job)
    job.refresh_from_db()
    assert job.status == "active" and job.periodic_task.enabled is True
    assert AuditLog.objects.filter(action__in=["pause", "resume"], actor=root).count() == 2


def test_cancel_action_cancels_a_queued_execution(admin_client, job, root, django_capture_on_commit_callbacks):
    queued = services.job_execute(job=job)
    finished = job.executions.get(status=Execution.Status.SUCCESS)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = action(admin_client, "execution", "cancel", queued, finished)
    assert response.status_code == 200
    queued.refresh_from_db()
    assert queued.status == "cancelled" and queued.error.startswith(f"Cancelled by {root.username}")
    # the revoke after commit (the execution_finished signal is queued beside it when it has listeners)
    assert len([c for c in callbacks if c.__qualname__.startswith("execution_cancel.")]) == 1
    html = response.content.decode()
    assert f"Cancelled execution(s) {queued.pk}." in html
    assert f"Execution {finished.pk} is already success" in html


def test_history_is_read_only(admin_client, job):
    execution = job.executions.first()
    assert admin_client.get(url("execution_add")).status_code == 403
    assert admin_client.post(url("execution_change", execution.pk), {"status": "failed"}).status_code == 403
    assert admin_client.get(url("auditlog_add")).status_code == 403
    html = admin_client.get(url("execution_change", execution.pk)).content.decode()
    assert "View execution" in html


def test_bulk_delete_action_goes_through_the_service(admin_client, job):
    other = JobFactory(name="other", task_name="tests.admin_noop")
    response = admin_client.post(
        url("job_changelist"), {"action": "delete_selected", "_selected_action": [job.pk, other.pk], "post": "yes"}
    )
    assert response.status_code == 302
    assert not Job.objects.exists() and not PeriodicTask.objects.filter(name__startswith="job:").exists()
    assert AuditLog.objects.filter(action="delete").count() == 2


def test_a_service_refusal_at_save_time_is_a_message_not_500(admin_client, monkeypatch):
    # given: the form was valid, but the name got taken between validation and save
    from jobsite.exceptions import Conflict

    def refuse(**kwargs):
        raise Conflict("A job named 'weekly_report' already exists.", code="job_name_taken")

    monkeypatch.setattr(services, "job_create", refuse)
    response = admin_client.post(url("job_add"), form_data(), follow=True)
    assert response.status_code == 200
    assert "Not saved: A job named &#x27;weekly_report&#x27; already exists." in response.content.decode()
    assert not Job.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_run_now_with_the_broker_down_is_a_warning_not_500(root, settings):
    client = Client()
    client.force_login(root)
    job = JobFactory(name="nightly", task_name="tests.admin_noop")

    with celery_app_on(f"redis://127.0.0.1:{free_port()}/0", settings):  # nothing listens there
        response = action(client, "job", "run_now", job)
    assert response.status_code == 200
    assert "could not be queued: the task broker is unreachable." in response.content.decode()
    # and the run is recorded as an error, not left queued for ever
    assert list(job.executions.values_list("status", flat=True)) == ["error"]


@pytest.mark.parametrize("model", ["periodictask", "crontabschedule", "intervalschedule", "clockedschedule", "solarschedule"])
def test_beat_schedules_are_read_only_in_the_admin(admin_client, model):
    # django-celery-beat's own admin would let a root schedule any Celery
    # task past the allow-list, and edits would drift from their jobs
    from django.contrib import admin as django_admin
    from django.apps import apps

    model_class = apps.get_model("django_celery_beat", model)
    model_admin = django_admin.site._registry[model_class]
    request = admin_client.get("/admin/").wsgi_request
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    assert admin_client.get(f"/admin/django_celery_beat/{model}/").status_code == 200
    assert admin_client.get(f"/admin/django_celery_beat/{model}/add/").status_code == 403


def test_a_jobs_periodic_task_links_back_to_the_job(admin_client):
    job = services.job_create(name="linked", schedule_type="interval", schedule_expression="30", task_name="tests.noop")
    page = admin_client.get("/admin/django_celery_beat/periodictask/").content.decode()
    assert f'/admin/scheduling/job/{job.pk}/change/' in page
