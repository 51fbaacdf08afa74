"""Diagnosis for bench_beat_10k (c) and bench_burst: what sending a minute's
messages costs beat, apart from recording them.

In this process: K queued executions of K jobs (recorded once), then R
rounds of ``services.executions_send`` of all K — what beat's
``apply_entries`` does after its transactions commit — against a real Redis
(the messages are counted in the queue and removed after each round: no
worker). Prints each round's wall and CPU time, per message, and the median.
``BENCH_PROFILE=1`` adds a cProfile of one more round (top 25 by own time).

Run: .venv/bin/python benchmarks/diag_send.py
Env: BENCH_K (1000), BENCH_ROUNDS (7), BENCH_PROFILE, BENCH_DATABASE_URL, REDIS_URL.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import BenchEnv  # noqa: E402
from benchmarks._report import header, machine_info, print_machine, profile_if_asked  # noqa: E402

K = int(os.environ.get("BENCH_K", 1000))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 7))


def main() -> int:
    with BenchEnv("send", timeout=900) as bench:
        import redis
        from django.utils import timezone

        from jobsite.bulk import insert_rows
        from scheduling import services
        from scheduling.models import Execution, Job

        print_machine(machine_info(bench.redis_url))
        header(f"{K} jobs, {K} queued executions")
        specs = [dict(name=f"send-{i:05d}", schedule_type="cron", schedule_expression="0 3 1 1 *",
                      task_name="bench.noop", queue="default") for i in range(K)]
        services.jobs_create_bulk(specs=specs, actor_label="bench")
        jobs = list(Job.objects.order_by("pk"))
        due = timezone.now().replace(second=0, microsecond=0)
        import uuid
        insert_rows(Execution, [{"job_id": job.pk, "celery_task_id": str(uuid.uuid4()), "scheduled_for": due}
                                for job in jobs],
                    common={"status": Execution.Status.QUEUED, "trigger": Execution.Trigger.SCHEDULE,
                            "attempt": 1, "override_kwargs": {}, "created_at": timezone.now()})
        by_job = {job.pk: job for job in jobs}
        pairs = [(execution, by_job[execution.job_id]) for execution in Execution.objects.order_by("pk")]
        client = redis.Redis.from_url(bench.redis_url)

        def queues() -> list:  # the queue and its priority lists ("default\x06\x163", ...)
            return [key for key in client.scan_iter(match="default*") if not key.startswith(b"_kombu")]

        def one_round() -> tuple[float, float]:
            for key in queues():
                client.delete(key)
            wall, cpu = time.perf_counter(), time.process_time()
            services.executions_send(pairs)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            queued = sum(client.llen(key) for key in queues())
            assert queued == K, f"{queued} messages in the queue, {K} sent"
            return wall, cpu

        header(f"executions_send of {K} messages, {ROUNDS} rounds (wall / CPU)")
        one_round()  # warm: connections, the queue's declaration
        walls = []
        for number in range(ROUNDS):
            wall, cpu = one_round()
            walls.append(wall)
            print(f"  round {number + 1}: {wall * 1000:7.1f} ms wall  {cpu * 1000:7.1f} ms CPU  "
                  f"({wall / K * 1e6:5.0f} µs a message)", flush=True)
        print(f"  median: {statistics.median(walls) * 1000:.1f} ms wall for {K} messages", flush=True)
        profile_if_asked(one_round, sort="tottime", top=25)
        for key in queues():
            client.delete(key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
