"""Beat with 10,000 scheduled jobs.

(a) create 10,000 enabled jobs through services.job_create (varied schedule
    types, none of which fires during the run) → seconds and jobs/s;
(b) beat's load of them: DatabaseScheduler (the project's subclass from
    CELERY_BEAT_SCHEDULER) constructed lazily + its ``.schedule`` property
    (initial read = all_as_schedule), median of 5; also populate_heap (beat's
    first tick) and a steady-state tick, and the same with every enabled
    PeriodicTask loaded (no hour-window filter: the worst case); then the tick
    right after one job is edited (the change read + heap update), median of 5;
(c) due-time latency: K=20 more jobs on "* * * * *" (task bench.noop), a real
    ``celery -A jobsite beat --max-interval 1`` and a real prefork worker
    (concurrency 2); after 3 minute boundaries, for every scheduled execution
    started_at − its due minute (floor of created_at to the minute).
    Target: p99 < 1 s. Also beat's startup-to-first-tick time. Then one more
    minute (BENCH_CHURN_MINUTES) with a schedule change (one of the 10,000
    jobs updated) 0.5 s before it, which makes beat read the change at that
    moment (django-celery-beat's DatabaseScheduler reloads everything).

At 100,000 jobs (issue 30, target 5): ``BENCH_CREATE=bulk`` creates the jobs
through ``services.jobs_create_bulk`` (``BENCH_APPLY_BATCH`` specs a call),
``BENCH_CREATE=apply`` through the jobs-as-code bulk path (``services.manifest_apply``, in
transactions of ``BENCH_APPLY_BATCH`` documents: the same validation and
audit as one by one). (c) then also reports beat's own lateness — due
minute → the run's row (``created_at``) per run, and → the last message of
the minute in the broker (beat's "fired N job(s)" log line) — the time until
the last run of each minute started, beat's spawn → first fire, and beat's
peak RSS (VmHWM).

Run: .venv/bin/python benchmarks/bench_beat_10k.py
     BENCH_JOBS=100000 BENCH_K=1000 BENCH_CREATE=apply BENCH_REPEATS=2 \
       BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/jobsite_bench_beat .venv/bin/python benchmarks/bench_beat_10k.py
Env: BENCH_JOBS (10000), BENCH_K (20), BENCH_MINUTES (3), BENCH_CHURN (1), BENCH_CHURN_MINUTES (1),
     BENCH_CREATE (job_create | apply | bulk: services.jobs_create_bulk), BENCH_APPLY_BATCH (5000 a call),
     BENCH_REPEATS (5; 0 leaves (b) out),
     BENCH_TICK_TIMEOUT (120 s for beat's first tick),
     BENCH_DATABASE_URL, REDIS_URL, BENCH_TIMEOUT.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import BenchEnv  # noqa: E402
from benchmarks._report import fmt_summary, header, machine_info, print_machine, summary_ms, verdict  # noqa: E402

N_JOBS = int(os.environ.get("BENCH_JOBS", 10_000))
K = int(os.environ.get("BENCH_K", 20))
MINUTES = int(os.environ.get("BENCH_MINUTES", 3))
# Then minutes with a schedule change just before each (BENCH_CHURN=0: skip).
CHURN = os.environ.get("BENCH_CHURN", "1") != "0"
CHURN_MINUTES = int(os.environ.get("BENCH_CHURN_MINUTES", 1))  # minutes measured that way
CHURN_LEAD_SECONDS = 0.5
REPEATS = int(os.environ.get("BENCH_REPEATS", 5))
CREATE = os.environ.get("BENCH_CREATE", "job_create")
APPLY_BATCH = int(os.environ.get("BENCH_APPLY_BATCH", 5000))
TICK_TIMEOUT = float(os.environ.get("BENCH_TICK_TIMEOUT", 120))  # beat's spawn → first tick, at most
LATENESS_TARGET_MS = 250.0  # beat's own: due time → run row and message
ALL_STARTED_TARGET_S = 5.0
FIRING_AFTER_START_TARGET_S = 30.0
RSS_TARGET_MB = 1024.0
TIMEZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"]
JOB_TYPES = [
    "document_cleanup", "analytics_aggregation", "user_activity_digest", "system_health_check",
    "database_maintenance", "mcp_server_health_check", "custom",
]


def create_spec_jobs(count: int, now: datetime, *, batch: int):
    """``count`` jobs of ``job_spec`` through ``services.jobs_create_bulk``,
    ``batch`` a call; yields how many are made after each call."""
    from scheduling import services

    for first in range(0, count, batch):
        services.jobs_create_bulk(specs=[job_spec(i, now) for i in range(first, min(count, first + batch))],
                                  actor_label="bench")
        yield min(count, first + batch)


def job_spec(i: int, now: datetime) -> dict:
    """Schedule of job ``i``: 30% cron with hour '*', 20% cron with a numeric
    hour, 20% interval (days), 10% daily, 10% weekly, 5% monthly, 5% once —
    all chosen so that nothing fires during the run."""
    tz = TIMEZONES[i % len(TIMEZONES)]
    local = now.astimezone(ZoneInfo(tz))
    safe_hour = (local.hour + 12) % 24  # half a day away
    other_month = local.month % 12 + 1  # next month: day 1 of it is weeks away
    minute = i % 60
    slot = i % 20
    if slot < 6:
        stype, expr = "cron", f"{minute} * 1 {other_month} *"
    elif slot < 10:
        stype, expr = "cron", f"{minute} {i % 24} 1 {other_month} *"
    elif slot < 14:
        stype, expr = "interval", str(1440 * (2 + i % 5))
    elif slot < 16:
        stype, expr = "daily", f"{safe_hour:02d}:{minute:02d}"
    elif slot < 18:
        stype, expr = "weekly", f"{(local.weekday() + 3) % 7}:{safe_hour:02d}:{minute:02d}"
    elif slot < 19:
        stype, expr = "monthly", f"{1 if local.day != 1 else 15}:{safe_hour:02d}:{minute:02d}"
    else:
        stype, expr = "once", (datetime(2030, 1, 1, tzinfo=dt_timezone.utc) + timedelta(minutes=i)).isoformat()
    return {
        "name": f"bench-{i:05d}", "schedule_type": stype, "schedule_expression": expr, "timezone": tz,
        "task_name": "bench.noop", "job_type": JOB_TYPES[i % len(JOB_TYPES)],
        "queue": "default" if i % 3 else "maintenance", "priority": i % 10,
    }


def api_names(spec: dict) -> dict:
    """A job_spec as a jobs-as-code document (the API's field names)."""
    doc = dict(spec)
    doc["task_queue"], doc["task_priority"] = doc.pop("queue"), doc.pop("priority")
    return doc


def floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def main() -> int:
    with BenchEnv("beat10k", timeout=1500) as bench:
        from django.db import connection
        from django.db.models import Count
        from django.utils import timezone
        from django_celery_beat.models import PeriodicTask

        from jobsite.celery import app as celery_app
        from scheduling import services
        from scheduling.beat.scheduler import Scheduler
        from scheduling.models import Execution, Job

        info = machine_info(bench.redis_url)
        print_machine(info)
        results: dict = {}

        # -- (a) create ------------------------------------------------------
        now = timezone.now()
        started = time.perf_counter()
        if CREATE == "bulk":
            header(f"(a) create {N_JOBS} jobs through services.jobs_create_bulk, {APPLY_BATCH} a call "
                   f"({connection.vendor})")
            for done in create_spec_jobs(N_JOBS, now, batch=APPLY_BATCH):
                elapsed = time.perf_counter() - started
                print(f"  {done:>6} jobs  {elapsed:7.1f}s  ({done / elapsed:6.0f} jobs/s)", flush=True)
        elif CREATE == "apply":
            from scheduling import manifest

            header(f"(a) create {N_JOBS} jobs through services.manifest_apply, {APPLY_BATCH} to a transaction "
                   f"({connection.vendor})")
            for first in range(0, N_JOBS, APPLY_BATCH):
                batch = [api_names(job_spec(i, now)) for i in range(first, min(N_JOBS, first + APPLY_BATCH))]
                services.manifest_apply(documents=manifest.read({"jobs": batch}, file="bench"), actor_label="bench")
                elapsed = time.perf_counter() - started
                done = first + len(batch)
                print(f"  {done:>6} jobs  {elapsed:7.1f}s  ({done / elapsed:6.0f} jobs/s)", flush=True)
        else:
            header(f"(a) create {N_JOBS} jobs through services.job_create ({connection.vendor})")
            for i in range(N_JOBS):
                services.job_create(actor_label="bench", **job_spec(i, now))
                if (i + 1) % 2000 == 0:
                    elapsed = time.perf_counter() - started
                    print(f"  {i + 1:>6} jobs  {elapsed:7.1f}s  ({(i + 1) / elapsed:6.0f} jobs/s)", flush=True)
        create_seconds = time.perf_counter() - started
        print(f"created {N_JOBS} jobs in {create_seconds:.1f}s = {N_JOBS / create_seconds:.0f} jobs/s "
              f"({create_seconds / N_JOBS * 1000:.2f} ms/job)")
        by_type = {row["schedule_type"]: row["n"] for row in Job.objects.values("schedule_type").annotate(n=Count("id"))}
        print(f"schedule types: {by_type}; enabled PeriodicTasks: {PeriodicTask.objects.filter(enabled=True).count()}")
        results["create_seconds"] = create_seconds

        # -- (b) beat's load -------------------------------------------------
        header(f"(b) beat's load of the schedule (median of {REPEATS})")

        class FullScheduler(Scheduler):
            """Every enabled PeriodicTask, without django-celery-beat's ±2 h hour-window filter."""

            def enabled_models_qs(self):
                return self.Model.objects.enabled()

        def measure(cls) -> dict:
            loads, heaps, ticks, counts = [], [], [], []
            for _ in range(REPEATS):
                t0 = time.perf_counter()
                scheduler = cls(app=celery_app, lazy=True)
                entries = scheduler.schedule  # initial read: sync() + all_as_schedule()
                t1 = time.perf_counter()
                loads.append(t1 - t0)
                counts.append(len(entries))
                sent: list[str] = []
                scheduler.apply_entry = lambda entry, producer=None, sent=sent: sent.append(entry.name)  # never send
                scheduler._last_heartbeat = time.monotonic()  # no Redis heartbeat in the timing
                t2 = time.perf_counter()
                scheduler.tick()  # first tick: populate_heap (is_due of every entry)
                heaps.append(time.perf_counter() - t2)
                steady = []
                for _ in range(10):
                    t3 = time.perf_counter()
                    scheduler.tick()  # schedule_changed() query + schedules_equal over every entry
                    steady.append(time.perf_counter() - t3)
                ticks.append(statistics.median(steady))
                if sent:
                    print(f"  note: {len(sent)} entries were due during the measurement: {sent[:5]}")
            return {
                "load": statistics.median(loads), "entries": counts[0], "first_tick": statistics.median(heaps),
                "tick": statistics.median(ticks), "loads": loads,
            }

        if REPEATS:
            stock = measure(Scheduler)
            full = measure(FullScheduler)
        else:  # BENCH_REPEATS=0: (b) left out
            stock = full = {"load": float("nan"), "entries": 0, "first_tick": float("nan"), "tick": float("nan"),
                            "loads": []}
        for label, m in (("as beat runs it (hour-window filter)", stock), ("every enabled task (worst case)", full)):
            print(f"{label:<40} entries={m['entries']:>6}  load={m['load'] * 1000:8.1f} ms  "
                  f"first tick (populate_heap)={m['first_tick'] * 1000:8.1f} ms  steady tick={m['tick'] * 1000:6.1f} ms"
                  f"  (loads: {', '.join(f'{x * 1000:.0f}' for x in m['loads'])} ms)")
        results["stock"], results["full"] = stock, full

        def measure_change(cls) -> dict:
            """The tick right after one job was edited: what a change costs beat
            (reading it and updating the heap) while nothing is due."""
            scheduler = cls(app=celery_app, lazy=True)
            scheduler.schedule
            scheduler.apply_entry = lambda entry, producer=None: None  # never send
            scheduler._last_heartbeat = time.monotonic() + 3600  # no Redis heartbeat in the timing
            scheduler.tick()  # first tick: populate_heap
            ticks = []
            for k in range(REPEATS):
                victim = Job.objects.get(name=f"bench-{k + 2:05d}")
                services.job_update(job=victim, actor_label="bench", data={"priority": (victim.priority + 1) % 10})
                t0 = time.perf_counter()
                scheduler.tick()
                ticks.append(time.perf_counter() - t0)
            return {"tick": statistics.median(ticks), "ticks": ticks, "full_reads": scheduler.full_reads}

        change = measure_change(Scheduler) if REPEATS else {"tick": float("nan"), "ticks": [], "full_reads": 0}
        print(f"{'tick after one job edited':<40} entries={stock['entries']:>6}  median={change['tick'] * 1000:8.1f} ms"
              f"  (ticks: {', '.join(f'{x * 1000:.0f}' for x in change['ticks'])} ms; "
              f"full reads: {change['full_reads']})")
        results["change"] = change

        # -- (c) due-time latency ---------------------------------------------
        header(f"(c) due-time latency: {K} jobs on '* * * * *' beside the {N_JOBS}, real beat + worker")
        k_jobs = [
            services.job_create(actor_label="bench", name=f"bench-minutely-{k:02d}", schedule_type="cron",
                                schedule_expression="* * * * *", task_name="bench.noop", queue="default")
            for k in range(K)
        ]
        k_ids = [job.pk for job in k_jobs]
        connection.close()  # the main process stays out of the database while beat/worker run

        worker = bench.start_worker(concurrency=2, pool="prefork")
        print(f"worker {worker} ready (prefork, concurrency 2)")
        beat, beat_spawned, first_tick = bench.start_beat_ticking(timeout=TICK_TIMEOUT)
        startup = first_tick - beat_spawned
        print(f"beat startup-to-first-tick: {startup:.2f}s (process spawn → first heartbeat, includes "
              f"interpreter/Django start, initial schedule read and populate_heap)")
        results["beat_startup"] = startup

        first_tick_dt = datetime.fromtimestamp(first_tick, tz=dt_timezone.utc)
        boundaries = [floor_minute(first_tick_dt) + timedelta(minutes=m + 1) for m in range(MINUTES)]
        print(f"measuring the boundaries {', '.join(b.strftime('%H:%M') for b in boundaries)} UTC")

        def check_alive() -> None:
            if any(p.poll() is not None for _, p in bench.processes):
                raise RuntimeError(f"beat or worker died:\n{bench.log_tail('beat')}\n{bench.log_tail('worker')}")

        def wait_for_runs(first: datetime, last: datetime, expected: int) -> None:
            """Until every run due from ``first`` to ``last`` has started (or last + 30 s)."""
            while timezone.now() < last + timedelta(seconds=30):
                check_alive()
                if timezone.now() > last + timedelta(seconds=2):
                    done = Execution.objects.filter(
                        job_id__in=k_ids, trigger="schedule", created_at__gte=first, started_at__isnull=False
                    ).count()
                    connection.close()
                    if done >= expected:
                        return
                time.sleep(1)

        def collect(label: str, wanted: list[datetime]) -> dict:
            executions = list(Execution.objects.filter(job_id__in=k_ids, trigger="schedule").order_by("created_at"))
            connection.close()
            latencies, beat_part, worker_part = [], [], []
            per_boundary: dict = {b: [] for b in wanted}
            not_started = skipped = 0
            for e in executions:
                due = floor_minute(e.created_at)
                if due not in per_boundary:
                    continue  # another phase, or a catch-up run at beat start for a minute that passed before it ran
                if e.status == "skipped":
                    skipped += 1
                    continue
                if e.started_at is None:
                    not_started += 1
                    continue
                latencies.append((e.started_at - due).total_seconds())
                beat_part.append((e.created_at - due).total_seconds())
                worker_part.append((e.started_at - e.created_at).total_seconds())
                per_boundary[due].append((e.started_at - due).total_seconds())
            expected = K * len(wanted)
            print(f"{label}: executions counted {len(latencies)}/{expected} (skipped {skipped}, never started {not_started})")
            for b, values in per_boundary.items():
                if values:
                    spacing = (max(values) - min(values)) / max(1, len(values) - 1)
                    print(f"  {b:%H:%M}  n={len(values):>3}  first={min(values) * 1000:7.1f} ms  "
                          f"last={max(values) * 1000:7.1f} ms  (≈{spacing * 1000:.0f} ms between consecutive runs)")
            s_total = summary_ms(latencies)
            s_beat = summary_ms(beat_part)
            print(fmt_summary("started_at − due minute", s_total))
            print(fmt_summary("  of which beat → Execution row (created_at − due)", s_beat))
            print(fmt_summary("  of which queued → running (started_at − created_at)", summary_ms(worker_part)))
            s_total["complete"] = len(latencies) == expected
            s_total["expected"] = expected
            s_total["beat"] = s_beat
            s_total["last_started"] = max((max(v) for v in per_boundary.values() if v), default=float("nan"))
            sent = beat_sends(wanted)
            s_total["last_sent"] = max(sent.values(), default=float("nan"))
            print(f"  beat's last message of the minute in the broker: "
                  + ", ".join(f"{b:%H:%M} +{v * 1000:.0f} ms" for b, v in sorted(sent.items())))
            return s_total

        def beat_sends(wanted: list[datetime]) -> dict:
            """Due minute → seconds after it when beat's last message of it was in the broker
            (its "fired N job(s) due at ...; ... the last sent X s after its due time" line)."""
            import re

            found = {}
            pattern = re.compile(r"fired \d+ job\(s\) due at (\d{4}-\d\d-\d\dT[\d:.]+(?:[+-]\d\d:\d\d)?)"
                                 r".*the last sent ([\d.]+) s after")
            parts = re.compile(r"recorded in (\d+) ms, sent in (\d+) ms; began ([\d.]+) s")
            for line in (bench.tmp / "beat.log").read_text(errors="replace").splitlines():
                match = pattern.search(line)
                if match:
                    due = floor_minute(datetime.fromisoformat(match.group(1)))
                    if due in wanted and float(match.group(2)) >= found.get(due, 0.0):
                        found[due] = float(match.group(2))
                        split = parts.search(line)
                        if split:  # where the time went: the tick began, recorded, sent
                            began, recorded, sent = float(split.group(3)), int(split.group(1)), int(split.group(2))
                            print(f"  {due:%H:%M}: began +{began * 1000:.0f} ms, recorded in {recorded} ms, "
                                  f"sent {sent - recorded} ms after that", flush=True)
            return found

        def beat_memory() -> dict:
            fields = {}
            for line in Path(f"/proc/{beat.pid}/status").read_text().splitlines():
                if line.startswith(("VmRSS:", "VmHWM:")):
                    fields[line.split(":")[0]] = int(line.split()[1]) / 1024.0  # MB
            return fields

        wait_for_runs(boundaries[0], boundaries[-1], K * len(boundaries))
        s_total = collect("steady state", boundaries)
        results["latency"] = s_total

        s_churn = None
        if CHURN:
            # A schedule change anywhere (here: one of the 10,000 jobs gets a new
            # priority) makes beat read it at its next tick: django-celery-beat
            # reloads every entry, the project's scheduler only the changed ones.
            churn_boundaries = [boundaries[-1] + timedelta(minutes=m + 1) for m in range(CHURN_MINUTES)]
            for churn_boundary in churn_boundaries:
                while timezone.now() < churn_boundary - timedelta(seconds=CHURN_LEAD_SECONDS):
                    check_alive()
                    time.sleep(0.05)
                victim = Job.objects.get(name="bench-00001")
                services.job_update(job=victim, actor_label="bench", data={"priority": (victim.priority + 1) % 10})
                connection.close()
                print(f"\nchanged job {victim.name} {CHURN_LEAD_SECONDS}s before {churn_boundary:%H:%M}")
                wait_for_runs(churn_boundary, churn_boundary, K)
            s_churn = collect("after a schedule change", churn_boundaries)

        memory = beat_memory()
        print(f"beat RSS now {memory.get('VmRSS', float('nan')):.0f} MB, peak (VmHWM) {memory.get('VmHWM', float('nan')):.0f} MB")

        header("summary")
        for label, s_ in (("steady", s_total), ("after a change", s_churn)):
            if not s_:
                continue
            ok_late = s_["beat"]["p99"] <= LATENESS_TARGET_MS and s_["last_sent"] * 1000 <= LATENESS_TARGET_MS
            ok_all = s_["complete"] and s_["last_started"] <= ALL_STARTED_TARGET_S
            print(f"beat's own lateness ({label}): due → run row p50={s_['beat']['p50']:.0f} p99={s_['beat']['p99']:.0f} "
                  f"max={s_['beat']['max']:.0f} ms; due → the minute's last message {s_['last_sent'] * 1000:.0f} ms "
                  f"(target ≤ {LATENESS_TARGET_MS:g} ms): {verdict(ok_late)}")
            print(f"all {s_['expected']} runs started ({label}): the last {s_['last_started']:.2f} s after its minute "
                  f"(target ≤ {ALL_STARTED_TARGET_S:g} s): {verdict(ok_all)}")
        print(f"beat spawn → first tick (firing from then on) {startup:.1f} s (target ≤ {FIRING_AFTER_START_TARGET_S:g} s): "
              f"{verdict(startup <= FIRING_AFTER_START_TARGET_S)}; peak RSS {memory.get('VmHWM', float('nan')):.0f} MB "
              f"(target ≤ {RSS_TARGET_MB:g}): {verdict(memory.get('VmHWM', 1e9) <= RSS_TARGET_MB)}; "
              f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        ok = s_total["complete"] and s_total["p99"] < 1000
        print(f"create:  {N_JOBS} jobs in {create_seconds:.1f}s = {N_JOBS / create_seconds:.0f} jobs/s")
        print(f"load:    {stock['entries']} entries {stock['load'] * 1000:.0f} ms (as beat runs it); "
              f"{full['entries']} entries {full['load'] * 1000:.0f} ms (all)")
        print(f"change:  tick after one job edited {change['tick'] * 1000:.0f} ms ({stock['entries']} entries)")
        print(f"startup: beat first tick after {startup:.2f}s")
        print(f"due-time latency p50={s_total['p50']:.0f} ms p95={s_total['p95']:.0f} ms p99={s_total['p99']:.0f} ms "
              f"max={s_total['max']:.0f} ms (target p99 < 1000 ms, all {s_total['expected']} runs started): {verdict(ok)}")
        if s_churn:
            ok_churn = s_churn["complete"] and s_churn["p99"] < 1000
            print(f"  with a schedule change {CHURN_LEAD_SECONDS}s before the minute: p50={s_churn['p50']:.0f} ms "
                  f"p99={s_churn['p99']:.0f} ms max={s_churn['max']:.0f} ms (target p99 < 1000 ms): {verdict(ok_churn)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
