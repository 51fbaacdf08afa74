"""Burst firing: K jobs due at the same minute.

K jobs on ``* * * * *`` (task bench.noop), created through services.job_create;
then a real ``celery -A jobsite beat`` (the scheduler from settings: the beat
lock and the project's DatabaseScheduler) and real prefork workers (NODES
worker processes with their own hostnames, CONCURRENCY children each). For
each of MINUTES minute boundaries after beat's first tick, every run due at
that minute (``Execution.scheduled_for``) is looked at:

- recorded: ``created_at`` − the minute (when beat wrote the Execution row;
  it commits a moment later, with the rest of its transaction);
- queued:  when the last message of the minute was in the broker, after the
  minute — beat's own log line for the burst ("the last sent ... after its due
  time", taken once its producer has published every message): a run is
  queued when a worker can take it, not when its row is written;
- started: ``started_at`` − the minute (a worker claimed it).

Targets: K=1,000 → the last queued ≤ 1 s and the last started
≤ 5 s after the minute; K=10,000 → the last queued ≤ 5 s. Also prints beat's
CPU time per minute, and any run missing, skipped or doubled.

Run:  .venv/bin/python benchmarks/bench_burst.py
Env:  BENCH_K (1000), BENCH_MINUTES (2), BENCH_CONCURRENCY (2), BENCH_NODES (1),
      BENCH_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/jobsite_bench; default a temporary
      SQLite file), REDIS_URL (default an embedded Redis), BENCH_TIMEOUT.
"""
from __future__ import annotations

import os
import re
import sys
import time
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import BenchEnv  # noqa: E402
from benchmarks._report import (  # noqa: E402
    fmt_summary,
    header,
    machine_info,
    print_machine,
    process_tree_cpu_seconds,
    summary_ms,
    verdict,
)

K = int(os.environ.get("BENCH_K", 1000))
MINUTES = int(os.environ.get("BENCH_MINUTES", 2))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", 2))
NODES = int(os.environ.get("BENCH_NODES", 1))
QUEUED_TARGET = 1.0 if K <= 1000 else 5.0
STARTED_TARGET = 5.0 if K <= 1000 else None  # no target is set for 10,000
WAIT_AFTER_MINUTE = 30 + K / 50  # seconds to wait for every run of a minute to start


def main() -> int:
    with BenchEnv("burst", timeout=int(600 + K * 0.3 + MINUTES * (60 + WAIT_AFTER_MINUTE))) as bench:
        from django.db import connection
        from django.utils import timezone

        from scheduling import services
        from scheduling.models import Execution

        print_machine(machine_info(bench.redis_url))
        header(f"burst: {K} jobs on '* * * * *' ({connection.vendor}), {NODES} worker node(s) × "
               f"concurrency {CONCURRENCY}, {MINUTES} minute(s)")
        started = time.perf_counter()
        job_ids = []
        for i in range(K):
            job = services.job_create(actor_label="bench", name=f"burst-{i:05d}", schedule_type="cron",
                                      schedule_expression="* * * * *", task_name="bench.noop",
                                      overlap_policy="allow")
            job_ids.append(job.pk)
        print(f"created {K} jobs in {time.perf_counter() - started:.1f}s")
        # As if beat had been running (steady state): nothing owed when it starts. Creating
        # 10,000 jobs takes minutes; without this, beat's first tick would catch up on the
        # minutes that passed meanwhile (one by one, with a `missed` row each), which is
        # beat's start-up after downtime, not the burst measured here.
        from django_celery_beat.models import PeriodicTask

        PeriodicTask.objects.filter(name__startswith="job:").update(last_run_at=timezone.now())
        connection.close()  # the main process stays out of the database while beat and workers run

        nodes = [bench.start_worker(concurrency=CONCURRENCY, pool="prefork", name=f"w{i}") for i in range(NODES)]
        print(f"workers ready: {', '.join(nodes)}")
        beat, spawned, first_tick = bench.start_beat_ticking(timeout=180)
        print(f"beat's first tick {first_tick - spawned:.2f}s after it was started")
        first = datetime.fromtimestamp(first_tick, tz=dt_timezone.utc).replace(second=0, microsecond=0)
        # A minute whose boundary comes less than 5 s after beat's first tick is left out.
        if (first + timedelta(minutes=1)).timestamp() - first_tick < 5:
            first += timedelta(minutes=1)
        boundaries = [first + timedelta(minutes=m + 1) for m in range(MINUTES)]
        print(f"measuring {', '.join(f'{b:%H:%M}' for b in boundaries)} UTC")

        def check_alive() -> None:
            for name, process in bench.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with code {process.returncode}:\n{bench.log_tail(name)}")

        def last_sent(boundary: datetime) -> float:
            """Seconds from ``boundary`` to beat's last message of its fires (NaN if beat logged none)."""
            offsets = [float(match.group(1)) for line in bench.log_tail("beat", 2_000_000).splitlines()
                       if f"due at {boundary.isoformat()}" in line
                       for match in [re.search(r"the last sent ([\d.]+) s after its due time", line)] if match]
            return max(offsets, default=float("nan"))

        rows = []
        for boundary in boundaries:
            while time.time() < boundary.timestamp() - 2:
                check_alive()
                time.sleep(0.2)
            cpu_before = process_tree_cpu_seconds(beat.pid)
            deadline = boundary + timedelta(seconds=WAIT_AFTER_MINUTE)
            while timezone.now() < deadline:
                check_alive()
                time.sleep(1)
                started_count = Execution.objects.filter(job_id__in=job_ids, scheduled_for=boundary,
                                                         started_at__isnull=False).count()
                connection.close()
                if started_count >= K:
                    break
            beat_cpu = process_tree_cpu_seconds(beat.pid) - cpu_before
            executions = list(Execution.objects.filter(job_id__in=job_ids, scheduled_for=boundary)
                              .values("job_id", "status", "created_at", "started_at"))
            connection.close()
            recorded = [(e["created_at"] - boundary).total_seconds() for e in executions]
            began = [(e["started_at"] - boundary).total_seconds() for e in executions if e["started_at"]]
            runs_per_job = len(executions) - len({e["job_id"] for e in executions})
            skipped = sum(e["status"] in ("skipped", "missed") for e in executions)
            row = {"boundary": boundary, "count": len(executions), "started": len(began), "doubled": runs_per_job,
                   "skipped": skipped, "recorded_max": max(recorded, default=float("nan")),
                   "queued_max": last_sent(boundary),
                   "started_max": max(began, default=float("nan")), "beat_cpu": beat_cpu}
            rows.append(row)
            print(f"\n{boundary:%H:%M}: {len(executions)}/{K} executions, {len(began)} started, "
                  f"{skipped} skipped/missed, {runs_per_job} doubled; beat CPU {beat_cpu:.2f}s")
            print(fmt_summary("  recorded (created_at − minute)", summary_ms(recorded)))
            print(f"  queued   (the last message in the broker, per beat's log): {row['queued_max']:.3f} s")
            print(fmt_summary("  started  (started_at − minute)", summary_ms(began)))

        fired = [line.split("beat: ", 1)[1] for line in bench.log_tail("beat", 200_000).splitlines()
                 if "beat: fired" in line and "job(s) due at" in line]
        if fired:
            print("\nbeat's log (recorded: the executions and beat's record of the fires committed; "
                  "sent: their messages published too):")
            for line in fired[-3 * MINUTES:]:
                print(f"  {line}")

        header("summary")
        for row in rows:
            complete = row["count"] == K and row["started"] == K and not row["doubled"] and not row["skipped"]
            ok_queued = complete and row["queued_max"] <= QUEUED_TARGET  # NaN (not logged) fails
            ok_started = complete and (STARTED_TARGET is None or row["started_max"] <= STARTED_TARGET)
            started_target = f"≤ {STARTED_TARGET:.0f} s" if STARTED_TARGET else "no target"
            print(f"{row['boundary']:%H:%M}  K={K} ({connection.vendor}, {NODES}×{CONCURRENCY}): "
                  f"last recorded {row['recorded_max']:.2f}s, "
                  f"last queued {row['queued_max']:.2f}s (target ≤ {QUEUED_TARGET:.0f} s: {verdict(ok_queued)}), "
                  f"last started {row['started_max']:.2f}s ({started_target}: {verdict(ok_started)}); "
                  f"{row['count']} runs, {row['started']} started, beat CPU {row['beat_cpu']:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
