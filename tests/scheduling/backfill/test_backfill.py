"""Backfill: one run per past due time, oldest first, one at a time; existing runs are not run again."""
from datetime import datetime, timedelta
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from scheduling import services
from scheduling.models import Backfill, Execution
from scheduling.services import backfill as backfill_services
from tests.factories import ExecutionFactory, JobFactory

pytestmark = pytest.mark.django_db
BERLIN = ZoneInfo("Europe/Berlin")


def daily_job(name="nightly", **kwargs):
    return JobFactory(name=name, schedule_type="daily", schedule_expression="02:00", timezone="Europe/Berlin",
                      task_name="tests.echo", **kwargs)


def fourteen_days():
    today = timezone.now().astimezone(BERLIN).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    start = today - timedelta(days=14)
    return start, today


def test_due_times_are_the_schedules_in_the_jobs_zone_oldest_first_across_dst():
    job = daily_job()
    times = services.backfill_due_times(job=job, start=datetime(2026, 3, 25), end=datetime(2026, 4, 1))
    assert [t.isoformat() for t in times] == [f"2026-03-{d}T02:00:00+01:00" for d in (25, 26, 27, 28)] + [
        "2026-03-29T03:00:00+02:00",  # 02:00 does not exist that night: cron fires at 03:00 CEST
        *[f"2026-03-{d}T02:00:00+02:00" for d in (30, 31)]]
    # an offset in the input is honoured (01:00 UTC is 02:00 in Berlin); the start is included, the end excluded
    times = services.backfill_due_times(job=job, start=datetime(2026, 1, 1, 1, 0, tzinfo=ZoneInfo("UTC")),
                                        end=datetime(2026, 1, 3, 1, 0, tzinfo=ZoneInfo("UTC")))
    assert [t.isoformat() for t in times] == ["2026-01-01T02:00:00+01:00", "2026-01-02T02:00:00+01:00"]


def test_over_the_maximum_is_a_clear_400(admin_api, settings):
    settings.JOBS_BACKFILL_MAX = 10
    job = daily_job()
    response = admin_api.post(f"/api/v1/jobs/{job.pk}/backfill",
                              {"start": "2026-01-01", "end": "2026-02-01", "dry_run": True}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == ("The range holds more than 10 due times of job 'nightly' "
                                         "(JOBS_BACKFILL_MAX); backfill a shorter range, one part at a time.")


@pytest.mark.parametrize("body, field", [
    ({"start": "2026-01-05", "end": "2026-01-01"}, "end"),
    ({"start": "yesterday", "end": "2026-01-01"}, "start"),
    ({"start": "2026-01-01", "end": "2999-01-01"}, "end"),
    ({"start": "2026-01-01"}, "end"),
    ({"start": "2026-01-01", "end": "2026-01-02", "dry": True}, "dry"),
])
def test_bad_input_names_the_field(admin_api, body, field):
    job = daily_job()
    response = admin_api.post(f"/api/v1/jobs/{job.pk}/backfill", body, format="json")
    assert response.status_code == 400 and field in response.json()["errors"], response.json()
    assert not Backfill.objects.exists()


def test_dry_run_lists_the_due_times_and_which_already_ran(admin_api):
    job = daily_job()
    start, end = fourteen_days()
    times = services.backfill_due_times(job=job, start=start, end=end)
    ran = [ExecutionFactory(job=job, scheduled_for=times[i]) for i in (2, 5, 9)]
    response = admin_api.post(f"/api/v1/jobs/{job.pk}/backfill",
                              {"start": start.isoformat(), "end": end.isoformat(), "dry_run": True}, format="json")
    assert response.status_code == 200
    data = response.json()
    assert (data["total"], data["to_run"], data["already_ran"]) == (14, 11, 3)
    assert [d["execution_id"] for d in data["due_times"] if d["already_ran"]] == [r.pk for r in ran]
    assert not Backfill.objects.exists() and job.executions.count() == 3


def test_due_times_inside_the_jobs_calendars_are_not_run(admin_api):
    job = daily_job()
    services.calendar_create(name="new year", dates=["2026-01-02"], timezone="Europe/Berlin")
    services.job_set_calendars(job=job, names=["new year"])
    data = admin_api.post(f"/api/v1/jobs/{job.pk}/backfill",
                          {"start": "2026-01-01", "end": "2026-01-04", "dry_run": True}, format="json").json()
    assert (data["total"], data["to_run"], data["skipped_by_calendar"]) == (3, 2, 1)
    assert [d["calendar"] for d in data["due_times"]] == [None, "new year", None]


def test_only_superusers_backfill(api, job):
    response = api.post(f"/api/v1/jobs/{job.pk}/backfill", {"start": "2026-01-01", "end": "2026-01-02"},
                        format="json")
    assert response.status_code == 403


def test_cli_dry_run(db):
    job = daily_job()
    out = StringIO()
    call_command("jobs", "backfill", job.name, "--from", "2026-01-01", "--to", "2026-01-04", "--dry-run", stdout=out)
    text = out.getvalue()
    assert "2026-01-01 02:00" in text and "2026-01-03 02:00" in text and "2026-01-04" not in text
    assert "3 due times: 3 to run, 0 already ran" in text


# (against a real worker and beat: tests/e2e/test_backfill.py)


@pytest.mark.parametrize("start", ["0001-01-01", "0001-01-01T00:00:00+14:00", "1900-01-01"])
def test_a_range_from_long_ago_is_a_400_not_a_500(admin_api, start):
    job = daily_job()
    response = admin_api.post(f"/api/v1/jobs/{job.pk}/backfill", {"start": start, "end": "2026-01-01", "dry_run": True},
                              format="json")
    assert response.status_code == 400, response.content


@pytest.mark.parametrize("trigger", ["api", "cli", "manual"])
def test_every_backfill_run_is_one_the_finish_receiver_reads_for(trigger):
    job = daily_job()
    start, end = fourteen_days()
    backfill = services.job_backfill(job=job, start=start, end=end, trigger=trigger)
    run = backfill.current_execution
    assert run.trigger == trigger and run.scheduled_for is not None
    assert backfill_services._may_be_a_backfills_run(run.trigger, run.scheduled_for)
    retry = ExecutionFactory(job=job, trigger="retry", retry_of=run)
    assert backfill_services._may_be_a_backfills_run(retry.trigger, retry.scheduled_for)


def test_a_finished_run_that_cannot_be_a_backfills_costs_no_query():
    job = daily_job()
    run = ExecutionFactory(job=job, status="success", trigger="schedule", scheduled_for=timezone.now())
    manual = ExecutionFactory(job=job, status="success", trigger="api")
    for execution in (run, manual):
        with CaptureQueriesContext(connection) as queries:
            backfill_services._on_execution_finished(Execution, execution_id=execution.pk, job_id=job.pk,
                                                     status="success", trigger=execution.trigger,
                                                     scheduled_for=execution.scheduled_for)
        assert queries.captured_queries == []
    # a sender that does not say what started the run: one read, as before
    with CaptureQueriesContext(connection) as queries:
        backfill_services._on_execution_finished(Execution, execution_id=run.pk, job_id=job.pk, status="success")
    assert len(queries.captured_queries) == 1


def test_a_backfill_is_started_by_a_request_only():
    start, end = fourteen_days()
    with pytest.raises(ValueError, match="not 'schedule'"):
        services.job_backfill(job=daily_job(), start=start, end=end, trigger="schedule")
    assert not Backfill.objects.exists()
