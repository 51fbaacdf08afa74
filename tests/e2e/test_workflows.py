"""The workflow facade end to end: a user with a Supabase-style JWT schedules workflows
that real beat fires on a real Celery worker, whose ``http`` steps reach a
real local server through the outbound client's allow-list (the worker runs
with the production policy: loopback refused except that one host:port)."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import pytest
from django_celery_beat.models import PeriodicTask

from scheduling.models import Execution, Job
from tests.workflows.test_workflows import (
    ALICE_SUB,
    BOB_SUB,
    CRON,
    RUNS,
    WORKFLOWS,
    HookServer,
    bearer,
    configure,
    supabase_token,
)
from tests.worker import start_worker_process, wait_for, worker_env

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

QUEUE = "workflows-e2e"  # only this module's worker consumes it


@pytest.fixture(scope="module")
def hook():
    server = HookServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def wf_worker(django_db_setup, django_db_blocker, hook):
    """A worker on QUEUE with the production outbound policy plus the hook server's host:port."""
    with django_db_blocker.unblock():
        worker = start_worker_process(hostname="wfworker@%h", queues=[QUEUE], concurrency=2, extra_env={
            "OUTBOUND_HTTP_ALLOW_LOOPBACK": "false",
            "OUTBOUND_HTTP_ALLOW_PRIVATE": "false",
            "OUTBOUND_HTTP_ALLOW_HOSTS": hook.host,
            "OUTBOUND_HTTP_RETRIES": "0",
            "WORKFLOWS_TASK_NAMES": "tests.echo,tests.fail",
        })
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture(autouse=True)
def _settings(settings, hook):
    configure(settings, hook)
    settings.JOBS_QUEUES = [*settings.JOBS_QUEUES, QUEUE]
    settings.WORKFLOWS_QUEUE = QUEUE


def start_beat() -> subprocess.Popen:
    """``celery beat`` as tests/e2e/test_scheduling.py starts it."""
    schedule_file = os.path.join(tempfile.mkdtemp(), "beat-schedule")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "jobsite", "beat", "--loglevel", "info",
         "--max-interval", "1", "-s", schedule_file],
        env=worker_env(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
    )


def texts(hook, text: str) -> int:
    return sum(1 for r in hook.received("/hook") if isinstance(r["body"], dict) and r["body"].get("text") == text)


def scheduled_successes(job_id: str) -> list[Execution]:
    job = Job.objects.get(kind="workflow", config__job_id=job_id)
    return list(job.executions.filter(trigger="schedule", status="success"))


def create_workflow(client, hook):
    steps = [
        {"name": "notify", "type": "http", "method": "POST", "url": hook.url("/hook"),
         "body": {"text": "${input}", "job": "${job_id}"}, "timeout_seconds": 5},
        {"name": "record", "type": "task", "task_name": "tests.echo",
         "kwargs": {"reply": "${steps.notify.output.body.received}"}},
    ]
    response = client.post(WORKFLOWS, {"id": "hook-flow", "name": "Hook flow", "steps": steps}, format="json")
    assert response.status_code == 201, response.json()


def test_workflow_schedules_fire_pause_resume_replace_and_delete(wf_worker, hook):
    alice = bearer(supabase_token(ALICE_SUB, "alice@example.com"))
    bob = bearer(supabase_token(BOB_SUB, "bob@example.com"))
    create_workflow(alice, hook)
    # given an interval job (every 3 s: the fires, pause and resume below wait for a few of
    # them) and a cron job (every minute: the suite's one wait for a real minute boundary,
    # while the interval job's steps go on)
    base = {"workflow_id": "hook-flow", "user_id": ALICE_SUB}
    response = alice.post(f"{CRON}/interval", {**base, "job_id": "every-3s", "input": "three seconds", "seconds": 3},
                          format="json")
    assert response.status_code == 200, response.json()
    assert (response.json()["job"]["schedule"], response.json()["job"]["trigger"]) == ("3s", "interval[0:00:03]")
    response = alice.post(f"{CRON}/cron", {**base, "job_id": "minutely", "input": "every minute",
                                           "cron_expression": "* * * * *"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["job"]["trigger"] == "cron[day='*', hour='*', minute='*']"
    cron_created = time.monotonic()

    beat = start_beat()
    try:
        # when beat fires the interval job, the worker runs the workflow: the server gets the templated input
        wait_for(lambda: texts(hook, "three seconds") >= 1, timeout=30, message="the interval job's first call")
        run = wait_for(lambda: scheduled_successes("every-3s"), timeout=15, message="a scheduled success")[0]
        assert run.worker.startswith(wf_worker.nodename)
        assert [s["status"] for s in run.result["steps"]] == ["success", "success"]
        assert run.result["steps"][1]["output"]["result"]["kwargs"] == {"reply": "three seconds"}
        hit = next(r for r in hook.received("/hook") if r["body"]["text"] == "three seconds")
        assert hit["body"] == {"text": "three seconds", "job": "every-3s"}

        # a manual trigger runs it now and leaves the schedule as it was
        response = alice.post(f"{CRON}/every-3s/trigger")
        assert response.json()["message"] == "Job every-3s triggered successfully"
        manual = Execution.objects.get(pk=response.json()["execution_id"])
        wait_for(lambda: Execution.objects.get(pk=manual.pk).status == "success", message="the triggered run")
        assert Execution.objects.get(pk=manual.pk).trigger == "api"
        assert alice.get(f"{CRON}/every-3s").json()["job"]["schedule"] == "3s"

        # pause: next_run_time is null and no further calls arrive
        assert alice.post(f"{CRON}/every-3s/pause").status_code == 200
        job = alice.get(f"{CRON}/every-3s").json()["job"]
        assert (job["paused"], job["next_run_time"]) == (True, None)
        time.sleep(2)  # a run already sent may still land
        settled = texts(hook, "three seconds")
        time.sleep(4)  # more than an interval
        assert texts(hook, "three seconds") == settled

        # resume: it fires again
        assert alice.post(f"{CRON}/every-3s/resume").status_code == 200
        assert alice.get(f"{CRON}/every-3s").json()["job"]["next_run_time"] is not None
        wait_for(lambda: texts(hook, "three seconds") > settled, timeout=25, message="a call after resume")

        # replace by re-posting the job_id: one job, one beat entry, the new input on the next fires
        job_pk = Job.objects.get(config__job_id="every-3s").pk
        response = alice.post(f"{CRON}/interval", {**base, "job_id": "every-3s", "input": "replaced input",
                                                   "seconds": 3}, format="json")
        assert response.json()["job"]["input_text"] == "replaced input"
        assert list(Job.objects.filter(config__job_id="every-3s").values_list("pk", flat=True)) == [job_pk]
        assert PeriodicTask.objects.filter(name=f"job:{job_pk}").count() == 1
        wait_for(lambda: texts(hook, "replaced input") >= 1, timeout=25, message="a call with the new input")

        # the cron job fires at the minute
        remaining = max(5.0, 75 - (time.monotonic() - cron_created))
        wait_for(lambda: texts(hook, "every minute") >= 1, timeout=remaining, message="the cron job's call")
        wait_for(lambda: scheduled_successes("minutely"), timeout=15, message="the cron job's scheduled success")

        # a second user gets 403 on every one of them
        for job_id in ("every-3s", "minutely"):
            for method, suffix in (("get", ""), ("post", "/trigger"), ("post", "/pause"), ("post", "/resume"),
                                   ("delete", ""), ("get", "/executions")):
                response = getattr(bob, method)(f"{CRON}/{job_id}{suffix}")
                assert response.status_code == 403, (method, suffix, response.json())
        assert Job.objects.get(config__job_id="every-3s").is_schedulable

        # delete: the jobs and their beat entries are gone, and nothing fires any more
        history = alice.get(f"{CRON}/every-3s/executions").json()
        assert history["total_executions"] >= 3
        task_names = [f"job:{pk}" for pk in Job.objects.filter(kind="workflow").values_list("pk", flat=True)]
        for job_id in ("every-3s", "minutely"):
            response = alice.delete(f"{CRON}/{job_id}")
            assert response.json()["message"] == f"Job {job_id} deleted successfully"
        assert not PeriodicTask.objects.filter(name__in=task_names).exists()
        assert alice.get(CRON).json()["total_jobs"] == 0
        time.sleep(2)
        settled = texts(hook, "replaced input")
        time.sleep(4)
        assert texts(hook, "replaced input") == settled
    finally:
        beat.terminate()
        beat.wait(timeout=15)


def test_a_run_shows_its_steps_live_is_cancelled_and_rerun_from_where_it_stopped(wf_worker, hook):
    alice = bearer(supabase_token(ALICE_SUB, "alice@example.com"))
    steps = [
        {"name": "notify", "type": "http", "method": "POST", "url": hook.url("/hook"), "body": {"text": "${input}"}},
        {"name": "wait", "type": "delay", "seconds": 2},
        {"name": "record", "type": "task", "task_name": "tests.echo", "kwargs": {"reply": "${steps.notify.output.body.received}"}},
    ]
    assert alice.post(WORKFLOWS, {"id": "slow-flow", "name": "Slow", "steps": steps}, format="json").status_code == 201
    body = {"job_id": "slow", "workflow_id": "slow-flow", "user_id": ALICE_SUB, "input": "live", "cron_expression": "0 9 * * *"}
    assert alice.post(f"{CRON}/cron", body, format="json").status_code == 200

    # while it runs, the run shows the first step done and the delay running
    execution_id = alice.post(f"{CRON}/slow/trigger").json()["execution_id"]

    def live():
        run = alice.get(f"{RUNS}/{execution_id}").json()
        return run if [s["status"] for s in run["steps"]] == ["success", "running", "pending"] else None

    run = wait_for(live, timeout=20, message="the delay step running")
    assert run["status"] == "running" and run["steps"][0]["output"]["body"]["received"] == "live"
    # cancel: recorded at once, and the rest never runs
    response = alice.post(f"{RUNS}/{execution_id}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    time.sleep(3)  # past the end of the delay: the last step would have run by now
    run = alice.get(f"{RUNS}/{execution_id}").json()
    assert run["status"] == "cancelled" and run["steps"][2]["status"] == "pending"
    hooks = texts(hook, "live")

    # re-run from where it stopped: the delay and the last step run, the first is reused
    response = alice.post(f"{RUNS}/{execution_id}/rerun")
    assert response.status_code == 202, response.json()
    rerun_id = response.json()["execution_id"]
    wait_for(lambda: Execution.objects.get(pk=rerun_id).status == "success", timeout=30, message="the re-run")
    rerun = alice.get(f"{RUNS}/{rerun_id}").json()
    assert [s["status"] for s in rerun["steps"]] == ["reused", "success", "success"]
    assert rerun["steps"][2]["output"]["result"]["kwargs"] == {"reply": "live"}
    assert texts(hook, "live") == hooks
    # and the general executions API shows the same runs
    assert {e["id"] for e in alice.get(f"{CRON}/slow/executions").json()["executions"]} == {execution_id, rerun_id}
