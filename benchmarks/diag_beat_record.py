"""Diagnosis for bench_beat_10k (c): what recording a minute's K fires costs
beat beside N other jobs — the transaction of ``LockedScheduler._record_fires``
(``services.jobs_dispatch_scheduled``), and apart from it what beat writes
after the sends (``periodic_tasks_record_fires``, ``jobs_record_fired``),
without the sends (``diag_send.py`` measures those) and without beat's loop.

In this process: N jobs (``services.jobs_create_bulk``, the mix of
bench_beat_10k) and K jobs on '* * * * *', then R rounds, each recording one
fire of every one of the K (a due time a second apart per round, on time),
then marking the round's runs done (as the worker would before the next
minute). Prints each round's wall time and its SQL statements with their
time (the slowest first), and with ``BENCH_PROFILE=1`` a cProfile of one more
round (top 30 by cumulative time).

Run: BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/jobsite_bench_record \\
       .venv/bin/python benchmarks/diag_beat_record.py
Env: BENCH_JOBS (100000), BENCH_K (1000), BENCH_ROUNDS (5), BENCH_PROFILE.
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

N_JOBS = int(os.environ.get("BENCH_JOBS", 100_000))
K = int(os.environ.get("BENCH_K", 1000))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 5))
BATCH = 5000


def main() -> int:
    with BenchEnv("beatrecord", timeout=1800) as bench:
        from django.db import connection, transaction
        from django.test.utils import CaptureQueriesContext
        from django.utils import timezone
        from django_celery_beat.models import PeriodicTask

        from benchmarks.bench_beat_10k import create_spec_jobs
        from scheduling import services
        from scheduling.beat.sync import periodic_tasks_record_fires
        from scheduling.models import Execution

        print_machine(machine_info(bench.redis_url))
        now = timezone.now()
        header(f"creating {N_JOBS} + {K} jobs ({connection.vendor})")
        started = time.perf_counter()
        for _ in create_spec_jobs(N_JOBS, now, batch=BATCH):
            pass
        minutely = services.jobs_create_bulk(specs=[
            dict(name=f"bench-minutely-{k:04d}", schedule_type="cron", schedule_expression="* * * * *",
                 task_name="bench.noop", queue="default") for k in range(K)], actor_label="bench")
        job_ids = [job.pk for job in minutely]
        tasks = dict(PeriodicTask.objects.filter(name__in=[f"job:{pk}" for pk in job_ids]).values_list("name", "pk"))
        print(f"created in {time.perf_counter() - started:.1f}s", flush=True)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE")

        def one_round(number: int, capture: bool = True):
            due = timezone.now().replace(microsecond=0) - timedelta(seconds=ROUNDS + 5 - number)
            fires = [services.ScheduledFire(job_id=pk, scheduled_for=due) for pk in job_ids]
            sends: list = []
            fired: list = []
            context = CaptureQueriesContext(connection) if capture else None
            started = time.perf_counter()
            if context is not None:
                context.__enter__()
            with transaction.atomic():
                queued, one_by_one = services.jobs_dispatch_scheduled(fires=fires, sends=sends, fired=fired)
            wall = time.perf_counter() - started
            after = time.perf_counter()
            with transaction.atomic():  # what beat writes once the messages are out
                periodic_tasks_record_fires({tasks[f"job:{pk}"]: due for pk in job_ids})
                services.jobs_record_fired(fired)
            after = time.perf_counter() - after
            if context is not None:
                context.__exit__(None, None, None)
            assert (queued, one_by_one) == (K, 0), (queued, one_by_one)
            assert len(sends) == K
            Execution.objects.filter(scheduled_for=due).update(status="success")  # the worker's part
            return wall, after, context.captured_queries if context is not None else []

        header(f"recording {K} fires in one transaction, {ROUNDS} rounds")
        walls, afters = [], []
        for number in range(ROUNDS):
            wall, after, queries = one_round(number)
            walls.append(wall)
            afters.append(after)
            sql_ms = sum(float(query["time"]) for query in queries) * 1000
            print(f"  round {number + 1}: {wall * 1000:7.1f} ms wall before the sends "
                  f"(+ {after * 1000:.1f} ms after them), {len(queries)} statements, {sql_ms:6.1f} ms in them",
                  flush=True)
            for query in sorted(queries, key=lambda q: -float(q["time"]))[:6]:
                print(f"      {float(query['time']) * 1000:6.1f} ms  {query['sql'][:110]}", flush=True)
        print(f"  median: {statistics.median(walls) * 1000:.1f} ms before the sends, "
              f"{statistics.median(afters) * 1000:.1f} ms after them", flush=True)
        profile_if_asked(lambda: one_round(ROUNDS, capture=False), sort="cumulative", top=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
