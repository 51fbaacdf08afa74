"""Schedule rows edited in place (an IntervalSchedule or CrontabSchedule
changed by update() or a save of the row itself, which leaves the tasks using
it untouched): beat sees them at its next tick, by re-reading the tasks on
that row, not everything."""
from datetime import timedelta

import pytest
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask, PeriodicTasks

from scheduling import services
from scheduling.beat import periodic_task_name
from scheduling.beat.lock import LockedScheduler
from scheduling.beat.crontab import JobCrontab
from tests.factories import JobFactory
from tests.scheduling.beat.test_scheduler import heap_entry, started

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def beat():
    """The project's scheduler (job entries), started; it gives its lock up after the test."""
    scheduler = started(LockedScheduler)
    yield scheduler
    scheduler.close()


def interval_row(job) -> IntervalSchedule:
    return PeriodicTask.objects.get(pk=job.periodic_task_id).interval


def test_an_interval_row_updated_in_place_with_another_tasks_save_is_seen_at_the_next_tick(beat):
    # given beat runs with a job on its own interval row, and a bystander
    job = JobFactory(schedule_type="interval", schedule_expression="3599s")
    bystander = JobFactory(schedule_type="interval", schedule_expression="1h")
    scheduler = beat
    scheduler.tick()  # (the first tick takes the lock, and reads everything as a beat taking over does)
    full_reads = scheduler.full_reads
    name = periodic_task_name(job)

    # when the row is changed in bulk, and the change is announced by another task's save
    IntervalSchedule.objects.filter(pk=interval_row(job).pk).update(every=7)
    services.job_update(job=bystander, data={"priority": 7})
    scheduler.tick()

    # then beat fires the job on the new interval, without reading every task again
    for entry in (scheduler.schedule[name], heap_entry(scheduler, name)):
        assert entry.schedule.run_every == timedelta(seconds=7)
        assert entry.job_schedule.interval == timedelta(seconds=7)
    assert scheduler.full_reads == full_reads


def test_an_interval_row_saved_is_seen_at_the_next_tick_without_a_full_read(beat):
    job = JobFactory(schedule_type="interval", schedule_expression="3598s")
    scheduler = beat
    scheduler.tick()  # (the first tick takes the lock, and reads everything as a beat taking over does)
    full_reads = scheduler.full_reads
    row = interval_row(job)
    row.every = 9
    row.save()  # django-celery-beat announces it (post_save), and touches no task
    scheduler.tick()
    assert heap_entry(scheduler, periodic_task_name(job)).schedule.run_every == timedelta(seconds=9)
    assert scheduler.full_reads == full_reads


def test_a_crontab_row_edited_in_place_is_seen_at_the_next_tick(beat):
    # given beat runs with an every-minute cron job, and a bystander
    job = JobFactory(schedule_type="cron", schedule_expression="* * * * *", timezone="UTC")
    bystander = JobFactory(schedule_type="interval", schedule_expression="1h")
    scheduler = beat
    scheduler.tick()  # (the first tick takes the lock, and reads everything as a beat taking over does)
    full_reads = scheduler.full_reads
    name = periodic_task_name(job)
    crontab = PeriodicTask.objects.get(pk=job.periodic_task_id).crontab

    # when its row becomes every 5 minutes in place, announced along with another task's save
    CrontabSchedule.objects.filter(pk=crontab.pk).update(minute="*/5")
    PeriodicTasks.update_changed()
    services.job_update(job=bystander, data={"priority": 7})
    scheduler.tick()

    # then beat's entry is the new crontab
    entry = heap_entry(scheduler, name)
    assert entry.schedule == JobCrontab("*/5 * * * *", "UTC")
    assert entry.job_schedule.cron == "*/5 * * * *"
    assert scheduler.full_reads == full_reads


def test_an_edit_of_a_shared_row_reaches_every_task_on_it_and_no_other(beat):
    on_row = [JobFactory(schedule_type="interval", schedule_expression="3597s") for _ in range(3)]
    elsewhere = JobFactory(schedule_type="interval", schedule_expression="3596s")
    scheduler = beat
    scheduler.tick()  # (the first tick takes the lock, and reads everything as a beat taking over does)
    full_reads = scheduler.full_reads
    untouched = scheduler.schedule[periodic_task_name(elsewhere)]
    IntervalSchedule.objects.filter(pk=interval_row(on_row[0]).pk).update(every=11)
    PeriodicTasks.update_changed()
    scheduler.tick()
    assert {scheduler.schedule[periodic_task_name(job)].schedule.run_every for job in on_row} == {timedelta(seconds=11)}
    assert scheduler.schedule[periodic_task_name(elsewhere)] is untouched  # not read again
    assert scheduler.full_reads == full_reads
