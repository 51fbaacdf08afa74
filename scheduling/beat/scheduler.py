"""Beat scheduler: django-celery-beat's DatabaseScheduler, made to scale to
tens of thousands of jobs, plus a heartbeat for /health.

What django-celery-beat 2.9 does per change, and what this changes
(measured in docs/benchmarks.md, "bench_beat_10k"):

* Any PeriodicTask change re-reads every enabled task and rebuilds the heap,
  which takes seconds at ten thousand tasks; nothing is sent meanwhile, so
  jobs due then start late. Here a change lists each enabled task's name,
  ``date_changed`` and whether django-celery-beat's window takes it, and the
  values of the schedule rows the tasks use (an interval or crontab edited in
  place changes no task), re-reads the tasks whose listing differs from the
  one last read (or that are new, or on an edited row), drops the ones gone,
  and re-heaps only those entries. On PostgreSQL only the tasks changed
  lately are listed, when a fingerprint of every enabled task says that
  nothing else changed (``_recent_listing``): at 100,000 tasks the whole
  listing took most of a second.
* Celery compares the old and the new schedule entry by entry on every tick
  (O(n)) — a tick sends one task, so 20 jobs due at the same minute queue up
  behind 20 comparisons. Here the comparison is skipped: the heap is
  maintained explicitly, and rebuilt only after a full read.
* Celery's tick sends one due entry per call, and each call checks the
  database for changes first: a thousand jobs due at one minute are a
  thousand ticks and as many queries before the last is sent. Here a tick
  takes every entry due at that moment off the heap (at most
  ``MAX_DUE_PER_TICK``) and hands them to ``apply_entries`` together; the
  project's scheduler (``scheduling.beat.lock.LockedScheduler``) records a
  minute's job fires in one transaction there (``benchmarks/bench_burst.py``
  measures it).
* The forced full re-read every 5 minutes is deferred while a run is due
  within a few seconds, so it never lands on a minute boundary's burst.
* The hour-window query django-celery-beat runs at every read gets one CASE
  branch per time zone instead of one per crontab.

Invariants (tests/scheduling/beat/test_scheduler.py):

* The heap holds exactly one event per entry of the schedule. It is built only
  by ``populate_heap`` (from scratch, after reading the schedule) and patched
  only by ``_reheap`` (per name); Celery's ``tick`` pops the event it runs and
  pushes its successor.
* No change is missed, whatever the clocks: a change is any ``date_changed``
  or schedule row value that differs from the one last read (not newer than
  some time), and any ``PeriodicTasks.last_update`` that differs from the
  baseline (not greater).
"""
from __future__ import annotations

import copy
import heapq
import itertools
import logging
import time

from celery.beat import event_t
from celery.utils.functional import is_numeric_value
from django.db import DatabaseError, InterfaceError, close_old_connections, transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule
from django_celery_beat.schedulers import DatabaseScheduler

from jobsite.db import id_batches
from jobsite.heap import refreeze_heap
from jobsite.services_health import BEAT_HEARTBEAT_EVERY_SECONDS, record_beat_heartbeat
from jobsite.versions import TESTED, check_tested
from scheduling.beat.crontab import crontabs_parsed_once
from scheduling.beat.listing import Listings

logger = logging.getLogger(__name__)
# What this module overrides, checked once at start (one warning outside the tested versions).
check_tested("django-celery-beat", TESTED["django-celery-beat"],
             "DatabaseScheduler's setup_schedule, schedule, schedule_changed and _get_unique_timezone_names, "
             "and CrontabSchedule.schedule while entries are built (scheduling/beat/scheduler.py, crontab.py)")
check_tested("celery", TESTED["celery"],
             "celery.beat.Scheduler's tick, _when, populate_heap, schedules_equal and apply_entries "
             "(scheduling/beat/scheduler.py)")
HEARTBEAT_EVERY_SECONDS = BEAT_HEARTBEAT_EVERY_SECONDS  # one value: /health judges beat by it
FULL_SYNC_EVERY_SECONDS = 300
FULL_SYNC_QUIET_SECONDS = 5.0  # no full re-read when a run is due this soon
FULL_SYNC_MAX_DEFER_SECONDS = 120
#: Beat wakes this long before a due time as well, and reads then the changes announced
#: meanwhile: reading an edit (~0.15 s among 100,000 tasks) is done before the minute's
#: burst, not at its start. A change announced later is read at the burst's tick.
LOOK_AHEAD_SECONDS = 0.25
MAX_DUE_PER_TICK = 20_000  # entries sent together by one tick; the rest at the next (at once)


class Scheduler(Listings, DatabaseScheduler):
    _last_heartbeat = 0.0
    _last_full_read = 0.0  # monotonic
    _writing_defaults = False
    full_reads = 0  # counters for diagnostics and tests
    freezes_heap = False  # set in a beat process (jobsite.celery): refreeze after each full re-read
    incremental_reads = 0
    full_listings = 0  # incremental reads that listed every enabled task

    def __init__(self, *args, **kwargs):
        # name -> (date_changed as last read, in django-celery-beat's window),
        # for every enabled task (see _incremental_read).
        self._versions: dict = {}
        # (PeriodicTask field, pk) -> values as last read, of the schedule rows enabled tasks use.
        self._rows: dict = {}
        # The last listing of every enabled task: name -> pk, when it was made (beat's clock), and
        # (PostgreSQL) the database's fingerprint of it (see _recent_listing).
        self._pks: dict = {}
        self._listed_at = None
        self._fingerprint = None
        self._event_numbers = itertools.count()  # see _heap_event
        super().__init__(*args, **kwargs)

    # -- start-up ------------------------------------------------------------
    def setup_schedule(self):
        # django-celery-beat reads every task, then writes its default entries
        # (celery.backend_cleanup, CELERY_BEAT_SCHEDULE) with update_or_create,
        # each announcing a change, and takes its baseline after them, at the
        # first schedule_changed() — a change another process makes meanwhile
        # is not seen until the next full read. Our baseline is taken before
        # the read (a change is never lost), so writing after the read would
        # look like a change at once: an incremental read and a sync for
        # nothing. Write first, then read once.
        self._writing_defaults = True
        try:
            super().setup_schedule()
        finally:
            self._writing_defaults = False
        self.schedule  # the initial read

    # -- reading the schedule ------------------------------------------------
    @property
    def schedule(self):
        if self._writing_defaults:
            return {}  # setup_schedule: the initial read right after loads what was written
        if self._initial_read or self._schedule is None:
            return self._full_read(initial=True)
        if self._full_read_due():
            return self._full_read(initial=False)
        if self.schedule_changed():
            try:
                if not self._incremental_read():
                    # A change announced and no task found changed: a bulk
                    # update() that left date_changed alone, then
                    # update_changed(). Read it all.
                    return self._full_read(initial=False)
            except (DatabaseError, InterfaceError):
                logger.exception("beat: incremental schedule read failed; full read next time")
                self._last_full_read = 0.0
        return self._schedule

    def schedule_changed(self):
        """django-celery-beat's check, except that any other ``last_update``
        counts as a change. Its ``ts > last`` misses an announce written with a
        clock behind beat's (a web host, or a transaction that commits late),
        and the very first one (no PeriodicTasks row when the baseline was
        taken)."""
        try:
            close_old_connections()
            try:
                # MySQL REPEATABLE READ would hide new commits:
                # https://github.com/celery/django-celery-beat/issues/41
                transaction.commit()
            except transaction.TransactionManagementError:
                pass  # not in a transaction
            last, ts = self._last_timestamp, self.Changes.last_change()
        except DatabaseError as exc:
            logger.exception("Database gave error: %r", exc)
            return False
        except InterfaceError:
            logger.warning("beat: InterfaceError in schedule_changed(), retrying next time")
            return False
        self._last_timestamp = ts
        return ts != last

    def _full_read(self, *, initial: bool):
        self._initial_read = False
        self.sync()
        window = self.enabled_models_qs()  # runs the hour-window queries: before the baseline
        # Baseline for schedule_changed(), taken before the read: a change made
        # during the read is seen as a change next time, not lost.
        self._last_timestamp = self.Changes.last_change()
        # Listed before the models are read: a task changed in between is newer
        # in the model than in its version, and is read once more next time.
        listed_at = timezone.now()
        listed = self._listing(window)
        rows = self._schedule_rows()  # before the models: a row edited after it differs next time
        schedule, read = {}, set()
        with crontabs_parsed_once():
            for model in window:
                read.add(model.name)
                try:
                    schedule[model.name] = self.Entry(model, app=self.app)
                except ValueError:  # an entry django-celery-beat cannot schedule (as all_as_schedule)
                    pass
        # In the window as read here: one that entered or left it since the
        # listing differs from its version next time, and is read again.
        versions = {name: (changed, name in read) for pk, name, changed, in_window in listed}
        self._schedule, self._versions, self._rows = schedule, versions, rows
        self._listed(listed_at, {name: pk for pk, name, *_ in listed})
        self._last_full_read = time.monotonic()
        self.full_reads += 1
        if not initial:
            self._heap = []
            self._heap_invalidated = True
            if self.freezes_heap:  # the schedule replaced was frozen: collected now, not never
                refreeze_heap()
        logger.debug("beat: full schedule read, %d entries", len(schedule))
        return schedule

    def _full_read_due(self) -> bool:
        age = time.monotonic() - self._last_full_read
        if age < FULL_SYNC_EVERY_SECONDS:
            return False
        if age >= FULL_SYNC_EVERY_SECONDS + FULL_SYNC_MAX_DEFER_SECONDS or not self._heap:
            return True
        next_due_in = self._heap[0][0] - self._when(self._heap[0][2], 0)
        return next_due_in > FULL_SYNC_QUIET_SECONDS

    def _incremental_read(self) -> bool:
        """Apply the tasks changed since they were last read; False if none was.

        Every enabled task has a version: its ``date_changed`` as last read, and
        whether it is in django-celery-beat's window. A task whose version
        differs, or whose schedule row's values differ from the ones last read
        (a row edited in place: the task's ``date_changed`` stays), is re-read
        (in the window) or dropped (out of it); one no longer listed
        (disabled, deleted, renamed) is dropped. Equality, not a time
        window: a ``date_changed`` older than our last read (a host whose
        clock is behind, a transaction that commits late) is still a
        difference. One query lists the versions (only the recent changes,
        when the fingerprint vouches for them), one the schedule rows' values
        (and one more names the tasks on a row edited in place, if any), a
        last one reads the changed tasks that are in the window.
        """
        self.sync()  # write our own last_run_at first, so re-read entries keep it
        window = self.enabled_models_qs()  # runs the hour-window queries: before the baseline
        # Baseline right before the listing: a change committed after it is
        # announced again next time. (One committed between the baseline and
        # the listing is read now and announced again, so the next read finds
        # nothing and falls back to a full read: correct, and rare.)
        self._last_timestamp = self.Changes.last_change()
        listed_at = timezone.now()
        recent = self._recent_listing(window)
        if recent is not None:  # only what changed: the last listing, updated
            listed, fingerprint = recent
            for name, row in listed.items():
                if row is None:
                    self._pks.pop(name, None)
                else:
                    self._pks[name] = row[0]
            self._listed_at, self._fingerprint = listed_at, fingerprint
            gone = {name for name, row in listed.items()
                    if row is None and (name in self._versions or name in self._schedule)}
        else:  # not known complete: every enabled task's version
            listed = {name: (pk, changed, in_window) for pk, name, changed, in_window in self._listing(window)}
            self.full_listings += 1
            self._listed(listed_at, {name: pk for name, (pk, _, _) in listed.items()})
            gone = (self._versions.keys() | self._schedule.keys()) - listed.keys()

        def is_listed(name) -> bool:  # in the listing as it stands now
            return listed[name] is not None if name in listed else recent is not None and name in self._versions

        def row_of(name):  # (pk, version, in window) as listed now
            row = listed.get(name)
            return row if row is not None else (self._pks[name], *self._versions[name])

        stale = {name for name, row in listed.items() if row is not None and self._versions.get(name) != row[1:]}
        stale |= {name for name in self._on_edited_rows() if is_listed(name)}
        pks = [row_of(name)[0] for name in stale if row_of(name)[2]]
        models = []
        for batch in id_batches(pks):
            models.extend(self.Model.objects.enabled().filter(pk__any_of=batch))
        stale_rows = {name: row_of(name) for name in stale}
        touched = gone | stale | {model.name for model in models}
        reheap = {name for name in touched if name in self._schedule}
        for name in touched:
            self._schedule.pop(name, None)
            self._versions.pop(name, None)
        for name, (_, changed, in_window) in stale_rows.items():
            if not in_window:
                self._versions[name] = (changed, False)
        with crontabs_parsed_once():
            for model in models:
                # The listing's date_changed, not the model's: a task changed again
                # between the two queries differs next time and is read once more.
                changed = stale_rows[model.name][1] if model.name in stale_rows else None
                self._versions[model.name] = (changed, True)
                try:
                    self._schedule[model.name] = self.Entry(model, app=self.app)
                    reheap.add(model.name)
                except ValueError:  # an entry django-celery-beat cannot schedule (as all_as_schedule)
                    pass
        self._dirty.difference_update(touched - self._schedule.keys())  # nothing left to write back
        self.incremental_reads += 1
        if reheap and self._heap is not None:
            self._reheap(reheap)
        logger.debug("beat: incremental schedule read, %d tasks changed, %d entries", len(touched), len(reheap))
        return bool(touched)

    def _get_unique_timezone_names(self):
        # django-celery-beat 2.9's query keeps CrontabSchedule's default
        # ordering, so its DISTINCT also runs over the ordering columns: one
        # CASE branch of the hour-window query per crontab instead of per time
        # zone, built and evaluated at every read
        # (https://github.com/celery/django-celery-beat/issues/947).
        # Same zones, without the duplicates.
        return list(CrontabSchedule.objects.order_by().values_list("timezone", flat=True).distinct())

    # -- the heap ------------------------------------------------------------
    def _when(self, entry, next_time_to_run, mktime=None):
        """Celery's: now as a UTC timestamp, plus ``next_time_to_run`` (less
        beat's drift) — now read from the system clock, as Celery's
        ``app.now`` does, not through it (two time zone checks, ~17 µs: a
        minute's burst asks three times an entry). An entry whose schedule has
        a clock of its own (``nowfun``) is asked, as Celery asks it."""
        if getattr(entry.schedule, "nowfun", None) is not None:
            return super()._when(entry, next_time_to_run)
        return time.time() + (self.adjust(next_time_to_run) or 0)

    def _heap_event(self, entry):
        """The entry's event: when it is due next, and a number of its own in
        the priority field (Celery puts 5 in every event), which its successors
        keep. Events due at the same moment — a minute's thousand — are then
        ordered by that number, not by comparing their entries (Celery's
        ``ScheduleEntry.__eq__``, a Python call at each step of the heap: ~4 ms
        of a minute's 1,000 pops and pushes among 100,000 events)."""
        try:
            is_due, delay = entry.is_due()
        except Exception:  # same fallback as Celery's populate_heap
            is_due, delay = self._is_due_failed(entry)
        return event_t(self._when(entry, 0 if is_due else delay) or 0, next(self._event_numbers), entry)

    def populate_heap(self, event_t=event_t, heapify=heapq.heapify):
        # Celery empties the heap and then reads self.schedule; a change read at
        # that moment is re-heaped into the emptied heap by _reheap, and Celery
        # then pushes every entry again: each changed entry twice, sent twice
        # per due time until the next full read. Read first, then build anew.
        entries = list(self.schedule.values())
        heap = [self._heap_event(entry) for entry in entries]
        heapify(heap)
        self._heap = heap
        self._heap_invalidated = False  # built from the schedule just read

    def _reheap(self, names: set[str]) -> None:
        heap = [event for event in self._heap if event[2].name not in names]
        heap.extend(self._heap_event(self._schedule[name]) for name in names if name in self._schedule)
        heapq.heapify(heap)
        self._heap = heap

    def schedules_equal(self, *args, **kwargs):
        # The heap is kept in step by _reheap; only a full read replaces it.
        if self._heap_invalidated:
            self._heap_invalidated = False
            return False
        return True

    # -- sending -------------------------------------------------------------
    def tick(self, event_t=event_t, min=min, heappop=heapq.heappop, heappush=heapq.heappush):
        """Celery's ``Scheduler.tick``, except that every entry due now is
        sent by this one tick (``apply_entries``), not one entry per tick;
        plus beat's heartbeat for /health."""
        interval = self._send_due(event_t, min, heappop, heappush)
        now = time.monotonic()
        if now - self._last_heartbeat >= HEARTBEAT_EVERY_SECONDS:
            self._last_heartbeat = now
            self._record_heartbeat()
        return self._looking_ahead(min(interval, HEARTBEAT_EVERY_SECONDS))

    def _looking_ahead(self, interval: float) -> float:
        """``interval``, or less: wake ``LOOK_AHEAD_SECONDS`` before a due time
        that comes within it (the tick then reads the changes announced), or
        that comes so soon after it that the next tick would fall within those
        last moments. A tick there would read a change at the moment of the
        burst and hold it back (an edit half a second before the minute, read
        50 ms before it, began the burst 150 ms late); so the tick before a
        due time is the look-ahead's, and none falls between it and the burst."""
        if not self._heap:
            return interval
        due_in = self._heap[0][0] - self._when(self._heap[0][2], 0)
        window = LOOK_AHEAD_SECONDS + 0.05  # a tick this close to a due time sleeps until it
        if window < due_in <= interval + window:
            return min(due_in - LOOK_AHEAD_SECONDS, interval)
        return interval

    @staticmethod
    def _record_heartbeat() -> None:
        try:
            record_beat_heartbeat()
        except Exception:  # a heartbeat must never stop beat
            logger.warning("beat heartbeat could not be recorded", exc_info=True)

    def _send_due(self, event_t, min, heappop, heappush) -> float:
        max_interval = self.max_interval
        if self._heap is None or not self.schedules_equal(self.old_schedulers, self.schedule):
            self.old_schedulers = copy.copy(self.schedule)
            self.populate_heap()
        heap = self._heap
        if not heap:
            return max_interval
        due, successors = [], []
        # "now" read again for every entry, as Celery does: entries due a few
        # milliseconds apart (all of a minute's) are all taken by this tick.
        while heap and heap[0][0] <= self._when(heap[0][2], 0) and len(due) < MAX_DUE_PER_TICK:
            event = heappop(heap)
            entry = event[2]
            try:
                is_due, next_time_to_run = self.is_due(entry)
            except Exception:  # one entry whose next run can't be calculated must not stop beat
                is_due, next_time_to_run = self._is_due_failed(entry)
            if is_due:
                next_entry = self.reserve(entry)
                due.append(entry)
                successors.append(event_t(self._when(next_entry, next_time_to_run), event[1], next_entry))
            else:
                # The heap says due, the entry asks for later
                # (https://github.com/celery/celery/issues/7649): put it back for then, and stop
                # here. Beat wakes a little early (Celery's drift), so this is usually a minute's
                # burst just before its minute: sleep until it has come, and send all of it then,
                # not a part now and the rest after it.
                delay = next_time_to_run if is_numeric_value(next_time_to_run) else max_interval
                successors.append(event_t(self._when(entry, delay), event[1], entry))
                break
        # Pushed back only now: an entry is looked at once per tick.
        for event in successors:
            heappush(heap, event)
        if due:
            self.apply_entries(due)
            return 0
        return min(max(heap[0][0] - self._when(heap[0][2], 0), 0), max_interval)

    def apply_entries(self, entries: list) -> None:
        """Send the entries due at this tick (each already advanced by ``reserve``)."""
        for entry in entries:
            self.apply_entry(entry, producer=self.producer)
