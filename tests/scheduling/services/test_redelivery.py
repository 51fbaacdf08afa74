"""A message delivered again while its run goes on (the broker's visibility
timeout) is dropped while the worker that claimed the run beats; a run whose
worker is dead is lost and retried. Real Redis (the heartbeats), the claim
called in this process as a worker calls it."""
import logging
import uuid
from datetime import timedelta

import pytest

from scheduling import heartbeat, services
from scheduling.models import Execution
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def hostname():
    """A worker hostname of this test's own in the shared heartbeat hash."""
    name = f"redelivery-{uuid.uuid4().hex[:8]}@h"
    yield name
    heartbeat.forget(name)


def claimed_by(worker: str, *, max_retries=1) -> Execution:
    execution = services.job_execute(job=JobFactory(max_retries=max_retries))
    services.execution_claim(execution_id=execution.pk, task_id=execution.celery_task_id, worker=worker)
    return execution


def redeliver(execution: Execution, *, to: str = "other@h pid 9") -> None:
    assert services.execution_claim(execution_id=execution.pk, task_id=execution.celery_task_id, worker=to) is None
    execution.refresh_from_db()


def beat_seconds_ago(hostname: str, seconds: int) -> None:
    """A heartbeat entry written ``seconds`` ago (by the Redis clock, as workers write it)."""
    client = heartbeat._client()
    now, _ = client.time()
    client.hset(heartbeat.HEARTBEATS_KEY, hostname, int(now) - seconds)


def test_a_copy_of_a_run_whose_worker_beats_is_dropped_and_the_run_goes_on(hostname, caplog):
    # given a run claimed by a worker that beats
    execution = claimed_by(f"{hostname} pid 7")
    heartbeat.beat_once(hostname)
    # when its message comes again (the visibility timeout passed)
    with caplog.at_level(logging.WARNING, logger="scheduling.services.lifecycle"):
        redeliver(execution)
    # then the run is untouched, nothing is retried, and the drop is logged
    assert execution.status == "running" and execution.worker == f"{hostname} pid 7"
    assert not Execution.objects.filter(retry_of=execution).exists()
    assert f"while it runs on {hostname} pid 7" in caplog.text and "this copy is dropped" in caplog.text
    # and its finish is recorded
    services.execution_finish(execution=execution, status="success", output="done")
    execution.refresh_from_db()
    assert execution.status == "success"
    execution.job.refresh_from_db()
    assert (execution.job.total_runs, execution.job.successful_runs, execution.job.failed_runs) == (1, 1, 0)


@pytest.mark.parametrize("age, status, retried", [(45, "running", False), (46, "error", True)])
def test_a_copy_marks_the_run_lost_once_its_worker_is_silent_past_the_heartbeat_timeout(
    hostname, settings, age, status, retried,
):
    settings.JOBS_WORKER_HEARTBEAT_TIMEOUT_SECONDS = 45
    execution = claimed_by(f"{hostname} pid 7")
    beat_seconds_ago(hostname, age)
    redeliver(execution)
    assert execution.status == status
    assert Execution.objects.filter(retry_of=execution, status="queued").exists() is retried
    if retried:
        assert (f"worker {hostname} pid 7 was lost mid-run; message redelivered (its heartbeat is {age} s old)"
                in execution.error)


def test_a_copy_of_a_run_whose_worker_has_no_heartbeat_marks_it_lost():
    # no entry at all: not a worker that beats (the claim of a process outside a worker)
    execution = claimed_by("never-beat@h pid 7")
    redeliver(execution)
    assert execution.status == "error" and "(it has no heartbeat)" in execution.error


def test_a_copy_whose_worker_heartbeat_cannot_be_read_marks_the_run_lost(settings):
    # nothing vouches for the run (a broker that keeps no heartbeats): as before heartbeats
    execution = claimed_by("w@h pid 7")
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    redeliver(execution)
    assert execution.status == "error" and "(its heartbeat is unreadable: ConnectionError)" in execution.error
    assert Execution.objects.filter(retry_of=execution).count() == 1


def test_a_dead_pool_process_is_lost_only_for_the_run_it_claimed():
    # given a run claimed by pool process 7 of a worker
    execution = claimed_by("main@h pid 7")
    # when the worker's main process sees another process die (a dropped copy's, say)
    assert services.execution_process_lost(execution_id=execution.pk, worker="main@h pid 8") is None
    execution.refresh_from_db()
    assert execution.status == "running"
    # then only the death of the process that runs it makes it lost, retried once
    assert services.execution_process_lost(execution_id=execution.pk, worker="main@h pid 7") is not None
    execution.refresh_from_db()
    assert execution.status == "error" and "worker process main@h pid 7 died mid-run" in execution.error
    assert Execution.objects.filter(retry_of=execution).count() == 1
    # and its message, put back by the worker, finds it no longer running
    redeliver(execution)
    assert execution.status == "error"
    assert Execution.objects.filter(job=execution.job).count() == 2


def test_a_run_whose_copy_was_dropped_is_swept_once_its_worker_stops_beating(hostname, settings):
    settings.JOBS_WORKER_HEARTBEAT_TIMEOUT_SECONDS = 45
    execution = claimed_by(f"{hostname} pid 7")
    heartbeat.beat_once(hostname)
    redeliver(execution)  # dropped: no message of the run is left in the broker
    assert services.executions_reap_lost() == 0
    # the worker dies: its heartbeat ages past the timeout
    Execution.objects.filter(pk=execution.pk).update(started_at=execution.started_at - timedelta(minutes=5))
    beat_seconds_ago(hostname, 46)
    assert services.executions_reap_lost() == 1
    execution.refresh_from_db()
    assert execution.status == "error" and f"worker {hostname} missed its heartbeat for 46 s" in execution.error
    assert Execution.objects.filter(retry_of=execution).count() == 1
