"""Diagnosis for bench_beat_10k (c): where does beat spend its time when K
jobs fall due at the same minute beside 10,000 others?

Runs beat's own loop (Scheduler.tick + sleep, --max-interval 1) in this
process against 10,000 + K jobs, one minute boundary per variant, sending the
due tasks to a throwaway Redis (no worker: only beat's side is measured), and
times the parts of each tick:

* ``schedule`` property: schedule_changed() query (and a reload when changed);
* ``schedules_equal``: Celery's comparison of the old and new schedule, entry
  by entry, on every tick;
* ``apply_entry``: sending the message;
* ``sync``: writing last_run_at back (CELERY_BEAT_SYNC_EVERY=1: after every send).

Variants: A as configured (scheduling.beat.scheduler.Scheduler);
B A + schedules_equal short-circuited (compare only when the database
scheduler reloaded); C B + sync by time only (sync_every_tasks=0).

Run: .venv/bin/python benchmarks/diag_beat_tick.py   (about 5 minutes)
Env: BENCH_JOBS (10000), BENCH_K (20).
"""
from __future__ import annotations

import os
import sys
import time
from collections import defaultdict
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import BenchEnv  # noqa: E402
from benchmarks._report import header, machine_info, print_machine  # noqa: E402

N_JOBS = int(os.environ.get("BENCH_JOBS", 10_000))
K = int(os.environ.get("BENCH_K", 20))


def main() -> int:
    with BenchEnv("diagbeat", timeout=900) as bench:
        from django.utils import timezone

        from benchmarks.bench_beat_10k import job_spec
        from jobsite.celery import app as celery_app
        from scheduling import services
        from scheduling.beat.scheduler import Scheduler

        print_machine(machine_info(bench.redis_url))
        header(f"creating {N_JOBS} + {K} jobs")
        now = timezone.now()
        started = time.perf_counter()
        for i in range(N_JOBS):
            services.job_create(actor_label="bench", **job_spec(i, now))
        k_names = set()
        for k in range(K):
            job = services.job_create(actor_label="bench", name=f"bench-minutely-{k:02d}", schedule_type="cron",
                                      schedule_expression="* * * * *", task_name="bench.noop", queue="default")
            k_names.add(f"job:{job.pk}")
        print(f"created in {time.perf_counter() - started:.1f}s")

        def timed(cls):
            class Timed(cls):
                times = None
                sent = None

                def _add(self, key, seconds):
                    if self.times is None:
                        self.times = defaultdict(float)
                    self.times[key] += seconds

                @property
                def schedule(self):
                    t = time.perf_counter()
                    value = super().schedule
                    self._add("schedule property", time.perf_counter() - t)
                    return value

                def schedules_equal(self, *args, **kwargs):
                    t = time.perf_counter()
                    value = super().schedules_equal(*args, **kwargs)
                    self._add("schedules_equal", time.perf_counter() - t)
                    return value

                def apply_entry(self, entry, producer=None):
                    t = time.perf_counter()
                    super().apply_entry(entry, producer=producer)
                    self._add("apply_entry (send)", time.perf_counter() - t)
                    if entry.name in k_names and self.sent is not None:
                        self.sent.append(time.time())

                def sync(self):
                    t = time.perf_counter()
                    super().sync()
                    self._add("sync (write last_run_at)", time.perf_counter() - t)

            return Timed

        class ShortCircuit(Scheduler):
            """Skip Celery's entry-by-entry comparison: DatabaseScheduler already
            invalidates the heap (``_heap = []``, ``_heap_invalidated``) whenever it reloads."""

            def schedules_equal(self, old_schedules, new_schedules):
                if self._heap_invalidated:
                    self._heap_invalidated = False
                    return False
                return old_schedules is not None and new_schedules is not None

        variants = [
            ("A as configured", timed(Scheduler), {}),
            ("B + schedules_equal short-circuit", timed(ShortCircuit), {}),
            ("C = B + sync by time only", timed(ShortCircuit), {"sync_every_tasks": 0}),
        ]
        header("one minute boundary per variant (beat loop in-process, --max-interval 1)")
        for label, cls, kwargs in variants:
            scheduler = cls(app=celery_app, max_interval=1, **kwargs)
            scheduler.times = defaultdict(float)
            scheduler.sent = []
            # warm: the first tick populates the heap (and fires catch-up runs)
            scheduler.tick()
            boundary = datetime.now(dt_timezone.utc).replace(second=0, microsecond=0) + timedelta(minutes=1)
            if (boundary - datetime.now(dt_timezone.utc)).total_seconds() < 5:
                boundary += timedelta(minutes=1)
            while time.time() < boundary.timestamp() - 3:
                time.sleep(min(1.0, scheduler.tick() or 0))
            scheduler.times = defaultdict(float)
            scheduler.sent = []
            ticks = 0
            while time.time() < boundary.timestamp() + 5:
                interval = scheduler.tick()
                ticks += 1
                if interval:
                    time.sleep(min(interval, 1.0))
            offsets = [t - boundary.timestamp() for t in scheduler.sent]
            print(f"\n{label}: {len(offsets)}/{K} due jobs sent at {boundary:%H:%M}, "
                  f"first +{min(offsets) * 1000:.0f} ms, last +{max(offsets) * 1000:.0f} ms "
                  f"({(max(offsets) - min(offsets)) / max(1, len(offsets) - 1) * 1000:.1f} ms per send); {ticks} ticks")
            for key, seconds in sorted(scheduler.times.items(), key=lambda kv: -kv[1]):
                print(f"    {key:<28} {seconds * 1000:8.1f} ms in the window")
            scheduler.sync()
    return 0


if __name__ == "__main__":
    sys.exit(main())
