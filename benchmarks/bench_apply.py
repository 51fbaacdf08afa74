"""Jobs as code at scale: ``./manage jobs apply`` of a 10,000-job file.

Measures, on a fresh database (issue 30: "applying 10,000 jobs >= 1,000 jobs/s
on PostgreSQL, with the same validation and audit"):

1. read: parse the YAML file (no aliases, size cap) and validate every
   document with the API's serializer (``scheduling.manifest.read``);
2. apply (create): plan + ``job_validate`` per job + bulk insert of Jobs,
   beat PeriodicTasks and audit rows, one beat change notice, one transaction;
3. the same file again: the plan is empty (a no-op);
4. an edited file (every 50th job's schedule changed): plan + per-job updates;
5. export of the 10,000 jobs back to YAML;
6. the services' bulk path alone: ``jobs_create_bulk`` of 10,000 more specs
   (job_create's arguments: what benchmarks/bench_beat_10k.py creates its jobs with).

The file mixes cron, daily, weekly and interval schedules over 4 time zones,
task kwargs and priorities, like a real estate of jobs.

Run:  BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/jobsite_bench_apply .venv/bin/python benchmarks/bench_apply.py
      BENCH_PROFILE=1 ...: a cProfile of one dry run instead, timed in CPU seconds (steady on a shared host)
Env:  BENCH_JOBS (10000), BENCH_DATABASE_URL (default: SQLite under the temp dir), BENCH_TIMEOUT.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import BenchEnv  # noqa: E402
from benchmarks._report import header, machine_info, print_machine, verdict  # noqa: E402

N_JOBS = int(os.environ.get("BENCH_JOBS", 10_000))
TARGET_PER_SECOND = 1000.0
EDIT_EVERY = 50  # the edited file changes every 50th job's schedule
TIMEZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"]


def job_document(i: int, *, edited: bool = False) -> str:
    kind = i % 4
    if kind == 0:
        schedule = ("cron", f'"{i % 60} {(i // 60) % 24} * * *"')
    elif kind == 1:
        schedule = ("daily", f'"{(i // 7) % 24:02d}:{i % 60:02d}"')
    elif kind == 2:
        schedule = ("weekly", f'"{i % 7}:{(i // 7) % 24:02d}:{i % 60:02d}"')
    else:
        schedule = ("interval", f'"{5 + i % 55}"')
    if edited and i % EDIT_EVERY == 0:
        schedule = ("cron", f'"{(i + 1) % 60} {(i // 60) % 24} * * *"')
    return (
        f"  - name: bench-job-{i:05d}\n"
        f"    title: Bench job {i}\n"
        f"    job_type: custom\n"
        f"    schedule_type: {schedule[0]}\n"
        f"    schedule_expression: {schedule[1]}\n"
        f"    timezone: {TIMEZONES[i % len(TIMEZONES)]}\n"
        f"    task_name: scheduling.document_cleanup\n"
        f"    task_kwargs: {{cleanup_level: standard}}\n"
        f"    task_priority: {i % 10}\n"
        f"    max_retries: {i % 3}\n"
    )


def manifest_text(n: int, *, edited: bool = False) -> str:
    return "jobs:\n" + "".join(job_document(i, edited=edited) for i in range(n))


def service_spec(i: int) -> dict:
    """job_create's arguments for the i-th job of the services' bulk part (the file's mix of schedules)."""
    kind = i % 4
    schedule = [("cron", f"{i % 60} {(i // 60) % 24} * * *"), ("daily", f"{(i // 7) % 24:02d}:{i % 60:02d}"),
                ("weekly", f"{i % 7}:{(i // 7) % 24:02d}:{i % 60:02d}"), ("interval", str(5 + i % 55))][kind]
    return {"name": f"bench-svc-{i:05d}", "title": f"Bench service job {i}", "schedule_type": schedule[0],
            "schedule_expression": schedule[1], "timezone": TIMEZONES[i % len(TIMEZONES)],
            "task_name": "scheduling.document_cleanup", "task_kwargs": {"cleanup_level": "standard"},
            "priority": i % 10, "max_retries": i % 3, "jitter_seconds": i % 30}


CPU: dict[str, float] = {}


DB_CPU: dict[str, float] = {}


def database_cpu_seconds() -> float | None:
    """CPU seconds so far of this connection's PostgreSQL backend process
    (read from /proc: the server runs on this host), or None (SQLite works in
    this process; another host's server cannot be read)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def timed(label: str, fn):
    """Wall time (what the caller waits), this process's CPU time and, on a
    local PostgreSQL, its backend's (what it costs, whatever else the machine
    runs: on a busy host wall time is mostly waiting for a core)."""
    db_before = database_cpu_seconds()
    start, cpu = time.perf_counter(), time.process_time()
    value = fn()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    CPU[label] = cpu_seconds
    db_after = database_cpu_seconds()
    db = ""
    if db_before is not None and db_after is not None:
        DB_CPU[label] = db_after - db_before
        db = f", PostgreSQL {DB_CPU[label]:6.2f} s"
    print(f"{label:<58} {seconds:8.2f} s  (CPU here {cpu_seconds:6.2f} s{db})", flush=True)
    return value, seconds


def main() -> int:
    with BenchEnv("apply", timeout=1800) as bench:
        from django.db import connection
        from django_celery_beat.models import PeriodicTask

        from scheduling import manifest, services
        from scheduling.models import AuditLog, Job

        print_machine(machine_info())
        print(f"[bench] database: {connection.vendor}; jobs: {N_JOBS}", flush=True)
        text = manifest_text(N_JOBS)
        print(f"[bench] file: {len(text.encode()) / 1e6:.1f} MB of YAML", flush=True)

        if os.environ.get("BENCH_PROFILE"):  # where the time goes, for whoever makes it faster
            import cProfile
            import pstats

            profile = cProfile.Profile(time.process_time)
            profile.enable()
            services.manifest_apply(documents=manifest.read(text, file="bench.yaml"), actor_label="bench",
                                    dry_run=True)
            profile.disable()
            pstats.Stats(profile).sort_stats("cumulative").print_stats(45)
            return 0

        header(f"apply {N_JOBS} new jobs")
        documents, read_s = timed("read (parse + serializer per document)", lambda: manifest.read(text, file="bench.yaml"))
        plan, apply_s = timed("apply (plan + validate + bulk insert + audit)",
                              lambda: services.manifest_apply(documents=documents, actor_label="bench"))
        total = read_s + apply_s
        rate = N_JOBS / total
        assert plan.summary["create"] == N_JOBS, plan.summary
        assert Job.objects.count() == N_JOBS
        assert PeriodicTask.objects.filter(name__startswith="job:").count() == N_JOBS
        assert AuditLog.objects.filter(action="create", actor_label="bench (apply)").count() == N_JOBS
        assert not Job.objects.filter(next_run_at=None).exists()
        cpu_total = CPU["read (parse + serializer per document)"] + CPU["apply (plan + validate + bulk insert + audit)"]
        print(f"{'read + apply':<58} {total:8.2f} s  = {rate:,.0f} jobs/s  "
              f"(target >= {TARGET_PER_SECOND:,.0f}: {verdict(rate >= TARGET_PER_SECOND)}); "
              f"per CPU second here: {N_JOBS / cpu_total:,.0f} jobs", flush=True)
        if DB_CPU:
            both = cpu_total + sum(DB_CPU.values())
            print(f"{'':<58} CPU here + PostgreSQL's: {both:.2f} s = {N_JOBS / both:,.0f} jobs per CPU second "
                  f"(an idle host waits at most this long: the two add up at worst)", flush=True)

        header("the same file again (no-op)")
        again, again_s = timed("read + plan (nothing to change)", lambda: services.manifest_apply(
            documents=manifest.read(text, file="bench.yaml"), actor_label="bench"))
        assert again.changes == [], again.summary

        header(f"an edited file ({N_JOBS // EDIT_EVERY} schedules changed)")
        edited = manifest_text(N_JOBS, edited=True)
        changed, edit_s = timed("read + plan + update", lambda: services.manifest_apply(
            documents=manifest.read(edited, file="bench.yaml"), actor_label="bench"))
        assert changed.summary["update"] == N_JOBS // EDIT_EVERY, changed.summary
        print(f"{'':<58} = {N_JOBS // EDIT_EVERY / edit_s:,.0f} updated jobs/s", flush=True)

        header("export")
        exported, export_s = timed(f"export {N_JOBS} jobs to YAML", manifest.export)
        print(f"{'':<58} = {N_JOBS / export_s:,.0f} jobs/s ({len(exported) / 1e6:.1f} MB)", flush=True)

        header(f"services: jobs_create_bulk of {N_JOBS} specs")
        from scheduling.services.jobs import jobs_create_bulk

        specs = [service_spec(i) for i in range(N_JOBS)]
        created, bulk_s = timed("jobs_create_bulk (validate + insert + beat + audit)",
                                lambda: jobs_create_bulk(specs=specs, actor_label="bench"))
        assert len(created) == N_JOBS and Job.objects.count() == 2 * N_JOBS
        bulk_rate = N_JOBS / bulk_s
        print(f"{'':<58} = {bulk_rate:,.0f} jobs/s (target >= {TARGET_PER_SECOND:,.0f}: "
              f"{verdict(bulk_rate >= TARGET_PER_SECOND)}); per CPU second here: "
              f"{N_JOBS / CPU['jobs_create_bulk (validate + insert + beat + audit)']:,.0f} jobs", flush=True)

        header("summary")
        print(f"create {N_JOBS}: {rate:,.0f} jobs/s {verdict(rate >= TARGET_PER_SECOND)} "
              f"({N_JOBS / cpu_total:,.0f} per CPU second here); no-op re-apply {again_s:.2f} s; "
              f"{N_JOBS // EDIT_EVERY} updates {edit_s:.2f} s; export {export_s:.2f} s; "
              f"jobs_create_bulk {bulk_rate:,.0f} jobs/s", flush=True)
        return 0 if rate >= TARGET_PER_SECOND else 1


if __name__ == "__main__":
    sys.exit(main())
