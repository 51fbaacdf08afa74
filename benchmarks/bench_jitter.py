"""Start jitter: K jobs due at the same minute, each with a J-second jitter.

K jobs on ``* * * * *`` (task bench.noop, ``jitter_seconds`` = J), created
through services.job_create; a real ``celery -A jobsite beat`` (the project's
scheduler and beat lock) and a real prefork worker. For the first whole minute
after beat's first tick, every run due then (``Execution.scheduled_for``) is
looked at: when it started after the minute (``started_at`` − minute), in
J/10-second bins. The offsets come from (job, due time) (scheduling.services.
jitter), so the expected histogram is flat: K/10 a bin, every run started at
or after its own offset, none later than J + a few seconds, none missing,
skipped or doubled; ``scheduled_for`` stays the minute.

Run:  .venv/bin/python benchmarks/bench_jitter.py
Env:  BENCH_K (1000), BENCH_JITTER (30), BENCH_CONCURRENCY (2), BENCH_DATABASE_URL (default a
      temporary SQLite file), REDIS_URL (default an embedded Redis), BENCH_TIMEOUT.
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
from benchmarks._report import header, machine_info, print_machine, verdict  # noqa: E402

K = int(os.environ.get("BENCH_K", 1000))
JITTER = int(os.environ.get("BENCH_JITTER", 30))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", 2))
BINS = 10
LATE_MARGIN = 5.0  # seconds a run may start after its own start time (a loaded 2-core machine)


def main() -> int:
    with BenchEnv("jitter", timeout=int(600 + K * 0.3 + JITTER + 180)) as bench:
        from django.db import connection
        from django.utils import timezone

        from scheduling import services
        from scheduling.models import Execution
        from scheduling.services.jitter import start_offset_seconds

        print_machine(machine_info(bench.redis_url))
        header(f"jitter: {K} jobs on '* * * * *' with a {JITTER} s start jitter ({connection.vendor}), "
               f"1 worker × concurrency {CONCURRENCY}")
        started = time.perf_counter()
        job_ids = [services.job_create(actor_label="bench", name=f"jitter-{i:05d}", schedule_type="cron",
                                       schedule_expression="* * * * *", task_name="bench.noop",
                                       overlap_policy="allow", jitter_seconds=JITTER).pk for i in range(K)]
        print(f"created {K} jobs in {time.perf_counter() - started:.1f}s")
        from django_celery_beat.models import PeriodicTask

        PeriodicTask.objects.filter(name__startswith="job:").update(last_run_at=timezone.now())
        connection.close()

        worker = bench.start_worker(concurrency=CONCURRENCY, pool="prefork", name="w0")
        print(f"worker ready: {worker}")
        beat, spawned, first_tick = bench.start_beat_ticking(timeout=180)
        boundary = datetime.fromtimestamp(first_tick, tz=dt_timezone.utc).replace(second=0, microsecond=0)
        boundary += timedelta(minutes=1)
        if boundary.timestamp() - first_tick < 5:
            boundary += timedelta(minutes=1)
        print(f"measuring the runs due at {boundary:%H:%M} UTC")
        deadline = boundary + timedelta(seconds=JITTER + 60 + K / 50)
        while timezone.now() < deadline:
            for name, process in bench.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with code {process.returncode}:\n{bench.log_tail(name)}")
            time.sleep(1)
            done = Execution.objects.filter(job_id__in=job_ids, scheduled_for=boundary,
                                            started_at__isnull=False).count()
            connection.close()
            if done >= K:
                break
        runs = list(Execution.objects.filter(job_id__in=job_ids, scheduled_for=boundary)
                    .values("job_id", "status", "started_at"))
        connection.close()

        # when beat's last message of the burst was in the broker (its log): no run can start before that
        sent = [float(match.group(1)) for line in bench.log_tail("beat", 2_000_000).splitlines()
                if f"due at {boundary.isoformat()}" in line
                for match in [re.search(r"the last sent ([\d.]+) s after its due time", line)] if match]
        last_sent = max(sent, default=0.0)
        lags = [((run["started_at"] - boundary).total_seconds(), run["job_id"]) for run in runs if run["started_at"]]
        early = sum(lag < start_offset_seconds(job_id, boundary, JITTER) - 0.05 for lag, job_id in lags)
        late = [lag - start_offset_seconds(job_id, boundary, JITTER) for lag, job_id in lags]
        # late beyond what the burst's sending explains: after max(its offset, the last message sent)
        late_after_sent = [lag - max(start_offset_seconds(job_id, boundary, JITTER), last_sent) for lag, job_id in lags]
        doubled = len(runs) - len({run["job_id"] for run in runs})
        skipped = sum(run["status"] in ("skipped", "missed") for run in runs)
        width = JITTER / BINS
        counts = [0] * (BINS + 1)  # the last: at or after the jitter's end
        for lag, _ in lags:
            counts[min(max(int(lag // width), 0), BINS)] += 1

        header(f"start times of the {K} runs due at {boundary:%H:%M:%S} UTC (started_at − due time)")
        scale = max(counts) or 1
        for i, count in enumerate(counts):
            label = f"{i * width:5.1f}–{(i + 1) * width:5.1f} s" if i < BINS else f"  ≥ {JITTER:5.1f} s   "
            print(f"  {label}  {count:5d}  {'#' * round(40 * count / scale)}")
        expected = K / BINS
        # the bins after the burst's sending (the first ones hold only what was sent by then)
        first_full = min(int(last_sent // width) + 1, BINS - 1)
        flat = all(abs(count - expected) <= 0.3 * expected for count in counts[first_full:BINS])
        print(f"\nruns {len(runs)}/{K}, started {len(lags)}, skipped/missed {skipped}, doubled {doubled}; "
              f"started before their offset: {early}; after it by: median {sorted(late)[len(late) // 2]:.3f} s, "
              f"max {max(late, default=float('nan')):.3f} s")
        late_runs = sorted((start_offset_seconds(job_id, boundary, JITTER), lag) for lag, job_id in lags
                           if lag - max(start_offset_seconds(job_id, boundary, JITTER), last_sent) > 1.0)
        if late_runs:
            print(f"{len(late_runs)} run(s) started more than 1 s after max(offset, last message sent): offsets "
                  f"{late_runs[0][0]:.1f}–{late_runs[-1][0]:.1f} s, started {min(lag for _, lag in late_runs):.1f}–"
                  f"{max(lag for _, lag in late_runs):.1f} s after the minute")
        print(f"beat's last message of the burst was in the broker {last_sent:.2f} s after the minute (a run whose "
              f"offset is earlier starts when its message arrives); after max(offset, that): "
              f"max {max(late_after_sent, default=float('nan')):.3f} s")
        ok = (len(lags) == K and not doubled and not skipped and not early and flat
              and max(late_after_sent, default=99) <= LATE_MARGIN)
        print(f"spread evenly over {JITTER} s (each bin from {first_full * width:.0f} s within ±30 % of "
              f"{expected:.0f}, no run before its offset, none more than {LATE_MARGIN:.0f} s after max(offset, "
              f"last message sent)): {verdict(ok)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
