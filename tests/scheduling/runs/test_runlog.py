"""A failed run keeps its traceback and its log lines, size-capped and with the
job's secrets redacted (scheduling/runlog.py), in the API as in the database."""
import logging
import threading
import time

import pytest

from scheduling import runlog, services
from scheduling.executors import schedulable
from scheduling.executors.base import RunResult
from scheduling.models import Execution
from tests.factories import JobFactory

SECRET = "sk-live-Very-Secret-0042"
log = logging.getLogger("tests.runlog")


@schedulable("tests.runlog_fail", description="Logs, prints and fails, naming its secret (runlog test task).")
def fail_loudly(*, execution, secret="", lines=3, **kwargs):
    for n in range(int(lines)):
        log.info("step %s of the run, key=%s", n, secret)
    log.debug("debug lines are not kept")
    print(f"printed to stdout with https://user:{secret}@example.com/path?token=abc")
    log.warning("calling with headers {'Authorization': 'Bearer %s'}", secret)
    helper_thread = threading.Thread(target=lambda: log.info("from a helper thread"))
    helper_thread.start()
    helper_thread.join()
    raise RuntimeError(f"asked to fail with {secret}")


@schedulable("tests.runlog_ok", description="Logs a line and succeeds (runlog test task).")
def succeed(*, execution, **kwargs):
    log.info("all went well")
    return RunResult(output="ok")


def run_in_process(job, **override_kwargs) -> Execution:
    """The worker's code path (services.execution_run), called in this process."""
    execution = services.job_execute(job=job, override_kwargs=override_kwargs or None)
    services.execution_run(execution_id=execution.pk, task_id=execution.celery_task_id, worker="test")
    execution.refresh_from_db()
    return execution


@pytest.fixture
def failing_job(db):
    job = JobFactory(name="fails", task_name="tests.runlog_fail", task_kwargs={"secret": SECRET})
    services.job_set_secrets(job=job, secrets={"api_key": SECRET})
    return job


# -- redaction -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        (f"key={SECRET}", "key=***"),
        (f"quoted {SECRET.replace('-', '%2D')}", f"quoted {SECRET.replace('-', '%2D')}"),  # not its form
        ("GET https://bob:hunter22@api.example.com/x?api_key=abcd&page=2", "GET https://***@api.example.com/x?api_key=***&page=2"),
        ("{'Authorization': 'Bearer abc.def.ghi'}", "{'Authorization': '***'}"),
        ("X-Api-Key: 12345678", "X-Api-Key: ***"),
        ("sent Bearer eyJhbGciOiJIUzI1NiJ9.payload", "sent Bearer ***"),
        ("nothing secret here", "nothing secret here"),
    ],
)
def test_redact(text, expected):
    assert runlog.redact(text, [SECRET, "ab"]) == expected


def test_short_secret_values_are_not_searched_for():
    assert runlog.redact("a cab", ["ab"]) == "a cab"


def test_log_keeps_head_and_tail_within_the_cap():
    text = runlog._BoundedText(1000)
    for n in range(500):
        text.add(f"line {n:04d}\n")
    kept = text.text()
    assert len(kept) <= 1000 + 60
    assert kept.startswith("line 0000\n") and kept.endswith("line 0499\n")
    assert "characters cut" in kept


def test_tail_keeps_the_end():
    assert runlog.tail("x" * 50 + "END", 10).endswith("x" * 7 + "END")
    assert runlog.tail("short", 10) == "short"


# -- execution_run ---------------------------------------------------------------------------
@pytest.mark.django_db
def test_failed_run_stores_redacted_traceback_and_log(failing_job):
    execution = run_in_process(failing_job)
    assert execution.status == "failed"
    assert 'raise RuntimeError(f"asked to fail with {secret}")' in execution.traceback
    assert execution.traceback.rstrip().endswith("RuntimeError: asked to fail with ***")
    assert "step 0 of the run, key=***" in execution.log and "step 2 of the run" in execution.log
    assert "printed to stdout with https://***@example.com/path?token=***" in execution.log
    assert "'Authorization': '***'" in execution.log
    assert "from a helper thread" in execution.log  # one capture open: every thread's lines are its own
    assert "debug lines are not kept" not in execution.log
    assert " INFO tests.runlog: step 0" in execution.log  # time, level and logger on each line
    assert execution.error == "RuntimeError: asked to fail with ***"
    for field in ("traceback", "log", "error", "output"):
        assert SECRET not in getattr(execution, field), field


@pytest.mark.django_db
def test_a_successful_run_keeps_its_log_and_no_traceback(db):
    job = JobFactory(name="fine", task_name="tests.runlog_ok")
    execution = run_in_process(job)
    assert execution.status == "success"
    assert "all went well" in execution.log and execution.traceback == ""


@pytest.mark.django_db
def test_traceback_and_log_are_size_capped(failing_job):
    execution = run_in_process(failing_job, lines=20000)
    assert len(execution.log) <= runlog.LOG_MAX_CHARS + 100
    assert "step 0 of the run" in execution.log and "asked to fail" not in execution.log
    assert "characters cut" in execution.log
    assert len(execution.traceback) <= runlog.TRACEBACK_MAX_CHARS + 100


@pytest.mark.django_db
def test_the_handler_is_gone_after_the_run(failing_job):
    run_in_process(failing_job)
    assert runlog._handler not in logging.getLogger().handlers
    assert not runlog._captures
    import sys
    assert not isinstance(sys.stdout, runlog._Tee) and not isinstance(sys.stderr, runlog._Tee)


@pytest.mark.django_db
def test_the_log_is_written_while_the_run_goes_on(db):
    job = JobFactory(name="long", task_name="tests.runlog_ok")
    execution = services.job_execute(job=job)
    Execution.objects.filter(pk=execution.pk).update(status=Execution.Status.RUNNING)
    with runlog.RunCapture(execution_id=execution.pk, flush_interval=0.0):
        log.info("first line")
        execution.refresh_from_db()
        assert "first line" in execution.log


@pytest.mark.django_db
def test_api_shows_traceback_and_log(failing_job, admin_api):
    execution = run_in_process(failing_job)
    body = admin_api.get(f"/api/v1/executions/{execution.pk}").json()
    assert "RuntimeError: asked to fail with ***" in body["traceback"]
    assert "step 0 of the run, key=***" in body["log"]
    assert SECRET not in str(body)


# -- through a real worker -------------------------------------------------------------------
@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_worker_stores_traceback_and_log_of_demo_sleep(celery_worker_process):
    job = JobFactory(name="demo-fails", task_name="demo.sleep",
                     task_kwargs={"seconds": 1.2, "fail": True, "message": f"failing with {SECRET}"})
    services.job_set_secrets(job=job, secrets={"token": SECRET})
    execution = services.job_execute(job=job)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        execution.refresh_from_db()
        if execution.status not in Execution.ACTIVE_STATUSES:
            break
        time.sleep(0.1)
    assert execution.status == "failed", execution.error
    assert "scheduling/maintenance/demo.py" in execution.traceback
    assert "RuntimeError: failing with ***" in execution.traceback
    assert "demo.sleep: sleeping 1.2s then failing" in execution.log
    assert "demo.sleep: 1 of 1.2s" in execution.log
    assert execution.result["seconds"] == 1.2  # progress recorded as it went
    assert all(SECRET not in getattr(execution, f) for f in ("traceback", "log", "error", "output"))
    assert SECRET not in celery_worker_process.log()
