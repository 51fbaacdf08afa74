"""Diagnosis for bench_api_list's /api/v1/executions/ figure: the list is
ordered by (-created_at, -id) and no index serves that order, so every page
sorts all executions. This creates 100,000 executions, times 30 random pages
and the first page, adds the index ``(created_at DESC, id DESC)`` by hand in
the throwaway database, and times them again (with the query plans).

Run: .venv/bin/python benchmarks/diag_execution_list.py
Env: BENCH_EXECUTIONS (100000), BENCH_DATABASE_URL, REDIS_URL.
"""
from __future__ import annotations

import os
import random
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import BenchEnv  # noqa: E402
from benchmarks._report import fmt_summary, header, summary_ms  # noqa: E402

N_EXECUTIONS = int(os.environ.get("BENCH_EXECUTIONS", 100_000))


def main() -> int:
    with BenchEnv("execlist", timeout=600):
        from django.contrib.auth import get_user_model
        from django.db import connection
        from rest_framework.test import APIClient

        from jobsite.auth import access_token_for
        from scheduling import services
        from scheduling.models import Execution

        user = get_user_model().objects.create_superuser("bench-admin", "bench@example.com", "bench-password-1")
        jobs = [
            services.job_create(name=f"bench-{i}", schedule_type="cron", schedule_expression="0 3 1 1 *",
                                task_name="bench.noop").pk
            for i in range(50)
        ]
        rng = random.Random(1)
        for start in range(0, N_EXECUTIONS, 5000):
            Execution.objects.bulk_create([
                Execution(job_id=rng.choice(jobs), celery_task_id=str(uuid.uuid4()), status="success",
                          output="done", result={"ok": True}, duration_seconds=1.0)
                for _ in range(min(5000, N_EXECUTIONS - start))
            ], batch_size=1000)

        def analyze() -> None:
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("ANALYZE")

        analyze()
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(user)}")
        pages = -(-N_EXECUTIONS // 20)
        urls = [f"/api/v1/executions/?size=20&page={random.Random(i).randint(1, pages)}" for i in range(30)]
        page_qs = Execution.objects.select_related("job", "triggered_by").order_by("-created_at", "-id")[:20]

        def timings(label: str) -> None:
            header(label)
            print(page_qs.explain())
            for name, batch in (("random pages", urls), ("first page", ["/api/v1/executions/?size=20"] * 10)):
                times = []
                for url in batch:
                    t = time.perf_counter()
                    assert client.get(url).status_code == 200
                    times.append(time.perf_counter() - t)
                print(fmt_summary(f"GET /api/v1/executions/ size=20, {name}", summary_ms(times)))

        timings(f"{N_EXECUTIONS} executions ({connection.vendor}), current indexes")
        with connection.cursor() as cursor:
            cursor.execute("CREATE INDEX bench_exec_created_id ON scheduling_execution (created_at DESC, id DESC)")
        analyze()
        timings("with an index on (created_at DESC, id DESC)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
