"""Calendars end to end: a real ``celery beat`` and the real worker; a job's
fires inside one of its calendars are recorded skipped, a bystander's run."""
from datetime import timedelta

import pytest
from django.utils import timezone

from scheduling import services
from scheduling.models import Execution
from tests.e2e.test_beat import running_beat
from tests.e2e.test_scheduling import wait_for
from tests.factories import JobFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_beat_fires_inside_a_calendar_are_recorded_skipped_and_never_run(celery_worker_process):
    # given two 2-second jobs, one skipping a calendar that holds today (and tomorrow: midnight may pass)
    today = timezone.now().date()
    services.calendar_create(name="company holiday", dates=[today.isoformat(), (today + timedelta(days=1)).isoformat()])
    skipping = JobFactory(schedule_type="interval", schedule_expression="2s", task_name="tests.echo")
    services.job_set_calendars(job=skipping, names=["company holiday"])
    bystander = JobFactory(schedule_type="interval", schedule_expression="2s", task_name="tests.echo")
    fired = Execution.objects.filter(job=skipping, trigger="schedule").exclude(status="missed")
    ran = Execution.objects.filter(job=bystander, trigger="schedule", status="success")
    # when beat runs a few seconds with a worker
    with running_beat():
        wait_for(lambda: fired.count() >= 2 and ran.count() >= 2, timeout=20, message="two fires of each job")
    # then every fire of the skipping job is recorded skipped with the calendar's name, and none ran
    assert set(fired.values_list("status", "output")) == {("skipped", "Skipped: inside calendar 'company holiday'")}
    assert not fired.exclude(started_at=None).exists()
