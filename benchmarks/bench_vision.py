"""Vision pipeline in one process, against its targets:

* the default analyzer (``inspector``, no OCR) on 100 images of 2 megapixels
  (1633 x 1225 JPEG): decode + working copy + measurements + thumbnail,
  images/s per process — target ≥ 10;
* a whole batch of those 100 images through ``batch_analyze`` (rows written,
  HTML report rendered and stored): images/s and the report's size — target
  < 10 MB;
* downloads: 16 images from a local stand-in API whose every file answer
  takes 0.3 s; the most requests in flight at once — target ≥ 8;
* refusal of an image over the pixel limit and of a decompression bomb (a
  ~40 KB PNG declaring 50,000 x 50,000 pixels): time and growth of the
  process's peak RSS — targets < 1 s, < 100 MB;
* OCR (when the ``ocr`` extra is installed): the ``ocr`` analyzer on photos
  of printed pages (1600 x 1200, four lines of text), images/s per process;
* one batch of those 100 inspection images uploaded as through
  ``POST /api/v1/vision/batches`` and analysed by a real Celery worker with 1
  process, then 2 (the batch's run plus its chunk runs), with the default
  install's OCR setting (``VISION_OCR`` as in the environment, ``auto``
  unless set): images/s from upload to the completed report, on a fresh
  worker, then the same batch again on that worker, now warm (its processes
  imported the analysis libraries once; ``BENCH_CRON_WARM=0``: fresh only);
* a scheduled ``/cron-jobs`` run end to end against the demo document API
  (``BENCH_PARTS=cron``): BENCH_CRON_IMAGES (50) inspection photos of 1600 x
  1200 in one analysis, downloaded, analysed, reported and uploaded by a real
  worker of 1, then 2 processes, with the default install's OCR setting
  (``VISION_OCR`` as in the environment, ``auto`` unless set): images/s from
  the run's start to its end, images per run (the run and its chunk runs),
  and then every worker process's RSS at idle;
* with ``BENCH_CRON_PAGES`` (0) > 0, the same run with that many photos of
  printed pages (the OCR test's kind) in a second analysis, and how many were read;
* with ``BENCH_CRON_PREDICTION_ROWS`` (0) > 0, right after each run a
  predictions upload of that many rows on the same worker, and the peak RSS
  of its processes meanwhile (target ≤ 400 MB for 1,000,000 rows).

Run: .venv/bin/python benchmarks/bench_vision.py
Env: BENCH_IMAGES (100), BENCH_OCR_IMAGES (20), BENCH_WORKERS ("1,2"), BENCH_PARTS ("all", or
"workers" for the worker comparison alone, "cron" for the scheduled run alone, "scaling" for the
machine's own ceiling: the same analysis in 1 then 2 plain processes, nothing else), BENCH_TIMEOUT.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import BenchEnv  # noqa: E402


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    count = int(os.environ.get("BENCH_IMAGES", 100))
    with BenchEnv("vision", timeout=900) as bench:
        from django.conf import settings

        settings.JOBS_TEMP_DIR = str(bench.tmp / "tmp")
        settings.VISION_OCR = "off"  # the inspector's target is without OCR; OCR is measured on its own below
        from vision_pipeline import analyzers, external, samples, services
        from vision_pipeline.analyzers import BatchContext
        from vision_pipeline.demo import DemoExternalAPI
        from vision_pipeline.images import ImageRefused, load_image
        from vision_pipeline.models import Batch

        print(f"[bench] machine: {os.cpu_count()} CPUs, {sys.version.split()[0]}", flush=True)
        if os.environ.get("BENCH_PARTS", "all") == "scaling":  # the machine's ceiling for 2 processes
            from benchmarks.bench_vision_cron import bench_scaling

            settings.VISION_OCR = os.environ.get("VISION_OCR", "auto")
            bench_scaling(bench, count)
            return 0
        if os.environ.get("BENCH_PARTS", "all") == "cron":  # only the scheduled /cron-jobs run
            from benchmarks.bench_vision_cron import bench_cron

            for processes in [int(n) for n in os.environ.get("BENCH_WORKERS", "1,2").split(",") if n.strip()]:
                bench_cron(bench, processes)
            return 0
        folder = bench.tmp / "images"
        folder.mkdir()
        files = []
        for n in range(count):
            kind = samples.VARIANTS[n % len(samples.VARIANTS)]
            path = folder / f"{n:03d}_{kind}.jpg"
            path.write_bytes(samples.encode(samples.variant(kind, 1633, 1225, seed=n)))
            files.append((path.name, path))
        megapixels = 1633 * 1225 / 1e6
        print(f"[bench] {count} JPEGs of {megapixels:.1f} MP, {sum(p.stat().st_size for _, p in files) / 1e6:.1f} MB",
              flush=True)

        if os.environ.get("BENCH_PARTS", "all") == "workers":  # only the worker comparison
            for processes in [int(n) for n in os.environ.get("BENCH_WORKERS", "1,2").split(",") if n.strip()]:
                bench_workers(bench, files, processes)
            return 0
        inspector = analyzers.get("inspector")
        inspector.analyze_image(load_image(files[0][1]), description="", context=BatchContext())  # warm-up
        started = time.perf_counter()
        flagged = 0
        for name, path in files:
            result = inspector.analyze_image(load_image(path, filename=name), description="", context=BatchContext())
            flagged += bool(result.flags)
        elapsed = time.perf_counter() - started
        analyzer_rate = count / elapsed
        print(f"[inspector] {count} images in {elapsed:.2f} s = {analyzer_rate:.1f} images/s "
              f"({1000 * elapsed / count:.0f} ms each), {flagged} flagged", flush=True)

        batch = services.batch_create(source=Batch.Source.CLI, files=files, user_query="Defects?", store_images=False,
                                      descriptions={name: f"Frame {name}" for name, _ in files})
        started = time.perf_counter()
        batch = services.batch_analyze(batch=batch, files=files)
        elapsed = time.perf_counter() - started
        report_mb = batch.report_size / 1e6
        print(f"[batch] {count} images analysed, stored and reported in {elapsed:.2f} s = {count / elapsed:.1f} "
              f"images/s; report {report_mb:.2f} MB; status {batch.status}", flush=True)

        api = DemoExternalAPI(key="k").start()
        try:
            settings.OUTBOUND_HTTP_ALLOW_HOSTS = [f"127.0.0.1:{api.port}"]
            small = samples.encode(samples.variant("clean", 320, 240))
            api.add_analysis(images=[(f"d{n}.jpg", small) for n in range(16)])
            api.file_delay = 0.3
            analysis = external.parse_analysis(api.analyses[0])
            started = time.perf_counter()
            external.download_images(analysis, dest=bench.tmp / "downloads", key="k", api_url=api.get_url)
            elapsed = time.perf_counter() - started
            print(f"[downloads] 16 images at 0.3 s each in {elapsed:.2f} s; at most {api.max_in_flight} in flight "
                  f"(VISION_DOWNLOAD_CONCURRENCY={settings.VISION_DOWNLOAD_CONCURRENCY})", flush=True)
        finally:
            api.stop()

        bomb = bench.tmp / "bomb.png"
        bomb.write_bytes(samples.decompression_bomb())
        big = bench.tmp / "big.png"
        big.write_bytes(samples.decompression_bomb(9000, 9000))  # 81 MP, over the 40 MP default
        for label, path in (("decompression bomb", bomb), ("81 MP image", big)):
            before = peak_rss_mb()
            started = time.perf_counter()
            try:
                load_image(path)
                outcome = "ACCEPTED (wrong)"
            except ImageRefused as exc:
                outcome = f"refused: {exc}"
            elapsed = time.perf_counter() - started
            print(f"[limits] {label} ({path.stat().st_size:,} bytes) {outcome} in {1000 * elapsed:.1f} ms; "
                  f"peak RSS +{peak_rss_mb() - before:.1f} MB", flush=True)

        bench_ocr(bench, int(os.environ.get("BENCH_OCR_IMAGES", 20)))
        for processes in [int(n) for n in os.environ.get("BENCH_WORKERS", "1,2").split(",") if n.strip()]:
            bench_workers(bench, files, processes)
    return 0


def bench_ocr(bench, count: int) -> None:
    from vision_pipeline import analyzers, samples
    from vision_pipeline.analyzers import BatchContext, ocr
    from vision_pipeline.images import load_image

    ok, why = ocr.status()
    if not ok:
        print(f"[ocr] skipped: {why}", flush=True)
        return
    folder = bench.tmp / "pages"
    folder.mkdir()
    pages = []
    for n in range(count):
        lines = (f"INSPECTION REPORT 2024-{n:03d}", "Vessel: MV Oceanix Hull No. 4471",
                 f"Corrosion found on plate C{n % 9 + 1}", "Next survey due: 2025-03-01")
        path = folder / f"page{n:02d}.jpg"
        path.write_bytes(samples.encode(samples.document(lines, 1600, 1200, font_size=56, rotate=(n % 5) - 2,
                                                         seed=n)))
        pages.append(path)
    analyzer = analyzers.get("ocr")
    started = time.perf_counter()
    analyzer.analyze_image(load_image(pages[0]), description="", context=BatchContext())
    print(f"[ocr] engine loaded and first page read in {time.perf_counter() - started:.2f} s", flush=True)
    started = time.perf_counter()
    exact = confidence = 0.0
    for n, path in enumerate(pages):
        result = analyzer.analyze_image(load_image(path), description="", context=BatchContext())
        reading = result.metrics["ocr"]
        exact += reading["text"].splitlines()[0:1] == [f"INSPECTION REPORT 2024-{n:03d}"]
        confidence += reading["confidence"] or 0
    elapsed = time.perf_counter() - started
    print(f"[ocr] {count} pages (1600 x 1200, 4 lines) in {elapsed:.2f} s = {count / elapsed:.2f} images/s "
          f"({1000 * elapsed / count:.0f} ms each, inspector included); first line exact on {exact:.0f}/{count}, "
          f"mean confidence {confidence / count:.3f}", flush=True)


def bench_workers(bench, files, processes: int) -> None:
    """One batch of ``files`` through the batch API's service and a real worker of
    ``processes`` processes, then (``BENCH_CRON_WARM``, default on) the same again on
    that worker, now warm: a long-lived worker's processes have imported the analysis
    libraries once, which a fresh worker's first batch does in each process."""
    name = f"worker{processes}"
    bench.start_worker(concurrency=processes, name=name, queues=["vision"])
    worker = next(process for label, process in bench.processes if label == name)
    try:
        _one_batch(bench, name, worker, files, processes, label="first batch, cold worker")
        if os.environ.get("BENCH_CRON_WARM", "1") != "0":
            _one_batch(bench, name, worker, files, processes, label="warm worker")
    finally:
        for label, process in list(bench.processes):
            if label == name:
                bench.stop_process(label, process)
                bench.processes.remove((label, process))


def _one_batch(bench, name: str, worker, files, processes: int, *, label: str) -> None:
    from scheduling.models import Execution
    from vision_pipeline import services
    from vision_pipeline.models import Batch, BatchImage

    mode = os.environ.setdefault("VISION_OCR", "auto")  # the default install's setting unless given
    from benchmarks.bench_vision_cron import timeline, uptime, wait_finished, worker_cpu_seconds

    cpu_before = worker_cpu_seconds(worker.pid)
    started = time.perf_counter()
    requested = time.time()
    batch = services.batch_submit(user=None, files=files, user_query="Defects?", descriptions={},
                                  model="inspector")
    submitted = time.perf_counter() - started
    wait_finished(batch, Batch.ACTIVE_STATUSES, started, what="batch", log=lambda: bench.log_tail(name))
    elapsed = time.perf_counter() - started
    cpu = worker_cpu_seconds(worker.pid) - cpu_before
    by_run = {}
    for run in BatchImage.objects.filter(batch=batch).values_list("claimed_by_id", flat=True):
        by_run[run] = by_run.get(run, 0) + 1
    share = ", ".join(f"{'batch run' if run == batch.execution_id else f'chunk {run}'}: {n}"
                      for run, n in sorted(by_run.items(), key=lambda item: -item[1]))
    analysed = (batch.completed_at - batch.started_at).total_seconds()
    print(f"[workers] {processes} worker process(es), {label}, VISION_OCR={mode}: {len(files)} images uploaded, "
          f"analysed and reported in {elapsed:.2f} s = {len(files) / elapsed:.1f} images/s (upload {submitted:.2f} s; "
          f"analysis and report in the worker {analysed:.2f} s = {len(files) / analysed:.1f} images/s); status "
          f"{batch.status}; {len(batch.chunk_execution_ids)} chunk runs queued; images per run: {share}; the worker's "
          f"processes used {cpu:.2f} CPU-s = {len(files) / cpu:.1f} images per CPU-second", flush=True)
    deadline = time.monotonic() + 60  # the chunk runs' own finish may come after the batch's
    while Execution.objects.filter(pk__in=batch.chunk_execution_ids, status__in=Execution.ACTIVE_STATUSES).exists():
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    run = Execution.objects.get(pk=batch.execution_id)
    print(f"[workers] timeline, {timeline(requested, run, [batch])}; uptime: {uptime()}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
