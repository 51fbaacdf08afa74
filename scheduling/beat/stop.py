"""Beat's stop on SIGTERM / SIGINT: at once when it is at rest, else at the
end of what it is doing.

``celery beat`` (celery/apps/beat.py ``install_sync_handler``) stops on
SIGTERM and SIGINT with a handler that calls ``service.sync()`` — the
scheduler's ``close()``: it writes the entries back to the database, sends
nothing more, releases the broker connection (and here the beat lock) — and
then raises SystemExit, from wherever the main thread was when the signal
came. Python runs a signal handler between two bytecodes of the main thread,
and also *inside* a blocking call that checks for signals: psycopg 3's wait
for a query's answer, redis-py's socket reads (PEP 475). So the handler ran
database and broker work in the middle of beat's own, and that could hang:

* psycopg holds its connection's (non re-entrant) lock for the whole of a
  query; the handler's first query on the same connection waited for that
  lock, held by the very thread it had interrupted: beat never stopped
  (until SIGKILL);
* the same with redis-py's connection pool lock (closing the producer's
  connection while a publish held it);
* a SIGTERM during beat's start (the initial read of every task, seconds at
  100,000 jobs) built a second scheduler inside the handler: a second full
  read before stopping.

Here the handler itself does no work. When beat is at rest (sleeping
between ticks in ``celery.beat.Service.start``) it raises SystemExit at
once: Celery's loop then closes the scheduler as usual. When beat is busy
(a tick, a read, a sync) it only records the request; the scheduler stops at
its next safe point (``LockedScheduler``: before a tick, between a burst's
transactions, after a tick), and a timer looks again every
``RECHECK_SECONDS`` for beat coming to rest (a tick that ended just after
the signal would otherwise sleep out its interval). A second signal stops at
once, as before.
"""
from __future__ import annotations

import signal
from dataclasses import dataclass

from celery.beat import Service

RECHECK_SECONDS = 0.05
_AT_REST = (Service.start.__code__,)  # the frame of beat's loop: sleeping, or between two steps of it


@dataclass
class StopRequest:
    """Set by the signal handler; read by the scheduler at its safe points."""

    requested: bool = False
    stopping: bool = False  # SystemExit raised: Celery's loop is closing the scheduler
    installed: bool = False

    def check(self) -> None:
        """Raise SystemExit if a stop was requested (at a safe point of beat's work)."""
        if self.requested:
            self.stop_now()

    def stop_now(self):
        self.stopping = True
        signal.setitimer(signal.ITIMER_REAL, 0)  # no re-check into the scheduler's close()
        raise SystemExit()


def at_rest(frame) -> bool:
    """Whether the main thread, interrupted at ``frame``, is in beat's own loop
    (``Service.start``: its sleep, or between two calls), not inside a step."""
    return frame is None or frame.f_code in _AT_REST


def is_celery_beat_sync_handler(handler) -> bool:
    """Celery beat's SIGTERM/SIGINT handler (``Beat.install_sync_handler``):
    present only when the process is a ``celery beat`` (not a test or a
    benchmark that builds a scheduler in-process)."""
    return getattr(handler, "__qualname__", "") == "Beat.install_sync_handler.<locals>._sync"


def install(stop: StopRequest) -> bool:
    """Replace celery beat's stop handler by one that does no work (see the
    module docstring). Only in a ``celery beat`` process; True if installed."""
    try:
        if not is_celery_beat_sync_handler(signal.getsignal(signal.SIGTERM)):
            return False
    except ValueError:  # not the main thread
        return False

    def on_stop_signal(signum, frame):
        if stop.requested or at_rest(frame):  # (a second signal: at once, whatever beat is doing)
            stop.stop_now()
        stop.requested = True
        signal.setitimer(signal.ITIMER_REAL, RECHECK_SECONDS)

    def on_recheck(signum, frame):
        if stop.stopping:
            return
        if at_rest(frame):
            stop.stop_now()
        signal.setitimer(signal.ITIMER_REAL, RECHECK_SECONDS)

    signal.signal(signal.SIGALRM, on_recheck)
    signal.signal(signal.SIGTERM, on_stop_signal)
    signal.signal(signal.SIGINT, on_stop_signal)
    stop.installed = True
    return True
