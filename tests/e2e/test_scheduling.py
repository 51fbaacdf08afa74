"""End-to-end through the real Redis broker and real Celery worker processes:
what only they can show — execution, timeouts, revoke/terminate, kill -9, beat."""
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from scheduling import services
from scheduling.models import Execution
from tests.factories import JobFactory
from tests.worker import pid_alive, start_worker_process, wait_for, worker_env

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def status_of(execution):
    execution.refresh_from_db()
    return execution.status


def worker_pid(execution) -> int:
    execution.refresh_from_db()
    return int(execution.worker.rsplit("pid ", 1)[1])


def test_manual_execution_runs_on_the_worker(celery_worker_process):
    job = JobFactory(task_kwargs={"greeting": "hello"})
    execution = services.job_execute(job=job, override_kwargs={"who": "world"})
    wait_for(lambda: status_of(execution) == "success", message="success")
    assert execution.result["kwargs"] == {"greeting": "hello", "who": "world"}
    assert execution.worker.startswith(celery_worker_process.nodename)
    assert execution.started_at <= execution.completed_at
    job.refresh_from_db()
    assert (job.total_runs, job.successful_runs, job.last_status) == (1, 1, "success")


def test_soft_time_limit_records_timeout(celery_worker_process):
    job = JobFactory(task_name="tests.sleep", task_kwargs={"seconds": 10}, timeout_seconds=1)
    execution = services.job_execute(job=job)
    wait_for(lambda: status_of(execution) == "timeout", timeout=15, message="timeout")
    assert "timeout of 1 seconds" in execution.error
    assert 0.9 <= execution.duration_seconds < 5


def test_hard_time_limit_kills_a_run_that_ignores_the_soft_one(celery_worker_process, settings):
    settings.JOBS_HARD_TIMEOUT_GRACE_SECONDS = 1
    job = JobFactory(task_name="tests.stubborn", task_kwargs={"seconds": 30}, timeout_seconds=1)
    execution = services.job_execute(job=job)
    wait_for(lambda: status_of(execution) == "running", message="running")
    pid = worker_pid(execution)
    wait_for(lambda: status_of(execution) == "timeout", timeout=15, message="hard timeout")
    assert "hard limit of 2 seconds" in execution.error
    wait_for(lambda: not pid_alive(pid), timeout=10, message=f"pool process {pid} to be killed")
    job.refresh_from_db()
    assert (job.failed_runs, job.last_status) == (1, "timeout")


def test_cancel_terminates_a_running_execution(celery_worker_process):
    job = JobFactory(task_name="tests.sleep", task_kwargs={"seconds": 30})
    execution = services.job_execute(job=job)
    wait_for(lambda: status_of(execution) == "running", message="running")
    pid = worker_pid(execution)
    services.execution_cancel(execution=execution, actor_label="test")
    # the pool process running it is terminated by the revoke (and replaced)
    wait_for(lambda: not pid_alive(pid), timeout=10, message=f"pool process {pid} to be terminated")
    assert status_of(execution) == "cancelled"
    # and the worker goes on serving
    follow_up = services.job_execute(job=JobFactory(), trigger="api")
    wait_for(lambda: status_of(follow_up) == "success", message="follow-up success")
    assert status_of(execution) == "cancelled"


def test_cancelled_queued_execution_does_not_start_later(celery_worker_process):
    # given a retry waiting out its backoff in the worker (an ETA message)
    job = JobFactory(task_name="tests.fail", max_retries=1, retry_backoff_seconds=3)
    first = services.job_execute(job=job)
    wait_for(lambda: status_of(first) == "failed", message="first attempt failed")
    retry = Execution.objects.get(retry_of=first)
    assert retry.status == "queued"
    # when it is cancelled before its time comes
    services.execution_cancel(execution=retry, actor_label="test")
    time.sleep(4.5)
    # then it never starts
    retry.refresh_from_db()
    assert retry.status == "cancelled" and retry.started_at is None


def test_sigkill_of_the_pool_process_is_recovered_and_retried(celery_worker_process):
    job = JobFactory(task_name="tests.sleep", task_kwargs={"seconds": 3}, max_retries=1, retry_backoff_seconds=1)
    execution = services.job_execute(job=job)
    wait_for(lambda: status_of(execution) == "running", message="running")
    os.kill(worker_pid(execution), signal.SIGKILL)
    wait_for(lambda: status_of(execution) == "error", timeout=20, message="lost execution marked error")
    assert "Lost:" in execution.error
    retry = wait_for(lambda: Execution.objects.filter(retry_of=execution).first(), message="retry")
    wait_for(lambda: status_of(retry) == "success", timeout=30, message="retry success")
    assert retry.attempt == 2


def test_sigkill_of_the_whole_worker_is_reaped_when_it_restarts(transactional_db, settings):
    # a queue only this worker consumes (the session worker serves the standard ones)
    settings.JOBS_QUEUES = [*settings.JOBS_QUEUES, "crashtest"]
    worker = start_worker_process(hostname="crashy@%h", queues=["crashtest"], concurrency=1)
    try:
        job = JobFactory(task_name="tests.sleep", task_kwargs={"seconds": 60}, queue="crashtest")
        execution = services.job_execute(job=job)
        wait_for(lambda: status_of(execution) == "running", message="running")
        os.killpg(worker.pid, signal.SIGKILL)  # main process and pool, no chance to report
        worker.process.wait(timeout=10)
        assert status_of(execution) == "running"  # nothing could record it
    finally:
        worker.stop()
    restarted = start_worker_process(hostname="crashy@%h", queues=["crashtest"], concurrency=1)
    try:
        wait_for(lambda: status_of(execution) == "error", timeout=30, message="reaped on restart")
        assert "restarted" in execution.error
    finally:
        restarted.stop()


def test_beat_fires_interval_job_and_pause_stops_it(celery_worker_process):
    job = JobFactory(schedule_type="interval", schedule_expression="2s")
    schedule_file = os.path.join(tempfile.mkdtemp(), "beat-schedule")
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "jobsite", "beat", "--loglevel", "info",
         "--max-interval", "1", "-s", schedule_file],
        env=worker_env(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        scheduled = Execution.objects.filter(job=job, trigger="schedule", status="success")
        wait_for(lambda: scheduled.count() >= 2, timeout=30, message="two scheduled runs")
        services.job_pause(job=job)
        time.sleep(1.5)  # a run already sent may still land
        settled = Execution.objects.filter(job=job).count()
        time.sleep(5)
        assert Execution.objects.filter(job=job).count() == settled
    finally:
        beat.terminate()
        beat.wait(timeout=15)


def test_a_pool_process_runs_with_its_start_up_heap_frozen(celery_worker_process):
    # jobsite/heap.py: the worker froze its start-up objects before forking, and the
    # pool process its own after starting: the collector's full passes skip them all
    job = JobFactory(task_name="tests.heap")
    execution = services.job_execute(job=job)
    wait_for(lambda: status_of(execution) == "success", message="success")
    assert execution.result["pid"] == worker_pid(execution)
    # Django, Celery, DRF and the apps: well over 100,000 objects on any install
    assert execution.result["frozen"] > 100_000
