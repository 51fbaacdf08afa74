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

Open loop (``BENCH_RATE`` > 0, issue 30 target 4): run requests sent on a
fixed schedule whatever the answers, ``BENCH_RATE`` per second for
``BENCH_SECONDS``, spread over 10 jobs (overlap "allow"), one worker with 2
processes; each client thread first sends one unmeasured request (its
connection opened, as a web process's threads hold theirs). Through the
services (``job_execute`` from client threads, one database connection each)
and through the HTTP API (``POST /api/v1/jobs/{id}/execute`` with a JWT, against
``gunicorn jobsite.wsgi`` with ``BENCH_WEB_WORKERS`` processes). Per request:
request → running (``started_at`` − the moment the request was due to be
sent: a request sent late counts its wait) and queued → running
(``started_at − created_at``). Target: request → running p99 ≤ 50 ms.

Run: .venv/bin/python benchmarks/bench_trigger_latency.py
     BENCH_RATE=200 BENCH_SECONDS=30 .venv/bin/python benchmarks/bench_trigger_latency.py
Env: BENCH_RUNS (300), BENCH_WARMUP (10), BENCH_DATABASE_URL, REDIS_URL, BENCH_TIMEOUT;
     open loop: BENCH_RATE (0 = the sequential mode), BENCH_SECONDS (30), BENCH_PATHS (services,http),
     BENCH_CLIENTS (16 sender threads), BENCH_WEB_WORKERS (2),
     BENCH_TRACE (a path prefix: each request's due, sent, answered, created and started times,
     epoch seconds, written to <prefix>.<path>.csv, to see when in the run the slow ones came).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import BenchEnv  # noqa: E402
from benchmarks._report import fmt_summary, header, machine_info, print_machine, summary_ms, verdict  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", 300))
RATE = float(os.environ.get("BENCH_RATE", 0))
WARMUP = int(os.environ.get("BENCH_WARMUP", 10))
POLL_SECONDS = 0.001
RUN_TIMEOUT_SECONDS = 30.0


def main() -> int:
    if RATE > 0:
        return open_loop(RATE)
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


# ---------------------------------------------------------------------------
# Open loop
# ---------------------------------------------------------------------------
SECONDS = float(os.environ.get("BENCH_SECONDS", 30))
PATHS = [p.strip() for p in os.environ.get("BENCH_PATHS", "services,http").split(",") if p.strip()]
CLIENTS = int(os.environ.get("BENCH_CLIENTS", 16))
WEB_WORKERS = int(os.environ.get("BENCH_WEB_WORKERS", 2))
OPEN_LOOP_JOBS = 10
TARGET_P99_MS = 50.0


def send_on_schedule(rate: float, seconds: float, send, *, jobs: list, clients: int) -> list[tuple]:
    """Call ``send(job)`` at start + i / rate for i in 0..rate*seconds, whatever
    the answers (``clients`` threads take the requests in turn; one that is
    still busy when its next is due sends it late, and that wait counts).
    Returns (due epoch seconds, sent epoch seconds, answered epoch seconds, execution id or None, error)."""
    import threading

    total = int(rate * seconds)
    results: list = [None] * total
    warmed, go = threading.Barrier(clients + 1), threading.Event()
    schedule = {}

    def client(k: int) -> None:
        # Each thread first sends one request of its own, unmeasured: it opens the thread's
        # database (or HTTP) connection, as a web process's threads hold theirs between
        # requests. Without it the first half second measured 16 connections being opened.
        try:
            send(jobs[k % len(jobs)])
        finally:
            warmed.wait()
        go.wait()
        for i in range(k, total, clients):
            due = schedule["start"] + i / rate
            pause = due - time.time()
            if pause > 0:
                time.sleep(pause)
            sent = time.time()
            try:
                execution_id, error = send(jobs[i % len(jobs)]), None
            except Exception as exc:  # counted, never retried: the schedule goes on
                execution_id, error = None, f"{type(exc).__name__}: {exc}"[:200]
            results[i] = (due, sent, time.time(), execution_id, error)

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for thread in threads:
        thread.start()
    warmed.wait()
    time.sleep(1.0)  # their runs done
    schedule["start"] = time.time() + 0.1
    go.set()
    for thread in threads:
        thread.join()
    return results


def open_loop_report(label: str, results: list, bench) -> dict:
    from django.db import connection

    from scheduling.models import Execution

    errors = [r[4] for r in results if r[4]]
    ids = [r[3] for r in results if r[3] is not None]
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while True:  # every run started (or the time is up)
        rows = {row["pk"]: row for row in Execution.objects.filter(pk__in=ids).values(
            "pk", "status", "started_at", "created_at")}
        waiting = [pk for pk in ids if rows.get(pk) is None or rows[pk]["started_at"] is None]
        if not waiting or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    connection.close()
    to_running, queued, send_late, answer, before_row, row_to_answer, answer_to_running = [], [], [], [], [], [], []
    for due, sent, answered, execution_id, error in results:
        if execution_id is None or rows.get(execution_id, {}).get("started_at") is None:
            continue
        row = rows[execution_id]
        started, created = row["started_at"].timestamp(), row["created_at"].timestamp()
        to_running.append(started - due)
        queued.append(started - created)
        send_late.append(sent - due)
        answer.append(answered - sent)
        before_row.append(created - sent)  # request parsing, auth, the job's read (HTTP: the web process)
        row_to_answer.append(answered - created)  # insert + commit + the message sent after commit (+ HTTP answer)
        answer_to_running.append(started - answered)  # broker → worker → its claim (a busy worker: the queue)
    if os.environ.get("BENCH_TRACE"):  # per request: due, sent, answered, created, started (epoch s)
        with open(f"{os.environ['BENCH_TRACE']}.{label}.csv", "w") as trace:
            for due, sent, answered, execution_id, error in results:
                row = rows.get(execution_id) or {}
                if row.get("started_at") is not None:
                    created, started = row["created_at"].timestamp(), row["started_at"].timestamp()
                    trace.write(f"{due},{sent},{answered},{created},{started}\n")
    header(f"{label}: summary")
    print(f"{len(results)} requests, {len(errors)} errors, {len(waiting)} runs not started; load {os.getloadavg()}")
    for error in sorted(set(errors))[:5]:
        print(f"  error: {error}")
    s = summary_ms(to_running)
    print(fmt_summary("request due → running (started_at)", s))
    print(fmt_summary("  queued → running (started_at − created_at)", summary_ms(queued)))
    print(fmt_summary("  request sent late (client thread busy)", summary_ms(send_late)))
    print(fmt_summary("  answer time (call / HTTP round trip)", summary_ms(answer)))
    print(fmt_summary("    sent → the row's created_at", summary_ms(before_row)))
    print(fmt_summary("    created_at → answered (commit, send, reply)", summary_ms(row_to_answer)))
    print(fmt_summary("  answered → running (broker, worker queue, claim)", summary_ms(answer_to_running)))
    ok = not errors and not waiting and s["p99"] <= TARGET_P99_MS
    print(f"{label}: request → running p99={s['p99']:.1f} ms (target ≤ {TARGET_P99_MS:g}): {verdict(ok)}")
    return s


def open_loop(rate: float) -> int:
    from jobsite.heap import freeze_startup_heap

    with BenchEnv("trigger-open", timeout=900) as bench:
        from django.contrib.auth import get_user_model
        from django.db import connection

        from jobsite.auth import access_token_for
        from scheduling import services

        info = machine_info(bench.redis_url)
        print_machine(info)
        jobs = [services.job_create(
            actor_label="bench", name=f"bench-trigger-{k}", schedule_type="cron", schedule_expression="0 3 1 1 *",
            task_name="bench.noop", queue="default", overlap_policy="allow",
        ) for k in range(OPEN_LOOP_JOBS)]
        worker = bench.start_worker(concurrency=2, pool="prefork")
        print(f"worker {worker} ready (prefork, concurrency 2); database {connection.vendor}; "
              f"{rate:g} requests/s for {SECONDS:g} s over {len(jobs)} jobs; {CLIENTS} client threads")

        def warm_up(send) -> None:
            for k in range(20):
                send(jobs[k % len(jobs)])
            time.sleep(2)
            # This process stands in for a web process, which freezes its start-up heap
            # (jobsite/wsgi.py): so does it, or its own full collections count as latency.
            freeze_startup_heap()

        if "services" in PATHS:
            def call(job):  # (each client thread has its own database connection, as a web process would)
                return services.job_execute(job=job, actor_label="bench").pk

            warm_up(call)
            header(f"services.job_execute, open loop {rate:g}/s")
            open_loop_report("services", send_on_schedule(rate, SECONDS, call, jobs=jobs, clients=CLIENTS), bench)

        if "http" in PATHS:
            import requests


            user = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench-password-1")
            token = access_token_for(user)
            _, base = bench.start_gunicorn(token=token, probe="/api/v1/jobs/?size=1", workers=WEB_WORKERS)
            local = __import__("threading").local()

            def session():
                if not hasattr(local, "session"):
                    local.session = requests.Session()
                    local.session.headers["Authorization"] = f"Bearer {token}"
                return local.session

            def post(job):
                response = session().post(f"{base}/api/v1/jobs/{job.pk}/execute", json={}, timeout=30)
                if response.status_code != 202:
                    raise RuntimeError(f"{response.status_code} {response.text[:150]}")
                return response.json()["id"]

            connection.close()
            warm_up(post)
            header(f"POST /api/v1/jobs/{{id}}/execute (gunicorn -w {WEB_WORKERS}), open loop {rate:g}/s")
            open_loop_report("http", send_on_schedule(rate, SECONDS, post, jobs=jobs, clients=CLIENTS), bench)
    return 0


if __name__ == "__main__":
    sys.exit(main())
