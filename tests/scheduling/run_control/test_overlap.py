"""Overlap policies queue and replace (services; the worker's side is in
tests/e2e/test_run_control.py)."""
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest

from jobsite.exceptions import Conflict
from scheduling import services
from scheduling.models import AuditLog, Execution
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db

DUE = datetime.now(dt_timezone.utc).replace(second=0, microsecond=0)


def fire(job, minutes=0):
    return services.job_dispatch_scheduled(job_id=job.pk, scheduled_for=DUE + timedelta(minutes=minutes))


def start(execution):
    """What a worker's claim does."""
    return services.execution_claim(execution_id=execution.pk, task_id=execution.celery_task_id, worker="w1 pid 1")


def test_queue_holds_one_fire_and_skips_the_next_while_a_run_is_going():
    job = JobFactory(schedule_type="cron", schedule_expression="* * * * *", overlap_policy="queue")
    first = start(fire(job))
    waiting = fire(job, 1)
    assert (waiting.status, waiting.held) == ("queued", True)
    assert f"Waiting for run {first.pk}" in waiting.output
    skipped = fire(job, 2)
    assert skipped.status == "skipped" and skipped.scheduled_for == DUE + timedelta(minutes=2)
    assert f"run {waiting.pk} already waits for run {first.pk}" in skipped.output
    # when the running run ends, the waiting one is sent
    services.execution_finish(execution=first, status="success")
    waiting.refresh_from_db()
    assert (waiting.status, waiting.held, waiting.output) == ("queued", False, "")
    # and it runs, alone: the next fire waits for it
    start(waiting)
    assert fire(job, 3).held


@pytest.mark.parametrize("end", ["failed", "cancel", "lost"])
def test_queue_releases_the_waiting_run_however_the_running_one_ends(end):
    job = JobFactory(schedule_type="cron", schedule_expression="* * * * *", overlap_policy="queue")
    first = start(fire(job))
    waiting = fire(job, 1)
    if end == "failed":
        services.execution_finish(execution=first, status="failed", error="boom")
    elif end == "cancel":
        services.execution_cancel(execution=first, actor_label="t")
    else:
        services.execution_mark_lost(execution=first, reason="test")
    waiting.refresh_from_db()
    assert not waiting.held


def test_queue_waits_for_the_retry_of_a_failed_run():
    job = JobFactory(schedule_type="cron", schedule_expression="* * * * *", overlap_policy="queue", max_retries=1)
    first = start(fire(job))
    waiting = fire(job, 1)
    services.execution_finish(execution=first, status="failed", error="boom")
    retry = Execution.objects.get(retry_of=first)
    waiting.refresh_from_db()
    assert waiting.held and retry.status == "queued"
    services.execution_finish(execution=start(retry), status="success")
    waiting.refresh_from_db()
    assert not waiting.held


def test_a_held_run_can_be_cancelled_by_its_task_id():
    job = JobFactory(schedule_type="cron", schedule_expression="* * * * *", overlap_policy="queue")
    first = start(fire(job))
    waiting = fire(job, 1)
    assert waiting.celery_task_id
    services.execution_cancel(execution=waiting, actor_label="t")
    services.execution_finish(execution=first, status="success")
    waiting.refresh_from_db()
    assert waiting.status == "cancelled"


def test_the_sweep_releases_a_held_run_whose_release_was_lost():
    job = JobFactory(schedule_type="cron", schedule_expression="* * * * *", overlap_policy="queue")
    first = start(fire(job))
    waiting = fire(job, 1)
    # the run's end recorded by a process that died before releasing
    Execution.objects.filter(pk=first.pk).update(status="success")
    services.executions_resend_stale_queued()
    waiting.refresh_from_db()
    assert not waiting.held


def test_a_manual_request_is_held_too_and_refused_when_one_waits():
    job = JobFactory(overlap_policy="queue")
    first = start(services.job_execute(job=job))
    waiting = services.job_execute(job=job)
    assert waiting.held
    with pytest.raises(Conflict, match=f"run {waiting.pk} already waits"):
        services.job_execute(job=job)
    forced = services.job_execute(job=job, force=True)
    assert not forced.held and forced.status == "queued"
    assert first.status == "running"


def test_a_duplicate_fire_records_nothing_more():
    job = JobFactory(schedule_type="cron", schedule_expression="* * * * *", overlap_policy="queue")
    start(fire(job))
    waiting = fire(job, 1)
    assert fire(job, 1).pk == waiting.pk
    assert Execution.objects.filter(job=job).count() == 2


def test_replace_cancels_the_running_run_and_starts_the_new_one():
    job = JobFactory(schedule_type="cron", schedule_expression="* * * * *", overlap_policy="replace")
    first = start(fire(job))
    second = fire(job, 1)
    first.refresh_from_db()
    assert first.status == "cancelled"
    assert f"replaced by run {second.pk}" in first.error
    assert (second.status, second.held) == ("queued", False)
    assert AuditLog.objects.filter(action="cancel", object_id=str(first.pk)).exists()
    # a manual request replaces the same way
    start(second)
    third = services.job_execute(job=job)
    second.refresh_from_db()
    assert second.status == "cancelled" and f"replaced by run {third.pk}" in second.error


def test_skip_and_allow_are_unchanged():
    skip = JobFactory(schedule_type="cron", schedule_expression="* * * * *")
    start(fire(skip))
    assert fire(skip, 1).status == "skipped"
    allow = JobFactory(schedule_type="cron", schedule_expression="* * * * *", overlap_policy="allow")
    start(fire(allow))
    assert fire(allow, 1).status == "queued"


def test_the_api_takes_the_new_policies(admin_api):
    response = admin_api.post("/api/v1/jobs/", {"name": "q", "schedule_type": "cron", "schedule_expression": "* * * * *",
                                                "task_name": "tests.echo", "overlap_policy": "queue"}, format="json")
    assert response.status_code == 201 and response.json()["overlap_policy"] == "queue"
    response = admin_api.patch(f"/api/v1/jobs/{response.json()['id']}", {"overlap_policy": "sometimes"}, format="json")
    assert response.status_code == 400 and "overlap_policy" in response.json()["errors"]
