"""GET /metrics: Prometheus text, computed from the database and the broker,
behind METRICS_TOKEN."""
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from scheduling.models import Execution, Job
from tests.factories import ExecutionFactory, JobFactory

pytestmark = pytest.mark.django_db
TOKEN = "metrics-token-for-tests"


@pytest.fixture
def scrape(client, settings):
    settings.METRICS_TOKEN = TOKEN

    def get():
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("text/plain; version=")
        samples = {}
        for family in text_string_to_metric_families(response.content.decode()):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    return get


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def test_off_without_a_token_and_401_with_a_wrong_one(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    settings.METRICS_TOKEN = TOKEN
    assert client.get("/metrics").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_runs_durations_lateness_overdue_and_queues(scrape):
    now = timezone.now()
    job = JobFactory(name="nightly", task_name="tests.noop")
    Job.objects.filter(pk=job.pk).update(total_runs=3, successful_runs=2, failed_runs=1)
    for status, duration in (("success", 0.3), ("success", 20.0), ("failed", 4000.0)):
        ExecutionFactory(job=job, status=status, duration_seconds=duration)
    ExecutionFactory(job=job, status="running")
    # scheduled runs: due at scheduled_for, started 3 s and 40 s late; one without scheduled_for
    due = now - timedelta(hours=1)
    ExecutionFactory(job=job, trigger="schedule", status="success", scheduled_for=due, started_at=due + timedelta(seconds=3))
    ExecutionFactory(job=job, trigger="schedule", status="success", scheduled_for=due - timedelta(hours=1),
                     started_at=due - timedelta(hours=1) + timedelta(seconds=40))
    late = JobFactory(name="late", task_name="tests.noop")
    Job.objects.filter(pk=late.pk).update(next_run_at=now - timedelta(hours=3))

    samples = scrape()

    assert value(samples, "jobsite_job_runs_total", job="nightly", kind="task", outcome="success") == 2
    assert value(samples, "jobsite_job_runs_total", job="nightly", kind="task", outcome="failure") == 1
    assert value(samples, "jobsite_executions", job="nightly", kind="task", status="running") == 1
    assert value(samples, "jobsite_executions_active", status="running") == 1
    assert value(samples, "jobsite_execution_duration_seconds_bucket", job="nightly", kind="task", le="0.5") == 1
    assert value(samples, "jobsite_execution_duration_seconds_bucket", job="nightly", kind="task", le="30.0") == 2
    assert value(samples, "jobsite_execution_duration_seconds_bucket", job="nightly", kind="task", le="+Inf") >= 3
    assert value(samples, "jobsite_execution_lateness_seconds_bucket", job="nightly", kind="task", le="5.0") == 1
    assert value(samples, "jobsite_execution_lateness_seconds_bucket", job="nightly", kind="task", le="60.0") == 2
    assert value(samples, "jobsite_execution_lateness_seconds_sum", job="nightly", kind="task") == pytest.approx(43, abs=0.01)
    assert value(samples, "jobsite_jobs_overdue") == 1
    assert value(samples, "jobsite_job_overdue", job="late", kind="task") == 1
    assert value(samples, "jobsite_broker_up") == 1
    assert value(samples, "jobsite_queue_depth", queue="default") is not None


def test_lateness_falls_back_to_created_at(scrape):
    job = JobFactory(name="old", task_name="tests.noop")
    execution = ExecutionFactory(job=job, trigger="schedule", status="success")
    Execution.objects.filter(pk=execution.pk).update(scheduled_for=None,
                                                     started_at=execution.created_at + timedelta(seconds=7))
    samples = scrape()
    assert value(samples, "jobsite_execution_lateness_seconds_bucket", job="old", kind="task", le="5.0") == 0
    assert value(samples, "jobsite_execution_lateness_seconds_bucket", job="old", kind="task", le="10.0") == 1


def test_queue_depth_counts_waiting_messages(scrape, settings):
    from celery import current_app
    from kombu import Queue

    # a queue of its own, so that no worker takes the messages meanwhile
    settings.JOBS_QUEUES = [*settings.JOBS_QUEUES, "metrics-test-queue"]
    with current_app.connection_for_write() as conn:
        Queue("metrics-test-queue", channel=conn.default_channel).declare()
        producer = conn.Producer()
        for _ in range(3):
            producer.publish({"x": 1}, routing_key="metrics-test-queue")
    try:
        assert value(scrape(), "jobsite_queue_depth", queue="metrics-test-queue") == 3
    finally:
        with current_app.connection_for_write() as conn:
            Queue("metrics-test-queue", channel=conn.default_channel).delete()


def test_a_scrape_costs_the_same_queries_for_many_runs(scrape):
    def count_queries():
        with CaptureQueriesContext(connection) as captured:
            scrape()
        return len(captured.captured_queries)

    job = JobFactory(name="one", task_name="tests.noop")
    ExecutionFactory(job=job, status="success", duration_seconds=1)
    few = count_queries()
    for i in range(5):
        other = JobFactory(name=f"more-{i}", task_name="tests.noop")
        ExecutionFactory.create_batch(4, job=other, status="success", duration_seconds=2)
    assert count_queries() == few


def test_broker_down_is_reported_not_a_500(scrape, settings):
    from celery import current_app

    old = current_app.conf.broker_url
    current_app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        samples = scrape()
    finally:
        current_app.conf.broker_url = old
    assert value(samples, "jobsite_broker_up") == 0
