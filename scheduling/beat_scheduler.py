"""Beat scheduler: django-celery-beat's DatabaseScheduler, made to scale to
tens of thousands of jobs, plus a heartbeat for /health.

What django-celery-beat 2.9 does per change, and what this changes
(measured in docs/benchmarks.md, "bench_beat_10k"):

* Any PeriodicTask change re-reads every enabled task and rebuilds the heap
  (1.3 s + 0.5 s at 10,000 tasks); nothing is sent meanwhile, so jobs due then
  start late. Here a change re-reads only the tasks changed since the last
  read (plus the list of enabled names, to drop disabled/deleted ones) and
  re-heaps only those entries.
* Celery compares the old and the new schedule entry by entry on every tick
  (O(n), ~40 ms at 10,000) — a tick sends one task, so 20 jobs due at the same
  minute queue up behind 20 comparisons. Here the comparison is skipped: the
  heap is maintained explicitly, and rebuilt only after a full read.
* The forced full re-read every 5 minutes is deferred while a run is due
  within a few seconds, so it never lands on a minute boundary's burst.
"""
from __future__ import annotations

import heapq
import logging
import time
from datetime import timedelta

from celery.beat import event_t
from django.db import DatabaseError, InterfaceError
from django.utils import timezone
from django_celery_beat.schedulers import DatabaseScheduler

logger = logging.getLogger(__name__)
HEARTBEAT_EVERY_SECONDS = 5.0
# date_changed comes from the web/worker clocks: read a little further back.
CHANGE_READ_MARGIN = timedelta(seconds=5)
FULL_SYNC_EVERY_SECONDS = 300
FULL_SYNC_QUIET_SECONDS = 5.0  # no full re-read when a run is due this soon
FULL_SYNC_MAX_DEFER_SECONDS = 120


class Scheduler(DatabaseScheduler):
    _last_heartbeat = 0.0
    _last_read_at = None  # DB-side time of the last (full or incremental) read
    _last_full_read = 0.0  # monotonic
    full_reads = 0  # counters for diagnostics and tests
    incremental_reads = 0

    # -- reading the schedule ------------------------------------------------
    @property
    def schedule(self):
        if self._initial_read or self._schedule is None:
            return self._full_read(initial=True)
        if self._full_read_due():
            return self._full_read(initial=False)
        if self.schedule_changed():
            try:
                if not self._incremental_read():
                    # A change announced with nothing newer to read: a bulk
                    # update() + PeriodicTasks.update_changed(). Read it all.
                    return self._full_read(initial=False)
            except (DatabaseError, InterfaceError):
                logger.exception("beat: incremental schedule read failed; full read next time")
                self._last_full_read = 0.0
        return self._schedule

    def _full_read(self, *, initial: bool):
        self._initial_read = False
        self.sync()
        # Baseline for schedule_changed(), taken before the read: a change made
        # during the read is seen as a change next time, not lost.
        self._last_timestamp = self.Changes.last_change()
        self._last_read_at = timezone.now()
        self._last_full_read = time.monotonic()
        self._schedule = self.all_as_schedule()
        self.full_reads += 1
        if not initial:
            self._heap = []
            self._heap_invalidated = True
        logger.debug("beat: full schedule read, %d entries", len(self._schedule))
        return self._schedule

    def _full_read_due(self) -> bool:
        age = time.monotonic() - self._last_full_read
        if age < FULL_SYNC_EVERY_SECONDS:
            return False
        if age >= FULL_SYNC_EVERY_SECONDS + FULL_SYNC_MAX_DEFER_SECONDS or not self._heap:
            return True
        next_due_in = self._heap[0][0] - self._when(self._heap[0][2], 0)
        return next_due_in > FULL_SYNC_QUIET_SECONDS

    def _incremental_read(self) -> bool:
        """Apply the tasks changed since the last read; False if none was found."""
        self.sync()  # write our own last_run_at first, so re-read entries keep it
        read_at = timezone.now()
        since = (self._last_read_at or read_at) - CHANGE_READ_MARGIN
        enabled = self.enabled_models_qs()
        live_names = set(enabled.values_list("name", flat=True))
        changed = list(enabled.filter(date_changed__gte=since))
        touched: set[str] = set()
        for model in changed:
            try:
                self._schedule[model.name] = self.Entry(model, app=self.app)
            except ValueError:  # an entry django-celery-beat cannot schedule
                self._schedule.pop(model.name, None)
            touched.add(model.name)
        for name in [name for name in self._schedule if name not in live_names]:
            del self._schedule[name]
            self._dirty.discard(name)  # nothing left to write back
            touched.add(name)
        self._last_read_at = read_at
        self.incremental_reads += 1
        if touched and self._heap is not None:
            self._reheap(touched)
        logger.debug("beat: incremental schedule read, %d entries changed", len(touched))
        return bool(touched)

    def _reheap(self, names: set[str]) -> None:
        heap = [event for event in self._heap if event[2].name not in names]
        for name in names:
            entry = self._schedule.get(name)
            if entry is None:
                continue
            try:
                is_due, delay = entry.is_due()
            except Exception:  # same fallback as Celery's populate_heap
                is_due, delay = self._is_due_failed(entry)
            heap.append(event_t(self._when(entry, 0 if is_due else delay) or 0, 5, entry))
        heapq.heapify(heap)
        self._heap = heap

    def schedules_equal(self, *args, **kwargs):
        # The heap is kept in step by _reheap; only a full read replaces it.
        if self._heap_invalidated:
            self._heap_invalidated = False
            return False
        return True

    # -- heartbeat -----------------------------------------------------------
    def tick(self, *args, **kwargs):
        interval = super().tick(*args, **kwargs)
        now = time.monotonic()
        if now - self._last_heartbeat >= HEARTBEAT_EVERY_SECONDS:
            self._last_heartbeat = now
            try:
                from jobsite.health import record_beat_heartbeat

                record_beat_heartbeat()
            except Exception:  # a heartbeat must never stop beat
                logger.warning("beat heartbeat could not be recorded", exc_info=True)
        return min(interval, HEARTBEAT_EVERY_SECONDS)

