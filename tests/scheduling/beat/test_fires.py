"""What beat fires and records, driven in-process against the test database:
interval fires stay on their grid after a late fire, and a shutdown in the
middle of a tick never writes a fire down as done without its run."""
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from scheduling.beat import periodic_task_name
from scheduling.models import Execution
from tests.factories import JobFactory
from tests.scheduling.beat.test_scheduler import heap_entry, hourly_jobs_due, locked_scheduler

pytestmark = pytest.mark.django_db(transaction=True)


def interval_job_last_fired(seconds_ago: float, *, every: int):
    job = JobFactory(schedule_type="interval", schedule_expression=f"{every}s", task_name="tests.echo")
    last = timezone.now() - timedelta(seconds=seconds_ago)
    PeriodicTask.objects.filter(pk=job.periodic_task_id).update(last_run_at=last)
    return job, last


def heap_time(scheduler, name) -> float:
    (when,) = [event[0] for event in scheduler._heap if event[2].name == name]
    return when


# ---------------------------------------------------------------------------
# The grid
# ---------------------------------------------------------------------------
def test_a_late_interval_fire_asks_for_the_next_one_on_its_grid():
    # given an every-100-s job whose last fire was 250 s ago (beat was away):
    # due times last+100 and last+200 have passed, last+300 is 50 s away
    job, last = interval_job_last_fired(250, every=100)
    scheduler = locked_scheduler()
    try:
        entry = scheduler.schedule[periodic_task_name(job)]
        # when beat asks whether it is due
        due, next_in = entry.is_due()
        # then it is, and the next look is at last+300 (about 50 s away), not 100 s from now
        assert due and 45 < next_in <= 50
        # and the entry that follows the fire (for last+200) waits for last+300
        following = next(entry)
        assert following.last_run_at == last + timedelta(seconds=200)
        due, next_in = following.is_due()
        assert not due and 45 < next_in <= 50
    finally:
        scheduler.close()


def test_after_a_catch_up_fire_the_heap_holds_the_next_grid_time():
    job, last = interval_job_last_fired(250, every=100)
    scheduler = locked_scheduler()
    try:
        scheduler.tick()
        # the catch-up fire is recorded for the latest due time
        assert Execution.objects.filter(job=job, scheduled_for=last + timedelta(seconds=200)).exists()
        # and the entry is on the heap for last+300, not for 100 s after the send
        grid = (last + timedelta(seconds=300)).timestamp()
        assert abs(heap_time(scheduler, periodic_task_name(job)) - grid) < 1
        assert heap_entry(scheduler, periodic_task_name(job)).last_run_at == last + timedelta(seconds=200)
    finally:
        scheduler.close()


# ---------------------------------------------------------------------------
# Shutdown in the middle of a tick
# ---------------------------------------------------------------------------
def stopped_between_taking_and_recording(scheduler):
    """What ``celery beat``'s SIGTERM/SIGINT handler does (``Service.sync``:
    close the scheduler, then SystemExit), at the moment the tick has taken
    its due entries and not yet recorded them."""
    def stop(*args, **kwargs):
        scheduler.close()
        raise SystemExit()

    return mock.patch("scheduling.beat.lock._chunks", side_effect=stop)


def test_a_beat_stopped_between_taking_a_fire_and_recording_it_leaves_the_fire_owed():
    due = timezone.now().replace(microsecond=0) - timedelta(seconds=1)
    (job,) = hourly_jobs_due(1, due=due)
    before = PeriodicTask.objects.get(pk=job.periodic_task_id)
    scheduler = locked_scheduler()
    with stopped_between_taking_and_recording(scheduler), pytest.raises(SystemExit):
        scheduler.tick()
    # then the fire is neither run nor written down as fired
    assert not Execution.objects.filter(job=job).exists()
    after = PeriodicTask.objects.get(pk=job.periodic_task_id)
    assert (after.last_run_at, after.total_run_count) == (before.last_run_at, before.total_run_count)

    # and the next beat sends it, for its due time
    restarted = locked_scheduler()
    try:
        restarted.tick()
        assert list(Execution.objects.filter(job=job).values_list("scheduled_for", flat=True)) == [due]
        assert PeriodicTask.objects.get(pk=job.periodic_task_id).last_run_at == due
    finally:
        restarted.close()


def test_a_clean_stop_after_a_tick_keeps_what_it_recorded():
    due = timezone.now().replace(microsecond=0) - timedelta(seconds=1)
    (job,) = hourly_jobs_due(1, due=due)
    scheduler = locked_scheduler()
    scheduler.tick()
    scheduler.close()
    task = PeriodicTask.objects.get(pk=job.periodic_task_id)
    assert (task.last_run_at, task.total_run_count) == (due, 1)
    assert Execution.objects.filter(job=job, scheduled_for=due).count() == 1
