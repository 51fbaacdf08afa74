"""Manual trigger latency: services.job_execute → the worker starts the run.

A real prefork worker (concurrency 2) and real Redis; one job (overlap policy
"allow", task bench.noop). 10 warm-up calls, then 300 sequential calls of
services.job_execute; each call waits until its execution has finished before
the next one is made. Per execution:

* started_at − created_at (queued → running, as recorded in the database);
* wall clock from the call to this process seeing started_at set (polling the
  database every ~1 ms);
* the job_execute call itself (transaction + on-commit send to the broker).

Targets: started_at − created_at p50 < 100 ms and p99 < 500 ms.

Run: .venv/bin/python benchmarks/bench_trigger_latency.py
Env: BENCH_RUNS (300), BENCH_WARMUP (10), BENCH_DATABASE_URL, REDIS_URL, BENCH_TIMEOUT.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (  # noqa: E402
    BenchEnv,
    fmt_summary,
    header,
    machine_info,
    print_machine,
    summary_ms,
    verdict,
)

RUNS = int(os.environ.get("BENCH_RUNS", 300))
WARMUP = int(os.environ.get("BENCH_WARMUP", 10))
POLL_SECONDS = 0.001
RUN_TIMEOUT_SECONDS = 30.0


def main() -> int:
    with BenchEnv("trigger", timeout=600) as bench:
        from django.db import connection

        from scheduling import services
        from scheduling.models import Execution

        info = machine_info(bench.redis_url)
        print_machine(info)

        job = services.job_create(
            actor_label="bench", name="bench-trigger", schedule_type="cron", schedule_expression="0 3 1 1 *",
            task_name="bench.noop", queue="default", overlap_policy="allow",
        )
        worker = bench.start_worker(concurrency=2, pool="prefork")
        print(f"worker {worker} ready (prefork, concurrency 2); database {connection.vendor}")

        def one_run() -> tuple[float, float, float]:
            t0 = time.perf_counter()
            execution = services.job_execute(job=job, actor_label="bench")
            t_call = time.perf_counter() - t0
            seen = None
            deadline = t0 + RUN_TIMEOUT_SECONDS
            while True:
                row = Execution.objects.filter(pk=execution.pk).values("status", "started_at", "created_at").first()
                now = time.perf_counter()
                if seen is None and row["started_at"] is not None:
                    seen = now - t0
                if row["status"] not in Execution.ACTIVE_STATUSES:
                    break
                if now > deadline:
                    raise RuntimeError(f"execution {execution.pk} still {row['status']} after {RUN_TIMEOUT_SECONDS}s:\n"
                                       f"{bench.log_tail('worker')}")
                time.sleep(POLL_SECONDS)
            if row["status"] != Execution.Status.SUCCESS or row["started_at"] is None:
                raise RuntimeError(f"execution {execution.pk} ended {row['status']}:\n{bench.log_tail('worker')}")
            return (row["started_at"] - row["created_at"]).total_seconds(), seen, t_call

        header(f"warm-up: {WARMUP} runs")
        for _ in range(WARMUP):
            one_run()

        header(f"{RUNS} sequential job_execute calls")
        db_latency, wall, calls = [], [], []
        started = time.perf_counter()
        for _ in range(RUNS):
            a, b, c = one_run()
            db_latency.append(a)
            wall.append(b)
            calls.append(c)
        elapsed = time.perf_counter() - started
        print(f"{RUNS} runs in {elapsed:.1f}s")
        s_db = summary_ms(db_latency)
        s_wall = summary_ms(wall)
        s_call = summary_ms(calls)
        print(fmt_summary("started_at − created_at (DB)", s_db))
        print(fmt_summary("call → started_at seen (wall clock)", s_wall))
        print(fmt_summary("job_execute() call itself", s_call))

        header("summary")
        ok50, ok99 = s_db["p50"] < 100, s_db["p99"] < 500
        print(f"queued→running p50={s_db['p50']:.1f} ms (target < 100): {verdict(ok50)}; "
              f"p99={s_db['p99']:.1f} ms (target < 500): {verdict(ok99)}")
        print(f"wall clock call→running p50={s_wall['p50']:.1f} ms p95={s_wall['p95']:.1f} ms p99={s_wall['p99']:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
