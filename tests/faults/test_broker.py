"""A Redis restart neither stops the worker nor leaves a run ``queued`` forever.
Real Redis (the test's own, killed and started again on the same port and data
directory), real worker."""
import signal
import threading
import time

import pytest

from jobsite.exceptions import ApplicationError
from scheduling import broker, services
from scheduling.models import Execution
from scheduling.services import sending
from tests.factories import JobFactory
from tests.faults.support import own_redis, wait_for  # noqa: F401  (fixture)
from tests.worker import start_worker_process

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TERMINAL = set(Execution.FINISHED_STATUSES)


@pytest.fixture
def fault_worker(own_redis):
    worker = start_worker_process(concurrency=4, hostname="brokerfault@%h", extra_env=own_redis.env())
    try:
        yield worker
    finally:
        worker.stop()


def test_the_kombu_collect_patch_is_applied():
    from kombu.connection import Connection

    import scheduling.tasks  # noqa: F401  (applies it, as in every worker)

    assert getattr(Connection.collect, "jobsite_patched", False)


@pytest.mark.parametrize("kill_signal", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_redis_restart_mid_burst_loses_no_run_and_runs_none_twice(own_redis, fault_worker, settings, kill_signal):
    settings.JOBS_QUEUED_STALE_SECONDS = 10
    job = JobFactory(task_name="tests.sleep", task_kwargs={"seconds": 0.05}, overlap_policy="allow")
    down = threading.Event()

    def restart_redis():
        own_redis.kill(kill_signal)
        down.set()
        time.sleep(5)
        own_redis.start()
        down.clear()

    # given a burst of 200 triggers, with Redis restarted (5 s down) in the middle of it
    restarter = threading.Timer(1.0, restart_redis)
    restarter.start()
    refused = 0
    for _ in range(200):
        try:
            services.job_execute(job=job, actor_label="burst")
        except ApplicationError as exc:  # 503 while Redis is down: not accepted, and recorded as such
            assert exc.status == 503
            refused += 1
        time.sleep(0.03)
    restarter.join()
    back_at = time.monotonic()
    assert fault_worker.is_alive(), fault_worker.log()[-3000:]

    # when the stale-queued sweep runs (beat runs it every JOBS_STALE_QUEUED_SWEEP_SECONDS)
    accepted = Execution.objects.filter(job=job).exclude(output="Not queued: broker unreachable")
    resent = 0

    def all_terminal():
        nonlocal resent
        if accepted.exclude(status__in=TERMINAL).exists():
            resent += services.executions_resend_stale_queued()
            return False
        return True

    wait_for(all_terminal, timeout=60, interval=2, message="every accepted run to finish")
    elapsed = time.monotonic() - back_at

    # then every accepted run succeeded exactly once: no retries, none lost
    statuses = list(accepted.values_list("status", flat=True))
    assert len(statuses) == 200 - refused
    assert set(statuses) == {"success"}, {s: statuses.count(s) for s in set(statuses)}
    assert Execution.objects.filter(job=job).count() == 200  # no retry rows: nothing ran twice or was lost
    assert "marked lost" not in fault_worker.log()
    assert fault_worker.is_alive()
    print(f"\n{kill_signal.name}: {200 - refused} accepted, {refused} refused (503), {resent} sent again, "
          f"all finished {elapsed:.1f}s after Redis was back")


def test_the_sweep_leaves_a_message_that_is_on_its_way_alone(own_redis, settings):
    # no worker: the message waits in its queue, which is "on its way"
    settings.JOBS_QUEUED_STALE_SECONDS = 0
    job = JobFactory(task_name="tests.echo")
    execution = services.job_execute(job=job)
    view = broker.broker_view(fresh_seconds=0)
    assert execution.celery_task_id in view.waiting
    assert services.executions_resend_stale_queued() == 0


def test_the_sweep_resends_a_lost_message_under_the_same_task_id(own_redis, settings):
    # given a queued execution whose message the broker lost
    settings.JOBS_QUEUED_STALE_SECONDS = 0
    job = JobFactory(task_name="tests.echo")
    execution = services.job_execute(job=job)
    client = broker.broker_client()
    assert execution.celery_task_id in broker.broker_view(fresh_seconds=0).waiting
    client.delete(*(f"{queue}{broker.PRIORITY_SEPARATOR}{step}" if step else queue
                    for queue in settings.JOBS_QUEUES for step in broker.PRIORITY_STEPS))
    assert not broker.broker_view(fresh_seconds=0).on_its_way(execution.celery_task_id)
    # when the sweep runs, then it is sent again, once, under the same id
    assert services.executions_resend_stale_queued() == 1
    assert execution.celery_task_id in broker.broker_view(fresh_seconds=0).waiting
    assert services.executions_resend_stale_queued() == 0


def test_a_resent_copy_of_a_run_that_got_through_does_nothing(own_redis, fault_worker, settings):
    job = JobFactory(task_name="tests.echo")
    execution = services.job_execute(job=job)
    wait_for(lambda: Execution.objects.get(pk=execution.pk).status == "success", message="success")
    from scheduling.tasks import run_execution

    run_execution.apply_async(args=[execution.pk], kwargs={"resent": True}, task_id=execution.celery_task_id)
    wait_for(lambda: "resent" in fault_worker.log() or fault_worker.log().count(execution.celery_task_id) >= 4,
             timeout=10, message="the copy to be handled")
    time.sleep(0.5)
    execution.refresh_from_db()
    assert execution.status == "success"
    assert Execution.objects.filter(job=job).count() == 1


def _queued_runs(jobs, count):
    """``count`` queued executions spread over ``jobs``, committed, unsent."""
    import uuid

    executions = [Execution.objects.create(job=jobs[n % len(jobs)], status="queued", trigger="schedule",
                                           celery_task_id=str(uuid.uuid4())) for n in range(count)]
    return [(execution, execution.job) for execution in executions]


def test_a_burst_goes_out_in_batches_and_every_message_is_whole(own_redis, settings, monkeypatch):
    from celery import current_app
    from django.db import transaction

    # given 1,200 runs of jobs on two queues, sent together (as beat sends a minute's burst)
    monkeypatch.setattr(sending, "SEND_BATCH", 500)  # three pipelined batches: 500, 500, 200
    jobs = [JobFactory(task_name="tests.echo", queue="default"), JobFactory(task_name="tests.echo", queue="maintenance")]
    pairs = _queued_runs(jobs, 1200)
    with transaction.atomic():
        services.executions_send(pairs)
    # then each is in its job's queue under its own task id, with its own argument
    client = broker.broker_client()
    assert broker.broker_view(fresh_seconds=0, client=client).waiting == {e.celery_task_id for e, _ in pairs}
    import json

    for queue, job in (("default", jobs[0]), ("maintenance", jobs[1])):
        raw = [json.loads(item) for key in client.keys(f"{queue}*") for item in client.lrange(key, 0, -1)]
        assert len(raw) == 600
        mine = {e.celery_task_id: e.pk for e, j in pairs if j == job}
        for message in raw:
            headers = message["headers"]
            assert headers["task"] == "scheduling.run_execution"
            assert headers["argsrepr"] == f"[{mine[headers['id']]}]"
        # declared (once) for the lot: bound to its exchange (kombu keeps one set per exchange)
        exchange = current_app.amqp.queues[queue].exchange.name
        assert any(member.decode().endswith(f"\x06\x16{queue}") for member in client.smembers(f"_kombu.binding.{exchange}"))
    assert not Execution.objects.exclude(status="queued").exists()


def test_a_burst_sent_while_the_broker_is_down_leaves_no_run_queued(own_redis, settings):
    jobs = [JobFactory(task_name="tests.echo", overlap_policy="allow")]
    pairs = _queued_runs(jobs, 120)
    own_redis.kill()
    from django.db import transaction

    with transaction.atomic():
        services.executions_send(pairs)  # no exception: beat carries on; the runs say why they did not run
    statuses = set(Execution.objects.filter(job=jobs[0]).values_list("status", "output"))
    assert statuses == {("error", "Not queued: broker unreachable")}
