"""Diagnosis for bench_beat_10k (c): what beat does at a minute's boundary
before it records anything — the tick's walk over the K entries due (each
one's ``is_due``, ``reserve`` and the fire it carries), apart from the record
(``diag_beat_record.py``) and the sends (``diag_send.py``).

In this process: K jobs on '* * * * *' (``services.jobs_create_bulk``), the
project's beat scheduler (``LockedScheduler``) reading them, then R rounds,
each of one tick after every entry was set to have last fired the minute
before this one (so all are due, on time), whose ``apply_entries`` only keeps
the fires (nothing recorded, nothing sent). Prints each round's wall time, per entry, and with
``BENCH_PROFILE=1`` a cProfile of one more round (top 40 by cumulative time).

Run: .venv/bin/python benchmarks/diag_beat_due.py
Env: BENCH_K (1000), BENCH_ROUNDS (7), BENCH_PROFILE, BENCH_DATABASE_URL, REDIS_URL.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import BenchEnv  # noqa: E402
from benchmarks._report import header, machine_info, print_machine, profile_if_asked  # noqa: E402

K = int(os.environ.get("BENCH_K", 1000))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 7))


def main() -> int:
    with BenchEnv("beatdue", timeout=900) as bench:
        from django.utils import timezone

        from jobsite.celery import app
        from scheduling import services
        from scheduling.beat.lock import LockedScheduler, _scheduled_fire

        print_machine(machine_info(bench.redis_url))
        header(f"{K} jobs on '* * * * *'")
        services.jobs_create_bulk(specs=[
            dict(name=f"bench-minutely-{k:04d}", schedule_type="cron", schedule_expression="* * * * *",
                 task_name="bench.noop", queue="default") for k in range(K)], actor_label="bench")
        scheduler = LockedScheduler(app=app, lazy=True)
        scheduler.schedule  # the initial read
        taken: list = []
        scheduler.apply_entries = lambda entries: taken.append([_scheduled_fire(entry) for entry in entries])
        scheduler.tick()  # the lock, the heap, and whatever was due at the start

        def one_round(number: int) -> float:
            # every job's entry last fired a minute before this minute: due now, on time
            due = timezone.now().replace(second=0, microsecond=0)
            for entry in scheduler.schedule.values():
                if entry.name.startswith("job:"):
                    entry.last_run_at = entry.model.last_run_at = due - timedelta(minutes=1)
            scheduler.populate_heap()
            taken.clear()
            started = time.perf_counter()
            scheduler.tick()
            wall = time.perf_counter() - started
            fired = [fire for fires in taken for fire in fires if fire is not None]
            assert len(fired) == K and {fire.scheduled_for for fire in fired} == {due}, (len(fired), K)
            return wall

        header(f"one tick taking {K} due entries, {ROUNDS} rounds")
        walls = []
        for number in range(ROUNDS):
            walls.append(one_round(number))
            print(f"  round {number + 1}: {walls[-1] * 1000:7.1f} ms  ({walls[-1] * 1e6 / K:5.0f} µs an entry)",
                  flush=True)
        print(f"  median: {statistics.median(walls) * 1000:.1f} ms", flush=True)
        profile_if_asked(lambda: one_round(ROUNDS), sort="cumulative", top=40)
    return 0


if __name__ == "__main__":
    sys.exit(main())
