"""A workflow run's record tells the truth: a run that ends during a step
(cancel, lost worker, hard time limit) closes that step, and a re-run's
answer says where it resumes. The cancel case runs on the session's real
worker: the cancel terminates the pool process in the middle of a delay step."""
from __future__ import annotations

import pytest
from django.utils import timezone

from scheduling import services as core_services
from scheduling.models import Execution, Job
from scheduling.workflows.receivers import workflow_result_closed
from tests.worker import pid_alive, wait_for
from tests.workflows.test_workflows import (  # noqa: F401  (alice, server: fixtures)
    CRON,
    RUNS,
    WORKFLOWS,
    alice,
    run_in_process,
    schedule,
    server,
)

SLOW_STEPS = [
    {"name": "first", "type": "delay", "seconds": 0},
    {"name": "wait", "type": "delay", "seconds": 30},
    {"name": "last", "type": "delay", "seconds": 0},
]


def statuses(run: dict) -> list[str]:
    return [step["status"] for step in run["steps"]]


@pytest.mark.django_db
def test_a_reruns_answer_says_the_step_it_resumes_from(alice, server):
    # given a run that failed at its second step
    server.httpd.failing.set()
    schedule(alice, server, [
        {"name": "first", "type": "http", "url": server.url("/hook"), "method": "POST", "body": {"text": "${input}"}},
        {"name": "flaky", "type": "http", "url": server.url("/fail")},
        {"name": "last", "type": "task", "task_name": "tests.echo"},
    ])
    response = alice.post(f"{CRON}/daily-video-generation/trigger")
    failed = run_in_process(Execution.objects.get(pk=response.json()["execution_id"]))
    assert failed.status == "failed"
    server.httpd.failing.clear()
    # when it is re-run, the 202 (the run still queued) already says where it resumes
    response = alice.post(f"{RUNS}/{failed.pk}/rerun")
    assert response.status_code == 202, response.json()
    answer = response.json()
    assert (answer["status"], answer["resume_from"], answer["resumed_from_execution"], answer["input"]) == (
        "queued", 1, failed.pk, "Generate video about tech news")
    assert alice.get(f"{RUNS}/{answer['execution_id']}").json()["resume_from"] == 1
    # and the run agrees once it has run
    rerun = run_in_process(Execution.objects.get(pk=answer["execution_id"]))
    assert rerun.status == "success" and rerun.result["resume_from"] == 1
    assert statuses(rerun.result) == ["reused", "success", "success"]
    assert alice.get(f"{RUNS}/{rerun.pk}").json()["resume_from"] == 1
    # a first run says it starts at the beginning
    assert alice.get(f"{RUNS}/{failed.pk}").json()["resume_from"] == 0


def running_result(started_at: str) -> dict:
    steps = [{"index": i, "name": s["name"], "type": "delay", "status": status, "started_at": None,
              "finished_at": None, "duration_seconds": None, "attempts": 0, "output": None, "error": ""}
             for i, (s, status) in enumerate(zip(SLOW_STEPS, ["success", "running", "pending"]))]
    steps[1]["started_at"] = started_at
    return {"workflow_id": "video-automation-workflow", "status": "running", "failed_step": None, "steps": steps}


@pytest.mark.parametrize(("run_status", "step_status", "failed_step"), [
    ("cancelled", "cancelled", None), ("timeout", "timeout", "wait"), ("error", "failed", "wait"),
    ("failed", "failed", "wait"),
])
def test_the_open_step_is_closed_with_the_runs_outcome(run_status, step_status, failed_step):
    started = timezone.now()
    ended = started + timezone.timedelta(seconds=2.5)
    closed = workflow_result_closed(running_result(started.isoformat()), status=run_status, at=ended,
                                    reason="Cancelled by alice")
    assert statuses(closed) == ["success", step_status, "pending"]
    assert (closed["status"], closed["failed_step"]) == (run_status, failed_step)
    wait = closed["steps"][1]
    assert (wait["finished_at"], wait["duration_seconds"], wait["error"]) == (ended.isoformat(), 2.5, "Cancelled by alice")
    # a record with no open step is left as it is
    assert workflow_result_closed(closed, status=run_status, at=ended, reason="") is None
    assert workflow_result_closed({"steps": "odd"}, status=run_status, at=ended, reason="") is None


@pytest.mark.django_db
def test_a_lost_run_closes_its_open_step(alice, server, django_capture_on_commit_callbacks):
    # given a run recorded as in its second step by a worker that then died
    schedule(alice, server, SLOW_STEPS)
    execution = core_services.job_execute(job=Job.objects.get(kind="workflow"), force=True)
    Execution.objects.filter(pk=execution.pk).update(status="running", started_at=timezone.now(), worker="gone pid 1",
                                                     result=running_result(timezone.now().isoformat()))
    # when the run is found lost
    with django_capture_on_commit_callbacks(execute=True):
        core_services.execution_mark_lost(execution=execution, reason="worker died")
    # then its open step is closed, and a re-run would start there
    run = alice.get(f"{RUNS}/{execution.pk}").json()
    assert (run["status"], statuses(run), run["failed_step"]) == ("error", ["success", "failed", "pending"], "wait")
    assert run["steps"][1]["error"] == "Lost: worker died"


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_run_cancelled_during_a_step_records_that_step_cancelled(celery_worker_process, alice, server):
    # given a run on the real worker, in its 30 s delay step
    schedule(alice, server, SLOW_STEPS)
    execution_id = alice.post(f"{CRON}/daily-video-generation/trigger").json()["execution_id"]

    def in_the_delay():
        run = alice.get(f"{RUNS}/{execution_id}").json()
        return run if statuses(run) == ["success", "running", "pending"] else None

    wait_for(in_the_delay, timeout=30, message="the delay step running on the worker")
    pid = int(Execution.objects.get(pk=execution_id).worker.rsplit("pid ", 1)[1])
    # when it is cancelled
    response = alice.post(f"{RUNS}/{execution_id}/cancel")
    # then the answer and the record close the step as cancelled, and the rest never runs
    assert response.status_code == 200, response.json()
    assert (response.json()["status"], statuses(response.json())) == ("cancelled", ["success", "cancelled", "pending"])
    wait_for(lambda: not pid_alive(pid), timeout=15, message="the pool process to be terminated")
    run = alice.get(f"{RUNS}/{execution_id}").json()
    assert (run["status"], statuses(run)) == ("cancelled", ["success", "cancelled", "pending"])
    wait = run["steps"][1]
    assert wait["finished_at"] and wait["duration_seconds"] >= 0 and wait["error"].startswith("Cancelled by")

    # and a re-run (the delay shortened meanwhile) resumes from the cancelled step, as its answer says
    steps = [dict(SLOW_STEPS[0]), {**SLOW_STEPS[1], "seconds": 0.1}, dict(SLOW_STEPS[2])]
    assert alice.patch(f"{WORKFLOWS}video-automation-workflow", {"steps": steps}, format="json").status_code == 200
    response = alice.post(f"{RUNS}/{execution_id}/rerun")
    assert response.status_code == 202, response.json()
    assert (response.json()["resume_from"], response.json()["resumed_from_execution"]) == (1, execution_id)
    rerun_id = response.json()["execution_id"]
    wait_for(lambda: Execution.objects.get(pk=rerun_id).status == "success", timeout=30, message="the re-run")
    assert statuses(alice.get(f"{RUNS}/{rerun_id}").json()) == ["reused", "success", "success"]
