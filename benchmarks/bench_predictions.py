"""Bulk predictions end to end: a 1,000,000-row annual CSV through the real
HTTP API (gunicorn), Redis and ONE Celery worker process.

Measures, against its targets:

* the upload request (multipart POST of the ~125 MB file) — target < 2 s
  for a 100 MB file;
* upload response → ``completed`` (predictions stored) as rows/s — targets
  ≥ 100,000 rows/s on PostgreSQL, ≥ 50,000 rows/s on SQLite; and the ratio to
  the seed's 7.97 rows/s;
* progress visible through the API: the longest gap between two changes of
  ``processed_rows`` seen by polling ``/status`` every 0.2 s — target ≤ 2 s;
* peak RSS of the worker's pool process (VmHWM) — target < 400 MB;
* the results download (GET .../results) time and size;
* cancel of a second run of the same file: time to the answer, time until the
  pool process running it is gone, and that ``processed_rows`` does not move
  after the answer — target: takes effect within 2 s.

The file has 0.1 % invalid rows (recorded as row errors, not scored).

Run: .venv/bin/python benchmarks/bench_predictions.py
     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/jobsite_bench .venv/bin/python benchmarks/bench_predictions.py
Env: BENCH_ROWS (1000000), BENCH_DATABASE_URL, REDIS_URL, BENCH_TIMEOUT.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import BenchEnv  # noqa: E402
from benchmarks._report import header, machine_info, print_machine, verdict  # noqa: E402

ROWS = int(os.environ.get("BENCH_ROWS", 1_000_000))
SEED_RATE = 7.97
BAD_EVERY = 1000


def make_csv(path: Path, rows: int) -> None:
    """A realistic annual file, written with numpy + pyarrow (a few seconds)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from predictions.schema import column_names

    rng = np.random.default_rng(4)
    ta = np.round(rng.uniform(50, 50_000, rows), 2)
    tl = np.round(ta * rng.uniform(0.2, 1.1, rows), 2)
    ca = np.round(ta * rng.uniform(0.1, 0.6, rows), 2)
    cl = np.round(np.minimum(tl, ca * rng.uniform(0.3, 1.5, rows)), 2)
    ids = np.arange(rows)
    symbols = pa.array(np.char.add("SYM", ids.astype(str)))
    sectors = np.array(["Technology", "Energy", "Retail", "Utilities", "Healthcare"])[ids % 5]
    market_cap = np.round(rng.uniform(10, 90_000, rows), 2).astype(str).astype(object)
    market_cap[::BAD_EVERY] = "n/a"  # one invalid row in a thousand
    table = pa.table({
        "company_symbol": symbols, "company_name": pa.array(np.char.add("Company ", ids.astype(str))),
        "sector": pa.array(sectors), "fiscal_year": pa.array(np.full(rows, 2024)),
        "market_cap": pa.array(market_cap.tolist(), pa.string()), "total_assets": ta, "total_liabilities": tl,
        "current_assets": ca, "current_liabilities": cl,
        "retained_earnings": np.round(ta * rng.uniform(-0.3, 0.5, rows), 2),
        "ebit": np.round(ta * rng.uniform(-0.1, 0.2, rows), 2),
        "net_income": np.round(ta * rng.uniform(-0.1, 0.1, rows), 2),
        "net_income_prior_year": np.round(ta * rng.uniform(-0.1, 0.1, rows), 2),
        "funds_from_operations": np.round(tl * rng.uniform(-0.1, 0.3, rows), 2),
    })
    assert table.column_names == column_names("annual")
    pacsv.write_csv(table, str(path), pacsv.WriteOptions(quoting_style="none"))


def vm_hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main() -> int:
    with BenchEnv("predictions", timeout=1800) as bench:
        import requests
        from django.contrib.auth import get_user_model
        from django.db import connection

        from jobsite.auth import access_token_for
        from predictions.models import BulkUploadJob, Prediction

        info = machine_info(bench.redis_url)
        print_machine(info)
        vendor = connection.vendor
        target_rate = 100_000 if vendor == "postgresql" else 50_000

        header(f"{ROWS:,}-row annual CSV")
        path = bench.tmp / "annual.csv"
        t = time.perf_counter()
        make_csv(path, ROWS)
        size_mb = path.stat().st_size / 1024 / 1024
        print(f"generated {path.name}: {size_mb:.1f} MB in {time.perf_counter() - t:.1f} s")

        user = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench-pass-123")
        token = access_token_for(user)
        gunicorn, root = bench.start_gunicorn(token=token, probe="/api/v1/predictions/jobs?limit=1",
                                              args=("--timeout", "120"), PREDICTIONS_MAX_UPLOAD_MB="512")
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        base = f"{root}/api/v1/predictions"
        worker = bench.start_worker(concurrency=1, pool="prefork", queues=["predictions"])
        print(f"gunicorn -w 2 on {root}; worker {worker} (prefork, concurrency 1, queue predictions); "
              f"database {vendor}")

        def upload() -> tuple[str, float]:
            with open(path, "rb") as fh:
                t0 = time.perf_counter()
                response = session.post(base + "/annual/bulk-upload-async", files={"file": ("annual.csv", fh)},
                                        timeout=120)
                elapsed = time.perf_counter() - t0
            if response.status_code != 202:
                raise RuntimeError(f"upload answered {response.status_code}: {response.text[:500]}")
            return response.json()["job_id"], elapsed

        # -- full run ----------------------------------------------------------
        header("upload → completed")
        job_id, upload_seconds = upload()
        t_answer = time.perf_counter()
        samples: list[tuple[float, int]] = []
        pool_pid = None
        peak_rss = 0.0
        while True:
            status = session.get(f"{base}/jobs/{job_id}/status", timeout=10).json()
            now = time.perf_counter()
            if not samples or samples[-1][1] != status["processed_rows"]:
                samples.append((now, status["processed_rows"]))
            if pool_pid is None and status["status"] == "processing":
                worker_field = BulkUploadJob.objects.select_related("execution").get(pk=job_id).execution.worker
                pool_pid = int(worker_field.rsplit("pid ", 1)[1]) if "pid " in worker_field else None
            if pool_pid:
                peak_rss = max(peak_rss, vm_hwm_mb(pool_pid) or 0.0)
            if status["status"] in ("completed", "failed"):
                break
            if now - t_answer > 900:
                raise RuntimeError(f"job still {status['status']} after 900 s:\n{bench.log_tail('worker')}")
            time.sleep(0.2)
        t_done = time.perf_counter()
        if status["status"] != "completed":
            raise RuntimeError(f"job failed: {status}\n{bench.log_tail('worker')}")
        job = session.get(f"{base}/jobs/{job_id}", timeout=10).json()["job"]
        end_to_end = t_done - t_answer
        rate = ROWS / end_to_end
        run_seconds = job["performance"]["processing_time_seconds"]
        gaps = [b[0] - a[0] for a, b in zip(samples, samples[1:])]
        first_progress = samples[1][0] - t_answer if len(samples) > 1 else float("nan")
        stored = Prediction.objects.filter(upload_id=job_id).count()
        print(f"upload request ({size_mb:.0f} MB, multipart over HTTP):       {upload_seconds:8.2f} s")
        print(f"upload answer → completed seen by polling:           {end_to_end:8.2f} s  → {rate:,.0f} rows/s "
              f"({rate / SEED_RATE:,.0f}× the seed's {SEED_RATE} rows/s)")
        print(f"worker run (execution started → completed):          {run_seconds:8.2f} s  → "
              f"{ROWS / run_seconds:,.0f} rows/s")
        print(f"rows: {job['progress']['processed_rows']:,} processed, {job['progress']['successful_rows']:,} "
              f"predictions ({stored:,} stored), {job['progress']['failed_rows']:,} row errors")
        print(f"progress changes seen: {len(samples) - 1}; first after {first_progress:.2f} s; "
              f"longest gap {max(gaps) if gaps else float('nan'):.2f} s")
        print(f"worker pool process peak RSS (VmHWM):                 {peak_rss:8.1f} MB")

        header("results download")
        t = time.perf_counter()
        response = session.get(f"{base}/jobs/{job_id}/results", stream=True, timeout=300)
        size = lines = 0
        for chunk in response.iter_content(1024 * 1024):
            size += len(chunk)
            lines += chunk.count(b"\n")
        download_seconds = time.perf_counter() - t
        print(f"GET results: {response.status_code}, {lines - 1:,} rows, {size / 1024 / 1024:.1f} MB in "
              f"{download_seconds:.2f} s")

        # -- cancel --------------------------------------------------------------
        header("cancel a running upload")
        cancel_id, _ = upload()
        while True:
            status = session.get(f"{base}/jobs/{cancel_id}/status", timeout=10).json()
            if status["status"] == "processing" and status["processed_rows"] > 0:
                break
            time.sleep(0.05)
        running = BulkUploadJob.objects.select_related("execution").get(pk=cancel_id)
        pid = int(running.execution.worker.rsplit("pid ", 1)[1])
        t = time.perf_counter()
        response = session.post(f"{base}/jobs/{cancel_id}/cancel", timeout=10)
        cancel_answer = time.perf_counter() - t
        at_answer = BulkUploadJob.objects.get(pk=cancel_id).processed_rows
        gone = None
        while time.perf_counter() - t < 10:
            if not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]:
                gone = time.perf_counter() - t
                break
            time.sleep(0.01)
        time.sleep(2.0)
        after = session.get(f"{base}/jobs/{cancel_id}", timeout=10).json()["job"]
        print(f"cancel answered {response.status_code} in {cancel_answer * 1000:.0f} ms: "
              f"{response.json()['cancelled_job']}")
        print(f"pool process {pid} gone after {gone if gone is not None else float('nan'):.2f} s; processed rows "
              f"at the answer {at_answer:,}, 2 s later {after['progress']['processed_rows']:,}; "
              f"status {after['status']}: {after['errors']['error_message']}")

        header("summary")
        checks = [
            ("upload request, 100+ MB file", f"{upload_seconds:.2f} s", "< 2 s", upload_seconds < 2),
            ("end to end rows/s", f"{rate:,.0f}", f">= {target_rate:,}", rate >= target_rate),
            ("longest progress gap", f"{max(gaps) if gaps else float('nan'):.2f} s", "<= 2 s", bool(gaps) and max(gaps) <= 2),
            ("worker peak RSS", f"{peak_rss:.0f} MB", "< 400 MB", 0 < peak_rss < 400),
            ("cancel takes effect", f"{gone if gone is not None else float('nan'):.2f} s", "<= 2 s",
             gone is not None and gone <= 2 and after["progress"]["processed_rows"] == at_answer),
        ]
        for name, figure, target, ok in checks:
            print(f"{name:<32} {figure:>14}  target {target:<12} {verdict(ok)}")
        return 0 if all(ok for *_, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
