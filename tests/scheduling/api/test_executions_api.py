"""The executions API (/api/v1/executions): list across visible jobs, detail,
cancel; tenancy and permissions."""
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from scheduling.models import AuditLog, Execution
from tests.factories import ExecutionFactory

pytestmark = pytest.mark.django_db

EXECUTIONS = "/api/v1/executions/"


def execution_url(execution, suffix=""):
    return f"/api/v1/executions/{execution.pk}{suffix}"


def queued(job, **kwargs):
    return ExecutionFactory(job=job, status=Execution.Status.QUEUED, celery_task_id=str(uuid.uuid4()), **kwargs)


# ---------------------------------------------------------------------------
# List and detail
# ---------------------------------------------------------------------------
def test_list_spans_every_visible_job_newest_first(api, job, org_mate_job, foreign_job):
    first = ExecutionFactory(job=job)
    second = ExecutionFactory(job=org_mate_job, status="failed")
    ExecutionFactory(job=foreign_job)
    response = api.get(EXECUTIONS)
    assert response.status_code == 200
    body = response.json()
    # seed 003's page envelope, and the run history's two additions (scheduling.pagination)
    assert set(body) == {"items", "total", "page", "size", "pages", "total_estimated", "next"}
    assert [item["id"] for item in body["items"]] == [second.pk, first.pk]
    assert (body["total"], body["total_estimated"], body["next"]) == (2, False, None)


def test_list_without_trailing_slash(api):
    assert api.get("/api/v1/executions").status_code == 200


def test_list_filters_and_limit(admin_api, job, org_mate_job):
    for status in ("success", "failed", "success"):
        ExecutionFactory(job=job, status=status)
    ExecutionFactory(job=org_mate_job, status="success")

    def ids(**params):
        return admin_api.get(EXECUTIONS, params).json()

    assert ids(status="success")["total"] == 3
    assert ids(job_id=job.pk)["total"] == 3
    assert ids(job_id=job.pk, status="failed")["total"] == 1
    limited = ids(limit=2)
    assert (len(limited["items"]), limited["size"], limited["pages"]) == (2, 2, 2)
    assert ids(limit=2, size=3)["size"] == 3  # size wins over its alias


@pytest.mark.parametrize("params, field", [
    ({"status": "lost"}, "status"), ({"page": 0}, "page"), ({"page": "x"}, "page"), ({"size": 500}, "size"),
    ({"limit": "many"}, "limit"), ({"job_id": "abc"}, "job_id"),
])
def test_bad_query_parameters_are_400(admin_api, params, field):
    response = admin_api.get(EXECUTIONS, params)
    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"{field}: ")


def test_list_costs_the_same_queries_for_5_and_50_executions(api, job, user):
    def queries():
        with CaptureQueriesContext(connection) as ctx:
            response = api.get(EXECUTIONS, {"size": 100})
        assert response.status_code == 200
        return len(ctx.captured_queries)

    for _ in range(5):
        ExecutionFactory(job=job, triggered_by=user)
    few = queries()
    for _ in range(45):
        ExecutionFactory(job=job, triggered_by=user, retry_of=Execution.objects.first())
    assert queries() == few


def test_execution_representation(api, job, user):
    original = ExecutionFactory(job=job, status="failed")
    execution = ExecutionFactory(
        job=job, status="success", trigger="retry", attempt=2, retry_of=original, triggered_by=user,
        celery_task_id="task-1", duration_seconds=1.5, worker="w1 pid 2", output="ok", result={"rows": 3},
        batch_id="b-1", override_kwargs={"level": "deep"},
    )
    body = api.get(execution_url(execution)).json()
    assert body == {
        **{key: body[key] for key in ("uuid", "created_at", "started_at", "completed_at")},
        "id": execution.pk, "job_id": job.pk, "job_name": "alice-job", "celery_task_id": "task-1",
        "status": "success", "trigger": "retry", "attempt": 2, "retry_of": original.pk, "duration_seconds": 1.5,
        "worker": "w1 pid 2", "output": "ok", "result": {"rows": 3}, "error": "", "traceback": "", "log": "", "batch_id": "b-1", "scheduled_for": None,
        "triggered_by": "alice", "override_kwargs": {"level": "deep"}, "trigger_run": None, "held": False,
    }


def test_detail_with_trailing_slash(api, job):
    execution = ExecutionFactory(job=job)
    assert api.get(execution_url(execution, "/")).json()["id"] == execution.pk


@pytest.mark.parametrize("path", ["/api/v1/executions/999999", "/api/v1/executions/abc"])
def test_unknown_execution_is_404(api, path):
    response = api.get(path)
    assert response.status_code == 404
    assert "not found" in response.json()["detail"]


def test_someone_elses_execution_is_404(api, foreign_job):
    execution = queued(foreign_job)
    assert api.get(execution_url(execution)).status_code == 404
    assert api.post(execution_url(execution, "/cancel")).status_code == 404
    execution.refresh_from_db()
    assert execution.status == "queued"


# ---------------------------------------------------------------------------
# Cancel
# ---------------------------------------------------------------------------
def test_cancel_a_queued_execution_then_again_is_409(admin_api, job, django_capture_on_commit_callbacks):
    execution = queued(job)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = admin_api.post(execution_url(execution, "/cancel"))
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "cancelled"
    assert body["completed_at"] is not None
    assert body["error"] == "Cancelled by root"
    # the revoke, sent after commit (besides the execution_finished signal when it has listeners)
    assert len([c for c in callbacks if c.__qualname__.startswith("execution_cancel.")]) == 1
    execution.refresh_from_db()
    assert execution.status == "cancelled"
    assert AuditLog.objects.filter(action="cancel", object_id=str(execution.pk), actor_label="root").exists()

    again = admin_api.post(execution_url(execution, "/cancel"))
    assert again.status_code == 409
    assert "already cancelled" in again.json()["detail"]


def test_cancel_a_running_execution(admin_api, job):
    execution = ExecutionFactory(job=job, status="running", celery_task_id=str(uuid.uuid4()))
    assert admin_api.post(execution_url(execution, "/cancel")).json()["status"] == "cancelled"


def test_cancel_a_finished_execution_is_409(admin_api, job):
    execution = ExecutionFactory(job=job, status="success")
    response = admin_api.post(execution_url(execution, "/cancel"))
    assert response.status_code == 409
    execution.refresh_from_db()
    assert execution.status == "success"


def test_owner_cancels_runs_of_own_job(api, job):
    execution = queued(job)
    response = api.post(execution_url(execution, "/cancel"))
    assert response.status_code == 200
    assert response.json()["error"] == "Cancelled by alice"


def test_organization_member_sees_but_cannot_cancel_someone_elses_run(api, org_mate_job):
    execution = queued(org_mate_job)
    assert api.get(execution_url(execution)).status_code == 200
    response = api.post(execution_url(execution, "/cancel"))
    assert response.status_code == 403
    assert response.json() == {"detail": "Only superusers and the job's owner can cancel its executions."}
    execution.refresh_from_db()
    assert execution.status == "queued"


def test_execute_then_cancel_through_the_api(admin_api, job, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        execution = admin_api.post(f"/api/v1/jobs/{job.pk}/execute", {}, format="json").json()
    with django_capture_on_commit_callbacks(execute=True):
        cancelled = admin_api.post(f"/api/v1/executions/{execution['id']}/cancel").json()
    assert (cancelled["id"], cancelled["celery_task_id"], cancelled["status"]) == (
        execution["id"], execution["celery_task_id"], "cancelled")
    listed = admin_api.get(f"/api/v1/jobs/{job.pk}/executions").json()["items"]
    assert [(item["id"], item["status"]) for item in listed] == [(execution["id"], "cancelled")]
