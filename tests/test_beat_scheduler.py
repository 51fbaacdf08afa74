"""The beat scheduler applies job changes incrementally (no full re-read)."""
from datetime import timedelta

import pytest
from django.utils import timezone

from jobsite.celery import app
from scheduling import services
from scheduling.beat_scheduler import Scheduler
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db(transaction=True)


def heap_names(scheduler):
    return {event[2].name for event in scheduler._heap}


def test_job_changes_reach_beat_incrementally():
    # given beat has read a schedule with one job and built its heap
    first = JobFactory(schedule_type="cron", schedule_expression="*/5 * * * *")
    scheduler = Scheduler(app=app, lazy=True)
    assert f"job:{first.pk}" in scheduler.schedule
    scheduler.populate_heap()
    assert scheduler.full_reads == 1

    # when a job is added, another paused, then one deleted
    second = JobFactory(schedule_type="interval", schedule_expression="10s")
    names = set(scheduler.schedule)
    assert {f"job:{first.pk}", f"job:{second.pk}"} <= names
    assert f"job:{second.pk}" in heap_names(scheduler)

    services.job_pause(job=first)
    assert f"job:{first.pk}" not in scheduler.schedule
    assert f"job:{first.pk}" not in heap_names(scheduler)

    services.job_delete(job=second)
    assert f"job:{second.pk}" not in scheduler.schedule
    assert f"job:{second.pk}" not in heap_names(scheduler)

    services.job_resume(job=first)
    assert f"job:{first.pk}" in scheduler.schedule and f"job:{first.pk}" in heap_names(scheduler)

    # then none of it needed a full re-read of every task
    assert scheduler.full_reads == 1
    assert scheduler.incremental_reads == 4


def test_schedule_changes_update_the_heap_entry():
    job = JobFactory(schedule_type="interval", schedule_expression="1h")
    scheduler = Scheduler(app=app, lazy=True)
    scheduler.schedule
    scheduler.populate_heap()
    services.job_update(job=job, data={"schedule_expression": "10s"})
    scheduler.schedule
    (event,) = [e for e in scheduler._heap if e[2].name == f"job:{job.pk}"]
    assert event.entry.schedule.run_every.total_seconds() == 10
    assert scheduler.schedules_equal(None, None) is True  # no O(n) comparison per tick


def test_a_bulk_change_without_date_changed_falls_back_to_a_full_read():
    from django_celery_beat.models import PeriodicTask, PeriodicTasks

    job = JobFactory(schedule_type="interval", schedule_expression="10s")
    doomed = JobFactory(schedule_type="interval", schedule_expression="10s")
    scheduler = Scheduler(app=app, lazy=True)
    assert scheduler.schedule[f"job:{job.pk}"].options["queue"] == "default"
    # a disable is seen by name, even when done in bulk
    PeriodicTask.objects.filter(pk=doomed.periodic_task_id).update(enabled=False)
    PeriodicTasks.update_changed()
    assert f"job:{doomed.pk}" not in scheduler.schedule
    assert scheduler.full_reads == 1
    # a bulk update() touches no date_changed (the task's is an hour old):
    # update_changed() is all beat hears
    an_hour_ago = timezone.now() - timedelta(hours=1)
    PeriodicTask.objects.filter(pk=job.periodic_task_id).update(queue="maintenance", date_changed=an_hour_ago)
    PeriodicTasks.update_changed()
    assert scheduler.schedule[f"job:{job.pk}"].options["queue"] == "maintenance"
    assert scheduler.full_reads == 2
