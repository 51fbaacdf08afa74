"""GET /api/v1/jobs/ with 10,000 jobs, and the run history (GET
/api/v1/executions/, GET /api/v1/jobs/{id}/executions/) with 100,000 to
1,000,000 executions.

Data: 200 jobs through services.job_create (each with its beat PeriodicTask),
then 9,800 more as bulk-created Job rows (no PeriodicTask: the list never
reads beat's tables, and going through the service would take minutes), and
100,000 Execution rows bulk-created in batches of 5,000 (random jobs,
statuses and durations; one job, the "heavy" one, has a tenth of them). 10% of
the jobs are paused, 10% disabled. The jobs belong to 10 organizations in turn;
a member (non-superuser) of the first one sees a tenth of the runs.

Then, authenticated as a superuser with a real JWT (jobsite.auth.access_token_for):

* in-process with rest_framework.test.APIClient: 300 requests of size=20 over
  random pages, a quarter each plain / status / job_type / status+job_type+
  is_enabled filters; 100 of size=100; 100 of /api/v1/executions/?size=20;
* SQL queries per request (CaptureQueriesContext) for size=20 vs size=100 on
  every filter combination — must be equal (no N+1);
* over real HTTP against ``gunicorn jobsite.wsgi -w 2`` with ``requests``:
  the same 300-request mix;
* the run history, as the superuser and as the member: for each filter (none, status common /
  rare / absent, job_id typical / heavy, job_id+status, a job's own list) the
  first page, random pages of the page/size contract (offsets anywhere in the
  list) and, where the API has it, random positions by cursor (``next``).

Target: p95 < 50 ms (size=20) for the jobs list. Run history: first pages and
cursor pages p95 <= 50 ms on PostgreSQL, <= 100 ms on SQLite (issue 30);
page/size deep pages are reported, not judged.

Run: .venv/bin/python benchmarks/bench_api_list.py
Env: BENCH_JOBS (10000), BENCH_EXECUTIONS (100000), BENCH_REQUESTS (300),
     BENCH_HISTORY_REQUESTS (20 a group), BENCH_PARTS ("jobs,history"),
     BENCH_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/jobsite_bench_history),
     REDIS_URL, BENCH_TIMEOUT.
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

from benchmarks._common import BenchEnv  # noqa: E402
from benchmarks._report import fmt_summary, header, machine_info, print_machine, summary_ms, verdict  # noqa: E402

N_JOBS = int(os.environ.get("BENCH_JOBS", 10_000))
N_SERVICE_JOBS = min(200, N_JOBS)
N_EXECUTIONS = int(os.environ.get("BENCH_EXECUTIONS", 100_000))
N_REQUESTS = int(os.environ.get("BENCH_REQUESTS", 300))
N_HISTORY = int(os.environ.get("BENCH_HISTORY_REQUESTS", 20))
PARTS = set(os.environ.get("BENCH_PARTS", "jobs,history").split(","))
N_ORGS = 10
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


#: Pseudo-random numbers of a row's number i, the same in SQLite and PostgreSQL (64-bit integers).
def _h(a: int) -> str:
    return f"((s.i * {a} + 12345) %% 2147483647)"


def insert_executions_in_sql(job_ids: list[int], heavy: int) -> int:
    """N_EXECUTIONS runs in one INSERT ... SELECT over a series (minutes faster
    than bulk_create on a loaded machine), with bulk_create's mix: a tenth on
    the heavy job, the rest spread over all jobs; 80% success, 10% failed, 2%
    each timeout/error/cancelled/skipped, 1% each running/queued; created one
    second apart, the newest now. Answers 0 (the caller then bulk-creates) when
    a column is one this does not know or the job ids are not contiguous."""
    from django.db import connection
    from django.utils import timezone

    from scheduling.models import Execution

    low, n_jobs = min(job_ids), len(job_ids)
    if max(job_ids) - low + 1 != n_jobs:
        return 0
    pg = connection.vendor == "postgresql"
    base = timezone.now() - timedelta(seconds=N_EXECUTIONS + 1)
    if pg:
        created = f"(%s::timestamptz + make_interval(secs => s.i + ({_h(2654435761)} %% 1000000) / 1000000.0))"
        base_param = base
    else:
        created = (f"(strftime('%%Y-%%m-%%d %%H:%%M:%%S', %s + s.i, 'unixepoch') || '.' || "
                   f"printf('%%06d', {_h(2654435761)} %% 1000000))")
        base_param = int(base.timestamp())
    bucket = f"({_h(2246822519)} %% 100)"
    status = (f"CASE WHEN {bucket} < 80 THEN 'success' WHEN {bucket} < 90 THEN 'failed' WHEN {bucket} < 92 THEN "
              f"'timeout' WHEN {bucket} < 94 THEN 'error' WHEN {bucket} < 96 THEN 'cancelled' WHEN {bucket} < 98 "
              f"THEN 'skipped' WHEN {bucket} = 98 THEN 'running' ELSE 'queued' END")
    finished = f"{bucket} < 98"
    duration = f"({_h(3266489917)} %% 120000) / 1000.0"
    uuid_hex = "lpad(to_hex(s.i), 32, '0')::uuid" if pg else "printf('%%032x', s.i)"
    json = "::jsonb" if pg else ""
    columns = {
        "uuid": (uuid_hex, []), "job_id": (
            f"CASE WHEN {_h(668265263)} %% 10 = 0 THEN {heavy} ELSE {low} + {_h(374761393)} %% {n_jobs} END", []),
        "celery_task_id": ("'bench-' || s.i", []), "status": (status, []),
        "trigger": (f"CASE {_h(1540483477)} %% 10 WHEN 0 THEN 'api' WHEN 1 THEN 'manual' ELSE 'schedule' END", []),
        "attempt": ("1", []), "override_kwargs": (f"'{{}}'{json}", []), "created_at": (created, [base_param]),
        "started_at": (f"CASE WHEN {bucket} = 99 THEN NULL ELSE {created} END", [base_param]),
        "completed_at": (f"CASE WHEN {finished} THEN {created} ELSE NULL END", [base_param]),
        "duration_seconds": (f"CASE WHEN {finished} THEN {duration} ELSE NULL END", []),
        "worker": ("'bench@host pid 1'", []), "output": (f"{status} || ' after ' || ({duration})", []),
        "result": (f"CASE WHEN {bucket} < 80 THEN '{{\"ok\": true}}' ELSE '{{\"ok\": false}}' END{json}", []),
        "error": ("''", []), "traceback": ("''", []), "log": ("''", []),
    }
    names, expressions, params = [], [], []
    for field in Execution._meta.concrete_fields:
        if field.primary_key:
            continue
        if field.column in columns:
            expression, extra = columns[field.column]
        elif field.null or field.has_default():
            expression, extra = "%s", [field.get_db_prep_save(field.get_default(), connection)]
        else:
            return 0
        names.append(connection.ops.quote_name(field.column))
        expressions.append(expression)
        params.extend(extra)
    insert = f"INSERT INTO {connection.ops.quote_name(Execution._meta.db_table)} ({', '.join(names)})"
    select = f"SELECT {', '.join(expressions)}"
    with connection.cursor() as cursor:
        if pg:
            cursor.execute(f"{insert} {select} FROM generate_series(1::bigint, %s::bigint) AS s(i)", [*params, N_EXECUTIONS])
        else:
            cursor.execute(f"WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %s) "
                           f"{insert} {select} FROM s", [N_EXECUTIONS, *params])
    return N_EXECUTIONS


def make_data(rng: random.Random):
    """The jobs, organizations, users and executions; returns (superuser, member, heavy job id, typical job id)."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from jobsite.models import Membership, Organization
    from scheduling import services
    from scheduling.models import Execution, Job

    header(f"data: {N_JOBS} jobs, {N_EXECUTIONS} executions ({connection.vendor})")
    user_model = get_user_model()
    user = user_model.objects.create_superuser("bench-admin", "bench@example.com", "bench-password-1")
    member = user_model.objects.create_user("bench-member", "member@example.com", "bench-password-1")
    orgs = [Organization.objects.create(name=f"Bench org {i}") for i in range(N_ORGS)]
    Membership.objects.create(user=member, organization=orgs[0])
    t0 = time.perf_counter()
    for i in range(N_SERVICE_JOBS):
        services.job_create(actor=user, actor_label="bench", **job_fields(i))
    for i, job_id in enumerate(Job.objects.order_by("id").values_list("id", flat=True)):
        Job.objects.filter(pk=job_id).update(organization=orgs[i % N_ORGS])
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
            **fields, kind="task", owner=user if i % 2 else None, organization=orgs[i % N_ORGS],
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
    job_ids = list(Job.objects.order_by("id").values_list("id", flat=True))
    heavy = template.pk  # in the member's organization (the first)
    typical = Job.objects.filter(organization=orgs[0]).exclude(pk=heavy).order_by("-id").values_list("id", flat=True)[0]
    # "missed" never occurs: a filter that matches nothing
    statuses = ["success"] * 80 + ["failed"] * 10 + ["timeout", "error", "cancelled", "skipped"] * 2 + ["running", "queued"]
    triggers = ["schedule"] * 8 + ["api", "manual"]
    made = insert_executions_in_sql(job_ids, heavy)
    while made < N_EXECUTIONS:
        batch = []
        for _ in range(min(BATCH, N_EXECUTIONS - made)):
            status = rng.choice(statuses)
            started = now - timedelta(seconds=rng.randint(60, 90 * 86400))
            duration = rng.uniform(0.01, 120)
            finished = status not in ("running", "queued")
            batch.append(Execution(
                job_id=heavy if rng.random() < 0.1 else rng.choice(job_ids), celery_task_id=str(uuid.uuid4()),
                status=status, trigger=rng.choice(triggers), started_at=None if status == "queued" else started,
                completed_at=started + timedelta(seconds=duration) if finished else None,
                duration_seconds=duration if finished else None, worker="bench@host pid 1",
                output=f"{status} after {duration:.1f}s", result={"ok": status == "success"},
            ))
        Execution.objects.bulk_create(batch, batch_size=1000)
        made += len(batch)
    t3 = time.perf_counter()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")  # what autovacuum does soon after a bulk load
    t4 = time.perf_counter()
    print(f"{N_SERVICE_JOBS} jobs via services.job_create in {t1 - t0:.1f}s; {N_JOBS - N_SERVICE_JOBS} bulk-created "
          f"in {t2 - t1:.1f}s; {N_EXECUTIONS} executions bulk-created in {t3 - t2:.1f}s; vacuum/analyze {t4 - t3:.1f}s")
    print(f"jobs: {Job.objects.count()} ({Job.objects.filter(status='paused').count()} paused, "
          f"{Job.objects.filter(is_enabled=False).count()} disabled); executions: {Execution.objects.count()}; "
          f"heavy job {heavy}: {Execution.objects.filter(job_id=heavy).count()} runs; typical job {typical}: "
          f"{Execution.objects.filter(job_id=typical).count()} runs")
    return user, member, heavy, typical


#: CPU seconds spent in timed_get, steadier than wall clock on a loaded machine: this
#: process's (the whole cost on SQLite), and on PostgreSQL its server process's too.
CPU: list[float] = []
SERVER_CPU: list[float] = []


def _backend_cpu() -> tuple[int | None, float]:
    """(pid, CPU seconds) of this thread's PostgreSQL server process (it persists:
    CONN_MAX_AGE); (None, 0) on SQLite or before a connection."""
    from django.db import connection

    if connection.vendor != "postgresql" or connection.connection is None:
        return None, 0.0
    pid = connection.connection.info.backend_pid
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None, 0.0
    return pid, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_get(client, url: str) -> tuple[float, dict]:
    pid, server = _backend_cpu()
    t, c = time.perf_counter(), time.process_time()
    response = client.get(url)
    elapsed = time.perf_counter() - t
    CPU.append(time.process_time() - c)
    pid_after, server_after = _backend_cpu()
    if pid is not None and pid == pid_after:
        SERVER_CPU.append(server_after - server)
    assert response.status_code == 200, (url, response.status_code, response.content[:300])
    return elapsed, response.json()


def cpu_ms(n: int) -> str:
    """p95 of the CPU milliseconds of the last ``n`` timed_get calls, and on
    PostgreSQL "+" the server's mean (it counts in 10 ms clock ticks: only a
    mean over many requests says something)."""
    text = f"{summary_ms(CPU[-n:])['p95']:.1f}"
    if SERVER_CPU:
        last = SERVER_CPU[-n:]
        text += f"+{sum(last) / len(last) * 1000:.1f}"
        SERVER_CPU.clear()
    return text


def bench_jobs_list(bench, user) -> bool:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    from jobsite.auth import access_token_for
    from scheduling.models import Job

    token = access_token_for(user)
    counts = {"": Job.objects.count(), "status=paused": Job.objects.filter(status="paused").count()}
    for jt in JOB_TYPES:
        counts[f"job_type={jt}"] = Job.objects.filter(job_type=jt).count()
        counts[f"status=active&job_type={jt}&is_enabled=true"] = Job.objects.filter(
            status="active", job_type=jt, is_enabled=True).count()

    def job_list_urls(n: int, size: int, seed: int) -> list[str]:
        r = random.Random(seed)
        urls = []
        for i in range(n):
            jt = r.choice(JOB_TYPES)
            query = ["", "status=paused", f"job_type={jt}", f"status=active&job_type={jt}&is_enabled=true"][i % 4]
            page = r.randint(1, max(1, -(-counts[query] // size)))
            urls.append(f"/api/v1/jobs/?size={size}&page={page}" + (f"&{query}" if query else ""))
        return urls

    urls20 = job_list_urls(N_REQUESTS, 20, 1)
    urls100 = job_list_urls(100, 100, 2)

    header("jobs list: SQL queries per request (in-process, page 1)")
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

    header("jobs list: in-process (APIClient), latency per request")
    for url in urls20[:30]:  # warm-up
        timed_get(client, url)
    s_in20 = summary_ms([timed_get(client, url)[0] for url in urls20])
    s_in100 = summary_ms([timed_get(client, url)[0] for url in urls100])
    print(fmt_summary("GET /api/v1/jobs/ size=20 (mixed filters)", s_in20))
    print(fmt_summary("GET /api/v1/jobs/ size=100 (mixed filters)", s_in100))

    header("jobs list: real HTTP, gunicorn jobsite.wsgi -w 2, requests")
    import requests

    gunicorn, base = bench.start_gunicorn(token=token, probe="/api/v1/jobs/?size=1")
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"

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
    print(fmt_summary("GET /api/v1/jobs/ size=20 (mixed filters)", s_http20))
    print(fmt_summary("GET /api/v1/jobs/ size=100 (mixed filters)", summary_ms(run_http(urls100))))
    bench.stop_process("gunicorn", gunicorn)
    bench.processes = [(name, p) for name, p in bench.processes if p is not gunicorn]

    header("jobs list: summary")
    print(f"queries per request equal for size=20 and size=100: {verdict(queries_equal)}")
    ok_in, ok_http = s_in20["p95"] < 50, s_http20["p95"] < 50
    print(f"in-process size=20 p50={s_in20['p50']:.1f} p95={s_in20['p95']:.1f} p99={s_in20['p99']:.1f} ms "
          f"(target p95 < 50 ms): {verdict(ok_in)}")
    print(f"HTTP       size=20 p50={s_http20['p50']:.1f} p95={s_http20['p95']:.1f} p99={s_http20['p99']:.1f} ms "
          f"(target p95 < 50 ms): {verdict(ok_http)}")
    return queries_equal and ok_in and ok_http


def history_filters(heavy: int, typical: int) -> list[tuple[str, str, dict]]:
    """(label, path with query, the ORM filter of the same runs)."""
    x = "/api/v1/executions/?size=20"
    return [
        ("all runs", x, {}),
        ("status=failed (10%)", x + "&status=failed", {"status": "failed"}),
        ("status=queued (1%)", x + "&status=queued", {"status": "queued"}),
        ("status=missed (none)", x + "&status=missed", {"status": "missed"}),
        ("job_id=typical", x + f"&job_id={typical}", {"job_id": typical}),
        ("job_id=heavy (10%)", x + f"&job_id={heavy}", {"job_id": heavy}),
        ("job_id=heavy&status=failed", x + f"&job_id={heavy}&status=failed", {"job_id": heavy, "status": "failed"}),
        ("jobs/{typical}/executions", f"/api/v1/jobs/{typical}/executions/?size=20", {"job_id": typical}),
        ("jobs/{heavy}/executions", f"/api/v1/jobs/{heavy}/executions/?size=20", {"job_id": heavy}),
    ]


def bench_history(users: dict, heavy: int, typical: int, target_ms: float) -> bool:
    from django.db import connection
    from rest_framework.test import APIClient

    from jobsite.auth import access_token_for
    from jobsite.tenancy import scope_to_user
    from scheduling.models import Execution

    try:  # the cursor's encoding, where the API has cursors
        from scheduling.pagination import encode_cursor
    except ImportError:
        encode_cursor = None
    rng = random.Random(7)
    ids = Execution.objects.order_by("id").values_list("id", flat=True)
    lo, hi = ids.first(), ids.last()
    positions = [Execution.objects.filter(id__lte=rng.randint(lo, hi)).order_by("-id").values_list(
        "created_at", "id").first() for _ in range(N_HISTORY)]
    judged, rows = [], []
    header(f"run history: {Execution.objects.count()} executions ({connection.vendor}), {N_HISTORY} requests a group")
    for who, user in users.items():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(user)}")
        visible = scope_to_user(Execution.objects.all(), user, owner_field="job__owner", org_field="job__organization")
        for label, url, orm_filter in history_filters(heavy, typical):
            exact = visible.filter(**orm_filter).count()
            timed_get(client, url)  # warm-up
            first_times, body = [], None
            for _ in range(N_HISTORY):
                elapsed, body = timed_get(client, url)
                first_times.append(elapsed)
            cpu = [cpu_ms(N_HISTORY)]
            pages = max(1, -(-exact // 20))
            deep = [timed_get(client, f"{url}&page={rng.randint(1, pages)}")[0] for _ in range(N_HISTORY)]
            cpu.append(cpu_ms(N_HISTORY))
            cursor = None
            if encode_cursor is not None and "next" in body:
                cursor = [timed_get(client, f"{url}&cursor={encode_cursor(*pos)}")[0] for pos in positions]
                cpu.append(cpu_ms(N_HISTORY))
            s_first, s_deep = summary_ms(first_times), summary_ms(deep)
            s_cursor = summary_ms(cursor) if cursor else None
            judged += [s_first["p95"]] + ([s_cursor["p95"]] if s_cursor else [])
            estimated = body.get("total_estimated", False)
            rows.append((who, label, exact, body["total"], estimated, s_first, s_deep, s_cursor))
            print(f"  {who:<6} {label:<28} runs={exact:<7} total={body['total']:<7}{'~' if estimated else ' '} "
                  f"first p50/p95={s_first['p50']:6.1f}/{s_first['p95']:6.1f}  "
                  f"page/size deep p50/p95={s_deep['p50']:7.1f}/{s_deep['p95']:7.1f}  " + (
                      f"cursor p50/p95={s_cursor['p50']:6.1f}/{s_cursor['p95']:6.1f} ms" if s_cursor else "cursor: none")
                  + f"  (cpu p95 first/deep/cursor {'/'.join(cpu)} ms)", flush=True)
    header("run history: summary")
    worst = max(judged)
    for kind, index in (("first page", 5), ("page/size deep pages", 6), ("cursor pages", 7)):
        values = [row[index] for row in rows if row[index] is not None]
        if values:
            print(f"{kind:<22} p95 worst {max(v['p95'] for v in values):8.1f} ms, median of groups' p95 "
                  f"{sorted(v['p95'] for v in values)[len(values) // 2]:8.1f} ms")
    ok = worst <= target_ms
    print(f"first and cursor pages p95 worst {worst:.1f} ms (target <= {target_ms:.0f} ms on {connection.vendor}): "
          f"{verdict(ok)}")
    return ok


def main() -> int:
    with BenchEnv("apilist", timeout=int(os.environ.get("BENCH_TIMEOUT", 900 + N_EXECUTIONS // 500))) as bench:
        from django.db import connection

        info = machine_info(bench.redis_url)
        print_machine(info)
        user, member, heavy, typical = make_data(random.Random(42))
        ok = True
        if "jobs" in PARTS:
            ok &= bench_jobs_list(bench, user)
        if "history" in PARTS:
            target = 50.0 if connection.vendor == "postgresql" else 100.0
            ok &= bench_history({"admin": user, "member": member}, heavy, typical, target)
        print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
