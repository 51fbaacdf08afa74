"""Execution throughput: jobsite's end-to-end no-op runs beside raw Celery.

One run of this script measures, on the same worker(s), broker and settings:

(a) raw Celery: N ``celery.accumulate`` tasks sent with ``apply_async`` to the
    ``default`` queue, until every result is in (``ResultSet.join_native``);
(b) jobsite, one job: N ``services.job_execute`` calls of one job (task
    ``bench.noop``, overlap policy "allow") — the API's path without HTTP —
    until every Execution is in a terminal state (polling the database);
(c) jobsite, JOBS jobs: the same N runs spread round-robin over JOBS jobs.

Each figure is runs/s from the first send to the last completion; the ratio
jobsite ÷ raw Celery is printed. Target: ≥ 0.7 for (b) and (c).
The scenarios are interleaved ROUNDS times (a, b, c, a, b, c, ...) and the
median of each is reported, so a burst of other load on the machine does not
land on one scenario only.

Senders: by default one thread sends every run, one after the other (as one
client calling the API in a loop); SENDERS threads share the N sends in both
scenarios alike (as concurrent clients, or gunicorn's workers, do), so that
the per-request round trips of one sender do not set the pace.

Scale-out: NODES worker processes (each ``celery worker`` with its own
hostname, like a second node), each with CONCURRENCY prefork children.

Run: .venv/bin/python benchmarks/bench_throughput.py
Env: BENCH_N (1000), BENCH_JOBS (100), BENCH_ROUNDS (3), BENCH_CONCURRENCY (2), BENCH_NODES (1), BENCH_SENDERS (1),
     BENCH_DATABASE_URL, REDIS_URL, BENCH_TIMEOUT.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import BenchEnv  # noqa: E402
from benchmarks._report import (  # noqa: E402
    header,
    machine_info,
    postgres_server_cpu_seconds,
    print_machine,
    process_tree_cpu_seconds,
    verdict,
)

N = int(os.environ.get("BENCH_N", 1000))
JOBS = int(os.environ.get("BENCH_JOBS", 100))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 3))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", 2))
NODES = int(os.environ.get("BENCH_NODES", 1))
SENDERS = int(os.environ.get("BENCH_SENDERS", 1))
TARGET_RATIO = 0.7
RUN_TIMEOUT_SECONDS = 300.0


def main() -> int:
    with BenchEnv("throughput", timeout=1800) as bench:
        from celery.result import ResultSet
        from django.db import connection

        from jobsite.celery import app
        from scheduling import services
        from scheduling.models import Execution

        info = machine_info(bench.redis_url)
        print_machine(info)
        nodes = [bench.start_worker(concurrency=CONCURRENCY, pool="prefork", name=f"w{i}") for i in range(NODES)]
        print(f"workers: {', '.join(nodes)} (prefork, concurrency {CONCURRENCY} each); database {connection.vendor}; "
              f"N={N}, JOBS={JOBS}, ROUNDS={ROUNDS}, SENDERS={SENDERS}")

        def make_job(name: str):
            return services.job_create(
                actor_label="bench", name=name, schedule_type="cron", schedule_expression="0 3 1 1 *",
                task_name="bench.noop", queue="default", overlap_policy="allow",
            )

        one_job = [make_job("bench-one")]
        many_jobs = [make_job(f"bench-many-{i:03d}") for i in range(JOBS)]
        accumulate = app.tasks["celery.accumulate"]

        # The sender threads live as long as the benchmark, and so do their database
        # connections: the server CPU of their backends is counted like the others'.
        senders = ThreadPoolExecutor(SENDERS) if SENDERS > 1 else None

        def send_all(send_one, then=None) -> None:
            """send_one(i) for each of the N runs, from SENDERS threads; each
            thread then calls then(what its send_one calls returned)."""
            def share(first: int) -> None:
                sent = [send_one(i) for i in range(first, N, SENDERS)]
                if then is not None:
                    then(sent)

            if senders is None:
                share(0)
            else:
                list(senders.map(share, range(SENDERS)))

        def raw_celery() -> float:
            started = time.perf_counter()
            # Each thread waits for its own results: Celery's result consumer is per thread.
            send_all(lambda i: accumulate.apply_async(args=(i,), queue="default"),
                     then=lambda results: ResultSet(results).join_native(timeout=RUN_TIMEOUT_SECONDS, propagate=True))
            return N / (time.perf_counter() - started)

        def jobsite(jobs) -> float:
            first_pk = (Execution.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
            started = time.perf_counter()
            send_all(lambda i: services.job_execute(job=jobs[i % len(jobs)], actor_label="bench"))
            sent = time.perf_counter() - started
            deadline = started + RUN_TIMEOUT_SECONDS
            while True:
                done = Execution.objects.filter(pk__gte=first_pk).exclude(status__in=Execution.ACTIVE_STATUSES).count()
                if done >= N:
                    break
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"only {done}/{N} runs finished within {RUN_TIMEOUT_SECONDS}s")
                time.sleep(0.02)
            elapsed = time.perf_counter() - started
            failed = Execution.objects.filter(pk__gte=first_pk).exclude(status=Execution.Status.SUCCESS).count()
            if failed:
                raise RuntimeError(f"{failed} of {N} runs did not succeed")
            print(f"    sent {N} in {sent:.2f}s ({N / sent:.0f}/s)", flush=True)
            return N / elapsed

        scenarios = {
            "raw Celery (celery.accumulate)": raw_celery,
            "jobsite, 1 job": lambda: jobsite(one_job),
            f"jobsite, {JOBS} jobs": lambda: jobsite(many_jobs),
        }
        # Warm-up: imports, connections, the first fork's caches.
        raw_celery_warm = accumulate.apply_async(args=(0,), queue="default")
        raw_celery_warm.get(timeout=60)
        services.job_execute(job=one_job[0], actor_label="bench")
        time.sleep(1)

        worker_pids = [process.pid for name, process in bench.processes if name.startswith("w")]

        def cpu() -> tuple[float, float, float, float]:
            """CPU seconds so far: the workers (every child), this process (the
            sender), everything this benchmark started (Redis included), and the
            PostgreSQL server (when the database is a local PostgreSQL)."""
            return (sum(process_tree_cpu_seconds(pid) for pid in worker_pids), time.process_time(),
                    process_tree_cpu_seconds(os.getpid()),
                    postgres_server_cpu_seconds() if connection.vendor == "postgresql" else 0.0)

        rates: dict[str, list[float]] = {name: [] for name in scenarios}
        costs: dict[str, list[tuple[float, ...]]] = {name: [] for name in scenarios}
        for round_no in range(ROUNDS):
            header(f"round {round_no + 1}/{ROUNDS}")
            for name, run in scenarios.items():
                before = cpu()
                rate = run()
                after = cpu()
                rates[name].append(rate)
                cost = tuple((a - b) / N * 1000 for a, b in zip(after, before))
                costs[name].append(cost)
                print(f"  {name:<34} {rate:7.0f} runs/s   CPU per run: workers {cost[0]:5.2f} ms, "
                      f"sender {cost[1]:5.2f} ms, all {cost[2]:5.2f} ms, PostgreSQL server {cost[3]:5.2f} ms",
                      flush=True)

        header("summary (median of the rounds)")
        medians = {name: statistics.median(values) for name, values in rates.items()}
        raw = medians["raw Celery (celery.accumulate)"]
        ok = True
        for name, value in medians.items():
            spread = f"{min(rates[name]):.0f}–{max(rates[name]):.0f}"
            worker_ms, sender_ms, all_ms, server_ms = (statistics.median(c[i] for c in costs[name]) for i in range(4))
            line = f"{name:<34} {value:7.0f} runs/s  (rounds {spread})"
            if not name.startswith("raw"):
                ratio = value / raw
                ok = ok and ratio >= TARGET_RATIO
                line += f"  ratio {ratio:.2f} (target ≥ {TARGET_RATIO}): {verdict(ratio >= TARGET_RATIO)}"
            print(line)
            print(f"{'':<34} CPU per run: workers {worker_ms:.2f} ms, sender {sender_ms:.2f} ms, "
                  f"all processes (Redis too) {all_ms:.2f} ms"
                  + (f", PostgreSQL server {server_ms:.2f} ms" if connection.vendor == "postgresql" else ""))
        print(f"workers: {NODES} node(s) × concurrency {CONCURRENCY}; senders {SENDERS}; database {connection.vendor}; "
              f"overall: {verdict(ok)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
