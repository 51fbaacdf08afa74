"""Start jitter: an offset in [0, jitter) from (job, due time), the same on every
beat and replay; scheduled_for stays the due time; the preview shows the window."""
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest

from scheduling import services
from scheduling.models import Execution
from scheduling.services.dispatch import ScheduledFire
from scheduling.services.jitter import start_at, start_offset_seconds
from scheduling.services.sending import execution_task_options
from scheduling.services.sweeps import _retry_due_at
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db

DUE = datetime(2026, 12, 7, 9, 0, tzinfo=dt_timezone.utc)


def test_the_offset_is_within_the_jitter_and_the_same_every_time():
    offsets = [start_offset_seconds(job_id, DUE, 30) for job_id in range(1, 1001)]
    assert all(0 <= offset < 30 for offset in offsets)
    assert offsets == [start_offset_seconds(job_id, DUE, 30) for job_id in range(1, 1001)]
    # another due time, another offset (not one fixed lag per job)
    assert start_offset_seconds(1, DUE, 30) != start_offset_seconds(1, DUE + timedelta(minutes=1), 30)
    assert start_offset_seconds(1, DUE, 0) == 0.0


def test_a_thousand_jobs_spread_evenly_over_the_jitter():
    counts = [0] * 10
    for job_id in range(1, 1001):
        counts[int(start_offset_seconds(job_id, DUE, 30) // 3)] += 1
    assert all(70 <= count <= 130 for count in counts), counts


def test_a_fire_keeps_its_due_time_and_its_message_starts_at_due_plus_offset():
    job = JobFactory(schedule_type="cron", schedule_expression="* * * * *", jitter_seconds=30)
    execution = services.job_dispatch_scheduled(job_id=job.pk, scheduled_for=DUE)
    assert execution.scheduled_for == DUE and execution.status == "queued"
    options = execution_task_options(execution, job)
    assert options["eta"] == start_at(job.pk, DUE, 30)
    assert DUE <= options["eta"] < DUE + timedelta(seconds=30)
    # the stale-queued sweep waits for the start time, as for a retry's backoff
    execution = Execution.objects.select_related("job").get(pk=execution.pk)
    assert _retry_due_at(execution) == options["eta"]


def test_beats_burst_sends_jittered_runs_with_their_start_time():
    jittered = JobFactory(schedule_type="cron", schedule_expression="* * * * *", jitter_seconds=30, overlap_policy="allow")
    plain = JobFactory(schedule_type="cron", schedule_expression="* * * * *", overlap_policy="allow")
    now = datetime.now(dt_timezone.utc).replace(microsecond=0)
    sends = []
    bulk, one_by_one = services.jobs_dispatch_scheduled(
        fires=[ScheduledFire(jittered.pk, now), ScheduledFire(plain.pk, now)], sends=sends)
    assert (bulk, one_by_one) == (2, 0)
    options = {job.pk: execution_task_options(execution, job) for execution, job in sends}
    assert options[jittered.pk]["eta"] == start_at(jittered.pk, now, 30)
    assert "eta" not in options[plain.pk]


def test_manual_runs_and_retries_start_at_once():
    job = JobFactory(jitter_seconds=30)
    execution = services.job_execute(job=job)
    assert "eta" not in execution_task_options(execution, job)


@pytest.mark.parametrize("value", [-1, 3601, "soon"])
def test_the_api_refuses_a_jitter_out_of_range(admin_api, value):
    response = admin_api.post("/api/v1/jobs/", {"name": "j", "schedule_type": "cron", "schedule_expression": "* * * * *",
                                          "task_name": "tests.echo", "jitter_seconds": value}, format="json")
    assert response.status_code == 400, response.content
    assert "jitter_seconds" in response.json()["errors"]


def test_the_api_sets_and_shows_the_jitter(admin_api):
    response = admin_api.post("/api/v1/jobs/", {"name": "j", "schedule_type": "cron", "schedule_expression": "* * * * *",
                                          "task_name": "tests.echo", "jitter_seconds": 30}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["jitter_seconds"] == 30
    job_id = response.json()["id"]
    response = admin_api.patch(f"/api/v1/jobs/{job_id}", {"jitter_seconds": 5}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["jitter_seconds"] == 5


def test_the_preview_shows_each_runs_start_window(admin_api):
    response = admin_api.post("/api/v1/jobs/validate-schedule", {"schedule_type": "cron", "schedule_expression": "0 * * * *",
                                                           "jitter_seconds": 90}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["jitter_seconds"] == 90 and len(body["start_windows"]) == len(body["next_runs"]) == 5
    window = body["start_windows"][0]
    assert window["due"] == body["next_runs"][0]
    assert datetime.fromisoformat(window["starts_by"]) - datetime.fromisoformat(window["due"]) == timedelta(seconds=90)
