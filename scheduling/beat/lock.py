"""One active beat: a Redis lock with a TTL.

The beat holding ``jobsite:beat-lock`` renews it on every tick (at least
every ``HEARTBEAT_EVERY_SECONDS``, since the scheduler never sleeps
longer). Any other beat is a standby: it sends nothing, and tries to take the
lock every ``JOBS_BEAT_STANDBY_POLL_SECONDS``. When the active beat dies its
lock expires after ``JOBS_BEAT_LOCK_TTL_SECONDS``, so a standby takes over
within TTL + poll; it then re-reads the schedule from the
database (every entry's last fire, as the previous beat recorded it), so it
neither repeats a fire nor takes fires the other beat made for missed ones.

The lock is a safety net, not the only guard: a fire is identified by
(job, scheduled time) and the database refuses a second Execution for it, so
even two beats active at once (a network partition longer than the TTL)
never make a second run.
"""
from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from datetime import datetime

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from jobsite.versions import TESTED, check_tested
from scheduling import services
from scheduling.beat import stop
from scheduling.beat.entry import JobEntry
from scheduling.beat.scheduler import Scheduler
from scheduling.beat.sync import periodic_tasks_record_fires

logger = logging.getLogger(__name__)
# What this module overrides, checked once at start (one warning outside the tested versions).
check_tested("celery", TESTED["celery"],
             "celery.beat.Scheduler's reserve, tick and apply_entries (scheduling/beat/lock.py)")
check_tested("django-celery-beat", TESTED["django-celery-beat"],
             "ModelEntry.__next__ (scheduling/beat/entry.py, the beat's job entries)")

LOCK_KEY = "jobsite:beat-lock"

# Take the lock if it is free or already ours; renew its TTL if ours.
_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class BeatLock:
    """The lock one beat process holds while it is the active one."""

    def __init__(self, *, ttl_seconds: float | None = None, client=None):
        self.ttl_ms = int((ttl_seconds or settings.JOBS_BEAT_LOCK_TTL_SECONDS) * 1000)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._client = client

    @property
    def client(self):
        if self._client is None:
            from scheduling.broker import broker_client

            self._client = broker_client()
        return self._client

    def acquire(self) -> bool:
        """Take or renew the lock; False when another beat holds it or Redis
        can't be reached (then this beat must not send anything)."""
        try:
            return bool(self.client.eval(_ACQUIRE, 1, LOCK_KEY, self.holder, self.ttl_ms))
        except Exception as exc:
            logger.warning("beat lock: Redis unreachable (%s); not sending until it is back", exc)
            self._client = None
            return False

    def release(self) -> None:
        """Give the lock up (shutdown). One quick try: with Redis gone (a stack
        stopping together) redis-py's default retries with backoff would hold
        beat's exit for seconds; the lock then expires after its TTL anyway."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        try:
            client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=1, socket_timeout=2,
                                          retry=Retry(NoBackoff(), 0))
            try:
                client.eval(_RELEASE, 1, LOCK_KEY, self.holder)
            finally:
                client.close()
        except Exception:
            pass

    def current_holder(self) -> str | None:
        value = self.client.get(LOCK_KEY)
        return value.decode() if value else None


class LockedScheduler(Scheduler):
    """The project's beat scheduler (``scheduling.beat.scheduler.Scheduler``)
    with job entries of ``scheduling.beat.entry.JobEntry``, active only while
    it holds the beat lock."""

    Entry = JobEntry

    def __init__(self, *args, **kwargs):
        self.beat_lock = BeatLock()
        self.is_active = False
        # Before the initial read (seconds at 100,000 tasks): SIGTERM never does work in its handler.
        self.stop_request = stop.StopRequest()
        stop.install(self.stop_request)
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs):
        self.stop_request.check()  # a SIGTERM that came while beat was busy: stop here, not after one more tick
        interval = self._tick(*args, **kwargs)
        self.stop_request.check()
        return interval

    def _tick(self, *args, **kwargs):
        active = self.beat_lock.acquire()
        if active and not self.is_active:
            logger.warning("beat: this beat (%s) is now the active one", self.beat_lock.holder)
            # Read every entry afresh: its last fire is what the previous active beat recorded.
            self._last_full_read = 0.0
            self._heap = None
        elif not active and self.is_active:
            logger.warning("beat: lost the beat lock to %s; standing by", self._holder_or_unknown())
        self.is_active = active
        if not active:
            return float(settings.JOBS_BEAT_STANDBY_POLL_SECONDS)
        return super().tick(*args, **kwargs)

    # -- a minute's fires in one go ----------------------------------------
    def reserve(self, entry):
        """Celery's reserve marks the entry to be written back as fired by the
        next ``sync()``, and beat's shutdown (SIGTERM, Ctrl-C) calls ``sync()``
        from wherever the tick is: a job fire taken but not yet recorded would
        be written as fired with no run. Its record is written once its
        Execution is recorded and its message sent (``_record_after_sends``),
        or, when recording fails, once it has been sent."""
        new_entry = next(entry)
        if not _records_its_own_fire(entry):
            self._dirty.add(new_entry.name)
        return new_entry

    def apply_entries(self, entries: list) -> None:
        """Job fires due at this tick are recorded together — their executions
        (``services.jobs_dispatch_scheduled``), a few queries per transaction
        of up to ``PLAIN_FIRES_PER_TRANSACTION`` — then every message is sent
        through one producer, and then beat's own record of each fire
        (``last_run_at``) and the jobs' run times are written
        (``_record_after_sends``). Not a round trip per fire through a
        ``scheduling.run_job`` message and a worker, and not a read and a save
        per fired task (django-celery-beat's ``sync()``).

        If a transaction fails (the database is away), its fires go out as
        ``scheduling.run_job`` messages instead, one per fire, as before: a
        worker records each when the database is back (a fire is identified by
        its job and due time, so none is recorded twice). Should the process
        die between a commit and the sends, the stale-queued sweep sends them."""
        fires, others = [], []
        for entry in entries:
            fire = _scheduled_fire(entry)
            (fires if fire is not None else others).append((entry, fire))
        if fires:
            started, began = time.monotonic(), timezone.now()
            sends: list = []
            fired: list = []  # (fires, their jobs' new run times) recorded: written after the sends
            counts, logged = [0, 0], []
            chunks = _chunks(fires)
            for number, chunk in enumerate(chunks):
                if number and self.stop_request.requested:
                    # Stopping (SIGTERM): the fires not recorded yet are the next beat's (as catch-up).
                    rest = [pair for later in chunks[number:] for pair in later]
                    self._dirty.difference_update(entry.name for entry, _ in rest)
                    logger.warning("beat: stopping in the middle of a burst; %d fire(s) left to the next beat",
                                   len(rest))
                    break
                if number and not self._renew_lock():
                    # Another beat is active now: it reads the last fires from the database, so
                    # the ones not recorded here are its to send (as catch-up); none is claimed here.
                    rest = [pair for later in chunks[number:] for pair in later]
                    self._dirty.difference_update(entry.name for entry, _ in rest)
                    logger.warning("beat: lost the beat lock in the middle of a burst; %d fire(s) left to %s",
                                   len(rest), self._holder_or_unknown())
                    break
                recorded_here = self._record_fires(chunk, sends, fired)
                if recorded_here is not None:
                    counts[0] += recorded_here[0]
                    counts[1] += recorded_here[1]
                    logged.extend(chunk)
            recorded = time.monotonic()
            services.executions_send(sends)  # all recorded first: the last fire is not queued behind sends
            sent_at = timezone.now()
            self._record_after_sends(fired)
            for entry, fire in logged:  # as Celery's "Sending due task" line, after the fact
                logger.info("beat: fired %s for %s", entry.name, fire.scheduled_for.isoformat())
            due_times = sorted({fire.scheduled_for for _, fire in fires})
            # "the last sent": when the last message was in the broker, after the latest due time
            # (what bench_burst.py reports as a minute's "last queued").
            logger.info("beat: fired %d job(s) due at %s: %d queued together, %d one by one; "
                        "recorded in %.0f ms, sent in %.0f ms; began %.3f s and the last sent %.3f s after "
                        "its due time",
                        len(fires),
                        ", ".join(t.isoformat() for t in due_times[:3]) + (" ..." if len(due_times) > 3 else ""),
                        counts[0], counts[1], (recorded - started) * 1000, (time.monotonic() - started) * 1000,
                        (began - due_times[-1]).total_seconds(), (sent_at - due_times[-1]).total_seconds())
        super().apply_entries([entry for entry, _ in others])

    def _renew_lock(self) -> bool:
        """Between the transactions of a long burst: keep the lock and the heartbeat fresh."""
        self.is_active = self.beat_lock.acquire()
        if self.is_active:
            self._last_heartbeat = 0.0  # Scheduler.tick writes it after this tick...
            self._record_heartbeat()  # ...and /health sees beat alive meanwhile
        return self.is_active

    def _record_fires(self, fires: list, sends: list, fired: list) -> tuple[int, int] | None:
        """One transaction: the executions of ``fires`` (their messages added
        to ``sends``; the fires and their jobs' new run times to ``fired``, for
        ``_record_after_sends``). (queued together, one by one); None when the
        database failed and they went out as run_job messages."""
        chunk_sends: list = []
        chunk_fired: list = []
        try:
            close_old_connections()
            with transaction.atomic():
                counts = services.jobs_dispatch_scheduled(fires=[fire for _, fire in fires], sends=chunk_sends,
                                                          fired=chunk_fired)
        except Exception:
            logger.exception("beat: could not record %d job fire(s) in the database; sending them as "
                             "scheduling.run_job messages instead", len(fires))
            for entry, _ in fires:
                self.apply_entry(entry, producer=self.producer)
                self._dirty.add(entry.name)  # sent: written back by sync(), as any entry
            return None
        sends.extend(chunk_sends)  # (only what was committed: a rolled-back run is sent as run_job above)
        fired.append((fires, chunk_fired))
        self._dirty.difference_update(entry.name for entry, _ in fires)  # recorded: written after the sends
        return counts

    def _record_after_sends(self, fired: list) -> None:
        """Once the minute's messages are out: beat's own record of the fires
        (each task's ``last_run_at``, ``total_run_count``) and each fired job's
        ``last_run_at`` and ``next_run_at``. None of these makes or identifies a
        run (the Execution does, recorded before the sends), so the last message
        is not queued behind them. Should beat stop before this (or the write
        fail), the next read counts those fires as owed: each is found recorded
        (a duplicate, not run again), and not reported as missed
        (``services.job_dispatch_scheduled``); after a failed write the regular
        ``sync()`` writes the tasks' records."""
        if not fired:
            return
        entries = [entry for fires, _ in fired for entry, _ in fires]
        try:
            with transaction.atomic():
                periodic_tasks_record_fires({entry.model.pk: entry.model.last_run_at for entry in entries})
                services.jobs_record_fired([part for _, parts in fired for part in parts])
        except Exception:
            logger.exception("beat: could not write its record of %d fire(s) sent; written at the next sync",
                             len(entries))
            self._dirty.update(entry.name for entry in entries)

    def _holder_or_unknown(self) -> str:
        try:
            return self.beat_lock.current_holder() or "nobody"
        except Exception:
            return "unknown"

    def close(self):
        try:
            super().close()
        finally:
            if self.is_active:
                self.is_active = False  # (celery beat may close twice on shutdown: release once)
                self.beat_lock.release()


def _records_its_own_fire(entry) -> bool:
    """A job's cron or interval entry with the fire it is sending (``JobEntry.record_fire``):
    ``apply_entries`` records it with its Execution."""
    return isinstance(entry, JobEntry) and entry.job_schedule is not None and bool(entry._fire)


def _scheduled_fire(entry):
    """The fire a job's cron or interval entry is sending, as
    ``services.jobs_dispatch_scheduled`` takes it; None for any other entry."""
    if not _records_its_own_fire(entry):
        return None
    fire = entry._fire
    return services.ScheduledFire(
        job_id=int(entry.args[0]),
        scheduled_for=datetime.fromisoformat(fire["scheduled_for"]),
        missed=int(fire.get("missed", 0)),
        missed_from=datetime.fromisoformat(fire["missed_from"]) if fire.get("missed_from") else None,
    )


#: Fires recorded per transaction: plain ones (on time, nothing owed) cost a few
#: queries for the lot; the others are recorded one by one (catch-up, missed
#: rows). Between transactions beat renews its lock, so a long burst
#: (thousands of jobs owing runs after a beat restart) never outlives the lock,
#: and no transaction holds the database for seconds.
PLAIN_FIRES_PER_TRANSACTION = 5_000
OTHER_FIRES_PER_TRANSACTION = 200


def _chunks(fires: list) -> list[list]:
    now = timezone.now()
    grace = settings.JOBS_MISSED_GRACE_SECONDS
    plain, other = [], []
    for entry, fire in fires:
        late = fire.scheduled_for is None or (now - fire.scheduled_for).total_seconds() > grace
        (other if fire.missed or late else plain).append((entry, fire))
    return ([plain[i:i + PLAIN_FIRES_PER_TRANSACTION] for i in range(0, len(plain), PLAIN_FIRES_PER_TRANSACTION)]
            + [other[i:i + OTHER_FIRES_PER_TRANSACTION] for i in range(0, len(other), OTHER_FIRES_PER_TRANSACTION)])
