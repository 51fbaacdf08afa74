"""Long-lived processes keep their start-up objects out of the garbage
collector's full passes.

A worker, web or beat process holds a few hundred thousand objects once
Django, Celery and the apps are loaded (modules, classes, settings, URL
patterns). CPython's full collection walks all of them, and it comes at
unpredictable moments: in a worker's main process it took 100-220 ms on
this project's benchmark machine, during which no message reached a pool
process, and a 200-requests-a-second load saw its p99 request -> running
latency jump from ~10 ms to 60-600 ms (docs/benchmarks.md, "Garbage
collection pauses").

``freeze_startup_heap()`` collects once, then moves every object alive into
the permanent generation (``gc.freeze``): later full passes walk only what
was made after start-up. Called after start-up, and in a prefork parent
before it forks, where it also keeps the children from writing to the pages
they share with it (copy-on-write). Garbage made later is collected as
before; what was alive at start-up is never freed, which for start-up
objects is what happens anyway. Beat freezes its schedule too, once read,
and ``refreeze_heap()`` after each full re-read, so the schedule it replaced
can be collected (once, right then, away from any due time).
"""
from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collect, then freeze what is alive; returns the objects now frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def refreeze_heap() -> int:
    """For a process that froze objects it later replaces (beat's schedule):
    unfreeze, collect what was replaced, and freeze what is alive now."""
    gc.unfreeze()
    return freeze_startup_heap()
