"""Workflows and seed 002's /api/cron/jobs: services, API (paths, shapes,
messages, status codes), step validation, and the runner against a real local
HTTP server (reached through OUTBOUND_HTTP_ALLOW_HOSTS, never by turning the
guard off). Runs here go through the core's ``execution_run`` in this
process; tests/e2e/test_workflows.py runs them on a real worker and beat."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from django_celery_beat.models import PeriodicTask
from rest_framework.test import APIClient

from scheduling import services as core_services
from scheduling.models import Execution, Job
from scheduling.workflows import templating
from scheduling.workflows.models import Workflow
from scheduling.workflows.steps import register_step_type, unregister_step_type
from tests.worker import wait_for

pytestmark = pytest.mark.django_db

EXTERNAL_SECRET = "supabase-jwt-secret-" + "w" * 50
ALICE_SUB = "0b9c2c1e-7f43-4d4e-9a61-5c3a1b2e4f01"
BOB_SUB = "9d8e7f6a-1b2c-4d3e-8f90-a1b2c3d4e5f6"
CRON = "/api/cron/jobs"
WORKFLOWS = "/api/workflows/"
RUNS = "/api/workflows/runs"


# ---------------------------------------------------------------------------
# Helpers shared with tests/e2e/test_workflows.py
# ---------------------------------------------------------------------------
class _HookHandler(BaseHTTPRequestHandler):
    """/hook answers 200 {"received": <body.text>}; /fail answers 500 while
    ``server.failing`` is set or for the next ``server.fail_times`` requests;
    /slow waits; /big sends a large JSON body."""

    def do_GET(self):  # noqa: N802 (http.server API)
        self._handle()

    def do_POST(self):  # noqa: N802
        self._handle()

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        server = self.server
        with server.lock:
            server.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                    "body": body, "at": time.time()})
        path = self.path.split("?")[0]
        if path == "/hook":
            text = body.get("text") if isinstance(body, dict) else None
            self._send(200, {"received": text, "count": len(server.requests)})
        elif path == "/fail":
            with server.lock:
                counted_failure = server.fail_times > 0
                server.fail_times -= counted_failure
            if server.failing.is_set() or counted_failure:
                self._send(500, {"error": "down"})
            else:
                self._send(200, {"ok": True})
        elif path == "/slow":
            server.release.wait(10)
            self._send(200, {"late": True})
        elif path == "/big":
            self._send(200, {"blob": "x" * 50_000})
        else:
            self._send(200, {"path": self.path})

    def _send(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class HookServer:
    """A real local HTTP server that records what it receives."""

    def __init__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _HookHandler)
        self.httpd.daemon_threads = True
        self.httpd.requests = []
        self.httpd.lock = threading.Lock()
        self.httpd.failing = threading.Event()
        self.httpd.fail_times = 0
        self.httpd.release = threading.Event()
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"http://{self.host}{path}"

    def received(self, path: str = "/hook") -> list[dict]:
        with self.httpd.lock:
            return [r for r in self.httpd.requests if r["path"].split("?")[0] == path]

    def stop(self):
        self.httpd.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def supabase_token(sub: str, email: str | None = None) -> str:
    now = int(time.time())
    claims = {"sub": sub, "aud": "authenticated", "role": "authenticated", "iat": now, "exp": now + 3600}
    if email:
        claims["email"] = email
    return jwt.encode(claims, EXTERNAL_SECRET, algorithm="HS256")


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def configure(settings, server: HookServer | None = None) -> None:
    """Supabase-style HS256 tokens; the production outbound policy with only
    the test server's host:port allowed; tests.echo callable from workflows."""
    settings.JWT_EXTERNAL_HS256_SECRET = EXTERNAL_SECRET
    settings.JWT_EXTERNAL_AUDIENCE = "authenticated"
    settings.OUTBOUND_HTTP_ALLOW_LOOPBACK = False
    settings.OUTBOUND_HTTP_ALLOW_PRIVATE = False
    settings.OUTBOUND_HTTP_ALLOW_HOSTS = [server.host] if server else []
    settings.OUTBOUND_HTTP_RETRIES = 0
    settings.WORKFLOWS_TASK_NAMES = ["tests.echo", "tests.fail"]


def http_then_task_steps(server: HookServer) -> list[dict]:
    return [
        {"name": "notify", "type": "http", "method": "POST", "url": server.url("/hook?job=${job_id}"),
         "headers": {"X-Input": "${input}"}, "body": {"text": "${input}", "job": "${job_id}"}, "timeout_seconds": 5},
        {"name": "record", "type": "task", "task_name": "tests.echo",
         "kwargs": {"status": "${steps.notify.output.status_code}", "reply": "${previous.body.received}",
                    "line": "got ${steps.notify.output.body.received}!"}},
    ]


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------
@pytest.fixture
def server(settings):
    local = HookServer()
    configure(settings, local)
    yield local
    local.stop()


@pytest.fixture
def alice(server):
    return bearer(supabase_token(ALICE_SUB, "alice@example.com"))


@pytest.fixture
def bob(server):
    return bearer(supabase_token(BOB_SUB, "bob@example.com"))


def create_workflow(client, server, workflow_id="video-automation-workflow", steps=None, **extra):
    body = {"id": workflow_id, "name": "Video automation", "steps": steps or http_then_task_steps(server), **extra}
    response = client.post(WORKFLOWS, body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def cron_body(**overrides):
    body = {"job_id": "daily-video-generation", "workflow_id": "video-automation-workflow", "user_id": ALICE_SUB,
            "input": "Generate video about tech news", "cron_expression": "0 9 * * *"}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def interval_body(**overrides):
    body = {"job_id": "hourly-video-check", "workflow_id": "video-automation-workflow", "user_id": ALICE_SUB,
            "input": "Check for trending topics", "hours": 1, "minutes": 30, "seconds": 0}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def run_in_process(execution: Execution) -> Execution:
    """What the worker's run_execution task does, in this process."""
    core_services.execution_run(execution_id=execution.pk, task_id=execution.celery_task_id, worker="pytest pid 0")
    execution.refresh_from_db()
    return execution


def trigger_and_run(client, job_id: str) -> Execution:
    response = client.post(f"{CRON}/{job_id}/trigger")
    assert response.status_code == 200, response.json()
    return run_in_process(Execution.objects.get(pk=response.json()["execution_id"]))


# ---------------------------------------------------------------------------
# Seed 002: create, shapes, messages
# ---------------------------------------------------------------------------
def test_create_cron_job_answers_the_seed_shape(alice, server):
    create_workflow(alice, server)
    response = alice.post(f"{CRON}/cron", cron_body(), format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    job = body.pop("job")
    assert body == {"status": "success", "message": "Cron job daily-video-generation created successfully"}
    next_run = job.pop("next_run_time")
    assert job == {
        "job_id": "daily-video-generation",
        "name": f"Workflow video-automation-workflow for user {ALICE_SUB}",
        "workflow_id": "video-automation-workflow",
        "user_id": ALICE_SUB,
        "input_text": "Generate video about tech news",
        "schedule_type": "cron",
        "schedule": "0 9 * * *",
        "paused": False,
        "trigger": "cron[day='*', hour='9', minute='0']",
    }
    assert next_run.endswith("T09:00:00+00:00")
    stored = Job.objects.get(kind="workflow")
    assert stored.periodic_task.crontab is not None and stored.periodic_task.enabled
    assert (stored.queue, stored.job_type, stored.owner.external_identities.get().subject) == (
        "workflows", "workflow", ALICE_SUB)


def test_create_interval_job_answers_the_seed_shape(alice, server):
    create_workflow(alice, server)
    response = alice.post(f"{CRON}/interval", interval_body(), format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["message"] == "Interval job hourly-video-check created successfully"
    assert {k: body["job"][k] for k in ("schedule_type", "schedule", "trigger", "paused", "input_text")} == {
        "schedule_type": "interval", "schedule": "1h 30m", "trigger": "interval[1:30:00]", "paused": False,
        "input_text": "Check for trending topics",
    }
    assert body["job"]["next_run_time"] is not None
    task = Job.objects.get(kind="workflow").periodic_task
    assert (task.interval.every, task.interval.period) == (5400, "seconds")


@pytest.mark.parametrize(("expression", "detail"), [
    ("0 9", "Invalid cron expression: 0 9. Expected 5 parts (minute hour day month day_of_week)"),
    ("* * * * * *", "Invalid cron expression: * * * * * *. Expected 5 parts (minute hour day month day_of_week)"),
    ("61 9 * * *", "Invalid cron expression: 61 9 * * *. A field is out of range or malformed."),
])
def test_invalid_cron_is_400_with_the_seed_message(alice, server, expression, detail):
    create_workflow(alice, server)
    response = alice.post(f"{CRON}/cron", cron_body(cron_expression=expression), format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == detail
    assert not Job.objects.filter(kind="workflow").exists()


@pytest.mark.parametrize("missing", ["job_id", "workflow_id", "user_id", "input", "cron_expression"])
def test_missing_field_is_400_naming_it(alice, server, missing):
    create_workflow(alice, server)
    response = alice.post(f"{CRON}/cron", cron_body(**{missing: None}), format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == f"{missing}: This field is required."


@pytest.mark.parametrize(("values", "detail"), [
    ({"hours": 0, "minutes": 0, "seconds": 0}, "At least one of hours, minutes or seconds must be greater than 0."),
    ({"hours": None, "minutes": None, "seconds": None}, "At least one of hours, minutes or seconds must be greater than 0."),
    ({"seconds": -5}, "seconds: Ensure this value is greater than or equal to 0."),
    ({"minutes": "soon"}, "minutes: A valid integer is required."),
])
def test_bad_interval_is_400(alice, server, values, detail):
    create_workflow(alice, server)
    response = alice.post(f"{CRON}/interval", interval_body(**values), format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == detail


def test_an_interval_over_366_days_is_400_naming_the_schedule(alice, server):
    create_workflow(alice, server)
    response = alice.post(f"{CRON}/interval", interval_body(hours=9000, minutes=0), format="json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("schedule: Invalid interval")


def test_user_id_must_be_the_caller(alice, server):
    create_workflow(alice, server)
    response = alice.post(f"{CRON}/cron", cron_body(user_id=BOB_SUB), format="json")
    assert response.status_code == 403
    assert response.json()["detail"] == "Unauthorized: You can only run your own workflows."


def test_someone_elses_workflow_is_403_and_an_unknown_one_400(alice, bob, server):
    create_workflow(alice, server)
    response = bob.post(f"{CRON}/cron", cron_body(user_id=BOB_SUB), format="json")
    assert response.status_code == 403
    assert response.json()["detail"] == "Unauthorized: You can only run your own workflows."
    response = bob.post(f"{CRON}/cron", cron_body(user_id=BOB_SUB, workflow_id="nope"), format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == "workflow_id: Workflow 'nope' does not exist."


def test_a_local_user_is_their_id_or_username(client_for, user, server):
    api = client_for(user)
    create_workflow(api, server)
    for user_id in (str(user.pk), user.username):
        response = api.post(f"{CRON}/cron", cron_body(user_id=user_id), format="json")
        assert response.status_code == 200, response.json()
        assert response.json()["job"]["user_id"] == str(user.pk)


@pytest.mark.parametrize("job_id", ["all", "cron", "interval", "has space", "-leading", "a/b"])
def test_job_ids_that_are_paths_or_unsafe_are_400(alice, server, job_id):
    create_workflow(alice, server)
    response = alice.post(f"{CRON}/cron", cron_body(job_id=job_id), format="json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("job_id: ")


def test_a_disabled_workflow_cannot_be_scheduled(alice, server):
    create_workflow(alice, server, enabled=False)
    response = alice.post(f"{CRON}/cron", cron_body(), format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == "workflow_id: Workflow 'video-automation-workflow' is disabled; enable it first."


# ---------------------------------------------------------------------------
# Replace, per-user ids, list, all
# ---------------------------------------------------------------------------
def test_reposting_a_job_id_replaces_the_job_and_its_one_beat_entry(alice, server):
    create_workflow(alice, server)
    assert alice.post(f"{CRON}/cron", cron_body(), format="json").status_code == 200
    job = Job.objects.get(kind="workflow")
    task_pk = job.periodic_task_id
    assert alice.post(f"{CRON}/daily-video-generation/pause").status_code == 200
    # when the same job_id is posted again, as an interval job with another input
    response = alice.post(f"{CRON}/interval", interval_body(job_id="daily-video-generation", input="new input",
                                                             hours=0, minutes=0, seconds=45), format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["job"] | {"next_run_time": None} == {
        "job_id": "daily-video-generation", "name": f"Workflow video-automation-workflow for user {ALICE_SUB}",
        "workflow_id": "video-automation-workflow", "user_id": ALICE_SUB, "input_text": "new input",
        "schedule_type": "interval", "schedule": "45s", "next_run_time": None, "paused": False,
        "trigger": "interval[0:00:45]",
    }
    # then it is the same job with its one beat entry, rescheduled and active again
    replaced = Job.objects.get(kind="workflow")
    assert replaced.pk == job.pk and replaced.periodic_task_id == task_pk
    task = PeriodicTask.objects.get(pk=task_pk)
    assert (task.crontab, task.interval.every, task.enabled) == (None, 45, True)
    assert PeriodicTask.objects.filter(name__startswith="job:").count() == 1
    assert replaced.task_kwargs == {"input": "new input"}


def test_job_ids_are_unique_per_user_not_globally(alice, bob, server):
    create_workflow(alice, server)
    create_workflow(bob, server, workflow_id="bobs-flow")
    assert alice.post(f"{CRON}/cron", cron_body(), format="json").status_code == 200
    response = bob.post(f"{CRON}/cron", cron_body(user_id=BOB_SUB, workflow_id="bobs-flow", input="bob's"), format="json")
    assert response.status_code == 200, response.json()
    assert Job.objects.filter(kind="workflow").count() == 2
    assert alice.get(f"{CRON}/daily-video-generation").json()["job"]["input_text"] == "Generate video about tech news"
    assert bob.get(f"{CRON}/daily-video-generation").json()["job"]["input_text"] == "bob's"


def test_list_shows_the_callers_jobs_and_all_is_for_superusers(alice, bob, server, client_for, superuser):
    create_workflow(alice, server)
    create_workflow(bob, server, workflow_id="bobs-flow")
    alice.post(f"{CRON}/cron", cron_body(), format="json")
    alice.post(f"{CRON}/interval", interval_body(), format="json")
    bob.post(f"{CRON}/cron", cron_body(user_id=BOB_SUB, workflow_id="bobs-flow"), format="json")
    body = alice.get(CRON).json()
    assert (body["status"], body["user_id"], body["total_jobs"]) == ("success", ALICE_SUB, 2)
    assert [job["job_id"] for job in body["jobs"]] == ["daily-video-generation", "hourly-video-check"]
    assert bob.get(CRON).json()["total_jobs"] == 1
    response = alice.get(f"{CRON}/all")
    assert response.status_code == 403
    assert response.json()["detail"] == "Only administrators can list all jobs."
    body = client_for(superuser).get(f"{CRON}/all").json()
    assert (body["status"], body["total_jobs"]) == ("success", 3)
    assert {job["user_id"] for job in body["jobs"]} == {ALICE_SUB, BOB_SUB}


# ---------------------------------------------------------------------------
# One job: get, pause, resume, trigger, delete, executions; 403 and 404
# ---------------------------------------------------------------------------
def test_pause_nulls_next_run_time_and_resume_restores_it(alice, server):
    create_workflow(alice, server)
    alice.post(f"{CRON}/cron", cron_body(), format="json")
    response = alice.post(f"{CRON}/daily-video-generation/pause")
    assert response.json() == {"status": "success", "message": "Job daily-video-generation paused successfully",
                               "job_id": "daily-video-generation"}
    job = alice.get(f"{CRON}/daily-video-generation").json()["job"]
    assert (job["paused"], job["next_run_time"]) == (True, None)
    assert not Job.objects.get(kind="workflow").periodic_task.enabled
    response = alice.post(f"{CRON}/daily-video-generation/resume")
    assert response.json() == {"status": "success", "message": "Job daily-video-generation resumed successfully",
                               "job_id": "daily-video-generation"}
    job = alice.get(f"{CRON}/daily-video-generation").json()["job"]
    assert job["paused"] is False and job["next_run_time"].endswith("T09:00:00+00:00")


def test_delete_removes_the_job_and_its_beat_entry(alice, server):
    create_workflow(alice, server)
    alice.post(f"{CRON}/cron", cron_body(), format="json")
    task_name = Job.objects.get(kind="workflow").periodic_task.name
    response = alice.delete(f"{CRON}/daily-video-generation")
    assert response.json() == {"status": "success", "message": "Job daily-video-generation deleted successfully",
                               "job_id": "daily-video-generation"}
    assert not Job.objects.filter(kind="workflow").exists()
    assert not PeriodicTask.objects.filter(name=task_name).exists()
    response = alice.get(f"{CRON}/daily-video-generation")
    assert (response.status_code, response.json()["detail"]) == (404, "Job daily-video-generation not found")


@pytest.mark.parametrize(("method", "suffix", "detail"), [
    ("get", "", "You don't have permission to access this job"),
    ("post", "/trigger", "You don't have permission to trigger this job"),
    ("post", "/pause", "You don't have permission to pause this job"),
    ("post", "/resume", "You don't have permission to resume this job"),
    ("delete", "", "You don't have permission to delete this job"),
    ("get", "/executions", "You don't have permission to access this job"),
])
def test_someone_elses_job_is_403_and_a_missing_one_404(alice, bob, server, method, suffix, detail):
    create_workflow(alice, server)
    alice.post(f"{CRON}/cron", cron_body(), format="json")
    response = getattr(bob, method)(f"{CRON}/daily-video-generation{suffix}")
    assert response.status_code == 403
    assert response.json()["detail"] == detail
    response = getattr(bob, method)(f"{CRON}/no-such-job{suffix}")
    assert response.status_code == 404
    assert response.json()["detail"] == "Job no-such-job not found"
    job = Job.objects.get(kind="workflow")
    assert job.is_schedulable and not job.executions.exists()


def test_unauthenticated_is_401(server):
    assert APIClient().get(CRON).status_code == 401
    assert APIClient().post(f"{CRON}/cron", cron_body(), format="json").status_code == 401


def test_trigger_runs_the_workflow_with_the_templated_input(alice, server):
    # given a job whose workflow posts the input to the local server, then records the reply with a task
    create_workflow(alice, server)
    alice.post(f"{CRON}/cron", cron_body(), format="json")
    before = alice.get(f"{CRON}/daily-video-generation").json()["job"]
    # when it is triggered
    response = alice.post(f"{CRON}/daily-video-generation/trigger")
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("status", "message", "job_id")} == {
        "status": "success", "message": "Job daily-video-generation triggered successfully",
        "job_id": "daily-video-generation"}
    execution = run_in_process(Execution.objects.get(pk=body["execution_id"]))
    # then the server got the templated input, and each step's output is recorded
    assert execution.status == "success", (execution.error, execution.result)
    hit = server.received("/hook")[-1]
    assert hit["body"] == {"text": "Generate video about tech news", "job": "daily-video-generation"}
    assert hit["path"] == "/hook?job=daily-video-generation"
    assert hit["headers"]["X-Input"] == "Generate video about tech news"
    notify, record = execution.result["steps"]
    assert (notify["status"], notify["output"]["status_code"], notify["attempts"]) == ("success", 200, 1)
    assert record["status"] == "success"
    assert record["output"]["result"]["kwargs"] == {
        "status": 200, "reply": "Generate video about tech news", "line": "got Generate video about tech news!"}
    for step in execution.result["steps"]:
        assert step["started_at"] and step["finished_at"] and step["duration_seconds"] >= 0
    assert execution.trigger == "api"
    # and the schedule is unchanged
    assert alice.get(f"{CRON}/daily-video-generation").json()["job"] == before


def test_executions_history_of_a_job(alice, server):
    create_workflow(alice, server)
    alice.post(f"{CRON}/cron", cron_body(), format="json")
    first = trigger_and_run(alice, "daily-video-generation")
    second = trigger_and_run(alice, "daily-video-generation")
    body = alice.get(f"{CRON}/daily-video-generation/executions?limit=1").json()
    assert (body["status"], body["job_id"], body["total_executions"]) == ("success", "daily-video-generation", 2)
    assert [e["id"] for e in body["executions"]] == [second.pk]
    # and through the general executions API
    job = Job.objects.get(kind="workflow")
    items = alice.get(f"/api/v1/executions/?job_id={job.pk}").json()["items"]
    assert {e["id"] for e in items} == {first.pk, second.pk}
    assert alice.get(f"{CRON}/daily-video-generation/executions?limit=0").status_code == 400


# ---------------------------------------------------------------------------
# Runs: failures name the step, continue_on_failure, retries, timeouts, re-run
# ---------------------------------------------------------------------------
def schedule(client, server, steps, job_id="daily-video-generation"):
    create_workflow(client, server, steps=steps)
    response = client.post(f"{CRON}/cron", cron_body(job_id=job_id), format="json")
    assert response.status_code == 200, response.json()


def test_a_failing_step_stops_the_run_and_names_the_step(alice, server):
    server.httpd.failing.set()
    schedule(alice, server, [
        {"name": "first", "type": "http", "url": server.url("/hook"), "method": "POST", "body": {"text": "${input}"}},
        {"name": "flaky", "type": "http", "url": server.url("/fail"), "method": "POST", "body": {}},
        {"name": "after", "type": "task", "task_name": "tests.echo"},
    ])
    execution = trigger_and_run(alice, "daily-video-generation")
    assert execution.status == "failed"
    assert execution.output.startswith("Step 2 'flaky' (http) failed: POST http://127.0.0.1:")
    assert "HTTP 500" in execution.output
    assert [s["status"] for s in execution.result["steps"]] == ["success", "failed", "skipped"]
    assert execution.result["failed_step"] == "flaky"
    run = alice.get(f"{RUNS}/{execution.pk}").json()
    assert (run["status"], run["failed_step"], run["job_id"], run["workflow_id"]) == (
        "failed", "flaky", "daily-video-generation", "video-automation-workflow")
    assert "HTTP 500" in run["steps"][1]["error"]


def test_continue_on_failure_goes_on(alice, server):
    schedule(alice, server, [
        {"name": "boom", "type": "task", "task_name": "tests.fail", "kwargs": {"message": "nope"},
         "continue_on_failure": True},
        {"name": "after", "type": "task", "task_name": "tests.echo", "kwargs": {"prev": "${previous}"}},
    ])
    execution = trigger_and_run(alice, "daily-video-generation")
    assert execution.status == "success"
    boom, after = execution.result["steps"]
    assert (boom["status"], boom["error"]) == ("failed", "RuntimeError: nope")
    assert after["status"] == "success" and after["output"]["result"]["kwargs"] == {"prev": None}
    assert "failed but continued: boom" in execution.output


def test_retries_then_success(alice, server):
    # the first two attempts fail, whatever the time between them
    server.httpd.fail_times = 2
    schedule(alice, server, [{"name": "flaky", "type": "http", "url": server.url("/fail"), "retries": 3,
                              "retry_delay_seconds": 0.4}])
    execution = trigger_and_run(alice, "daily-video-generation")
    assert execution.status == "success", execution.result
    step = execution.result["steps"][0]
    assert step["status"] == "success" and step["attempts"] == 3
    assert len(server.received("/fail")) == step["attempts"]


def test_step_timeout(alice, server):
    schedule(alice, server, [
        {"name": "nap", "type": "delay", "seconds": 5, "timeout_seconds": 0.5},
        {"name": "slow", "type": "http", "url": server.url("/slow"), "timeout_seconds": 0.5, "continue_on_failure": True},
    ])
    started = time.monotonic()
    execution = trigger_and_run(alice, "daily-video-generation")
    assert time.monotonic() - started < 4
    assert execution.status == "failed"
    assert execution.result["steps"][0]["error"] == "timed out after 0.5s (timeout_seconds)"
    assert execution.output == "Step 1 'nap' (delay) failed: timed out after 0.5s (timeout_seconds)"


def test_http_timeout_is_the_steps(alice, server):
    schedule(alice, server, [{"name": "slow", "type": "http", "url": server.url("/slow"), "timeout_seconds": 0.5}])
    execution = trigger_and_run(alice, "daily-video-generation")
    assert execution.status == "failed"
    assert "slow" in execution.output and ("0.5s" in execution.output)


def test_outputs_are_size_capped(alice, server, settings):
    settings.WORKFLOWS_STEP_OUTPUT_MAX_BYTES = 1000
    schedule(alice, server, [
        {"name": "big", "type": "http", "url": server.url("/big")},
        {"name": "use", "type": "task", "task_name": "tests.echo", "kwargs": {"size": "${steps.big.output.status_code}"}},
    ])
    execution = trigger_and_run(alice, "daily-video-generation")
    assert execution.status == "success"
    big = execution.result["steps"][0]
    assert big["output_truncated"] is True and isinstance(big["output"], str) and len(big["output"]) <= 1000
    # later steps still saw the whole output
    assert execution.result["steps"][1]["output"]["result"]["kwargs"] == {"size": 200}


def test_a_missing_template_value_fails_the_step_naming_it(alice, server):
    schedule(alice, server, [
        {"name": "first", "type": "http", "url": server.url("/hook"), "method": "POST", "body": {"text": "x"}},
        {"name": "second", "type": "task", "task_name": "tests.echo", "kwargs": {"id": "${steps.first.output.body.id}"}},
    ])
    execution = trigger_and_run(alice, "daily-video-generation")
    assert execution.status == "failed"
    assert execution.output == ("Step 2 'second' (task) failed: ${steps.first.output.body.id}: "
                                "steps.first.output.body has no key 'id'.")


def test_rerun_from_the_failed_step_reuses_earlier_outputs(alice, server):
    server.httpd.failing.set()
    schedule(alice, server, [
        {"name": "first", "type": "http", "url": server.url("/hook"), "method": "POST", "body": {"text": "${input}"}},
        {"name": "flaky", "type": "http", "url": server.url("/fail")},
        {"name": "last", "type": "task", "task_name": "tests.echo",
         "kwargs": {"first": "${steps.first.output.body.received}", "flaky": "${steps.flaky.output.body.ok}"}},
    ])
    failed = trigger_and_run(alice, "daily-video-generation")
    assert failed.status == "failed"
    hooks = len(server.received("/hook"))
    server.httpd.failing.clear()
    # when the failed run is re-run
    response = alice.post(f"{RUNS}/{failed.pk}/rerun")
    assert response.status_code == 202, response.json()
    rerun = run_in_process(Execution.objects.get(pk=response.json()["execution_id"]))
    # then it starts at the failed step with the first step's recorded output
    assert rerun.status == "success", rerun.result
    assert [s["status"] for s in rerun.result["steps"]] == ["reused", "success", "success"]
    assert rerun.result["resume_from"] == 1 and rerun.result["resumed_from_execution"] == failed.pk
    assert rerun.result["steps"][2]["output"]["result"]["kwargs"] == {"first": "Generate video about tech news",
                                                                      "flaky": True}
    assert len(server.received("/hook")) == hooks  # the first step did not run again
    # a successful run has nothing to re-run
    response = alice.post(f"{RUNS}/{rerun.pk}/rerun")
    assert response.status_code == 409


def test_runs_of_someone_else_are_404_and_bad_run_parameters_400(alice, bob, server):
    schedule(alice, server, [{"name": "one", "type": "task", "task_name": "tests.echo"}])
    execution = trigger_and_run(alice, "daily-video-generation")
    assert bob.get(f"{RUNS}/{execution.pk}").status_code == 404
    assert bob.post(f"{RUNS}/{execution.pk}/rerun").status_code == 404
    listing = alice.get(RUNS).json()
    assert listing["total"] == 1 and listing["items"][0]["execution_id"] == execution.pk
    job = Job.objects.get(kind="workflow")
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="resume_from must be a step index from 0 to 0"):
        core_services.job_execute(job=job, override_kwargs={"resume_from": 3})
    with pytest.raises(ValidationError, match="Unknown parameter"):
        core_services.job_execute(job=job, override_kwargs={"rm": "-rf"})


def test_a_queued_run_can_be_cancelled_through_the_runs_api(alice, bob, server):
    schedule(alice, server, [{"name": "one", "type": "delay", "seconds": 1}])
    execution_id = alice.post(f"{CRON}/daily-video-generation/trigger").json()["execution_id"]
    assert bob.post(f"{RUNS}/{execution_id}/cancel").status_code == 404
    response = alice.post(f"{RUNS}/{execution_id}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert alice.post(f"{RUNS}/{execution_id}/cancel").status_code == 409


# ---------------------------------------------------------------------------
# Workflows: CRUD, tenancy, validation of step definitions
# ---------------------------------------------------------------------------
def test_workflow_crud(alice, server):
    created = create_workflow(alice, server, description="posts and records",
                              secrets={"TOKEN": "s3cr3t-t0ken"})
    assert created["secrets"] == {"TOKEN": "***"}
    assert "s3cr3t" not in json.dumps(created)
    assert [s["name"] for s in created["steps"]] == ["notify", "record"]
    assert created["steps"][1] | {} == {"name": "record", "type": "task", "task_name": "tests.echo",
                                         "kwargs": created["steps"][1]["kwargs"], "retries": 0,
                                         "retry_delay_seconds": 1, "continue_on_failure": False}
    assert alice.get(WORKFLOWS).json()["total"] == 1
    response = alice.patch(f"{WORKFLOWS}video-automation-workflow", {"name": "Renamed", "enabled": False}, format="json")
    assert response.status_code == 200 and (response.json()["name"], response.json()["enabled"]) == ("Renamed", False)
    response = alice.post(WORKFLOWS, {"id": "video-automation-workflow", "name": "x", "steps": [{"type": "delay", "seconds": 1}]},
                          format="json")
    assert response.status_code == 409
    response = alice.patch(f"{WORKFLOWS}video-automation-workflow", {"id": "other"}, format="json")
    assert response.status_code == 400 and response.json()["detail"] == "id: This field cannot be changed."
    assert alice.delete(f"{WORKFLOWS}video-automation-workflow").status_code == 200
    assert not Workflow.objects.exists()


def test_secrets_are_templated_into_headers_and_never_shown(alice, server):
    create_workflow(alice, server, secrets={"TOKEN": "s3cr3t-t0ken"}, steps=[
        {"name": "call", "type": "http", "url": server.url("/hook"), "method": "POST",
         "headers": {"Authorization": "Bearer ${secrets.TOKEN}"}, "body": {"text": "${input}"}},
    ])
    alice.post(f"{CRON}/cron", cron_body(), format="json")
    execution = trigger_and_run(alice, "daily-video-generation")
    assert execution.status == "success"
    assert server.received("/hook")[-1]["headers"]["Authorization"] == "Bearer s3cr3t-t0ken"
    assert "s3cr3t" not in json.dumps(alice.get(f"{WORKFLOWS}video-automation-workflow").json())
    assert "s3cr3t" not in json.dumps(alice.get(f"{RUNS}/{execution.pk}").json())


def test_workflows_follow_tenancy(client_for, make_user, org, other_org, server):
    owner, mate, stranger = (make_user("wf-owner", organization=org), make_user("wf-mate", organization=org),
                             make_user("wf-stranger", organization=other_org))
    create_workflow(client_for(owner), server)
    mate_api, stranger_api = client_for(mate), client_for(stranger)
    assert stranger_api.get(f"{WORKFLOWS}video-automation-workflow").status_code == 404
    assert stranger_api.get(WORKFLOWS).json()["total"] == 0
    assert mate_api.get(f"{WORKFLOWS}video-automation-workflow").status_code == 200
    response = mate_api.patch(f"{WORKFLOWS}video-automation-workflow", {"name": "mine now"}, format="json")
    assert response.status_code == 403
    # an organization member sees the workflow but may use it only once its owner shares it
    response = mate_api.post(f"{CRON}/cron", cron_body(user_id=str(mate.pk)), format="json")
    assert response.status_code == 403
    assert response.json()["detail"] == "Unauthorized: You can only run your own workflows."
    response = client_for(owner).patch(f"{WORKFLOWS}video-automation-workflow", {"shared_with_organization": True},
                                       format="json")
    assert response.status_code == 200, response.json()
    response = mate_api.post(f"{CRON}/cron", cron_body(user_id=str(mate.pk)), format="json")
    assert response.status_code == 200, response.json()
    # a workflow in use cannot be deleted
    response = client_for(owner).delete(f"{WORKFLOWS}video-automation-workflow")
    assert response.status_code == 409
    assert response.json()["detail"] == "Workflow video-automation-workflow is used by 1 scheduled job(s); delete them first."


BAD_STEPS = [
    ({"name": "x"}, "steps[0].type", "Step 1 ('x'): this field is required. Use one of: bulk_prediction, delay, http, task, vision_analysis."),
    ({"type": "teleport"}, "steps[0].type", "Step 1 ('step1'): unknown step type 'teleport'. Use one of: bulk_prediction, delay, http, task, vision_analysis."),
    ({"name": "get", "type": "http"}, "steps[0].url", "Step 1 ('get'): This field is required."),
    ({"name": "get", "type": "http", "url": "ftp://example.com/x"}, "steps[0].url",
     "Step 1 ('get'): Must start with http:// or https:// (a placeholder may not supply the scheme)."),
    ({"name": "get", "type": "http", "url": "http://10.0.0.8/admin"}, "steps[0].url",
     "Step 1 ('get'): http://10.0.0.8/admin: refused: 10.0.0.8 is a private address"),
    ({"name": "get", "type": "http", "url": "https://example.com", "verb": "GET"}, "steps[0].verb",
     "Step 1 ('get'): Unknown field for a 'http' step. Its fields: body, headers, method, url."),
    ({"name": "get", "type": "http", "url": "https://example.com", "method": "BREW"}, "steps[0].method",
     "Step 1 ('get'): \"BREW\" is not a valid choice."),
    ({"name": "get", "type": "http", "url": "https://example.com", "headers": {"Authorization": "Bearer abc"}},
     "steps[0].headers", "Step 1 ('get'): Header 'Authorization' carries a credential"),
    ({"name": "get", "type": "http", "url": "https://example.com/${steps.later.output}"}, "steps[0].url",
     "Step 1 ('get'): ${steps.later.output}: there is no earlier step named 'later'."),
    ({"name": "get", "type": "http", "url": "https://example.com/${secrets.NOPE}"}, "steps[0].url",
     "Step 1 ('get'): ${secrets.NOPE}: the workflow has no secret named 'NOPE'."),
    ({"name": "get", "type": "http", "url": "https://example.com/${os.environ}"}, "steps[0].url",
     "Step 1 ('get'): ${os.environ} names nothing"),
    ({"name": "get", "type": "http", "url": "https://example.com/${input | upper}"}, "steps[0].url",
     "Step 1 ('get'): '${input | upper}' is not a valid placeholder"),
    ({"name": "t", "type": "task", "task_name": "database_maintenance"}, "steps[0].task_name",
     "Step 1 ('t'): 'database_maintenance' is not a task workflows may call. Allowed: tests.echo, tests.fail."),
    ({"name": "t", "type": "task", "task_name": "tests.fail", "kwargs": "x"}, "steps[0].kwargs",
     "Step 1 ('t'): Expected a dictionary of items"),
    ({"name": "d", "type": "delay", "seconds": -1}, "steps[0].seconds",
     "Step 1 ('d'): Ensure this value is greater than or equal to 0."),
    ({"name": "d", "type": "delay", "seconds": 1, "retries": 99}, "steps[0].retries",
     "Step 1 ('d'): must be an integer from 0 to 10."),
    ({"name": "d", "type": "delay", "seconds": 1, "timeout_seconds": 0}, "steps[0].timeout_seconds",
     "Step 1 ('d'): must be a number of seconds above 0"),
    ({"name": "d", "type": "delay", "seconds": "${input}"}, "steps[0].seconds", "Step 1 ('d'): A valid number is required."),
    ({"name": "1bad", "type": "delay", "seconds": 1}, "steps[0].name", "Step 1: use 1-64 letters"),
    ("not an object", "steps[0]", "Step 1: must be a JSON object"),
]


@pytest.mark.parametrize(("step", "field", "message"), BAD_STEPS)
def test_malformed_steps_are_400_naming_the_step_and_field(alice, server, step, field, message):
    response = alice.post(WORKFLOWS, {"id": "bad", "name": "Bad", "steps": [step]}, format="json")
    assert response.status_code == 400, response.json()
    errors = response.json()["errors"]
    assert field in errors, errors
    assert any(m.startswith(message) for m in errors[field]), errors[field]
    assert response.json()["detail"].startswith(f"{field}: ")


def test_duplicate_step_names_and_empty_steps_are_400(alice, server):
    steps = [{"name": "a", "type": "delay", "seconds": 0}, {"name": "a", "type": "delay", "seconds": 0}]
    response = alice.post(WORKFLOWS, {"id": "dup", "name": "Dup", "steps": steps}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["steps[1].name"] == [
        "Step 2: the name 'a' is used by an earlier step; names must be unique."]
    response = alice.post(WORKFLOWS, {"id": "empty", "name": "Empty", "steps": []}, format="json")
    assert response.json()["detail"] == "steps: A workflow needs at least one step."
    response = alice.post(WORKFLOWS, {"id": "obj", "name": "Obj", "steps": {"type": "delay"}}, format="json")
    assert response.json()["detail"] == "steps: Must be a JSON list of step objects."
    response = alice.post(WORKFLOWS, {"id": "runs", "name": "Runs", "steps": [{"type": "delay", "seconds": 0}]},
                          format="json")
    assert response.status_code == 400 and response.json()["detail"].startswith("id: ")


def test_superusers_workflows_may_call_any_schedulable_task(client_for, superuser, server):
    steps = [{"name": "t", "type": "task", "task_name": "tests.noop"}]
    response = client_for(superuser).post(WORKFLOWS, {"id": "ops", "name": "Ops", "steps": steps}, format="json")
    assert response.status_code == 201, response.json()


# ---------------------------------------------------------------------------
# Templating and the step-type registry
# ---------------------------------------------------------------------------
def test_templating_is_a_lookup_not_an_evaluation():
    variables = {"input": "a b&c", "steps": {"s": {"output": {"n": 3, "items": ["x", "y"]}}}, "previous": None}
    assert templating.render("${steps.s.output.n}", variables) == 3
    assert templating.render("n=${steps.s.output.n}; $${literal}", variables) == "n=3; ${literal}"
    assert templating.render({"k": ["${steps.s.output.items.1}"]}, variables) == {"k": ["y"]}
    assert templating.render("https://h/q?text=${input}", variables, quote_url=True) == "https://h/q?text=a%20b%26c"
    assert templating.render("${steps.s.output}", variables, quote_url=True) == '{"n": 3, "items": ["x", "y"]}'
    with pytest.raises(templating.TemplateError, match="has 2 item"):
        templating.render("${steps.s.output.items.5}", variables)
    with pytest.raises(templating.TemplateError, match="unknown name '__class__'"):
        templating.render("${__class__}", variables)
    with pytest.raises(templating.TemplateError, match="str, it has no '__class__'"):
        templating.render("${input.__class__}", {"input": "x"})


class ShoutStep:
    """A step type as another app would declare it (duck-typed, no import of this package)."""

    type = "shout"
    label = "Shout"
    templated_fields = ("text",)

    def validate(self, config, *, owner):
        return {} if isinstance(config.get("text"), str) else {"text": ["Give a text."]}

    def run(self, config, context):
        return config["text"].upper()


def test_other_apps_register_step_types_by_duck_typing(alice, server):
    register_step_type(ShoutStep)
    try:
        response = alice.post(WORKFLOWS, {"id": "loud", "name": "Loud", "steps": [{"type": "shout"}]}, format="json")
        assert response.json()["errors"]["steps[0].text"] == ["Step 1 ('step1'): Give a text."]
        create_workflow(alice, server, workflow_id="loud", steps=[{"name": "s", "type": "shout", "text": "hi ${input}"}])
        alice.post(f"{CRON}/cron", cron_body(workflow_id="loud"), format="json")
        execution = trigger_and_run(alice, "daily-video-generation")
        assert execution.result["steps"][0]["output"] == "HI GENERATE VIDEO ABOUT TECH NEWS"
    finally:
        unregister_step_type("shout")


# ---------------------------------------------------------------------------
# Admin
# ---------------------------------------------------------------------------
def test_admin_creates_and_validates_workflows_through_the_services(admin_client):
    url = "/admin/workflows/workflow/add/"
    assert admin_client.get(url).status_code == 200
    bad = {"id": "adm", "name": "Adm", "description": "", "steps": json.dumps([{"type": "delay", "seconds": -1}]),
           "enabled": "on"}
    response = admin_client.post(url, bad)
    assert response.status_code == 200
    assert "steps[0].seconds" in response.content.decode()
    good = {**bad, "steps": json.dumps([{"type": "delay", "seconds": 1}])}
    response = admin_client.post(url, good)
    assert response.status_code == 302, response.content.decode()[:2000]
    workflow = Workflow.objects.get(pk="adm")
    assert workflow.steps[0]["name"] == "step1" and workflow.owner.is_superuser
    assert admin_client.get("/admin/workflows/workflow/").status_code == 200
    assert admin_client.get("/admin/workflows/workflow/adm/change/").status_code == 200
    change = {"name": "Renamed", "description": "", "steps": json.dumps([{"type": "delay", "seconds": 2}]),
              "enabled": "on", "owner": workflow.owner_id, "organization": ""}
    response = admin_client.post("/admin/workflows/workflow/adm/change/", change)
    assert response.status_code == 302, response.content.decode()[:2000]
    workflow.refresh_from_db()
    assert (workflow.name, workflow.steps[0]["seconds"]) == ("Renamed", 2)


# ---------------------------------------------------------------------------
# Odd input is a 4xx, never a 500
# ---------------------------------------------------------------------------
ODD_STEPS = [
    "steps", 5, None, [None], [[]], [{"type": ["http"]}], [{"type": "http", "name": {"a": 1}}],
    [{"type": "http", "url": 5}], [{"type": "http", "url": "https://example.com", "headers": ["a"]}],
    [{"type": "http", "url": "https://example.com", "headers": {"X": {"nested": 1}}}],
    [{"type": "http", "url": "http://[::1"}], [{"type": "http", "url": "https://" + "a" * 3000}],
    [{"type": "task", "task_name": None}], [{"type": "task", "task_name": "tests.echo", "kwargs": {"k": "${"}}],
    [{"type": "delay", "seconds": 1e308}], [{"type": "delay", "seconds": True}],
    [{"type": "delay", "seconds": 1, "continue_on_failure": "yes"}],
    [{"type": "delay", "seconds": 1, "retry_delay_seconds": -1}],
    [{"type": "delay", "seconds": 1, "timeout_seconds": "soon"}],
    [{"type": "delay", "seconds": 1}] * 60,
]


@pytest.mark.parametrize("steps", ODD_STEPS)
def test_odd_steps_are_400(alice, server, steps):
    response = alice.post(WORKFLOWS, {"id": "odd", "name": "Odd", "steps": steps}, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["detail"]


@pytest.mark.parametrize("body", [
    [], "x", {"job_id": 5, "workflow_id": [], "user_id": {}, "input": None, "cron_expression": 7},
    {"job_id": "a" * 500, "workflow_id": "x", "user_id": ALICE_SUB, "input": "", "cron_expression": "* * * * *"},
    cron_body(timezone="Mars/Olympus"), cron_body(cron_expression="L W # ? *"), cron_body(cron_expression=""),
    cron_body(workflow_id="../../etc"), cron_body(input="x" * 200_000),
])
def test_odd_schedule_bodies_are_4xx(alice, server, body):
    create_workflow(alice, server)
    response = alice.post(f"{CRON}/cron", body, format="json")
    assert 400 <= response.status_code < 500, response.content
    assert response.json()["detail"]
