"""Backfill end to end: a real worker and a real ``celery beat`` (issue 28: "run
against a real worker and beat"). A backfill makes one run per due time in
order, one at a time — retries included — while beat goes on firing the same
job; cancelled midway, none of the rest start."""
import time
from datetime import datetime, timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from django_celery_beat.models import PeriodicTask, PeriodicTasks

from scheduling import services
from scheduling.models import AuditLog, Backfill, Execution
from tests.e2e.test_beat import running_beat
from tests.factories import ExecutionFactory, JobFactory
from tests.scheduling.backfill.test_backfill import daily_job, fourteen_days
from tests.worker import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def status_of(model_object):
    model_object.refresh_from_db()
    return model_object.status


def flaky_daily(*, limited: bool, backoff: int):
    """A daily job whose runs fail, with one retry after ``backoff`` seconds."""
    return JobFactory(name="flaky-nightly", schedule_type="daily", schedule_expression="02:00",
                      timezone="Europe/Berlin", task_name="tests.fail", max_retries=1, retry_backoff_seconds=backoff,
                      overlap_policy="allow", max_concurrent_runs=1 if limited else None)


def assert_one_at_a_time(runs):
    """Each run started after the previous one ended."""
    for earlier, later in zip(runs, runs[1:]):
        assert later.started_at >= earlier.completed_at, (earlier.pk, later.pk)


def test_fourteen_days_with_three_runs_makes_exactly_eleven_runs_in_order(celery_worker_process, superuser,
                                                                          client_for):
    job = daily_job()
    start, end = fourteen_days()
    times = services.backfill_due_times(job=job, start=start, end=end)
    for i in (0, 6, 13):
        ExecutionFactory(job=job, scheduled_for=times[i])
    with running_beat():
        response = client_for(superuser).post(f"/api/v1/jobs/{job.pk}/backfill",
                                              {"start": start.isoformat(), "end": end.isoformat()}, format="json")
        assert response.status_code == 202, response.content
        backfill = Backfill.objects.get(pk=response.json()["id"])
        assert response.json()["total"] == 11 and response.json()["already_ran"] == 3
        wait_for(lambda: status_of(backfill) == "done", timeout=90, message="backfill done")
    runs = list(job.executions.exclude(scheduled_for__in=[times[i] for i in (0, 6, 13)]).order_by("started_at"))
    assert len(runs) == 11 and job.executions.count() == 14
    assert [r.scheduled_for for r in runs] == [t for i, t in enumerate(times) if i not in (0, 6, 13)]
    assert all(r.status == "success" for r in runs)
    assert_one_at_a_time(runs)
    progress = client_for(superuser).get(f"/api/v1/backfills/{backfill.pk}").json()
    assert (progress["status"], progress["finished"], progress["queued"]) == ("done", 11, 11)
    assert AuditLog.objects.filter(action="execute", object_repr="nightly", changes__backfill=backfill.pk).exists()


def test_cancel_midway_and_none_of_the_rest_start(celery_worker_process, superuser, client_for):
    job = JobFactory(name="slow-nightly", schedule_type="daily", schedule_expression="02:00", timezone="Europe/Berlin",
                     task_name="tests.sleep", task_kwargs={"seconds": 0.5})
    start, end = fourteen_days()
    client = client_for(superuser)
    with running_beat():
        backfill_id = client.post(f"/api/v1/jobs/{job.pk}/backfill",
                                  {"start": start.isoformat(), "end": end.isoformat()}, format="json").json()["id"]
        wait_for(lambda: job.executions.filter(status="success").count() >= 2, timeout=60, message="two runs done")
        response = client.post(f"/api/v1/backfills/{backfill_id}/cancel")
        assert response.status_code == 200 and response.json()["status"] == "cancelled"
        made = job.executions.count()
        assert 2 <= made < 14 and response.json()["not_run"] == 14 - made
        # what was going is cancelled (or had just finished); nothing else starts, with beat running
        # (a negative: given the time a run takes here, 0.5 s, any next one would have come by then)
        time.sleep(3)
        assert job.executions.count() == made
        assert not job.executions.filter(status__in=Execution.ACTIVE_STATUSES).exists()
    assert client.post(f"/api/v1/backfills/{backfill_id}/cancel").status_code == 409


def test_beat_catching_up_the_same_due_times_during_a_backfill_runs_none_twice(celery_worker_process):
    # given a 2-second job that catches up every missed fire, last fired 40 s ago (beat was down),
    # limited to one run at a time, and a long run of it going (so both sides queue up behind it)
    job = JobFactory(schedule_type="interval", schedule_expression="2s", catch_up_policy="all",
                     overlap_policy="allow", max_concurrent_runs=1, task_name="tests.sleep",
                     task_kwargs={"seconds": 0.1})
    t0 = timezone.now().replace(microsecond=0) - timedelta(seconds=40)
    PeriodicTask.objects.filter(pk=job.periodic_task_id).update(last_run_at=t0, date_changed=t0)
    PeriodicTasks.update_changed()
    blocker = services.job_execute(job=job, override_kwargs={"seconds": 120})
    wait_for(lambda: status_of(blocker) == "running", message="the long run to start")
    # when a backfill of the 14 due times from t0 starts, then beat, which catches up what it owes
    backfill = services.job_backfill(job=job, start=t0, end=t0 + timedelta(seconds=28), actor_label="test")
    due_times = [t0 + timedelta(seconds=2 * i) for i in range(14)]
    assert [datetime.fromisoformat(when) for when in backfill.due_times] == due_times
    in_range = Execution.objects.filter(job=job, scheduled_for__in=due_times)
    with running_beat():
        caught_up = min(settings.JOBS_CATCH_UP_MAX, 13)
        wait_for(lambda: in_range.filter(trigger="schedule").count() >= caught_up, timeout=30,
                 message="beat's catch-up of the same due times")
        services.execution_cancel(execution=blocker, actor_label="test")
        wait_for(lambda: status_of(backfill) == "done", timeout=90, message="the backfill done")
        wait_for(lambda: not in_range.filter(status__in=Execution.ACTIVE_STATUSES).exists(), timeout=60,
                 message="every run of the range to end")
    # then each due time ran once, by beat or by the backfill, never both
    runs = list(in_range.order_by("scheduled_for"))
    assert [run.scheduled_for for run in runs] == due_times
    assert all(run.status == "success" and run.attempt == 1 for run in runs)
    by_beat = [run for run in runs if run.trigger == "schedule"]
    by_backfill = [run for run in runs if run.trigger == "api"]
    assert len(by_beat) >= caught_up and len(by_backfill) >= 1 and len(by_beat) + len(by_backfill) == 14
    assert runs[0].trigger == "api"  # the first due time was the backfill's (beat had fired it)
    # and the backfill's runs kept their order, one at a time
    by_backfill.sort(key=lambda run: run.started_at)
    assert [run.scheduled_for for run in by_backfill] == sorted(run.scheduled_for for run in by_backfill)
    assert_one_at_a_time(by_backfill)


@pytest.mark.parametrize("limited", [False, True], ids=["unlimited", "max-concurrent-runs"])
def test_a_failed_runs_retries_end_before_the_next_due_time_starts(celery_worker_process, limited):
    # given a job whose runs fail, with one retry after a second
    job = flaky_daily(limited=limited, backoff=1)
    start, end = fourteen_days()
    # when three due times are backfilled
    backfill = services.job_backfill(job=job, start=start, end=start + timedelta(days=3), actor_label="test")
    wait_for(lambda: status_of(backfill) == "done", timeout=60, message="the backfill done")
    # then each due time's run and its retry went before the next due time: one at a time, retries included
    runs = list(job.executions.order_by("started_at"))
    assert [(run.attempt, run.status) for run in runs] == [(1, "failed"), (2, "failed")] * 3
    assert [run.retry_of_id for run in runs[1::2]] == [run.pk for run in runs[0::2]]
    assert [run.scheduled_for for run in runs[0::2]] == services.backfill_due_times(
        job=job, start=start, end=start + timedelta(days=3))
    assert_one_at_a_time(runs)
    assert {run.trigger for run in runs[0::2]} == {"api"}  # the next due time keeps the backfill's trigger


@pytest.mark.parametrize("limited", [False, True], ids=["unlimited", "max-concurrent-runs"])
def test_cancelling_the_backfill_while_a_retry_waits_cancels_the_retry(celery_worker_process, limited):
    job = flaky_daily(limited=limited, backoff=30)
    start, end = fourteen_days()
    backfill = services.job_backfill(job=job, start=start, end=end, actor_label="test")
    retry = wait_for(lambda: Execution.objects.filter(job=job, trigger="retry").first(), timeout=30,
                     message="the first run to fail and its retry to wait")
    wait_for(lambda: Backfill.objects.get(pk=backfill.pk).current_execution_id == retry.pk,
             message="the retry to be the backfill's run")
    services.backfill_cancel(backfill=backfill, actor_label="test")
    assert status_of(retry) == "cancelled" and "backfill" in retry.error
    # nothing else starts: neither the retry (its message is revoked) nor a next due time
    time.sleep(3)
    assert job.executions.count() == 2
    assert not job.executions.filter(status__in=Execution.ACTIVE_STATUSES).exists()
    assert Execution.objects.get(pk=retry.pk).started_at is None
