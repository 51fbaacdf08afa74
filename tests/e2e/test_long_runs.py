"""A run longer than the broker's visibility timeout runs once: Redis delivers
its message again while it runs, the copy finds the run going on with a live
worker and is dropped, and the run's own outcome is recorded. Real Redis (the
test's own, with a visibility timeout of a few seconds), real workers."""
import pytest

from scheduling import services
from scheduling.models import Execution
from tests.factories import JobFactory
from tests.faults.support import copies_dropped, own_redis, short_visibility_env, wait_for  # noqa: F401  (fixture)
from tests.worker import pid_alive, start_worker_process

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

VISIBILITY_SECONDS = 2
RUN_SECONDS = 3 * VISIBILITY_SECONDS + 1


def status_of(execution):
    execution.refresh_from_db()
    return execution.status


def long_job(**fields):
    return JobFactory(task_name="tests.sleep", task_kwargs={"seconds": RUN_SECONDS}, timeout_seconds=120,
                      max_retries=1, retry_backoff_seconds=1, **fields)


def test_a_run_longer_than_the_visibility_timeout_runs_once_and_its_success_is_recorded(own_redis):
    env = short_visibility_env(own_redis, VISIBILITY_SECONDS)
    # two workers of one process each: the copy can only go to the one not running the run
    first = start_worker_process(concurrency=1, hostname="long-a@%h", extra_env=env)
    second = start_worker_process(concurrency=1, hostname="long-b@%h", extra_env=env)
    try:
        job = long_job()
        execution = services.job_execute(job=job)
        wait_for(lambda: status_of(execution) == "running", message="running")
        runner, other = (first, second) if execution.worker.startswith(first.nodename) else (second, first)
        # the broker delivers the message again while it runs: the other worker drops the copy
        wait_for(lambda: copies_dropped(other), timeout=RUN_SECONDS, interval=0.2, message="the copy dropped")
        assert status_of(execution) == "running" and execution.worker.startswith(runner.nodename)
        wait_for(lambda: status_of(execution) != "running", timeout=RUN_SECONDS + 10, message="the run to end")
        # then it ran once, and its own success is what is recorded
        assert execution.status == "success", execution.error
        assert execution.output == f"slept {RUN_SECONDS}s" and execution.error == ""
        assert execution.duration_seconds >= RUN_SECONDS
        assert list(Execution.objects.filter(job=job).values_list("pk", flat=True)) == [execution.pk]
        job.refresh_from_db()
        assert (job.total_runs, job.successful_runs, job.failed_runs, job.last_status) == (1, 1, 0, "success")
        assert "Lost" not in runner.log() + other.log()
    finally:
        first.stop()
        second.stop()


def test_a_long_run_whose_copy_was_dropped_by_its_own_worker_is_still_cancelled(own_redis):
    # one worker of two processes: the copy goes to the same worker as the run
    worker = start_worker_process(concurrency=2, hostname="long-solo@%h",
                                  extra_env=short_visibility_env(own_redis, VISIBILITY_SECONDS))
    try:
        execution = services.job_execute(job=long_job())
        wait_for(lambda: status_of(execution) == "running", message="running")
        pid = int(execution.worker.rsplit("pid ", 1)[1])
        wait_for(lambda: copies_dropped(worker), timeout=RUN_SECONDS, interval=0.2, message="the copy dropped")
        # when it is cancelled
        services.execution_cancel(execution=execution, actor_label="test")
        # then the revoke still finds the process running it (not the copy's) and terminates it
        wait_for(lambda: not pid_alive(pid), timeout=10, message=f"pool process {pid} to be terminated")
        assert status_of(execution) == "cancelled"
        assert not Execution.objects.filter(retry_of=execution).exists()
    finally:
        worker.stop()
