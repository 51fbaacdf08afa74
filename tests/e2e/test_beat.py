"""Beat end to end: a real ``celery beat`` with the project's scheduler, the
real broker and the real worker (tests/worker.py)."""
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from jobsite.services_health import BEAT_HEARTBEAT_KEY
from scheduling import services
from scheduling.beat.lock import LOCK_KEY
from scheduling.models import Execution, Job
from tests.factories import JobFactory
from tests.scheduling.beat.test_scheduler import clock_behind
from tests.e2e.test_scheduling import wait_for
from tests.worker import worker_env

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def start_beat() -> tuple[subprocess.Popen, str]:
    """``celery beat`` with settings.CELERY_BEAT_SCHEDULER; (the process, its log's path)."""
    workdir = tempfile.mkdtemp(prefix="celery-beat-")
    with open(os.path.join(workdir, "beat.log"), "wb") as log:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "jobsite", "beat", "--loglevel", "info", "--max-interval", "1",
             "-S", settings.CELERY_BEAT_SCHEDULER, "-s", os.path.join(workdir, "beat-schedule")],
            cwd=str(settings.BASE_DIR), env=worker_env(), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    return beat, log.name


def log_tail(path: str, chars: int = 3000) -> str:
    return open(path, errors="replace").read()[-chars:]


@contextmanager
def running_beat():
    """``celery beat`` with settings.CELERY_BEAT_SCHEDULER, once it has read
    the schedule and ticked (its first heartbeat)."""
    heartbeats = redis.Redis.from_url(settings.REDIS_URL)
    heartbeats.delete(BEAT_HEARTBEAT_KEY)
    beat, log_path = start_beat()
    try:
        wait_for(lambda: heartbeats.get(BEAT_HEARTBEAT_KEY) or beat.poll() is not None, timeout=20,
                 message="beat's first tick")
        assert beat.poll() is None, log_tail(log_path)
        yield beat
    finally:
        beat.terminate()
        try:
            beat.wait(timeout=15)
        except subprocess.TimeoutExpired:
            # Never left running: a beat still heartbeating would be taken for the next test's beat.
            # (seen once on a loaded machine, 2026-12-07: beat slower than 15 s to stop on SIGTERM)
            beat.kill()
            beat.wait(timeout=15)
            print(f"beat did not stop within 15 s of SIGTERM; killed. Its log ends:\n{log_tail(log_path, 2000)}",
                  file=sys.stderr)


def beat_sends(job) -> int:
    """How often beat has sent the job (written back after every send: CELERY_BEAT_SYNC_EVERY = 1)."""
    return PeriodicTask.objects.get(pk=job.periodic_task_id).total_run_count


def test_a_job_edited_while_beat_runs_fires_on_its_new_schedule_once_per_run(celery_worker_process):
    # given beat runs with two hourly jobs
    edited = JobFactory(schedule_type="interval", schedule_expression="1h")
    bystander = JobFactory(schedule_type="interval", schedule_expression="1h")
    with running_beat():
        # when one becomes a 2-second job, saved from a host whose clock is an
        # hour behind beat's, and the other is edited normally
        with clock_behind(timedelta(hours=1)):
            services.job_update(job=edited, data={"schedule_expression": "2s"})
        services.job_update(job=bystander, data={"priority": 7})

        # then beat sends it every 2 seconds, once per due time (a doubled heap
        # entry sends twice), and the worker runs each send once
        # (a beat that starts slowly owes more than one due time on the new
        # schedule by its first tick: those are recorded as a "missed" row, not run)
        runs = Execution.objects.filter(job=edited, trigger="schedule").exclude(status="missed")
        wait_for(lambda: runs.exists(), timeout=10, message="the first run on the new schedule")
        sends_before = beat_sends(edited)
        time.sleep(6)
        assert 2 <= beat_sends(edited) - sends_before <= 4
        # beat stops just after a fire is recorded, not while it takes one
        fired = runs.count()
        wait_for(lambda: runs.count() > fired, timeout=10, message="the next fire")
    wait_for(lambda: runs.count() == beat_sends(edited), timeout=10, message="a run per send")
    assert not Execution.objects.filter(job=bystander).exists()


def test_an_interval_row_edited_in_place_is_fired_on_at_once(celery_worker_process):
    # given beat runs with an hourly job on an interval row of its own, and a bystander
    job = JobFactory(schedule_type="interval", schedule_expression="3595s", task_name="tests.echo",
                     overlap_policy="allow")
    bystander = JobFactory(schedule_type="interval", schedule_expression="1h")
    row = PeriodicTask.objects.get(pk=job.periodic_task_id).interval_id
    with running_beat():
        # when the row becomes every 2 s in place, and the change is announced by another job's save
        IntervalSchedule.objects.filter(pk=row).update(every=2)
        services.job_update(job=bystander, data={"priority": 7})

        # then beat fires the job every 2 s from its next tick, not after its next full read (minutes)
        runs = Execution.objects.filter(job=job, trigger="schedule").exclude(status="missed")
        wait_for(lambda: runs.count() >= 2, timeout=15, message="two fires on the edited interval")
        first, second = runs.order_by("scheduled_for").values_list("scheduled_for", flat=True)[:2]
        assert second - first == timedelta(seconds=2)
    assert not Execution.objects.filter(job=bystander).exists()



def waits_for_a_row_lock() -> bool:
    """Whether another session of the test database waits for a lock (PostgreSQL)."""
    with connection.cursor() as cursor:
        cursor.execute("select pg_stat_clear_snapshot()")  # (the activity view is a snapshot per transaction)
        cursor.execute("select count(*) from pg_stat_activity where datname = current_database() "
                       "and wait_event_type = 'Lock'")
        return cursor.fetchone()[0] > 0



def test_beat_stops_within_seconds_of_sigterm_while_it_writes_its_entries_back():
    # given two plain periodic tasks (not jobs: beat writes each one's last run back after it sent
    # it, one by one), every second, on a queue of their own, their rows locked by another
    # transaction: beat sends both, and its write-back of the first waits for the row
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    queue = f"beat-stop-test-{os.getpid()}"
    tasks = [PeriodicTask.objects.create(name=f"test: plain {k}", task="celery.backend_cleanup",
                                         interval=every_second, queue=queue) for k in range(2)]
    lock = redis.Redis.from_url(settings.REDIS_URL)
    lock.delete(LOCK_KEY)
    with transaction.atomic():
        PeriodicTask.objects.filter(pk__in=[task.pk for task in tasks]).update(description="locked")
        beat, log_path = start_beat()
        try:
            if connection.vendor == "postgresql":
                wait_for(lambda: waits_for_a_row_lock() or beat.poll() is not None, timeout=60,
                         message="beat's write-back waiting for the row")
            else:  # SQLite: the whole database is locked; beat's start waits to write its own entries
                wait_for(lambda: "beat: Starting" in log_tail(log_path) or beat.poll() is not None, timeout=60,
                         message="beat starting")
            assert beat.poll() is None, log_tail(log_path)

            # when SIGTERM comes then, and the rows are let go at once
            beat.terminate()
            stopping = time.monotonic()
        except BaseException:
            beat.kill()
            beat.wait(timeout=15)
            raise
    try:
        # then beat finishes what it was doing and stops within a few seconds. (Its signal handler
        # used to write the entries back itself, from inside the waiting query: on PostgreSQL its
        # first query waited for the connection's lock, held by the query it had interrupted: forever.)
        try:
            wait_for(lambda: beat.poll() is not None, timeout=12, interval=0.1, message="beat to stop")
        except AssertionError:
            raise AssertionError(f"beat still running 12 s after SIGTERM; its log ends:\n{log_tail(log_path)}") from None
        print(f"beat stopped {time.monotonic() - stopping:.2f} s after SIGTERM")
    finally:
        if beat.poll() is None:
            beat.kill()
            beat.wait(timeout=15)
        lock.delete(queue)
    # cleanly: its lock released (else the next beat waits out the lock's TTL), every send written back
    assert beat.returncode == 0, log_tail(log_path)
    assert lock.get(LOCK_KEY) is None
    if connection.vendor == "postgresql":
        assert all(task.total_run_count >= 1 for task in PeriodicTask.objects.filter(pk__in=[t.pk for t in tasks]))
