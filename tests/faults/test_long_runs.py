"""A worker killed during a run longer than the broker's visibility timeout:
the run is marked lost and retried once per policy, whether the worker died
before its message came again (the copy finds its heartbeat stale) or after
the copy was dropped (no message is left; the lost-run sweep finds the run by
its heartbeat). Real Redis (the test's own), real workers, SIGKILL."""
import os
import signal

import pytest

from scheduling import heartbeat, services
from scheduling.models import Execution
from tests.factories import JobFactory
from tests.faults.support import copies_dropped, own_redis, short_visibility_env, wait_for  # noqa: F401  (fixture)
from tests.worker import pid_alive, start_worker_process

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

VISIBILITY_SECONDS = 2
RUN_SECONDS = 3 * VISIBILITY_SECONDS + 1
HEARTBEAT_TIMEOUT_SECONDS = 4  # workers beat every second (short_visibility_env): slack for a loaded machine


def status_of(execution):
    execution.refresh_from_db()
    return execution.status


def kill_whole(worker) -> None:
    """SIGKILL the worker's main process and pool: nothing of it can report."""
    pool = worker.child_pids()
    os.killpg(worker.pid, signal.SIGKILL)
    worker.process.wait(timeout=10)
    wait_for(lambda: not any(pid_alive(pid) for pid in pool), message="pool processes gone")


def assert_retried_once_and_succeeds(execution, worker) -> None:
    retries = Execution.objects.filter(retry_of=execution)
    assert retries.count() == 1
    retry = retries.get()
    wait_for(lambda: status_of(retry) == "success", timeout=RUN_SECONDS + 20, message="the retry to succeed")
    assert retry.attempt == 2 and retry.worker.startswith(worker.nodename)
    assert Execution.objects.filter(job=execution.job).count() == 2
    execution.job.refresh_from_db()
    assert (execution.job.total_runs, execution.job.successful_runs, execution.job.failed_runs) == (2, 1, 1)


@pytest.fixture
def long_run_env(own_redis, settings):
    settings.JOBS_WORKER_HEARTBEAT_TIMEOUT_SECONDS = HEARTBEAT_TIMEOUT_SECONDS
    return short_visibility_env(own_redis, VISIBILITY_SECONDS,
                                JOBS_WORKER_HEARTBEAT_TIMEOUT_SECONDS=HEARTBEAT_TIMEOUT_SECONDS)


def long_job():
    return JobFactory(task_name="tests.sleep", task_kwargs={"seconds": RUN_SECONDS}, timeout_seconds=120,
                      max_retries=1, retry_backoff_seconds=1)


def test_a_worker_killed_after_the_copy_of_its_long_run_was_dropped_has_the_run_swept_and_retried(long_run_env):
    # given a long run on one worker, whose message came again and was dropped by the other
    first = start_worker_process(concurrency=1, hostname="long-kill-a@%h", extra_env=long_run_env)
    second = start_worker_process(concurrency=1, hostname="long-kill-b@%h", extra_env=long_run_env)
    try:
        execution = services.job_execute(job=long_job())
        wait_for(lambda: status_of(execution) == "running", message="running")
        runner, other = (first, second) if execution.worker.startswith(first.nodename) else (second, first)
        wait_for(lambda: copies_dropped(other), timeout=RUN_SECONDS, interval=0.2, message="the copy dropped")
        # when the worker running it dies: no message of the run is left to come again
        kill_whole(runner)
        assert status_of(execution) == "running"

        # then the lost-run sweep (beat: every JOBS_LOST_SWEEP_SECONDS) finds it by its heartbeat
        def swept():
            services.executions_reap_lost()
            return status_of(execution) != "running"

        wait_for(swept, timeout=HEARTBEAT_TIMEOUT_SECONDS + 15, interval=0.5, message="the run to be marked lost")
        assert execution.status == "error"
        assert f"worker {runner.nodename} missed its heartbeat" in execution.error
        assert_retried_once_and_succeeds(execution, other)
    finally:
        first.stop()
        second.stop()


def test_a_worker_killed_before_its_long_runs_message_came_again_has_the_run_lost_by_the_copy(long_run_env):
    # given a long run whose worker is killed ...
    first = start_worker_process(concurrency=1, hostname="long-dead-a@%h", extra_env=long_run_env)
    second = None
    try:
        execution = services.job_execute(job=long_job())
        wait_for(lambda: status_of(execution) == "running", message="running")
        kill_whole(first)
        # ... and silent past the heartbeat timeout
        wait_for(lambda: heartbeat.is_stale(heartbeat.age_of(first.nodename)), timeout=HEARTBEAT_TIMEOUT_SECONDS + 10,
                 interval=0.2, message="a stale heartbeat")
        # when another worker gets its message again (no sweep runs here)
        second = start_worker_process(concurrency=2, hostname="long-dead-b@%h", extra_env=long_run_env)
        wait_for(lambda: status_of(execution) != "running", timeout=VISIBILITY_SECONDS + 15, message="the copy to come")
        # then the copy marks the run lost, and it is retried once
        assert execution.status == "error"
        assert f"worker {execution.worker} was lost mid-run; message redelivered (its heartbeat is" in execution.error
        assert_retried_once_and_succeeds(execution, second)
    finally:
        first.stop()
        if second is not None:
            second.stop()
