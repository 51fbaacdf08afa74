"""Diagnosis for bench_beat_10k (c) "after an edit": what one job's edit costs
beat among N enabled jobs — the tick right after it (the change announced,
read and put in the heap), with nothing due; bench_beat_10k (b) measures the
same among its load figures.

In this process: N jobs (``services.jobs_create_bulk``, the mix of
bench_beat_10k), the project's beat scheduler reading them, then R rounds,
each editing one job (``services.job_update``) and timing the next tick.
Prints each tick, how the change was listed (only the recent changes, or
every task), and with ``BENCH_PROFILE=1`` a cProfile of one more round (top
30 by cumulative time).

Run: BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/jobsite_bench_edit \\
       .venv/bin/python benchmarks/diag_beat_edit.py
Env: BENCH_JOBS (100000), BENCH_ROUNDS (7), BENCH_PROFILE.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import BenchEnv  # noqa: E402
from benchmarks._report import header, machine_info, print_machine, profile_if_asked  # noqa: E402

N_JOBS = int(os.environ.get("BENCH_JOBS", 100_000))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 7))
BATCH = 5000


def main() -> int:
    with BenchEnv("beatedit", timeout=1800) as bench:
        from django.db import connection
        from django.utils import timezone

        from benchmarks.bench_beat_10k import create_spec_jobs
        from jobsite.celery import app
        from scheduling import services
        from scheduling.beat.scheduler import Scheduler
        from scheduling.models import Job

        print_machine(machine_info(bench.redis_url))
        now = timezone.now()
        header(f"creating {N_JOBS} jobs ({connection.vendor})")
        started = time.perf_counter()
        for _ in create_spec_jobs(N_JOBS, now, batch=BATCH):
            pass
        print(f"created in {time.perf_counter() - started:.1f}s", flush=True)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE")
        scheduler = Scheduler(app=app, lazy=True)
        scheduler.schedule  # the initial read
        scheduler.apply_entry = lambda entry, producer=None: None  # never send
        scheduler._last_heartbeat = time.monotonic() + 3600  # no heartbeat in the timing
        scheduler.tick()  # the heap
        victims = iter(Job.objects.filter(name__startswith="bench-").order_by("pk")[:ROUNDS + 1])

        def one_round() -> float:
            victim = next(victims)
            services.job_update(job=victim, actor_label="bench", data={"priority": (victim.priority + 1) % 10})
            reads = scheduler.incremental_reads
            started = time.perf_counter()
            scheduler.tick()
            wall = time.perf_counter() - started
            assert scheduler.incremental_reads == reads + 1, "the edit was not read incrementally"
            return wall

        header(f"the tick after one job's edit, {ROUNDS} rounds")
        walls = []
        for number in range(ROUNDS):
            recent = scheduler.recent_listings
            walls.append(one_round())
            how = "recent changes only" if scheduler.recent_listings > recent else "every task listed"
            print(f"  round {number + 1}: {walls[-1] * 1000:7.1f} ms  ({how})", flush=True)
        print(f"  median: {statistics.median(walls) * 1000:.1f} ms; full reads {scheduler.full_reads}", flush=True)
        profile_if_asked(one_round, sort="cumulative", top=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
