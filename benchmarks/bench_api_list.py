"""GET /api/v1/jobs/ with 10,000 jobs and 100,000 executions.

Data: 200 jobs through services.job_create (each with its beat PeriodicTask),
then 9,800 more as bulk-created Job rows (no PeriodicTask: the list never
reads beat's tables, and going through the service would take minutes), and
100,000 Execution rows bulk-created in batches of 5,000 (random jobs,
statuses and durations). 10% of the jobs are paused, 10% disabled.

Then, authenticated as a superuser with a real JWT (jobsite.auth.access_token_for):

* in-process with rest_framework.test.APIClient: 300 requests of size=20 over
  random pages, a quarter each plain / status / job_type / status+job_type+
  is_enabled filters; 100 of size=100; 100 of /api/v1/executions/?size=20;
* SQL queries per request (CaptureQueriesContext) for size=20 vs size=100 on
  every filter combination — must be equal (no N+1);
* over real HTTP against ``gunicorn jobsite.wsgi -w 2`` with ``requests``:
  the same 300-request mix.

Target: p95 < 50 ms (size=20).

Run: .venv/bin/python benchmarks/bench_api_list.py
Env: BENCH_JOBS (10000), BENCH_EXECUTIONS (100000), BENCH_REQUESTS (300),
     BENCH_DATABASE_URL, REDIS_URL, BENCH_TIMEOUT.
"""
from __future__ import annotations

import os
import random
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (  # noqa: E402
    PYTHON,
    BenchEnv,
    fmt_summary,
    header,
    machine_info,
    print_machine,
    summary_ms,
    verdict,
)

N_JOBS = int(os.environ.get("BENCH_JOBS", 10_000))
N_SERVICE_JOBS = min(200, N_JOBS)
N_EXECUTIONS = int(os.environ.get("BENCH_EXECUTIONS", 100_000))
N_REQUESTS = int(os.environ.get("BENCH_REQUESTS", 300))
BATCH = 5000
JOB_TYPES = [
    "document_cleanup", "analytics_aggregation", "user_activity_digest", "system_health_check",
    "database_maintenance", "mcp_server_health_check", "custom",
]
SCHEDULES = [
    ("cron", "0 3 1 1 *"), ("cron", "*/15 * * * *"), ("interval", "30"), ("interval", "1h 30m"),
    ("daily", "02:30"), ("weekly", "0:09:00"), ("monthly", "1:04:00"),
]
TIMEZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"]


def job_fields(i: int) -> dict:
    stype, expr = SCHEDULES[i % len(SCHEDULES)]
    return {
        "name": f"bench-{i:05d}", "title": f"Benchmark job {i}", "description": f"Job number {i} of the list benchmark.",
        "schedule_type": stype, "schedule_expression": expr, "timezone": TIMEZONES[i % len(TIMEZONES)],
        "task_name": "bench.noop", "task_kwargs": {"n": i}, "job_type": JOB_TYPES[i % len(JOB_TYPES)],
        "queue": "default", "priority": i % 10,
    }


def main() -> int:
    with BenchEnv("apilist", timeout=900) as bench:
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.test.utils import CaptureQueriesContext
        from django.utils import timezone
        from rest_framework.test import APIClient

        from jobsite.auth import access_token_for
        from scheduling import services
        from scheduling.models import Execution, Job

        info = machine_info(bench.redis_url)
        print_machine(info)
        rng = random.Random(42)

        # -- data ----------------------------------------------------------
        header(f"data: {N_JOBS} jobs, {N_EXECUTIONS} executions ({connection.vendor})")
        user = get_user_model().objects.create_superuser("bench-admin", "bench@example.com", "bench-password-1")
        t0 = time.perf_counter()
        for i in range(N_SERVICE_JOBS):
            services.job_create(actor=user, actor_label="bench", **job_fields(i))
        t1 = time.perf_counter()
        template = Job.objects.get(name="bench-00000")
        now = timezone.now()
        rows = []
        for i in range(N_SERVICE_JOBS, N_JOBS):
            fields = job_fields(i)
            paused, disabled = i % 10 == 3, i % 10 == 7
            runs = rng.randint(0, 500)
            ok = rng.randint(0, runs)
            rows.append(Job(
                **fields, kind="task", owner=user if i % 2 else None,
                status=Job.Status.PAUSED if paused else Job.Status.ACTIVE, is_enabled=not disabled,
                next_run_at=None if (paused or disabled) else now + timedelta(minutes=rng.randint(1, 10_000)),
                last_run_at=now - timedelta(minutes=rng.randint(1, 10_000)), last_status="success" if ok else "failed",
                total_runs=runs, successful_runs=ok, failed_runs=runs - ok,
                total_duration_seconds=runs * rng.uniform(0.1, 30), timeout_seconds=template.timeout_seconds,
            ))
        Job.objects.bulk_create(rows, batch_size=1000)
        t2 = time.perf_counter()
        # a few of the service-made jobs paused/disabled too
        for job in Job.objects.filter(pk__in=Job.objects.order_by("id").values_list("id", flat=True)[:N_SERVICE_JOBS:10]):
            services.job_pause(job=job, actor_label="bench")
        job_ids = list(Job.objects.values_list("id", flat=True))
        statuses = ["success"] * 80 + ["failed"] * 10 + ["timeout", "error", "cancelled", "skipped"] * 2 + ["running", "queued"]
        triggers = ["schedule"] * 8 + ["api", "manual"]
        made = 0
        while made < N_EXECUTIONS:
            batch = []
            for _ in range(min(BATCH, N_EXECUTIONS - made)):
                status = rng.choice(statuses)
                started = now - timedelta(seconds=rng.randint(60, 90 * 86400))
                duration = rng.uniform(0.01, 120)
                finished = status not in ("running", "queued")
                batch.append(Execution(
                    job_id=rng.choice(job_ids), celery_task_id=str(uuid.uuid4()), status=status,
                    trigger=rng.choice(triggers), started_at=None if status == "queued" else started,
                    completed_at=started + timedelta(seconds=duration) if finished else None,
                    duration_seconds=duration if finished else None, worker="bench@host pid 1",
                    output=f"{status} after {duration:.1f}s", result={"ok": status == "success"},
                ))
            Execution.objects.bulk_create(batch, batch_size=1000)
            made += len(batch)
        t3 = time.perf_counter()
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        print(f"{N_SERVICE_JOBS} jobs via services.job_create in {t1 - t0:.1f}s; {N_JOBS - N_SERVICE_JOBS} bulk-created "
              f"in {t2 - t1:.1f}s; {N_EXECUTIONS} executions bulk-created in {t3 - t2:.1f}s")
        total_jobs = Job.objects.count()
        paused_jobs = Job.objects.filter(status="paused").count()
        print(f"jobs: {total_jobs} ({paused_jobs} paused, {Job.objects.filter(is_enabled=False).count()} disabled); "
              f"executions: {Execution.objects.count()}")

        # -- request mix -------------------------------------------------------
        token = access_token_for(user)
        counts = {"": total_jobs, "status=paused": paused_jobs}
        for jt in JOB_TYPES:
            counts[f"job_type={jt}"] = Job.objects.filter(job_type=jt).count()
            counts[f"status=active&job_type={jt}&is_enabled=true"] = Job.objects.filter(
                status="active", job_type=jt, is_enabled=True).count()

        def job_list_urls(n: int, size: int, seed: int) -> list[str]:
            r = random.Random(seed)
            urls = []
            for i in range(n):
                kind = i % 4
                jt = r.choice(JOB_TYPES)
                query = ["", "status=paused", f"job_type={jt}", f"status=active&job_type={jt}&is_enabled=true"][kind]
                pages = max(1, -(-counts[query] // size))
                page = r.randint(1, pages)
                urls.append(f"/api/v1/jobs/?size={size}&page={page}" + (f"&{query}" if query else ""))
            return urls

        urls20 = job_list_urls(N_REQUESTS, 20, 1)
        urls100 = job_list_urls(100, 100, 2)
        exec_pages = -(-N_EXECUTIONS // 20)
        exec_urls = [f"/api/v1/executions/?size=20&page={random.Random(3 + i).randint(1, exec_pages)}" for i in range(100)]

        # -- query counts --------------------------------------------------
        header("SQL queries per request (in-process, page 1)")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        queries_equal = True
        for query in ["", "status=paused", "job_type=custom", "status=active&job_type=custom&is_enabled=true", "search=job+12"]:
            per_size = {}
            for size in (20, 100):
                with CaptureQueriesContext(connection) as ctx:
                    response = client.get(f"/api/v1/jobs/?size={size}&page=1" + (f"&{query}" if query else ""))
                assert response.status_code == 200, response.content[:500]
                per_size[size] = (len(ctx.captured_queries), len(response.json()["items"]))
            equal = per_size[20][0] == per_size[100][0]
            queries_equal &= equal
            print(f"  {query or '(no filter)':<48} size=20: {per_size[20][0]} queries ({per_size[20][1]} items)  "
                  f"size=100: {per_size[100][0]} queries ({per_size[100][1]} items)  {'equal' if equal else 'DIFFERENT'}")
        with CaptureQueriesContext(connection) as ctx:
            client.get("/api/v1/jobs/?size=20&page=1")
        for q in ctx.captured_queries:
            print(f"    {q['sql'][:160]}")
        for size in (20, 100):
            with CaptureQueriesContext(connection) as ctx:
                response = client.get(f"/api/v1/executions/?size={size}&page=1")
            items = len(response.json()["items"])
            print(f"  /api/v1/executions/ size={size}: {len(ctx.captured_queries)} queries ({items} items)")

        # -- in-process timings ----------------------------------------------
        def run_client(urls: list[str]) -> list[float]:
            times = []
            for url in urls:
                t = time.perf_counter()
                response = client.get(url)
                times.append(time.perf_counter() - t)
                assert response.status_code == 200, (url, response.content[:300])
            return times

        header("in-process (APIClient), latency per request")
        run_client(urls20[:30])  # warm-up
        s_in20 = summary_ms(run_client(urls20))
        s_in100 = summary_ms(run_client(urls100))
        s_exec = summary_ms(run_client(exec_urls))
        print(fmt_summary("GET /api/v1/jobs/ size=20 (mixed filters)", s_in20))
        print(fmt_summary("GET /api/v1/jobs/ size=100 (mixed filters)", s_in100))
        print(fmt_summary("GET /api/v1/executions/ size=20", s_exec))

        # -- real HTTP -----------------------------------------------------
        header("real HTTP: gunicorn jobsite.wsgi -w 2, requests")
        import requests

        from jobsite.runtime import free_port

        port = free_port()
        gunicorn = bench.start_process("gunicorn", [
            PYTHON, "-m", "gunicorn", "jobsite.wsgi", "-w", "2", "-b", f"127.0.0.1:{port}", "--log-level", "warning",
        ])
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if gunicorn.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{bench.log_tail('gunicorn')}")
            try:
                if session.get(base + "/api/v1/jobs/?size=1", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn not answering:\n{bench.log_tail('gunicorn')}")
            time.sleep(0.2)

        def run_http(urls: list[str]) -> list[float]:
            times = []
            for url in urls:
                t = time.perf_counter()
                response = session.get(base + url, timeout=30)
                times.append(time.perf_counter() - t)
                assert response.status_code == 200, (url, response.status_code, response.text[:300])
            return times

        run_http(urls20[:30])  # warm-up (both workers)
        s_http20 = summary_ms(run_http(urls20))
        s_http100 = summary_ms(run_http(urls100))
        print(fmt_summary("GET /api/v1/jobs/ size=20 (mixed filters)", s_http20))
        print(fmt_summary("GET /api/v1/jobs/ size=100 (mixed filters)", s_http100))

        header("summary")
        print(f"queries per request equal for size=20 and size=100: {verdict(queries_equal)}")
        print(f"in-process size=20 p50={s_in20['p50']:.1f} p95={s_in20['p95']:.1f} p99={s_in20['p99']:.1f} ms "
              f"(target p95 < 50 ms): {verdict(s_in20['p95'] < 50)}")
        print(f"HTTP       size=20 p50={s_http20['p50']:.1f} p95={s_http20['p95']:.1f} p99={s_http20['p99']:.1f} ms "
              f"(target p95 < 50 ms): {verdict(s_http20['p95'] < 50)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
