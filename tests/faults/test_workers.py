"""A worker that dies and comes back under another hostname does not leave its runs
``running``: they are marked lost once its heartbeat is missing, and retried.
Real Redis, real workers, SIGKILL."""
import os
import signal
import time

import pytest

from scheduling import heartbeat, services
from scheduling.models import Execution
from tests.factories import JobFactory
from tests.faults.support import own_redis, wait_for  # noqa: F401  (fixture)
from tests.worker import pid_alive, start_worker_process

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FAST_HEARTBEAT = {"JOBS_WORKER_HEARTBEAT_SECONDS": "1"}


def status_of(execution):
    execution.refresh_from_db()
    return execution.status


def test_a_worker_killed_and_back_under_another_hostname_has_its_run_marked_lost_and_retried(own_redis, settings):
    settings.JOBS_WORKER_HEARTBEAT_TIMEOUT_SECONDS = 5
    env = {**own_redis.env(), **FAST_HEARTBEAT}
    job = JobFactory(task_name="tests.sleep", task_kwargs={"seconds": 8}, max_retries=1, retry_backoff_seconds=1,
                     timeout_seconds=3600)
    first = start_worker_process(concurrency=1, hostname="hb-first@%h", extra_env=env)
    second = None
    try:
        execution = services.job_execute(job=job)
        wait_for(lambda: status_of(execution) == "running", message="running on the first worker")
        assert execution.worker.startswith(first.nodename)
        assert first.nodename in heartbeat.ages()[0]
        # given the first worker killed with SIGKILL (main process and pool) ...
        pool = first.child_pids()
        os.killpg(first.pid, signal.SIGKILL)
        first.process.wait(timeout=10)
        wait_for(lambda: not any(pid_alive(pid) for pid in pool), message="pool processes gone")
        killed_at = time.monotonic()
        # ... and a worker back under another hostname (it reaps only its own name's runs)
        second = start_worker_process(concurrency=1, hostname="hb-second@%h", extra_env=env)
        assert status_of(execution) == "running"

        # when the lost-run sweep runs (beat: every JOBS_LOST_SWEEP_SECONDS)
        def swept():
            services.executions_reap_lost()
            return status_of(execution) != "running"

        wait_for(swept, timeout=30, interval=1, message="the run to be marked lost")
        found_after = time.monotonic() - killed_at

        # then it is an error that says why, found within the heartbeat timeout (+ a sweep), and retried
        assert execution.status == "error"
        assert f"worker {first.nodename} missed its heartbeat" in execution.error
        assert 5 <= found_after < 5 + 3 + 2
        retry = Execution.objects.get(retry_of=execution)
        wait_for(lambda: status_of(retry) == "running", timeout=20, message="the retry to run")
        assert retry.worker.startswith(second.nodename)
        # and a live worker's run that outlasts the heartbeat timeout is left alone
        for _ in range(3):
            time.sleep(2.5)
            services.executions_reap_lost()
            assert status_of(retry) in ("running", "success")
        wait_for(lambda: status_of(retry) == "success", timeout=20, message="the retry to succeed")
        print(f"\nrun of the SIGKILLed worker marked lost {found_after:.1f}s after the kill "
              f"(heartbeat timeout 5 s), retried on {second.nodename}")
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_no_heartbeat_entry_is_not_taken_for_a_dead_worker(own_redis, settings, db):
    # Redis lost its data (or the worker predates heartbeats): judged by the time limits only
    settings.JOBS_WORKER_HEARTBEAT_TIMEOUT_SECONDS = 1
    job = JobFactory(task_name="tests.sleep")
    execution = services.job_execute(job=job)
    Execution.objects.filter(pk=execution.pk).update(status="running", worker="gone@host pid 1",
                                                     started_at=execution.created_at)
    time.sleep(1.5)
    assert services.executions_reap_lost() == 0
    # with a stale entry, it is lost
    heartbeat.beat_once("gone@host")
    time.sleep(2.1)
    assert services.executions_reap_lost() == 1
    assert status_of(execution) == "error"
    assert "worker gone@host missed its heartbeat" in execution.error


def test_a_worker_that_shuts_down_cleanly_removes_its_heartbeat(own_redis):
    worker = start_worker_process(concurrency=1, hostname="hb-clean@%h", extra_env={**own_redis.env(), **FAST_HEARTBEAT})
    try:
        wait_for(lambda: worker.nodename in heartbeat.ages()[0], message="a heartbeat")
    finally:
        worker.stop()
    assert worker.nodename not in heartbeat.ages()[0]
