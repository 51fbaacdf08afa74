"""The admin at 1,000,000 runs: the dashboard (the admin index) and every
admin list, p50/p95 per page and SQL queries per page.

Data (made once per database, kept between runs so that a second run
measures the same rows after new migrations, e.g. new indexes):

* BENCH_JOBS jobs (200 through services.job_create, each with its beat
  PeriodicTask; the rest bulk-created), a tenth of them in an organization
  whose member is the non-superuser measured too;
* BENCH_EXECUTIONS runs bulk-created in batches of 5,000, spread evenly
  over 90 days (as bench_api_list: ~11,000 a day, ~78,000 in the 7 days
  the dashboard charts), statuses 80 % success, 10 % failed, the rest spread;
  every tenth failure with a traceback and a log; 20 running (with progress)
  and 20 queued;
* 5,000 audit entries and 90 days of daily statistics.

Then, signed in with Django's test client (in-process, the admin's own
views, DEBUG off): BENCH_REQUESTS requests of each page, a quarter of them
with a filter or a later page where the list has them, and the SQL queries
of page 1 and of page 2 (which must be equal: no query per row).

Run:  DATABASE_URL=postgres://postgres@127.0.0.1:5432/jobsite_bench_admin \
      .venv/bin/python benchmarks/bench_admin.py
      (the database name must contain "bench": it is created when missing and filled when empty)
Env:  BENCH_EXECUTIONS (1000000), BENCH_JOBS (2000), BENCH_REQUESTS (40),
      BENCH_PAGES (comma-separated page names to measure; default all),
      BENCH_USERS (comma-separated: bench-admin, bench-member; default both),
      BENCH_PROFILE=N (after the figures, profile N more requests of each page measured
      under cProfile and print the functions that took the most time, cumulative and own),
      BENCH_RESET=1 (drop and re-create the database first).
Without DATABASE_URL: a SQLite file under the temp dir (BENCH_EXECUTIONS 100000 is sensible there).
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from benchmarks._common import PYTHON  # noqa: E402
from benchmarks._report import fmt_summary, header, machine_info, print_machine, summary_ms, verdict  # noqa: E402

N_EXECUTIONS = int(os.environ.get("BENCH_EXECUTIONS", 1_000_000))
N_JOBS = int(os.environ.get("BENCH_JOBS", 2000))
N_SERVICE_JOBS = min(200, N_JOBS)
N_REQUESTS = int(os.environ.get("BENCH_REQUESTS", 40))
TARGET_MS = 200.0
BATCH = 5000


def _database_url(tmp: Path) -> str:
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        return f"sqlite:///{tmp / 'bench_admin.sqlite3'}"
    parts = urlsplit(url)
    name = unquote(parts.path.lstrip("/"))
    if "bench" not in name:
        raise SystemExit(f"DATABASE_URL names database '{name}': its name must contain 'bench' (it may be dropped).")
    import psycopg
    from psycopg import sql

    with psycopg.connect(host=parts.hostname or "localhost", port=parts.port or 5432, user=unquote(parts.username or ""),
                         password=unquote(parts.password or "") or None, dbname="postgres", autocommit=True) as conn:
        if os.environ.get("BENCH_RESET"):
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"[bench] created database {name}")
    return url


def _setup() -> tuple[object, Path]:
    from jobsite.runtime import EmbeddedRedis, free_port

    tmp = Path(tempfile.mkdtemp(prefix="jobsite-bench-admin-"))
    redis_server = EmbeddedRedis(port=free_port(), data_dir=tmp / "redis", persistent=False).start()
    os.environ.update(
        DJANGO_SETTINGS_MODULE="jobsite.settings", JOBSITE_VAR_DIR=str(tmp / "var"), JOBS_CREATE_DEFAULT_JOBS="false",
        JOBS_TASK_MODULES="benchmarks._tasks", DATABASE_URL=_database_url(tmp), REDIS_URL=redis_server.url,
        CELERY_BROKER_URL=redis_server.url, CELERY_RESULT_BACKEND=redis_server.url, DEBUG="false",
        SECRET_KEY="bench-admin-" + uuid.uuid4().hex, LOG_LEVEL="WARNING", ALLOWED_HOSTS="testserver,localhost",
    )
    started = time.monotonic()
    result = subprocess.run([PYTHON, "manage.py", "migrate", "--noinput"], cwd=BASE_DIR, env=dict(os.environ),
                            capture_output=True, text=True, timeout=3600)
    if result.returncode:
        raise SystemExit(f"migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    print(f"[bench] migrated in {time.monotonic() - started:.1f}s ({os.environ['DATABASE_URL'].split('@')[-1]})")
    import django

    django.setup()
    return redis_server, tmp


def _fill() -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from jobsite.models import Membership, Organization
    from scheduling import services
    from scheduling.models import AuditLog, DailyJobStatistics, Execution, Job

    if Execution.objects.exists():
        print(f"[bench] data already there: {Job.objects.count()} jobs, {Execution.objects.count()} executions")
        _analyze(connection)  # new indexes since (a migration) get their statistics
        return
    rng = random.Random(42)
    header(f"data: {N_JOBS} jobs, {N_EXECUTIONS} executions ({connection.vendor})")
    User = get_user_model()
    root = User.objects.create_superuser("bench-admin", "bench@example.com", "bench-password-1")
    org = Organization.objects.create(name="Bench tenant")
    member = User.objects.create_user("bench-member", "member@example.com", "bench-password-1", is_staff=True)
    Membership.objects.create(user=member, organization=org)
    from django.contrib.auth.models import Permission

    member.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["scheduling"]))
    t0 = time.perf_counter()
    schedules = [("cron", "*/5 * * * *"), ("interval", "30"), ("daily", "02:30"), ("cron", "0 * * * *"),
                 ("interval", "1h 30m"), ("cron", "*/15 * * * *")]
    for i in range(N_SERVICE_JOBS):
        stype, expr = schedules[i % len(schedules)]
        services.job_create(actor=root, name=f"bench-{i:05d}", title=f"Benchmark job {i}", schedule_type=stype,
                            schedule_expression=expr, task_name="bench.noop", queue="default")
    now = timezone.now()
    rows = []
    for i in range(N_SERVICE_JOBS, N_JOBS):
        stype, expr = schedules[i % len(schedules)]
        rows.append(Job(name=f"bench-{i:05d}", title=f"Benchmark job {i}", kind="task", schedule_type=stype,
                        schedule_expression=expr, task_name="bench.noop", queue="default",
                        organization=org if i % 10 == 0 else None,
                        status=Job.Status.PAUSED if i % 10 == 3 else Job.Status.ACTIVE, is_enabled=i % 10 != 7,
                        next_run_at=now + timedelta(minutes=rng.randint(-30, 3000)),
                        last_run_at=now - timedelta(minutes=rng.randint(1, 3000)), last_status="success",
                        total_runs=500, successful_runs=450, failed_runs=50, total_duration_seconds=500 * 3.0))
    Job.objects.bulk_create(rows, batch_size=1000)
    job_ids = list(Job.objects.values_list("id", flat=True))
    t1 = time.perf_counter()
    statuses = ["success"] * 80 + ["failed"] * 10 + ["timeout", "error", "cancelled", "skipped", "missed"] * 2
    made = 0
    while made < N_EXECUTIONS:
        batch = []
        for _ in range(min(BATCH, N_EXECUTIONS - made)):
            status = rng.choice(statuses)
            age = rng.uniform(0, 90 * 86400)
            created = now - timedelta(seconds=age)
            duration = rng.uniform(0.05, 90)
            failed = status in ("failed", "timeout", "error")
            heavy = failed and rng.random() < 0.1
            batch.append(Execution(
                job_id=rng.choice(job_ids), celery_task_id=str(uuid.uuid4()), status=status, trigger="schedule",
                started_at=created, completed_at=created + timedelta(seconds=duration), duration_seconds=duration,
                worker="bench@host pid 1", output=f"{status} after {duration:.1f}s",
                error=f"RuntimeError: run failed after {duration:.1f}s" if failed else "",
                traceback=("Traceback (most recent call last):\n" + "  File x, line 1\n" * 40) if heavy else "",
                log=("INFO step done\n" * 200) if heavy else "", result={"ok": status == "success"},
            ))
        Execution.objects.bulk_create(batch, batch_size=1000)
        made += len(batch)
        if made % 100_000 == 0 or made == N_EXECUTIONS:
            print(f"  {made} executions", flush=True)
    # created_at is auto_now_add: bulk_create stamped now; put it back to started_at
    Execution.objects.filter(started_at__isnull=False).update(created_at=models_F("started_at"))
    for i in range(20):
        Execution.objects.create(job_id=job_ids[i], status="running", started_at=now - timedelta(minutes=i + 1),
                                 celery_task_id=str(uuid.uuid4()), worker="bench@host pid 2",
                                 result={"percent": 5.0 * i})
        Execution.objects.create(job_id=job_ids[i + 20], status="queued", celery_task_id=str(uuid.uuid4()))
    AuditLog.objects.bulk_create([AuditLog(actor_label="bench", action="update", object_type="job",
                                           object_id=str(rng.choice(job_ids)), object_repr="bench job")
                                  for _ in range(5000)])
    DailyJobStatistics.objects.bulk_create([DailyJobStatistics(day=(now - timedelta(days=d)).date(), job=None, runs=11000,
                                                               successes=9900, failures=1100) for d in range(1, 91)])
    t2 = time.perf_counter()
    _analyze(connection)
    print(f"jobs in {t1 - t0:.1f}s, {N_EXECUTIONS} executions and the rest in {t2 - t1:.1f}s")


def _analyze(connection) -> None:
    """The planner's statistics, as the database_maintenance job keeps them
    (VACUUM ANALYZE on PostgreSQL; ANALYZE on SQLite, whose planner without
    them reads a job's whole history for the overdue check's EXISTS)."""
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")


def models_F(name):
    from django.db.models import F

    return F(name)


def _pages() -> list[tuple[str, str, list[str]]]:
    """(name, url of page 1, the variants the mix asks) of the dashboard and every registered admin list."""
    from django.contrib import admin
    from django.urls import reverse
    from django.utils import timezone

    since = quote((timezone.now() - timedelta(hours=24)).isoformat(timespec="seconds"))
    variants = {
        "scheduling.execution": ["?p=2", "?status__exact=failed", "?status__in=failed,timeout,error",
                                 f"?created_at__gte={since}", "?p=3"],
        "scheduling.job": ["?p=2", "?status__exact=paused", "?kind__exact=task"],
        "scheduling.auditlog": ["?p=2", "?action__exact=update"],
    }
    pages = [("dashboard", reverse("admin:index"), [""])]
    for model in sorted(admin.site._registry, key=lambda m: m._meta.label):
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        pages.append((model._meta.label.lower(), url, ["", *variants.get(model._meta.label.lower(), [])]))
    wanted = {name.strip() for name in os.environ.get("BENCH_PAGES", "").split(",") if name.strip()}
    return [page for page in pages if not wanted or page[0] in wanted]


def _measure(client, pages) -> list[dict]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    rows = []
    for name, url, variants in pages:
        counts = []
        for suffix in ("", "?p=2") if name != "dashboard" else ("", ""):
            with CaptureQueriesContext(connection) as ctx:
                response = client.get(url + suffix)
            assert response.status_code == 200, (name, url + suffix, response.status_code)
            counts.append(len(ctx.captured_queries))
        times, cpu = [], []
        for i in range(N_REQUESTS):
            variant = variants[0] if i % 4 else variants[(i // 4) % len(variants)]
            started, started_cpu = time.perf_counter(), time.process_time()
            response = client.get(url + variant)
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
            assert response.status_code == 200, (name, url + variant, response.status_code)
        summary = summary_ms(times)
        # this process's CPU a request (the page's Python, not the database server's): steadier than
        # wall time on a machine others load
        cpu_ms = sorted(1000 * seconds for seconds in cpu)[len(cpu) // 2]
        rows.append({"name": name, "queries": counts, "summary": summary, "cpu_p50": cpu_ms})
        ok = summary["p95"] <= TARGET_MS
        print(f"{fmt_summary(name, summary)}  cpu p50 {cpu_ms:6.1f} ms  queries p1/p2 {counts[0]}/{counts[1]}  "
              f"{verdict(ok)}", flush=True)
    return rows


def _profile(client, pages, requests: int) -> None:
    """Where a page's time goes: ``requests`` requests of each page under cProfile."""
    import cProfile
    import pstats

    for name, url, _ in pages:
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        for _ in range(requests):
            client.get(url)
        profiler.disable()
        header(f"profile of {name}: {requests} requests, {1000 * (time.perf_counter() - started) / requests:.0f} ms "
               f"a request under cProfile")
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(25)


def main() -> int:
    redis_server, tmp = _setup()
    try:
        from django.contrib.auth import get_user_model
        from django.test import Client

        from scheduling.models import Execution

        print_machine(machine_info(os.environ["REDIS_URL"]))
        _fill()
        print(f"[bench] executions stored: {Execution.objects.count()}")
        pages = _pages()
        results = {}
        users = [name.strip() for name in os.environ.get("BENCH_USERS", "bench-admin,bench-member").split(",")]
        for username in users:
            header(f"signed in as {username}: {N_REQUESTS} requests a page, in-process (django.test.Client)")
            client = Client()
            client.force_login(get_user_model().objects.get(username=username))
            client.get(pages[0][1])  # warm-up
            mine = pages if username == "bench-admin" else [p for p in pages if p[0].startswith(("dashboard", "scheduling."))]
            results[username] = _measure(client, mine)
            if int(os.environ.get("BENCH_PROFILE", 0) or 0):
                _profile(client, mine, int(os.environ["BENCH_PROFILE"]))
        header("summary")
        slow = [(user, row["name"], row["summary"]["p95"]) for user, rows in results.items() for row in rows
                if row["summary"]["p95"] > TARGET_MS]
        unequal = [(user, row["name"], row["queries"]) for user, rows in results.items() for row in rows
                   if row["queries"][0] != row["queries"][1]]
        print(f"pages over p95 {TARGET_MS:.0f} ms: {slow or 'none'}")
        print(f"pages whose page 2 makes other queries than page 1: {unequal or 'none'}")
        return 0
    finally:
        from django.db import connections

        connections.close_all()
        redis_server.stop()


if __name__ == "__main__":
    sys.exit(main())
