"""Sending runs' messages: a burst's messages are Celery's own, made once per
send what is the same for all (scheduling.services.sending._Publisher).
Real Redis of the test's own, no worker on it: the raw messages are read back."""
import base64
import json
import uuid

import pytest
from django.db import transaction

from scheduling import broker, services
from scheduling.models import Execution, Job
from scheduling.services.sending import execution_task_options, run_execution_task
from tests.factories import JobFactory
from tests.faults.support import own_redis  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db(transaction=True)

#: What differs between two messages of two runs, and nothing else.
PER_MESSAGE = {"id", "root_id", "argsrepr", "correlation_id", "delivery_tag"}


def _queued(job) -> Execution:
    return Execution.objects.create(job=job, status="queued", trigger="schedule", celery_task_id=str(uuid.uuid4()))


def _raw_messages(queue: str) -> dict[str, dict]:
    client = broker.broker_client()
    raw = [json.loads(item) for key in client.keys(f"{queue}*") if not key.startswith(b"_kombu")
           for item in client.lrange(key, 0, -1)]
    return {message["headers"]["id"]: message for message in raw}


def _comparable(message: dict) -> dict:
    """The message without what is each run's own; its body decoded."""
    headers = {k: v for k, v in message["headers"].items() if k not in PER_MESSAGE}
    properties = {k: v for k, v in message["properties"].items() if k not in PER_MESSAGE}
    properties["delivery_info"] = dict(properties.get("delivery_info", {}))
    args, kwargs, embed = json.loads(base64.b64decode(message["body"]))
    return {"headers": headers, "properties": properties, "kwargs": kwargs, "embed": embed,
            "content": (message["content-type"], message["content-encoding"])}


@pytest.mark.parametrize("kind", [None, "bulk_prediction"], ids=["result-ignored", "result-kept"])
def test_a_sent_message_is_the_one_celery_would_send(own_redis, settings, kind):
    # given two queued runs of a job with its own queue, priority and time limit
    job = JobFactory(task_name="tests.echo", queue="maintenance", priority=7, timeout_seconds=90)
    if kind:  # a kind whose runs keep Celery's result (the message says so)
        Job.objects.filter(pk=job.pk).update(kind=kind)
        job.kind = kind
    ours, celerys = _queued(job), _queued(job)
    # when one is sent by executions_send and the other by Celery's apply_async with the same options
    with transaction.atomic():
        services.executions_send([(ours, job)])
    run_execution_task().apply_async(**execution_task_options(celerys, job))
    # then both are in the job's queue, each under its own task id with its own execution id
    messages = _raw_messages("maintenance")
    assert set(messages) == {ours.celery_task_id, celerys.celery_task_id}
    mine, theirs = messages[ours.celery_task_id], messages[celerys.celery_task_id]
    for execution, message in ((ours, mine), (celerys, theirs)):
        assert message["headers"]["root_id"] == message["properties"]["correlation_id"] == execution.celery_task_id
        assert message["headers"]["argsrepr"] == f"[{execution.pk}]"
        assert json.loads(base64.b64decode(message["body"]))[0] == [execution.pk]
        assert message["headers"]["timelimit"] == [90 + settings.JOBS_HARD_TIMEOUT_GRACE_SECONDS, 90]
        assert message["headers"]["ignore_result"] is (kind is None)
    # and nothing else tells them apart: the same headers, properties, priority, routing and body
    assert _comparable(mine) == _comparable(theirs)
    assert mine["properties"]["priority"] == theirs["properties"]["priority"]


def test_a_run_with_a_start_time_is_sent_with_its_eta(own_redis):
    from datetime import timedelta

    from django.utils import timezone

    # given a jittered job's scheduled run (its message carries its start time)
    job = JobFactory(task_name="tests.echo", queue="maintenance", jitter_seconds=30)
    execution = Execution.objects.create(job=job, status="queued", trigger="schedule", celery_task_id=str(uuid.uuid4()),
                                         scheduled_for=timezone.now().replace(microsecond=0) + timedelta(minutes=1))
    with transaction.atomic():
        services.executions_send([(execution, job)])
    message = _raw_messages("maintenance")[execution.celery_task_id]
    expected = execution_task_options(execution, job)["eta"]
    assert message["headers"]["eta"] == expected.isoformat()


def test_with_task_always_eager_a_run_is_run_here_not_sent(own_redis):
    from celery import current_app

    # given a project whose tests run Celery tasks eagerly
    job = JobFactory(task_name="tests.echo", queue="maintenance")
    execution = _queued(job)
    current_app.conf.task_always_eager = True
    try:
        with transaction.atomic():
            services.executions_send([(execution, job)])
    finally:
        current_app.conf.task_always_eager = False
    # then the run ran in this process, and no message waits in the broker
    execution.refresh_from_db()
    assert execution.status == "success"
    assert _raw_messages("maintenance") == {}
