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
beat's lock expires. One test goes through both outages in turn on the same
job, beats and worker: a stop and restart, then a kill and a standby's
takeover.
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


def through_an_outage(job, end_beat, next_beat):
    """End beat with ``end_beat`` just after a fire, keep any beat from firing
    for more than two intervals, then let the beat ``next_beat()`` gives take
    over; returns it, the catch-up fire and the three fires after it."""
    fired = len(on_time_fires(job))
    end_beat()
    hold_the_lock()
    successor = next_beat()
    wait_for(lambda: "beat: Starting" in successor.log(), timeout=30, message="the next beat to start")
    last_due = on_time_fires(job)[-1][0]
    intervals = 2
    while last_due + timedelta(seconds=EVERY * (intervals + 0.6)) < timezone.now() + timedelta(seconds=0.5):
        intervals += 1
    release_the_lock_at(last_due + timedelta(seconds=EVERY * (intervals + 0.6)))
    wait_for(lambda: len(on_time_fires(job)) >= fired + 4, timeout=40,
             message="the catch-up fire and three after it")
    after = on_time_fires(job)[fired:]
    return successor, (after[0], after[1:4])


def test_interval_fires_after_a_beat_outage_are_as_punctual_as_before(beats, beat_worker):
    # given an every-4-s job whose grid starts a few seconds from now, and beat running
    job = JobFactory(schedule_type="interval", schedule_expression=f"{EVERY}s", task_name="tests.echo",
                     overlap_policy="allow")
    PeriodicTask.objects.filter(pk=job.periodic_task_id).update(last_run_at=timezone.now() + timedelta(seconds=2))
    first = beats()
    wait_for(lambda: active_beat(first) is not None, timeout=30, message="the beat to take the lock")
    wait_for(lambda: len(on_time_fires(job)) >= 2, timeout=40, message="two fires before the outage")
    before = on_time_fires(job)

    # when beat is stopped for more than two intervals, just after a fire, and started again
    restarted, restart = through_an_outage(job, first.stop, beats)
    # ... and then, with a standby beside it, the beat firing is killed and the standby takes over
    standby = beats()
    wait_for(lambda: "beat: Starting" in standby.log(), timeout=30, message="the standby to start")
    active = active_beat(restarted, standby)
    so_far = len(on_time_fires(job))  # (ended just after a fire, as the first outage was)
    wait_for(lambda: len(on_time_fires(job)) > so_far, timeout=3 * EVERY, message="a fire with the standby up")
    _, takeover = through_an_outage(job, active.kill, lambda: standby if active is restarted else restarted)

    # then each time the next beat fires what it owes once, and every fire after it on the grid, on time
    dues = [due for due, _ in on_time_fires(job)]
    assert len(dues) == len(set(dues))
    assert {(b - a).total_seconds() % EVERY for a, b in zip(dues, dues[1:])} == {0}
    for outage, (catch_up, following) in {"stopped-and-restarted": restart, "killed-and-taken-over": takeover}.items():
        assert {(b - a).total_seconds() for (a, _), (b, _) in zip(following, following[1:])} == {EVERY}, outage
        assert all(late < EVERY / 2 for _, late in following), (outage, catch_up, following)
        print(f"\n{outage}: lateness before the outage {[round(late, 3) for _, late in before]} s; "
              f"catch-up {catch_up[1]:.3f} s; after it {[round(late, 3) for _, late in following]} s")
