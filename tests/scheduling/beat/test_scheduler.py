"""Beat's scheduler, driven in-process against the test database.

``scheduling.beat.scheduler.Scheduler`` reads PeriodicTask changes
incrementally and keeps its heap by hand; what it fires must not differ from
django-celery-beat's ``DatabaseScheduler``. Tests marked ``both_schedulers``
run the same story against both classes.
"""
import heapq
import time
from collections import Counter
from contextlib import contextmanager
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, IntervalSchedule, PeriodicTask, PeriodicTasks
from django_celery_beat.schedulers import DatabaseScheduler
from django_celery_beat.utils import aware_now

from jobsite.celery import app
from scheduling import services
from scheduling.beat import periodic_task_name
from scheduling.beat.scheduler import Scheduler
from tests.factories import JobFactory
from tests.worker import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

both_schedulers = pytest.mark.parametrize("scheduler_class", [DatabaseScheduler, Scheduler], ids=["dcb", "ours"])


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
def started(scheduler_class=Scheduler):
    """A scheduler that has done its initial read and records what it would send.

    ``sent`` holds ``(name, args)`` per send; last_run_at is written after
    every send, as with CELERY_BEAT_SYNC_EVERY = 1.
    """
    scheduler = scheduler_class(app=app, lazy=True)
    scheduler.schedule  # the initial read
    scheduler.sent = []
    scheduler.producer = None  # nothing is published

    def record(entry, producer=None):
        scheduler.sent.append((entry.name, tuple(entry.args)))
        scheduler._do_sync()

    scheduler.apply_entry = record
    return scheduler


def tick_until_idle(scheduler, max_ticks=50):
    """Tick as ``celery beat`` does until nothing is due right now."""
    for _ in range(max_ticks):
        if scheduler.tick() > 0:
            return
    raise AssertionError(f"still sending after {max_ticks} ticks: {scheduler.sent[-5:]}")


def heap_counts(scheduler) -> Counter:
    return Counter(event[2].name for event in scheduler._heap)


def heap_entry(scheduler, name):
    (entry,) = [event[2] for event in scheduler._heap if event[2].name == name]
    return entry


def periodic_task(name, *, every=60, args="[]", due=False, **fields):
    """A PeriodicTask beside the jobs' ones (``due``: its interval has passed)."""
    interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=IntervalSchedule.SECONDS)
    task = PeriodicTask.objects.create(name=name, task="tests.echo", interval=interval, args=args, **fields)
    if due:
        make_due(task)
    return task


def make_due(task):
    # update(): beat's own kind of write (no change announced), as if its last run were long ago
    PeriodicTask.objects.filter(pk=task.pk).update(last_run_at=timezone.now() - timedelta(hours=1))


@contextmanager
def clock_behind(delta):
    """Writes made meanwhile carry timestamps ``delta`` in the past, as from a
    web or worker host whose clock is behind beat's (or a transaction that
    commits long after its save)."""
    real_now = timezone.now
    with mock.patch("django.utils.timezone.now", lambda: real_now() - delta):
        yield


# ---------------------------------------------------------------------------
# Incremental reads
# ---------------------------------------------------------------------------
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
    assert f"job:{second.pk}" in heap_counts(scheduler)

    services.job_pause(job=first)
    assert f"job:{first.pk}" not in scheduler.schedule
    assert f"job:{first.pk}" not in heap_counts(scheduler)

    services.job_delete(job=second)
    assert f"job:{second.pk}" not in scheduler.schedule
    assert f"job:{second.pk}" not in heap_counts(scheduler)

    services.job_resume(job=first)
    assert f"job:{first.pk}" in scheduler.schedule and heap_counts(scheduler)[f"job:{first.pk}"] == 1

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
    assert heap_entry(scheduler, f"job:{job.pk}").schedule.run_every.total_seconds() == 10
    assert scheduler.schedules_equal(None, None) is True  # no O(n) comparison per tick


def test_a_bulk_change_without_date_changed_falls_back_to_a_full_read():
    job = JobFactory(schedule_type="interval", schedule_expression="10s")
    doomed = JobFactory(schedule_type="interval", schedule_expression="10s")
    scheduler = Scheduler(app=app, lazy=True)
    assert scheduler.schedule[f"job:{job.pk}"].options["queue"] == "default"
    # a disable is seen by name, even when done in bulk
    PeriodicTask.objects.filter(pk=doomed.periodic_task_id).update(enabled=False)
    PeriodicTasks.update_changed()
    assert f"job:{doomed.pk}" not in scheduler.schedule
    assert scheduler.full_reads == 1
    # a bulk update() leaves date_changed as it was: update_changed() is all beat hears
    PeriodicTask.objects.filter(pk=job.periodic_task_id).update(queue="maintenance")
    PeriodicTasks.update_changed()
    assert scheduler.schedule[f"job:{job.pk}"].options["queue"] == "maintenance"
    assert scheduler.full_reads == 2


@pytest.mark.parametrize("late_first", [True, False], ids=["late-change-first", "late-change-last"])
def test_a_change_with_an_old_date_changed_is_read_at_the_next_tick(late_first):
    # given beat runs with two jobs (both saved just now)
    late = JobFactory(schedule_type="interval", schedule_expression="1h")
    other = JobFactory(schedule_type="interval", schedule_expression="1h")
    scheduler = started()
    scheduler.tick()

    # when one is edited from a host whose clock is an hour behind, and the
    # other one normally, with no tick in between
    def edit_late():
        with clock_behind(timedelta(hours=1)):
            services.job_update(job=late, data={"schedule_expression": "10s"})

    def edit_other():
        services.job_update(job=other, data={"schedule_expression": "2h"})

    for edit in (edit_late, edit_other) if late_first else (edit_other, edit_late):
        edit()
    scheduler.tick()

    # then both changes are in the schedule and on the heap, once each
    for job, seconds in ((late, 10), (other, 7200)):
        name = periodic_task_name(job)
        assert scheduler.schedule[name].schedule.run_every.total_seconds() == seconds
        assert heap_entry(scheduler, name).schedule.run_every.total_seconds() == seconds
    assert scheduler.full_reads == 1


on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql",
                                   reason="the recent listing and its fingerprint are PostgreSQL's")


@on_postgresql
def test_an_edit_lists_only_the_tasks_changed_lately():
    # given beat runs with ten jobs
    jobs = [JobFactory(schedule_type="interval", schedule_expression="1h") for _ in range(10)]
    scheduler = started()
    scheduler.tick()
    # when one is edited
    services.job_update(job=jobs[3], data={"schedule_expression": "10s"})
    scheduler.tick()
    # then beat read it from the tasks changed lately, and not the listing of all of them
    name = periodic_task_name(jobs[3])
    assert heap_entry(scheduler, name).schedule.run_every.total_seconds() == 10
    assert (scheduler.recent_listings, scheduler.full_listings, scheduler.full_reads) == (1, 0, 1)
    # and a job added, and one disabled, the same way
    added = JobFactory(schedule_type="interval", schedule_expression="2h")
    services.job_pause(job=jobs[5])
    scheduler.tick()
    assert periodic_task_name(added) in scheduler.schedule
    assert periodic_task_name(jobs[5]) not in scheduler.schedule
    assert heap_counts(scheduler)[periodic_task_name(added)] == 1
    assert (scheduler.recent_listings, scheduler.full_listings, scheduler.full_reads) == (2, 0, 1)


@on_postgresql
@pytest.mark.parametrize("change", ["deleted", "renamed"])
def test_a_change_the_recent_listing_cannot_show_is_found_by_the_fingerprint(change):
    # given beat runs with two tasks of its own beside a job
    job = JobFactory(schedule_type="interval", schedule_expression="1h")
    task = periodic_task("report", every=3600)
    scheduler = started()
    scheduler.tick()
    # when the task is deleted, or renamed (its old name listed nowhere)
    if change == "deleted":
        task.delete()
    else:
        PeriodicTask.objects.filter(pk=task.pk).update(name="report-2")  # no date_changed bump
        PeriodicTasks.update_changed()
    scheduler.tick()
    # then the fingerprint did not match: every task was listed, and the schedule is right
    assert "report" not in scheduler.schedule and "report" not in heap_counts(scheduler)
    assert ("report-2" in scheduler.schedule) is (change == "renamed")
    assert periodic_task_name(job) in scheduler.schedule
    assert scheduler.recent_listings == 0


def test_a_task_renamed_is_replaced_on_the_heap():
    task = periodic_task("report", every=3600)
    scheduler = started()
    scheduler.tick()
    task.name = "weekly report"
    task.save()
    scheduler.tick()
    assert set(heap_counts(scheduler)) == {"weekly report"} == set(scheduler.schedule)


def test_a_job_outside_the_hour_window_is_tracked_without_full_reads(settings):
    # given a daily job whose hour is about half a day away: django-celery-beat's
    # window (±2 h) leaves it out of the schedule (it always keeps 04:00, Celery's
    # cleanup hour: from 16:00 to 16:59 the job is at 03:00 instead)
    hour = aware_now().hour
    away = next(h for h in ((hour + 12) % 24, (hour + 11) % 24) if h != 4)
    job = JobFactory(schedule_type="cron", schedule_expression=f"0 {away} * * *", timezone=settings.TIME_ZONE)
    name = periodic_task_name(job)
    scheduler = started()
    scheduler.tick()
    assert name not in scheduler.schedule

    # when it is edited, it stays out, and beat needs no full read to know
    services.job_update(job=job, data={"priority": 7})
    scheduler.tick()
    assert name not in scheduler.schedule and scheduler.full_reads == 1

    # and when an edit brings it into the window, it is loaded
    services.job_update(job=job, data={"schedule_expression": f"0 {hour} * * *"})
    scheduler.tick()
    assert heap_counts(scheduler)[name] == 1
    assert scheduler.full_reads == 1

def test_the_hour_window_query_has_one_branch_per_time_zone():
    for hour, zone in ((3, "UTC"), (4, "UTC"), (5, "Europe/Berlin"), (6, "Europe/Berlin")):
        JobFactory(schedule_type="cron", schedule_expression=f"0 {hour} * * *", timezone=zone)
    zones = Scheduler(app=app, lazy=True)._get_unique_timezone_names()
    assert sorted(str(zone) for zone in zones) == ["Europe/Berlin", "UTC"]


# ---------------------------------------------------------------------------
# The heap: one entry per enabled task, whatever lands when
# ---------------------------------------------------------------------------
def test_heap_holds_one_entry_per_task_after_a_change_lands_during_populate_heap():
    # given beat runs with three jobs and has built its heap
    jobs = [JobFactory(schedule_type="interval", schedule_expression="1h") for _ in range(3)]
    scheduler = started()
    scheduler.tick()

    # when a change is announced and first read inside the heap rebuild (as
    # after a full read, or at beat's first tick)
    services.job_update(job=jobs[0], data={"schedule_expression": "2h"})
    scheduler.populate_heap()

    # then every enabled task is on the heap exactly once, with its new schedule
    assert heap_counts(scheduler) == Counter(periodic_task_name(j) for j in jobs)
    assert set(scheduler.schedule) == set(heap_counts(scheduler))
    assert heap_entry(scheduler, periodic_task_name(jobs[0])).schedule.run_every.total_seconds() == 7200


def test_a_due_job_is_sent_once_when_a_change_lands_during_populate_heap():
    due = JobFactory(schedule_type="interval", schedule_expression="1h")
    other = JobFactory(schedule_type="interval", schedule_expression="1h")
    make_due(due.periodic_task)
    scheduler = started()
    services.job_update(job=other, data={"priority": 7})
    scheduler.populate_heap()
    tick_until_idle(scheduler)
    assert scheduler.sent == [(periodic_task_name(due), (due.pk,))]


# ---------------------------------------------------------------------------
# What fires: the same as under django-celery-beat's DatabaseScheduler
# ---------------------------------------------------------------------------
@both_schedulers
def test_disable_and_re_enable(scheduler_class):
    # given a job that is due, and beat has sent it
    job = JobFactory(schedule_type="interval", schedule_expression="1h")
    make_due(job.periodic_task)
    name = periodic_task_name(job)
    scheduler = started(scheduler_class)
    tick_until_idle(scheduler)
    assert scheduler.sent == [(name, (job.pk,))]

    # when it is paused, it leaves the schedule and the heap
    services.job_pause(job=job)
    tick_until_idle(scheduler)
    assert name not in scheduler.schedule and name not in heap_counts(scheduler)

    # and when resumed it is back once, counting its hour from now
    services.job_resume(job=job)
    tick_until_idle(scheduler)
    assert heap_counts(scheduler)[name] == 1
    assert scheduler.sent == [(name, (job.pk,))]
    next_run_in = heap_entry(scheduler, name).is_due().next
    assert 3590 < next_run_in <= 3600


@both_schedulers
def test_an_args_change_is_what_the_next_send_carries(scheduler_class):
    periodic_task("report", args="[1]", due=True)
    scheduler = started(scheduler_class)
    tick_until_idle(scheduler)

    # an edit of the row (as in the admin) that also makes it due again
    task = PeriodicTask.objects.get(name="report")
    task.args = "[2]"
    task.last_run_at = timezone.now() - timedelta(hours=1)
    task.save()
    tick_until_idle(scheduler)

    assert scheduler.sent == [("report", (1,)), ("report", (2,))]
    assert heap_counts(scheduler)["report"] == 1


@both_schedulers
@pytest.mark.parametrize("reload", ["another task changed", "bulk change announced"])
def test_last_run_at_is_kept_across_reloads(scheduler_class, reload):
    # given a task beat has just sent
    periodic_task("report", due=True)
    neighbour = periodic_task("neighbour", every=3600)
    scheduler = started(scheduler_class)
    tick_until_idle(scheduler)
    sent_at = PeriodicTask.objects.get(name="report").last_run_at
    assert timezone.now() - sent_at < timedelta(seconds=5)

    # when beat reloads what changed (or, on an announce alone, everything)
    if reload == "another task changed":
        neighbour.args = "[9]"
        neighbour.save()
    else:
        PeriodicTasks.update_changed()
    tick_until_idle(scheduler)

    # then it is not sent again: its last run came back with it
    assert scheduler.sent == [("report", ())]
    assert scheduler.schedule["report"].last_run_at == sent_at
    assert PeriodicTask.objects.get(name="report").total_run_count == 1


@both_schedulers
def test_a_one_off_clocked_task_fires_once(scheduler_class):
    # given a one-off task whose time has come
    clocked = ClockedSchedule.objects.create(clocked_time=timezone.now() - timedelta(seconds=1))
    PeriodicTask.objects.create(name="once", task="tests.echo", clocked=clocked, one_off=True)
    neighbour = periodic_task("neighbour", every=3600)
    scheduler = started(scheduler_class)

    # when beat ticks, reloads after a change and after a bare announce, and ticks on
    tick_until_idle(scheduler)
    neighbour.args = "[9]"
    neighbour.save()
    tick_until_idle(scheduler)
    PeriodicTasks.update_changed()
    tick_until_idle(scheduler)

    # then it was sent once, and is disabled
    assert scheduler.sent == [("once", ())]
    assert PeriodicTask.objects.get(name="once").enabled is False


# ---------------------------------------------------------------------------
# Start-up
# ---------------------------------------------------------------------------
def test_beat_start_reads_the_schedule_once():
    # given jobs exist
    job = JobFactory(schedule_type="interval", schedule_expression="1h")

    # when beat constructs its scheduler (writing its default entries)
    scheduler = Scheduler(app=app)

    # then one full read has everything, and there is nothing left to re-read
    assert {periodic_task_name(job), "celery.backend_cleanup", *app.conf.beat_schedule} <= set(scheduler.schedule)
    assert (scheduler.full_reads, scheduler.incremental_reads) == (1, 0)
    assert scheduler.schedule_changed() is False


# ---------------------------------------------------------------------------
# Jobs due together: one tick records them all (scheduling.beat.lock.LockedScheduler)
# ---------------------------------------------------------------------------
def a_second_ago():
    """A due time that has just come (whole seconds, as beat's due times are)."""
    return timezone.now().replace(microsecond=0) - timedelta(seconds=1)


def hourly_jobs_due(count, *, due, **fields):
    """``count`` hourly jobs whose next fire is ``due`` (beat's last one an hour before)."""
    from scheduling.models import Job

    jobs = [JobFactory(schedule_type="interval", schedule_expression="1h", **fields) for _ in range(count)]
    PeriodicTask.objects.filter(pk__in=[job.periodic_task_id for job in jobs]).update(last_run_at=due - timedelta(hours=1))
    Job.objects.filter(pk__in=[job.pk for job in jobs]).update(next_run_at=due)
    return jobs


def next_runs_of(jobs) -> list:
    """The jobs' ``next_run_at`` as stored, in the jobs' order."""
    from scheduling.models import Job

    stored = dict(Job.objects.filter(pk__in=[job.pk for job in jobs]).values_list("pk", "next_run_at"))
    return [stored[job.pk] for job in jobs]


def locked_scheduler():
    from scheduling.beat.lock import LockedScheduler

    scheduler = LockedScheduler(app=app, lazy=True)
    scheduler.schedule  # the initial read
    return scheduler


@pytest.fixture
def beat():
    """``locked_scheduler()``, made when the test asks (after its jobs), closed after it."""
    made = []

    def make():
        made.append(locked_scheduler())
        return made[-1]

    yield make
    for scheduler in made:
        scheduler.close()


def test_jobs_due_together_are_recorded_and_sent_in_one_tick(beat):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from scheduling.broker import broker_view
    from scheduling.models import Execution

    due = a_second_ago()
    jobs = hourly_jobs_due(12, due=due)
    scheduler = beat()
    # when beat ticks once
    with CaptureQueriesContext(connection) as queries:
        assert scheduler.tick() == 0
    # then every job has its run for that due time, queued and sent under its task id
    executions = list(Execution.objects.filter(job__in=jobs).order_by("job_id"))
    assert [e.job_id for e in executions] == sorted(job.pk for job in jobs)
    assert {(e.scheduled_for, e.trigger, e.attempt) for e in executions} == {(due, "schedule", 1)}
    assert all(e.celery_task_id for e in executions)

    def on_its_way_or_started(execution) -> bool:
        execution.refresh_from_db()
        if execution.status != "queued":
            return True
        # (a worker's BRPOP takes a message off its list a moment before kombu files it as
        # unacked: a message in that moment is in neither, so it is looked for again)
        view = broker_view(fresh_seconds=3600)
        return execution.celery_task_id in view.waiting | view.held

    for execution in executions:
        wait_for(lambda: on_its_way_or_started(execution), timeout=2,
                 message=f"execution {execution.pk}'s message in the broker, or the run started")
    # and beat's own record of each fire, the jobs' next runs
    tasks = PeriodicTask.objects.filter(pk__in=[job.periodic_task_id for job in jobs])
    assert {(t.last_run_at, t.total_run_count) for t in tasks} == {(due, 1)}
    for job in jobs:
        job.refresh_from_db()
        assert job.next_run_at == due + timedelta(hours=1) and job.last_run_at is not None
    # in a bounded number of queries, not a few per job
    assert len(queries) < 30, [q["sql"][:80] for q in queries]
    assert not scheduler._dirty & {periodic_task_name(job) for job in jobs}

    # and the next tick sends nothing more, nor does a reload
    PeriodicTasks.update_changed()
    assert scheduler.tick() > 0
    assert Execution.objects.filter(job__in=jobs).count() == 12


def test_the_jobs_run_times_are_written_after_the_minutes_messages_are_sent(beat):
    due = a_second_ago()
    jobs = hourly_jobs_due(3, due=due)
    scheduler = beat()
    seen_at_send = []
    send = services.executions_send

    def sending(pairs):
        seen_at_send.extend(next_runs_of([job for _, job in pairs]))
        return send(pairs)

    # when beat ticks
    with mock.patch("scheduling.services.executions_send", side_effect=sending):
        scheduler.tick()
    # then the messages went out before the jobs' times were written (not queued behind them)...
    assert seen_at_send == [due] * 3
    # ...which are written once they are out
    assert next_runs_of(jobs) == [due + timedelta(hours=1)] * 3


def test_a_transaction_that_fails_after_its_runs_were_made_sends_no_message_for_them(beat):
    from django.db import OperationalError

    from scheduling.models import Execution

    due = a_second_ago()
    jobs = hourly_jobs_due(3, due=due)
    scheduler = beat()
    sent = []
    scheduler.apply_entry = lambda entry, producer=None: sent.append(entry.task)
    # when the database fails after the runs were inserted, before the transaction's end
    dispatch = services.jobs_dispatch_scheduled

    def dispatch_then_fail(**kwargs):
        dispatch(**kwargs)
        raise OperationalError("database is away")

    with mock.patch("scheduling.services.jobs_dispatch_scheduled", side_effect=dispatch_then_fail), \
         mock.patch("scheduling.services.executions_send", wraps=services.executions_send) as sending:
        scheduler.tick()
    # then the fires go out as run_job messages, and none for the runs rolled back
    assert sent == ["scheduling.run_job"] * 3
    assert not Execution.objects.filter(job__in=jobs).exists()
    assert [pair for call in sending.call_args_list for pair in call.args[0]] == []
    # nor were those jobs' run times written
    assert next_runs_of(jobs) == [due] * 3


def test_when_beats_own_record_fails_after_the_sends_the_runs_stand_and_sync_writes_the_record(beat):
    from django.db import OperationalError

    from scheduling.models import Execution

    due = a_second_ago()
    jobs = hourly_jobs_due(3, due=due)
    scheduler = beat()
    # when the write after the sends fails
    with mock.patch("scheduling.beat.lock.periodic_tasks_record_fires",
                    side_effect=OperationalError("database is away")):
        scheduler.tick()
    # then the runs were recorded (and sent), and the tasks' records are left to sync()
    assert Execution.objects.filter(job__in=jobs, scheduled_for=due).count() == 3
    assert {periodic_task_name(job) for job in jobs} <= scheduler._dirty
    scheduler.sync()
    tasks = PeriodicTask.objects.filter(pk__in=[job.periodic_task_id for job in jobs])
    assert {task.last_run_at for task in tasks} == {due}


def test_a_fire_recorded_but_not_in_beats_record_is_neither_run_again_nor_reported_missed(beat):
    from scheduling.models import Execution

    # given an hourly job whose fire two hours ago ran, though beat's own record of it was
    # never written (beat stopped right after the sends), and beat away since
    due = a_second_ago()
    job, = hourly_jobs_due(1, due=due - timedelta(hours=1))  # beat's record: two hours before due
    PeriodicTask.objects.filter(pk=job.periodic_task_id).update(date_changed=due - timedelta(hours=3))
    Execution.objects.create(job=job, status="success", trigger="schedule", scheduled_for=due - timedelta(hours=1),
                             celery_task_id="t-ran")
    scheduler = beat()
    # when beat comes back, owing (it believes) the fire before last and the last one
    scheduler.tick()
    # then the fire that ran is not run again, and nothing is reported missed
    assert not Execution.objects.filter(job=job, status="missed").exists()
    assert set(Execution.objects.filter(job=job).values_list("scheduled_for", flat=True)) == {
        due - timedelta(hours=1), due}


def test_fires_that_are_not_plain_go_one_by_one_in_the_same_tick(beat):
    from scheduling.models import Execution

    due = a_second_ago()
    plain, busy, duplicate, paused = hourly_jobs_due(4, due=due, overlap_policy="skip")
    owing = JobFactory(schedule_type="interval", schedule_expression="1h", catch_up_policy="skip")
    # beat was away for 3 hours: the latest fire owes two missed ones
    PeriodicTask.objects.filter(pk=owing.periodic_task_id).update(
        last_run_at=due - timedelta(hours=3), date_changed=due - timedelta(hours=4))
    running = Execution.objects.create(job=busy, status="running", trigger="api", celery_task_id="t-busy")
    Execution.objects.create(job=duplicate, status="success", trigger="schedule", scheduled_for=due)
    scheduler = beat()
    services.job_pause(job=paused)  # after beat read it: the fire finds it paused
    scheduler.tick()
    # (queued, or already taken by the session's worker if one runs)
    assert Execution.objects.get(job=plain, trigger="schedule").scheduled_for == due
    skipped = Execution.objects.get(job=busy, trigger="schedule")
    assert skipped.status == "skipped" and f"execution {running.pk} is still running" in skipped.output
    assert Execution.objects.filter(job=duplicate).count() == 1
    assert not Execution.objects.filter(job=paused).exists()
    missed = Execution.objects.get(job=owing, status="missed")
    assert missed.result["missed"] == 2


def test_when_the_database_fails_the_fires_go_out_as_run_job_messages(beat):
    from django.db import OperationalError

    due = a_second_ago()
    jobs = hourly_jobs_due(3, due=due)
    scheduler = beat()
    sent = []
    scheduler.apply_entry = lambda entry, producer=None: sent.append((entry.task, entry.args, entry.kwargs))
    with mock.patch("scheduling.services.jobs_dispatch_scheduled", side_effect=OperationalError("database is away")):
        scheduler.tick()
    assert sorted(args[0] for _, args, _ in sent) == sorted(job.pk for job in jobs)
    assert {task for task, _, _ in sent} == {"scheduling.run_job"}
    assert {kwargs["scheduled_for"] for _, _, kwargs in sent} == {due.isoformat()}
    # not recorded as fired: the regular sync writes them back
    assert {periodic_task_name(job) for job in jobs} <= scheduler._dirty


def test_a_burst_larger_than_a_transaction_renews_the_lock_between_them(monkeypatch, beat):
    from scheduling.beat import lock as beat_lock
    from scheduling.models import Execution

    monkeypatch.setattr(beat_lock, "PLAIN_FIRES_PER_TRANSACTION", 5)
    due = a_second_ago()
    jobs = hourly_jobs_due(12, due=due)
    scheduler = beat()
    renewals = []
    real_acquire = scheduler.beat_lock.acquire
    scheduler.beat_lock.acquire = lambda: renewals.append(1) or real_acquire()
    scheduler.tick()
    assert Execution.objects.filter(job__in=jobs, scheduled_for=due).count() == 12
    assert len(renewals) >= 3  # the tick's own, then one before each later transaction


def test_a_beat_that_loses_its_lock_mid_burst_leaves_the_rest_to_the_new_one(monkeypatch):
    from scheduling.beat import lock as beat_lock
    from scheduling.models import Execution

    monkeypatch.setattr(beat_lock, "PLAIN_FIRES_PER_TRANSACTION", 5)
    due = a_second_ago()
    jobs = hourly_jobs_due(12, due=due)
    scheduler = locked_scheduler()
    answers = iter([True, False])  # the tick takes the lock; before the 2nd transaction it is gone
    scheduler.beat_lock.acquire = lambda: next(answers, False)
    try:
        scheduler.tick()
        recorded = Execution.objects.filter(job__in=jobs, scheduled_for=due)
        assert recorded.count() == 5
        fired = {e.job.periodic_task.name for e in recorded.select_related("job__periodic_task")}
        # the other seven are neither recorded nor written back as fired: the active beat owes them
        tasks = PeriodicTask.objects.filter(pk__in=[job.periodic_task_id for job in jobs])
        assert {t.name for t in tasks if t.last_run_at == due} == fired
        assert not scheduler._dirty & ({periodic_task_name(job) for job in jobs} - fired)
    finally:
        scheduler.is_active = False  # (close() would release a lock this beat no longer holds)
        scheduler.close()


def test_the_beat_lock_is_given_up_on_close_and_only_once():
    scheduler = locked_scheduler()
    assert scheduler.beat_lock.acquire() and scheduler.beat_lock.current_holder() == scheduler.beat_lock.holder
    scheduler.is_active = True
    released = []
    real_release = scheduler.beat_lock.release
    scheduler.beat_lock.release = lambda: released.append(1) or real_release()
    scheduler.close()
    scheduler.close()  # celery beat may close twice when it stops
    assert released == [1] and scheduler.beat_lock.current_holder() is None



def test_beat_refreezes_its_heap_after_a_full_re_read():
    import gc

    JobFactory(schedule_type="interval", schedule_expression="10s")
    scheduler = started()
    scheduler.freezes_heap = True  # as in a beat process (jobsite.celery, beat_init)
    try:
        gc.freeze()  # beat froze its first schedule
        scheduler._full_read(initial=False)
        # the entries read now are frozen too (jobsite.heap.refreeze_heap: the ones replaced
        # were unfrozen first, so the collector could free them)
        tracked = {id(obj) for obj in gc.get_objects()}
        assert scheduler.schedule and not [e for e in scheduler.schedule.values() if id(e) in tracked]
    finally:
        gc.unfreeze()


def test_the_heaps_times_are_celerys_read_from_the_clock_directly_and_a_schedules_own_clock_is_asked():
    from celery.beat import ScheduleEntry
    from celery.beat import Scheduler as CelerysScheduler

    from scheduling.beat.crontab import JobCrontab

    scheduler = Scheduler(app=app, lazy=True)
    entry = ScheduleEntry(name="paris", task="t", schedule=JobCrontab("* * * * *", "Europe/Paris", app=app), app=app)
    # an entry on the system clock: what Celery's _when gives (through app.now), to the millisecond
    before = CelerysScheduler._when(scheduler, entry, 12.5)
    ours = scheduler._when(entry, 12.5)
    after = CelerysScheduler._when(scheduler, entry, 12.5)
    assert before - 0.001 <= ours <= after + 0.001
    earlier, now, later = app.now(), entry.schedule.now(), app.now()
    assert earlier - timedelta(milliseconds=1) <= now <= later + timedelta(milliseconds=1)
    # an entry whose schedule keeps its own clock: that clock
    then = timezone.now() - timedelta(days=3)
    entry = ScheduleEntry(name="own", task="t", schedule=JobCrontab("* * * * *", "UTC", nowfun=lambda: then, app=app),
                          app=app)
    assert scheduler._when(entry, 0) == then.timestamp()


def test_beat_wakes_a_little_before_a_due_time_to_read_the_changes_before_the_burst():
    from celery.beat import ScheduleEntry, event_t

    from scheduling.beat.crontab import JobCrontab
    from scheduling.beat.scheduler import LOOK_AHEAD_SECONDS

    scheduler = Scheduler(app=app, lazy=True)
    now = timezone.now()  # the entry's own clock, standing still: the times are exact
    entry = ScheduleEntry(name="job", task="t", schedule=JobCrontab("* * * * *", "UTC", nowfun=lambda: now, app=app),
                          app=app)

    def sleep_with_the_next_due_in(seconds: float, interval: float) -> float:
        scheduler._heap = [event_t(now.timestamp() + seconds, 5, entry)]
        return scheduler._looking_ahead(interval)

    # a due time within the sleep: woken LOOK_AHEAD_SECONDS before it
    assert sleep_with_the_next_due_in(3.0, 5.0) == pytest.approx(3.0 - LOOK_AHEAD_SECONDS)
    # one just beyond it, whose look-ahead the next tick would miss: woken then all the same
    assert sleep_with_the_next_due_in(1.1, 1.0) == pytest.approx(1.1 - LOOK_AHEAD_SECONDS)
    # one farther: the next tick comes before the look-ahead, and takes care of it
    assert sleep_with_the_next_due_in(1.4, 1.0) == 1.0
    # then, that close to it: slept until it
    assert sleep_with_the_next_due_in(LOOK_AHEAD_SECONDS, LOOK_AHEAD_SECONDS) == LOOK_AHEAD_SECONDS
    # a due time beyond the sleep, or no entry at all: the sleep as it was
    assert sleep_with_the_next_due_in(30.0, 5.0) == 5.0
    scheduler._heap = []
    assert scheduler._looking_ahead(5.0) == 5.0


def test_events_due_at_the_same_moment_are_ordered_without_comparing_their_entries():
    from celery.beat import ScheduleEntry

    from scheduling.beat.crontab import JobCrontab

    class Uncomparable(ScheduleEntry):
        def __eq__(self, other):
            raise AssertionError("the heap compared two entries")

        __lt__ = __eq__
        __hash__ = object.__hash__

    now = timezone.now()  # the entries' own clock, standing still: all 50 due at the very same moment
    entries = {f"e{i}": Uncomparable(name=f"e{i}", task="t", app=app, last_run_at=now - timedelta(minutes=5),
                                     schedule=JobCrontab("* * * * *", "UTC", nowfun=lambda: now, app=app))
               for i in range(50)}
    scheduler = Scheduler(app=app, lazy=True)
    scheduler._schedule, scheduler._initial_read = entries, False  # as read, and nothing changed since
    scheduler._last_full_read, scheduler._last_timestamp = time.monotonic(), scheduler.Changes.last_change()
    scheduler.populate_heap()
    assert len({event.time for event in scheduler._heap}) == 1
    assert len({event.priority for event in scheduler._heap}) == 50  # a number of its own each
    popped = [heapq.heappop(scheduler._heap) for _ in range(50)]
    for event in popped:  # pushed back as their successors are: the numbers kept
        heapq.heappush(scheduler._heap, event._replace(time=event.time + 60))
    scheduler._reheap({"e3", "e7"})
    assert sorted(event.entry.name for event in scheduler._heap) == sorted(entries)
