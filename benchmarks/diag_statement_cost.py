"""Diagnosis for bench_throughput on PostgreSQL: what one statement costs the
database server on this machine, and what a run's own statements cost.

In this process, against the benchmark PostgreSQL database (no worker, no
Celery messages consumed), N times each:

* floor: ``SELECT 1``; a read by primary key; an ``UPDATE`` by primary key in
  autocommit (its own transaction and commit), of an indexed column and of an
  unindexed one;
* a run request: ``services.job_execute`` (overlap policy "allow": one
  statement on PostgreSQL) and, for comparison, the locked path that a job
  with overlap policy "skip" takes (a transaction of several statements);
* a run: ``services.execution_run`` of a queued execution (claim, the no-op
  task, finish), without Celery.

For each: the server backend's CPU (from /proc, the connection's own backend
process only), this process's CPU and the wall time, per call.

Run: BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/jobsite_bench \\
     .venv/bin/python benchmarks/diag_statement_cost.py
Env: BENCH_N (2000).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import BenchEnv  # noqa: E402
from benchmarks._report import header, machine_info, print_machine, process_tree_cpu_seconds  # noqa: E402

N = int(os.environ.get("BENCH_N", 2000))


def main() -> int:
    if "postgres" not in os.environ.get("BENCH_DATABASE_URL", ""):
        print("diag_statement_cost measures a PostgreSQL server: set BENCH_DATABASE_URL "
              "(e.g. postgres://postgres@127.0.0.1:5432/jobsite_bench).")
        return 2
    with BenchEnv("statement-cost", timeout=900) as bench:
        from django.db import connection

        from scheduling import services
        from scheduling.services import requests as run_requests

        print_machine(machine_info(bench.redis_url))

        def job(name: str, overlap: str):
            return services.job_create(actor_label="bench", name=name, schedule_type="cron",
                                       schedule_expression="0 3 1 1 *", task_name="bench.noop", queue="default",
                                       overlap_policy=overlap)

        allow = job("cost-allow", "allow")
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]

        def measure(label: str, calls) -> None:
            server, client, wall = process_tree_cpu_seconds(backend), time.process_time(), time.perf_counter()
            for call in calls:
                call()
            n = len(calls)
            print(f"  {label:<58} server {(process_tree_cpu_seconds(backend) - server) / n * 1000:6.3f} ms   "
                  f"client {(time.process_time() - client) / n * 1000:6.3f} ms   "
                  f"wall {(time.perf_counter() - wall) / n * 1000:6.3f} ms", flush=True)

        header(f"per call, {N} calls each (PostgreSQL backend CPU / this process's CPU / wall)")
        queued = [services.job_execute(job=allow, actor_label="bench").pk for _ in range(N)]
        with connection.cursor() as cursor:
            def statement(sql, *params):
                return lambda: cursor.execute(sql, list(params))

            measure("SELECT 1", [statement("SELECT 1")] * N)
            measure("SELECT by primary key", [statement("SELECT id, status FROM scheduling_execution WHERE id = %s", pk)
                                              for pk in queued])
            measure("UPDATE by primary key, indexed column (autocommit)",
                    [statement("UPDATE scheduling_execution SET status = 'queued' WHERE id = %s", pk) for pk in queued])
            measure("UPDATE by primary key, unindexed column (autocommit)",
                    [statement("UPDATE scheduling_execution SET worker = '' WHERE id = %s", pk) for pk in queued])
        measure("run request, overlap allow (one statement)",
                [lambda: services.job_execute(job=allow, actor_label="bench")] * N)
        # what every request did before, and what one that needs the lock (overlap "skip") still does
        measure("run request, locked path (a transaction)",
                [lambda: run_requests._execute_locked(allow.pk, actor=None, actor_label="bench", trigger="api",
                                                      force=False, override_kwargs=None)] * N)
        measure("a run: claim, no-op task, finish (no Celery)",
                [lambda pk=pk: services.execution_run(execution_id=pk, task_id=f"diag-{pk}", worker="diag")
                 for pk in queued])
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM scheduling_execution WHERE status = 'success'")
            assert cursor.fetchone()[0] == N, "every run measured must have succeeded"
    return 0


if __name__ == "__main__":
    sys.exit(main())
