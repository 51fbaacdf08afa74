"""Two beats never double a run. Real beats (subprocesses), a real worker and
a Redis of the test's own (the beat lock lives there)."""
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from scheduling.beat.lock import LOCK_KEY
from scheduling.broker import broker_client
from tests.factories import JobFactory
from tests.faults.support import own_redis, wait_for  # noqa: F401  (fixture)
from tests.worker import start_worker_process, worker_env

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LOCK_ENV = {"JOBS_BEAT_LOCK_TTL_SECONDS": "4", "JOBS_BEAT_STANDBY_POLL_SECONDS": "1"}


class Beat:
    def __init__(self, redis_env):
        self.workdir = tempfile.mkdtemp(prefix="celery-beat-")
        self.log_path = os.path.join(self.workdir, "beat.log")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "jobsite", "beat", "--loglevel", "info", "--max-interval", "1",
                 "-S", settings.CELERY_BEAT_SCHEDULER, "-s", os.path.join(self.workdir, "beat-schedule")],
                cwd=str(settings.BASE_DIR), env=worker_env({**redis_env, **LOCK_ENV}), stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )

    @property
    def pid(self):
        return self.process.pid

    def log(self):
        with open(self.log_path, errors="replace") as log:
            return log.read()

    def sends_of(self, job):
        """Fires of ``job`` this beat sent: recorded by beat itself (``beat: fired``), or
        sent one by one as Celery does it (``Sending due task``)."""
        log = self.log()
        return log.count(f"Sending due task job:{job.pk} ") + log.count(f"beat: fired job:{job.pk} for ")

    def kill(self):
        os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def beats(own_redis):
    started = []

    def start():
        beat = Beat(own_redis.env())
        started.append(beat)
        return beat

    yield start
    for beat in started:
        beat.stop()


@pytest.fixture
def beat_worker(own_redis):
    worker = start_worker_process(concurrency=2, hostname="beatfault@%h", extra_env=own_redis.env())
    yield worker
    worker.stop()


def active_beat(*candidates):
    holder = broker_client().get(LOCK_KEY)
    if not holder:
        return None
    pid = int(holder.decode().split(":")[1])
    return next((beat for beat in candidates if beat.pid == pid), None)


def fires(job):
    return list(job.executions.exclude(status="missed").order_by("scheduled_for").values_list("scheduled_for", "status"))


def test_two_beats_fire_an_interval_job_once_per_due_time_and_a_standby_takes_over(beats, beat_worker):
    # every 5 s: more than the takeover (TTL + poll, asserted below) takes, so no due time
    # passes unfired; as if last fired 3 s ago, so the first comes while the beats start
    job = JobFactory(schedule_type="interval", schedule_expression="5s", task_name="tests.echo", overlap_policy="allow")
    PeriodicTask.objects.filter(pk=job.periodic_task_id).update(last_run_at=timezone.now() - timedelta(seconds=3))
    first, second = beats(), beats()
    active = wait_for(lambda: active_beat(first, second), timeout=30, message="one beat to take the lock")
    standby = second if active is first else first
    wait_for(lambda: job.executions.count() >= 3, timeout=40, message="three fires")
    # (beat logs a fire once it is sent, just after its row is committed)
    wait_for(lambda: active.sends_of(job) >= len(fires(job)), timeout=10, message="the active beat's log of them")
    # exactly one Execution per due time, 5 s apart, sent by the active beat only
    times = [when for when, _ in fires(job)]
    assert len(times) == len(set(times))
    assert {b - a for a, b in zip(times, times[1:])} == {timedelta(seconds=5)}
    assert standby.sends_of(job) == 0 and active.sends_of(job) == len(times)
    assert "standing by" not in active.log()

    # when the active beat is killed, the standby takes over within TTL + poll (4 + 1 s here)
    killed_at = time.monotonic()
    fired_before = len(times)
    # (a beat that started slowly, on a loaded machine, may have owed a missed fire at its start)
    missed_before = job.executions.filter(status="missed").count()
    active.kill()
    wait_for(lambda: active_beat(standby) is standby, timeout=15, message="the standby to take the lock")
    took_over = time.monotonic() - killed_at
    wait_for(lambda: len(fires(job)) >= fired_before + 2, timeout=40, message="the standby to fire twice")
    times = [when for when, _ in fires(job)]
    # (each fire's row is written before its send, the log line after it)
    wait_for(lambda: active.sends_of(job) + standby.sends_of(job) >= len(times), timeout=10,
             message="the beats' logs of them")
    # the spacing holds across the takeover: no fire repeated, none missed. (A beat killed
    # between sending a fire and writing it down makes the standby send that fire again:
    # the database refuses it, so standby sends may outnumber new executions by one.)
    assert len(times) == len(set(times)) >= fired_before + 2
    assert {b - a for a, b in zip(times, times[1:])} == {timedelta(seconds=5)}
    assert job.executions.filter(status="missed").count() == missed_before
    assert active.sends_of(job) + standby.sends_of(job) - len(times) in (0, 1)
    assert took_over < 4 + 1 + 4
    print(f"\nstandby took over {took_over:.1f}s after the active beat was killed; {len(times)} fires, none doubled")


def owed_cron_job():
    """A cron job with its minute due now: an hourly cron at the minute that just began,
    which beat last fired before it (as a beat that comes back just after the minute finds
    it). The next fire is an hour away, so the minute's fire is the only one, and beat
    sends it at start instead of at a real minute boundary (tests/e2e/test_workflows.py
    waits for one)."""
    if timezone.now().second > 40:  # the fire must come within the missed-run grace (60 s)
        time.sleep(61 - timezone.now().second)
    minute = timezone.now().replace(second=0, microsecond=0)
    job = JobFactory(schedule_type="cron", schedule_expression=f"{minute.minute} * * * *", timezone="UTC",
                     task_name="tests.echo", overlap_policy="allow")
    PeriodicTask.objects.filter(pk=job.periodic_task_id).update(last_run_at=minute - timedelta(seconds=30))
    return job, minute


def test_two_beats_on_a_cron_job_one_run_for_its_minute_and_a_takeover_does_not_repeat_it(beats, beat_worker):
    # That the standby then fires the next due time is the interval test's part above:
    # the lock does not depend on the schedule.
    job, due = owed_cron_job()
    first, second = beats(), beats()
    active = wait_for(lambda: active_beat(first, second), timeout=30, message="one beat to take the lock")
    standby = second if active is first else first
    wait_for(lambda: job.executions.exists(), timeout=30, message="the minute's fire")
    minute = job.executions.get().scheduled_for
    assert minute.second == 0 and minute.microsecond == 0 and minute == due
    # killed once it has sent the fire (it logs the fire after the send, and the row
    # exists before the send: a kill in between would leave that run to the stale sweep)
    wait_for(lambda: active.sends_of(job) == 1, timeout=10, message="the active beat to send the minute's fire")
    active.kill()
    wait_for(lambda: active_beat(standby) is standby, timeout=15, message="the standby to take the lock")
    # the standby reads the minute's fire from the database: it neither sends it again nor
    # records it as missed or skipped, while it ticks every second
    time.sleep(4)
    assert list(job.executions.values_list("scheduled_for", flat=True)) == [minute]
    assert standby.sends_of(job) == 0 and active.sends_of(job) == 1
    assert "now the active one" in standby.log()
    wait_for(lambda: job.executions.get(scheduled_for=minute).status == "success", timeout=20, message="the run to finish")
