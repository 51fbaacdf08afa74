"""The seed-003 jobs API (/api/v1/jobs): wiring, shapes, status codes,
permissions and tenancy. Business rules are tested in test_services.py."""
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from scheduling.models import Execution, Job
from tests.factories import ExecutionFactory, JobFactory

pytestmark = pytest.mark.django_db

JOBS = "/api/v1/jobs/"


def job_url(job, suffix=""):
    return f"/api/v1/jobs/{job.pk}{suffix}"


def seed_body(**overrides):
    """Seed 003's create example, with a schedulable task of this suite."""
    body = {
        "name": "system_cleanup",
        "title": "System Cleanup Job",
        "description": "Clean up temporary files and logs",
        "job_type": "document_cleanup",
        "schedule_type": "daily",
        "schedule_expression": "02:00",
        "task_name": "tests.noop",
        "task_queue": "maintenance",
        "task_priority": 5,
        "is_enabled": True,
    }
    body.update(overrides)
    return body


# ---------------------------------------------------------------------------
# Authentication and routing
# ---------------------------------------------------------------------------
def test_anonymous_requests_are_refused(client_for, job):
    response = client_for(None).get(JOBS)
    assert response.status_code == 401
    assert "detail" in response.json()


@pytest.mark.parametrize("path", ["/api/v1/jobs", "/api/v1/jobs/", "/api/v1/jobs/overdue/list", "/api/v1/jobs/stats/overview/"])
def test_collection_paths_answer_with_and_without_trailing_slash(admin_api, path):
    assert admin_api.get(path).status_code == 200


@pytest.mark.parametrize("suffix", ["", "/", "/executions", "/executions/", "/stats"])
def test_job_paths_answer_with_and_without_trailing_slash(admin_api, job, suffix):
    assert admin_api.get(job_url(job, suffix)).status_code == 200


def test_openapi_schema_documents_the_seed_paths(admin_api):
    response = admin_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in ("/api/v1/jobs/", "/api/v1/jobs/{id}", "/api/v1/jobs/{id}/execute", "/api/v1/jobs/{id}/pause",
                 "/api/v1/jobs/{id}/resume", "/api/v1/jobs/overdue/list", "/api/v1/jobs/stats/overview",
                 "/api/v1/jobs/validate-schedule", "/api/v1/executions/{id}/cancel"):
        assert path in paths


# ---------------------------------------------------------------------------
# List
# ---------------------------------------------------------------------------
def test_list_answers_the_seed_page_envelope(admin_api):
    for n in range(3):
        JobFactory(name=f"job-{n}")
    response = admin_api.get(JOBS, {"page": 1, "size": 2})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"items", "total", "page", "size", "pages"}
    assert (body["total"], body["page"], body["size"], body["pages"]) == (3, 1, 2, 2)
    assert [item["name"] for item in body["items"]] == ["job-0", "job-1"]
    assert [item["name"] for item in admin_api.get(JOBS, {"page": 2, "size": 2}).json()["items"]] == ["job-2"]


def test_list_defaults_to_page_1_of_20_and_a_page_past_the_end_is_empty(admin_api):
    JobFactory()
    body = admin_api.get(JOBS).json()
    assert (body["page"], body["size"], body["total"], body["pages"]) == (1, 20, 1, 1)
    past = admin_api.get(JOBS, {"page": 9}).json()
    assert past["items"] == [] and past["total"] == 1


def test_empty_list_has_zero_pages(admin_api):
    assert admin_api.get(JOBS).json() == {"items": [], "total": 0, "page": 1, "size": 20, "pages": 0}


@pytest.mark.parametrize(
    "params, field",
    [
        ({"page": 0}, "page"), ({"page": -1}, "page"), ({"page": "x"}, "page"),
        ({"size": 0}, "size"), ({"size": 101}, "size"), ({"size": "ten"}, "size"),
        ({"is_enabled": "maybe"}, "is_enabled"), ({"status": "sleeping"}, "status"),
        ({"job_type": "nope"}, "job_type"),
    ],
)
def test_bad_query_parameters_answer_400_naming_the_parameter(admin_api, params, field):
    response = admin_api.get(JOBS, params)
    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"{field}: ")


def test_page_zero_says_pages_start_at_one(admin_api):
    assert admin_api.get(JOBS, {"page": 0}).json()["detail"] == "page: Pages are numbered from 1."


def test_list_filters(admin_api):
    JobFactory(name="enabled-cleanup", job_type="document_cleanup")
    JobFactory(name="disabled-health", job_type="system_health_check", is_enabled=False, description="pings things")
    paused = JobFactory(name="paused-one")
    admin_api.post(job_url(paused, "/pause"))

    def names(**params):
        return sorted(item["name"] for item in admin_api.get(JOBS, params).json()["items"])

    assert names(is_enabled="false") == ["disabled-health"]
    assert names(is_enabled="true") == ["enabled-cleanup", "paused-one"]
    assert names(status="paused") == ["paused-one"]
    assert names(status="active", is_enabled="true") == ["enabled-cleanup"]
    assert names(job_type="document_cleanup") == ["enabled-cleanup"]
    assert names(search="PINGS") == ["disabled-health"]
    assert names(kind="task") == ["disabled-health", "enabled-cleanup", "paused-one"]
    assert names(kind="workflow") == []


def test_list_shows_own_and_organization_jobs_only(api, job, org_mate_job, foreign_job):
    names = {item["name"] for item in api.get(JOBS).json()["items"]}
    assert names == {"alice-job", "bob-job"}


def test_superuser_lists_every_job(admin_api, job, foreign_job):
    assert admin_api.get(JOBS).json()["total"] == 2


@pytest.mark.parametrize("client_fixture", ["admin_api", "api"])
def test_list_costs_the_same_queries_for_5_and_50_jobs(request, client_fixture, user, org):
    client = request.getfixturevalue(client_fixture)
    owner = {"owner": user, "organization": org}

    def queries_for_a_full_page():
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(JOBS, {"size": 100})
        assert response.status_code == 200
        return len(ctx.captured_queries), response.json()["total"]

    for n in range(5):
        JobFactory(name=f"few-{n}", **owner)
    few, total = queries_for_a_full_page()
    assert total == 5
    for n in range(45):
        JobFactory(name=f"many-{n}", **owner)
    many, total = queries_for_a_full_page()
    assert total == 50
    assert many == few


# ---------------------------------------------------------------------------
# Representation
# ---------------------------------------------------------------------------
JOB_FIELDS = {
    "id", "uuid", "name", "title", "description", "kind", "job_type", "schedule_type", "schedule_expression",
    "timezone", "schedule_description", "task_name", "task_args", "task_kwargs", "config", "task_queue",
    "task_priority", "timeout", "max_retries", "retry_backoff_seconds", "overlap_policy", "catch_up_policy", "jitter_seconds",
    "max_concurrent_runs", "concurrency_group",
    "is_enabled", "status",
    "is_overdue", "owner", "organization_id", "created_at", "updated_at", "last_run_at", "next_run_at",
    "last_status", "statistics",
}


def test_job_representation(api, job, org):
    Job.objects.filter(pk=job.pk).update(
        secrets="gAAAA-encrypted", total_runs=4, successful_runs=3, failed_runs=1, total_duration_seconds=10.0,
        last_status="success",
    )
    body = api.get(job_url(job)).json()
    assert set(body) == JOB_FIELDS
    assert "secrets" not in body and "gAAAA" not in str(body)
    assert body["owner"] == "alice"
    assert body["organization_id"] == str(org.pk)
    assert body["task_queue"] == "default" and body["task_priority"] == 5 and body["timeout"] == 3600
    assert body["schedule_description"] == "Every 30 minutes"
    assert body["is_overdue"] is False
    assert body["last_status"] == "success"
    assert body["statistics"] == {
        "total_runs": 4, "successful_runs": 3, "failed_runs": 1, "success_rate": 75.0, "average_duration_seconds": 2.5,
    }


# ---------------------------------------------------------------------------
# Create
# ---------------------------------------------------------------------------
def test_superuser_creates_the_seed_example(admin_api, superuser):
    response = admin_api.post(JOBS, seed_body(), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == JOB_FIELDS
    assert (body["name"], body["title"], body["job_type"], body["kind"]) == (
        "system_cleanup", "System Cleanup Job", "document_cleanup", "task")
    assert (body["task_queue"], body["task_priority"], body["status"], body["is_enabled"]) == ("maintenance", 5, "active", True)
    assert body["owner"] == "root"
    assert body["schedule_description"].startswith("At 02:00")
    assert body["next_run_at"] is not None
    job = Job.objects.get(pk=body["id"])
    assert job.owner == superuser and job.queue == "maintenance"
    assert PeriodicTask.objects.get(pk=job.periodic_task_id).enabled is True


def test_create_maps_timeout_and_retry_fields(admin_api, other_org):
    body = seed_body(timeout=120, max_retries=3, retry_backoff_seconds=5, overlap_policy="allow", task_name="tests.echo",
                     task_args=[1, "two"], task_kwargs={"level": "deep"}, config={"note": "x"},
                     timezone="Europe/Paris", organization_id=str(other_org.pk), is_enabled=False)
    response = admin_api.post(JOBS, body, format="json")
    assert response.status_code == 201, response.json()
    job = Job.objects.get(pk=response.json()["id"])
    assert (job.timeout_seconds, job.max_retries, job.retry_backoff_seconds, job.overlap_policy) == (120, 3, 5, "allow")
    assert (job.task_args, job.task_kwargs, job.config) == ([1, "two"], {"level": "deep"}, {"note": "x"})
    assert (job.timezone, job.organization_id, job.is_enabled, job.next_run_at) == ("Europe/Paris", other_org.pk, False, None)


def test_create_defaults_the_organization_to_the_creators(client_for, make_user, org):
    admin = make_user("orgadmin", superuser=True, organization=org)
    response = client_for(admin).post(JOBS, seed_body(), format="json")
    assert response.json()["organization_id"] == str(org.pk)


def test_non_superuser_cannot_create(api):
    response = api.post(JOBS, seed_body(), format="json")
    assert response.status_code == 403
    assert response.json() == {"detail": "Only superusers can create or modify jobs."}
    assert not Job.objects.exists()


def test_duplicate_name_is_409(admin_api):
    assert admin_api.post(JOBS, seed_body(), format="json").status_code == 201
    response = admin_api.post(JOBS, seed_body(), format="json")
    assert response.status_code == 409
    assert "system_cleanup" in response.json()["detail"]


def test_invalid_cron_expression_is_named(admin_api):
    response = admin_api.post(JOBS, seed_body(schedule_type="cron", schedule_expression="0 9"), format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "schedule_expression: Invalid cron expression: 0 9. Expected 5 parts (minute hour day month day_of_week)"
    )
    assert response.json()["errors"] == {"schedule_expression": [
        "Invalid cron expression: 0 9. Expected 5 parts (minute hour day month day_of_week)"]}


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"schedule_type": "cron", "schedule_expression": "61 * * * *"}, "schedule_expression"),
        ({"schedule_type": "interval", "schedule_expression": "soon"}, "schedule_expression"),
        ({"schedule_type": "interval", "schedule_expression": "0"}, "schedule_expression"),
        ({"schedule_type": "daily", "schedule_expression": "25:00"}, "schedule_expression"),
        ({"schedule_type": "daily", "schedule_expression": "9am"}, "schedule_expression"),
        ({"schedule_type": "weekly", "schedule_expression": "7:09:00"}, "schedule_expression"),
        ({"schedule_type": "weekly", "schedule_expression": "monday"}, "schedule_expression"),
        ({"schedule_type": "monthly", "schedule_expression": "32:08:00"}, "schedule_expression"),
        ({"schedule_type": "monthly", "schedule_expression": "1:8"}, "schedule_expression"),
        ({"schedule_type": "once", "schedule_expression": "2001-01-01T00:00"}, "schedule_expression"),
        ({"schedule_type": "hourly"}, "schedule_type"),
        ({"schedule_expression": ""}, "schedule_expression"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"task_name": "os.system"}, "task_name"),
        ({"task_name": ""}, "task_name"),
        ({"name": "has spaces"}, "name"),
        ({"name": None}, "name"),
        ({"kind": "teleport"}, "kind"),
        ({"job_type": "mining"}, "job_type"),
        ({"task_queue": "nowhere"}, "task_queue"),
        ({"task_priority": 10}, "task_priority"),
        ({"task_priority": "high"}, "task_priority"),
        ({"timeout": 0}, "timeout"),
        ({"max_retries": 21}, "max_retries"),
        ({"overlap_policy": "sometimes"}, "overlap_policy"),
        ({"task_args": {"a": 1}}, "task_args"),
        ({"task_kwargs": [1]}, "task_kwargs"),
        ({"is_enabled": "perhaps"}, "is_enabled"),
        ({"organization_id": "not-a-uuid"}, "organization_id"),
        ({"organization_id": "00000000-0000-0000-0000-000000000000"}, "organization_id"),
        ({"schedule_expresion": "03:00"}, "schedule_expresion"),
        ({"secrets": "hunter2"}, "secrets"),
        ({"status": "paused"}, "status"),
    ],
)
def test_create_validation_errors_name_the_field(admin_api, overrides, field):
    response = admin_api.post(JOBS, seed_body(**overrides), format="json")
    assert response.status_code == 400, response.json()
    body = response.json()
    assert field in body["errors"]
    assert f"{field}: " in body["detail"]
    assert not Job.objects.exists()


def test_missing_required_fields_are_all_named(admin_api):
    response = admin_api.post(JOBS, {}, format="json")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"name", "schedule_type", "schedule_expression"}


@pytest.mark.parametrize(
    "content, content_type",
    [('{"name": "x",', "application/json"), ("not json", "application/json"), ("[1, 2]", "application/json"), ('"x"', "application/json")],
)
def test_malformed_bodies_are_400(admin_api, content, content_type):
    response = admin_api.generic("POST", JOBS, content, content_type=content_type)
    assert response.status_code == 400
    assert response.json()["detail"]


def test_non_json_content_type_is_refused(admin_api):
    response = admin_api.generic("POST", JOBS, "name=x", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert "detail" in response.json()


# ---------------------------------------------------------------------------
# Retrieve, update, delete
# ---------------------------------------------------------------------------
def test_own_and_organization_jobs_are_visible(api, job, org_mate_job):
    assert api.get(job_url(job)).json()["name"] == "alice-job"
    assert api.get(job_url(org_mate_job)).json()["name"] == "bob-job"


@pytest.mark.parametrize("method, suffix", [
    ("get", ""), ("put", ""), ("patch", ""), ("delete", ""), ("post", "/execute"), ("post", "/pause"),
    ("post", "/resume"), ("get", "/executions"), ("get", "/stats"),
])
def test_someone_elses_job_is_404_even_where_403_would_apply(api, foreign_job, method, suffix):
    response = getattr(api, method)(job_url(foreign_job, suffix), {}, format="json")
    assert response.status_code == 404
    assert response.json()["detail"] == f"Job {foreign_job.pk} not found."


def test_unknown_job_is_404(admin_api):
    assert admin_api.get("/api/v1/jobs/999999").status_code == 404


@pytest.mark.parametrize("method, suffix", [
    ("put", ""), ("patch", ""), ("delete", ""), ("post", "/execute"), ("post", "/pause"), ("post", "/resume"),
])
def test_visible_job_changes_are_superuser_only(api, job, method, suffix):
    response = getattr(api, method)(job_url(job, suffix), {"title": "mine"}, format="json")
    assert response.status_code == 403
    assert response.json() == {"detail": "Only superusers can create or modify jobs."}
    job.refresh_from_db()
    assert job.title == "alice-job" and job.status == "active"
    assert not job.executions.exists()


def test_put_with_the_seed_example_is_a_partial_update(admin_api, job):
    response = admin_api.put(job_url(job), {"schedule_expression": "03:00", "is_enabled": False}, format="json")
    assert response.status_code == 400  # the job is an interval job: "03:00" is not minutes
    assert response.json()["detail"].startswith("schedule_expression: ")

    job = JobFactory(name="daily", schedule_type="daily", schedule_expression="02:00")
    response = admin_api.put(job_url(job), {"schedule_expression": "03:00", "is_enabled": False}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["schedule_expression"], body["is_enabled"], body["name"], body["next_run_at"]) == ("03:00", False, "daily", None)
    task = PeriodicTask.objects.get(pk=Job.objects.get(pk=job.pk).periodic_task_id)
    assert (task.crontab.hour, task.enabled) == ("3", False)


def test_patch_maps_api_names(admin_api, job):
    response = admin_api.patch(job_url(job), {"task_priority": 9, "timeout": 60, "task_queue": "maintenance"}, format="json")
    assert response.status_code == 200
    job.refresh_from_db()
    assert (job.priority, job.timeout_seconds, job.queue) == (9, 60, "maintenance")


@pytest.mark.parametrize(
    "body, field, message",
    [
        ({"kind": "workflow"}, "kind", "cannot be changed"),
        ({"status": "paused"}, "status", "pause"),
        ({"schedule_type": "cron", "schedule_expression": "0 9"}, "schedule_expression", "Expected 5 parts"),
        ({"task_queue": "nowhere"}, "task_queue", "Unknown queue"),
        ({"task_name": "os.system"}, "task_name", "not a schedulable task"),
        ({"timezone": "Nowhere/Land"}, "timezone", "Unknown time zone"),
    ],
)
def test_update_errors_name_the_field(admin_api, job, body, field, message):
    response = admin_api.patch(job_url(job), body, format="json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"{field}: ")
    assert message in response.json()["detail"]


def test_rename_onto_a_taken_name_is_409(admin_api, job, org_mate_job):
    response = admin_api.patch(job_url(job), {"name": "bob-job"}, format="json")
    assert response.status_code == 409


def test_delete(admin_api, job):
    response = admin_api.delete(job_url(job))
    assert response.status_code == 200
    assert response.json() == {"detail": f"Job {job.pk} deleted."}
    assert not Job.objects.filter(pk=job.pk).exists()
    assert not PeriodicTask.objects.filter(pk=job.periodic_task_id).exists()
    assert admin_api.get(job_url(job)).status_code == 404


# ---------------------------------------------------------------------------
# Execute, pause, resume
# ---------------------------------------------------------------------------
EXECUTION_FIELDS = {
    "id", "uuid", "job_id", "job_name", "celery_task_id", "status", "trigger", "attempt", "retry_of", "created_at",
    "started_at", "completed_at", "duration_seconds", "worker", "output", "result", "error", "traceback", "log", "batch_id",
    "scheduled_for", "triggered_by", "override_kwargs", "trigger_run", "held",
}


def test_execute_queues_an_execution_with_a_celery_task_id(admin_api, job, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = admin_api.post(
            job_url(job, "/execute"), {"force": True, "override_kwargs": {"cleanup_level": "deep"}}, format="json"
        )
    assert response.status_code == 202, response.json()
    body = response.json()
    assert set(body) == EXECUTION_FIELDS
    assert (body["status"], body["trigger"], body["job_id"], body["job_name"], body["triggered_by"]) == (
        "queued", "api", job.pk, "alice-job", "root")
    assert body["override_kwargs"] == {"cleanup_level": "deep"}
    assert body["celery_task_id"]
    assert len(callbacks) == 1  # the message went to the real broker after commit
    execution = Execution.objects.get(pk=body["id"])
    assert execution.celery_task_id == body["celery_task_id"] and execution.status == "queued"


def test_a_run_request_reads_the_jobs_row_and_nothing_a_jobs_page_shows(admin_api):
    job = JobFactory(task_name="tests.noop", overlap_policy="allow")
    ExecutionFactory(job=job, status="queued", created_at=timezone.now() - timedelta(hours=2))
    with CaptureQueriesContext(connection) as queries:
        response = admin_api.post(f"/api/v1/jobs/{job.pk}/execute", {}, format="json")
    assert response.status_code == 202, response.content
    reads = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("SELECT")]
    # the job once; no overdue prefetch of its runs, no calendar flag, no owner or organization
    job_reads = [sql for sql in reads if 'FROM "scheduling_job"' in sql]
    assert len(job_reads) == 1 and "JOIN" not in job_reads[0] and "calendar" not in job_reads[0]
    assert not [sql for sql in reads if 'FROM "scheduling_execution"' in sql]


def test_execute_without_body_uses_defaults(admin_api, job):
    response = admin_api.post(job_url(job, "/execute"))
    assert response.status_code == 202
    assert response.json()["override_kwargs"] == {}


def test_execute_refusals_are_409_and_force_overrides(admin_api, job):
    admin_api.post(job_url(job, "/pause"))
    response = admin_api.post(job_url(job, "/execute"), {}, format="json")
    assert response.status_code == 409
    assert "paused" in response.json()["detail"]
    assert admin_api.post(job_url(job, "/execute"), {"force": True}, format="json").status_code == 202
    # overlap policy "skip": one is still queued
    admin_api.post(job_url(job, "/resume"))
    response = admin_api.post(job_url(job, "/execute"), {"force": False}, format="json")
    assert response.status_code == 409
    assert "already running" in response.json()["detail"]


@pytest.mark.parametrize("body, field", [
    ({"override_kwargs": [1]}, "override_kwargs"), ({"force": "sure"}, "force"), ({"forse": True}, "forse"),
])
def test_execute_bad_input_is_400(admin_api, job, body, field):
    response = admin_api.post(job_url(job, "/execute"), body, format="json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"{field}: ")
    assert not job.executions.exists()


def test_pause_and_resume(admin_api, job):
    response = admin_api.post(job_url(job, "/pause"))
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["next_run_at"]) == ("paused", None)
    assert PeriodicTask.objects.get(pk=job.periodic_task_id).enabled is False
    response = admin_api.post(job_url(job, "/resume"))
    assert response.status_code == 200
    assert response.json()["status"] == "active" and response.json()["next_run_at"] is not None
    assert PeriodicTask.objects.get(pk=job.periodic_task_id).enabled is True


# ---------------------------------------------------------------------------
# Executions of a job, statistics
# ---------------------------------------------------------------------------
def test_job_executions_are_paginated_and_filtered(api, job, org_mate_job):
    for status in ("success", "failed", "success"):
        ExecutionFactory(job=job, status=status)
    ExecutionFactory(job=org_mate_job)
    body = api.get(job_url(job, "/executions")).json()
    assert (body["total"], body["page"], body["size"], body["pages"]) == (3, 1, 20, 1)
    assert {item["job_id"] for item in body["items"]} == {job.pk}
    assert api.get(job_url(job, "/executions"), {"status": "failed"}).json()["total"] == 1
    limited = api.get(job_url(job, "/executions"), {"limit": 2}).json()
    assert (len(limited["items"]), limited["size"], limited["pages"]) == (2, 2, 2)
    assert api.get(job_url(job, "/executions"), {"status": "lost"}).json()["detail"].startswith("status: ")
    assert api.get(job_url(job, "/executions"), {"limit": 0}).status_code == 400


def test_job_stats(api, job):
    ExecutionFactory(job=job, status="success", duration_seconds=2.0)
    ExecutionFactory(job=job, status="failed", duration_seconds=4.0)
    body = api.get(job_url(job, "/stats")).json()
    assert body["job_id"] == job.pk and body["name"] == "alice-job"
    assert (body["total_runs"], body["successful_runs"], body["failed_runs"], body["success_rate"]) == (2, 1, 1, 50.0)
    assert body["average_duration_seconds"] == 3.0
    assert {"cancelled_runs", "p95_duration_seconds", "last_status", "last_run_at", "next_run_at"} <= set(body)


def test_stats_overview_counts_visible_jobs(api, job, org_mate_job, foreign_job):
    api_paused = JobFactory(name="off", is_enabled=False, owner=job.owner)
    assert api_paused
    body = api.get("/api/v1/jobs/stats/overview").json()
    assert set(body) == {"jobs", "executions", "last_24h", "by_job_type", "generated_at"}
    assert (body["jobs"]["total"], body["jobs"]["enabled"], body["jobs"]["disabled"]) == (3, 2, 1)
    assert body["by_job_type"][0]["job_type"] == "custom"


def test_overdue_list(api, job, org_mate_job, foreign_job):
    late = timezone.now() - timedelta(hours=1)
    Job.objects.filter(pk__in=[job.pk, foreign_job.pk]).update(next_run_at=late)
    body = api.get("/api/v1/jobs/overdue/list").json()
    assert body["total"] == 1
    assert [item["name"] for item in body["items"]] == ["alice-job"]
    assert body["items"][0]["is_overdue"] is True


def test_tasks_lists_schedulable_task_names(api):
    body = api.get("/api/v1/jobs/tasks").json()
    tasks = {item["name"]: item for item in body["items"]}
    assert body["total"] == len(tasks)
    assert tasks["tests.noop"] == {"name": "tests.noop", "description": "Does nothing (jobs API tests).", "default_queue": "default"}


# ---------------------------------------------------------------------------
# Validate schedule
# ---------------------------------------------------------------------------
VALIDATE = "/api/v1/jobs/validate-schedule"


def test_validate_daily_schedule_in_new_york(api):
    body = {"schedule_type": "daily", "schedule_expression": "09:30", "timezone": "America/New_York"}
    response = api.post(VALIDATE, body, format="json")
    assert response.status_code == 200
    answer = response.json()
    assert answer["valid"] is True
    assert (answer["schedule_type"], answer["schedule_expression"], answer["timezone"]) == ("daily", "09:30", "America/New_York")
    assert "09:30" in answer["description"]
    assert len(answer["next_runs"]) == 5
    for run in answer["next_runs"]:
        moment = datetime.fromisoformat(run)
        assert (moment.hour, moment.minute) == (9, 30)
        assert run.endswith(("-05:00", "-04:00"))
    assert datetime.fromisoformat(answer["next_runs"][0]) > timezone.now()


def test_validate_defaults_to_utc(api):
    answer = api.post(VALIDATE, {"schedule_type": "interval", "schedule_expression": "30"}, format="json").json()
    assert answer["valid"] is True and answer["timezone"] == "UTC"
    assert answer["description"] == "Every 30 minutes"
    runs = [datetime.fromisoformat(run) for run in answer["next_runs"]]
    assert all(later - earlier == timedelta(minutes=30) for earlier, later in zip(runs, runs[1:]))


@pytest.mark.parametrize(
    "schedule_type, expression, tz, field",
    [
        ("cron", "0 9", "UTC", "schedule_expression"),
        ("interval", "often", "UTC", "schedule_expression"),
        ("daily", "24:00", "UTC", "schedule_expression"),
        ("weekly", "9:10:00", "UTC", "schedule_expression"),
        ("monthly", "0:08:00", "UTC", "schedule_expression"),
        ("fortnightly", "1", "UTC", "schedule_type"),
        ("daily", "09:30", "Atlantis/Capital", "timezone"),
    ],
)
def test_validate_invalid_schedule_is_a_successful_call(api, schedule_type, expression, tz, field):
    body = {"schedule_type": schedule_type, "schedule_expression": expression, "timezone": tz}
    response = api.post(VALIDATE, body, format="json")
    assert response.status_code == 200
    answer = response.json()
    assert answer["valid"] is False
    assert answer["error"].startswith(f"{field}: ")
    assert field in answer["errors"]
    assert "next_runs" not in answer


@pytest.mark.parametrize("body, field", [
    ({"schedule_expression": "09:30"}, "schedule_type"),
    ({"schedule_type": "daily"}, "schedule_expression"),
    ({"schedule_type": "daily", "schedule_expression": ""}, "schedule_expression"),
])
def test_validate_missing_field_is_400(api, body, field):
    response = api.post(VALIDATE, body, format="json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"{field}: ")


def test_schema_and_docs_need_a_login(client_for, admin_api):
    anonymous = client_for(None)
    for path in ("/api/schema/", "/api/docs/", "/api/redoc/"):
        assert anonymous.get(path).status_code == 401, path
    assert admin_api.get("/api/docs/").status_code == 200
