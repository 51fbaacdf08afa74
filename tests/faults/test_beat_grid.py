"""Interval fires stay on their grid after a beat outage: real beats
(subprocesses) stopped or killed, a restart or a standby's takeover, a real
worker and a Redis of the test's own (the beat lock lives there).

A fire's lateness is when beat recorded it (``Execution.created_at``, just
before its message is sent) minus the due time it fired for
(``scheduled_for``). The first fire after an outage is a catch-up, late by
however long the outage ran into its interval; the fires after it are due on
the grid again, and must be sent as promptly as before the outage (not as
late as the catch-up, on every fire from then on).

To make that catch-up late by more than half an interval whatever the
machine's speed, the test holds the beat lock itself during the outage and
lets it go at 60 % of an interval: the new beat (started meanwhile, standing
by) takes over within its poll, exactly as after a restart or when the dead
beat's lock expires.
"""
from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from scheduling.beat.lock import LOCK_KEY
from scheduling.broker import broker_client
from tests.factories import JobFactory
from tests.faults.support import own_redis, wait_for  # noqa: F401  (fixture)
from tests.faults.test_beat import active_beat, beat_worker, beats  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

EVERY = 4  # seconds; more than a standby's poll (1 s) takes, so it takes over inside one interval
OUTAGE_HOLDER = "test-outage:0:held"


def on_time_fires(job):
    """(due time, seconds late) of the job's fires, in order; missed ones (no run) left out."""
    rows = job.executions.filter(trigger="schedule").exclude(status="missed").order_by("scheduled_for")
    return [(due, (created - due).total_seconds()) for due, created in rows.values_list("scheduled_for", "created_at")]


def hold_the_lock():
    broker_client().set(LOCK_KEY, OUTAGE_HOLDER, px=120_000)


def release_the_lock_at(when):
    wait_for(lambda: timezone.now() >= when, timeout=(when - timezone.now()).total_seconds() + 5,
             message=f"the moment to end the outage ({when.isoformat()})")
    assert broker_client().get(LOCK_KEY).decode() == OUTAGE_HOLDER
    broker_client().delete(LOCK_KEY)


@pytest.mark.parametrize("outage", ["stopped-and-restarted", "killed-and-taken-over"])
def test_interval_fires_after_a_beat_outage_are_as_punctual_as_before(beats, beat_worker, outage):
    # given an every-4-s job whose grid starts a few seconds from now, and beat running
    job = JobFactory(schedule_type="interval", schedule_expression=f"{EVERY}s", task_name="tests.echo",
                     overlap_policy="allow")
    PeriodicTask.objects.filter(pk=job.periodic_task_id).update(last_run_at=timezone.now() + timedelta(seconds=6))
    first = beats()
    standby = beats() if outage == "killed-and-taken-over" else None
    wait_for(lambda: active_beat(first, standby) is not None, timeout=30, message="one beat to take the lock")
    active = active_beat(first, standby)
    wait_for(lambda: len(on_time_fires(job)) >= 3, timeout=40, message="three fires before the outage")
    before = on_time_fires(job)

    # when beat goes away for more than two intervals, just after a fire
    if outage == "killed-and-taken-over":
        active.kill()
        hold_the_lock()  # (the dead beat's lock, until the test lets it expire)
        successor = standby if active is first else first
    else:
        active.stop()
        hold_the_lock()
        successor = beats()
    wait_for(lambda: "beat: Starting" in successor.log(), timeout=30, message="the next beat to start")
    last_due = on_time_fires(job)[-1][0]
    intervals = 2
    while last_due + timedelta(seconds=EVERY * (intervals + 0.6)) < timezone.now() + timedelta(seconds=0.5):
        intervals += 1
    release_the_lock_at(last_due + timedelta(seconds=EVERY * (intervals + 0.6)))

    # then the next beat fires what it owes once, and every fire after it on the grid, on time
    wait_for(lambda: len(on_time_fires(job)) >= len(before) + 4, timeout=40,
             message="the catch-up fire and three after it")
    after = on_time_fires(job)[len(before):]
    catch_up, following = after[0], after[1:4]
    dues = [due for due, _ in before + after]
    assert len(dues) == len(set(dues))
    assert {(b - a).total_seconds() % EVERY for a, b in zip(dues, dues[1:])} == {0}
    assert {(b - a).total_seconds() for (a, _), (b, _) in zip(following, following[1:])} == {EVERY}
    assert all(late < EVERY / 2 for _, late in following), (catch_up, following)
    print(f"\n{outage}: lateness before the outage {[round(late, 3) for _, late in before]} s; "
          f"catch-up {catch_up[1]:.3f} s; after it {[round(late, 3) for _, late in following]} s")
