"""The scheduled ``/cron-jobs`` part of bench_vision.py (``BENCH_PARTS=cron``):
one run of a ``vision_analysis`` job against the demo document API, on a real
worker serving every queue (as ``make run``'s does), then the RSS of each of
its processes at idle. Not run on its own: bench_vision.py sets up the
database, Redis and the settings."""
from __future__ import annotations

import os
import time
from pathlib import Path

from benchmarks._report import process_tree_cpu_seconds


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def worker_cpu_seconds(pid: int) -> float:
    """CPU seconds of a worker (``pid``) and its pool processes, also those it
    replaced meanwhile (a process over worker_max_memory_per_child is reaped
    after its task: its time is then in the worker's cutime and cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    reaped = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    return process_tree_cpu_seconds(pid) + reaped


def wait_finished(row, active, started: float, *, what: str, log) -> None:
    """Poll ``row`` (a run or a batch) until its status is no longer one of ``active``
    (at most 600 s after ``started``, a ``perf_counter`` time; then ``log()`` in the error)."""
    while True:
        row.refresh_from_db()
        if row.status not in active:
            return
        if time.perf_counter() - started > 600:
            raise RuntimeError(f"{what} not finished after 600 s:\n{log()}")
        time.sleep(0.05)


def uptime() -> str:
    return "load average " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def timeline(requested: float, run, batches) -> str:
    """Where a run's time went, from the rows (epoch seconds ``requested``: when
    it was asked for): request to the run's start, to the first image a chunk run
    claimed (what runs alone before a second process helps: the serial head),
    and from the last chunk run that analysed something ending to the run's end
    (the serial tail: the last images, the report, the upload)."""
    from scheduling.models import Execution
    from vision_pipeline.models import BatchImage

    def at(value) -> float:
        return value.timestamp() - requested

    chunk_ids = [i for b in batches for i in (b.chunk_execution_ids or [])]
    rows = BatchImage.objects.filter(batch__in=batches, claimed_by_id__in=chunk_ids)
    parts = [f"run started {at(run.started_at):.2f}"]
    first = rows.order_by("claimed_at").values_list("claimed_at", flat=True).first()
    if first is not None:
        worked = set(rows.values_list("claimed_by_id", flat=True))
        chunks = Execution.objects.filter(pk__in=worked)
        last = max((c.completed_at for c in chunks if c.completed_at), default=None)
        started = min((c.started_at for c in chunks if c.started_at), default=None)
        if started is not None:
            parts.append(f"first chunk run started {at(started):.2f}")
        parts.append(f"first chunk claim {at(first):.2f} (serial head)")
        if last is not None:
            parts.append(f"last working chunk ended {at(last):.2f}, run ended {at(run.completed_at):.2f} "
                         f"(serial tail {(run.completed_at - last).total_seconds():.2f})")
    else:
        parts.append(f"no chunk run analysed anything; run ended {at(run.completed_at):.2f}")
    return "s after the request: " + ", ".join(parts)


def bench_cron(bench, processes: int) -> dict:
    """One scheduled run of ``BENCH_CRON_IMAGES`` 1600 x 1200 photos on a worker of ``processes`` processes."""
    from django.conf import settings

    from vision_pipeline import samples, services
    from vision_pipeline.demo import DEMO_ORGANIZATION_ID, DemoExternalAPI

    count = int(os.environ.get("BENCH_CRON_IMAGES", 50))
    pages = int(os.environ.get("BENCH_CRON_PAGES", 0))
    mode = os.environ.setdefault("VISION_OCR", "auto")  # the default install's setting unless given
    api = DemoExternalAPI(key="bench-key").start()
    name = f"cron{processes}-{int(time.time())}"
    try:
        os.environ["OUTBOUND_HTTP_ALLOW_HOSTS"] = f"127.0.0.1:{api.port}"
        settings.OUTBOUND_HTTP_ALLOW_HOSTS = [f"127.0.0.1:{api.port}"]

        def add_images() -> None:  # the run's analyses, unprocessed: what one run downloads
            api.add_demo_analyses(count=1, images_per_analysis=count, size=(1600, 1200))
            if pages:
                page_files = []
                for n in range(pages):
                    lines = (f"INSPECTION REPORT 2024-{n:03d}", "Vessel: MV Oceanix Hull No. 4471",
                             f"Corrosion found on plate C{n % 9 + 1}", "Next survey due: 2025-03-01")
                    page_files.append((f"page{n:02d}.jpg", samples.encode(samples.document(
                        lines, 1600, 1200, font_size=56, rotate=(n % 5) - 2, seed=n))))
                api.add_analysis(images=page_files)

        total = count + pages
        node = bench.start_worker(concurrency=processes, name=name)
        job = services.cron_job_create(
            actor=None, name=f"bench {name}", schedule="0 0 1 1 *", external_api_get_url=api.get_url,
            external_api_post_url=api.post_url, external_api_key="bench-key", organization_id=DEMO_ORGANIZATION_ID,
        )
        worker = next(process for label, process in bench.processes if label == name)
        warm = os.environ.get("BENCH_CRON_WARM", "1") != "0"
        if warm:
            # A worker's first vision run in each process imports numpy and OpenCV (0.15-0.25 CPU-s);
            # a long-lived worker has done so once. Measured too, then the same run again on the warm worker.
            add_images()
            _one_run(bench, name, worker, job, total, pages, mode, api, processes, label="first run, cold worker")
        add_images()
        execution, batches, ran = _one_run(bench, name, worker, job, total, pages, mode, api, processes,
                                           label="warm worker" if warm else "cold worker")
        time.sleep(3)  # a child over worker_max_memory_per_child is replaced after its task
        pids = [worker.pid, *children(worker.pid)]
        sizes = ", ".join(f"{'main' if pid == worker.pid else 'child'} {pid}: {rss_mb(pid):.0f} MB "
                          f"(peak {rss_mb(pid, 'VmHWM'):.0f})" for pid in pids)
        print(f"[cron] idle after the run, RSS per worker process: {sizes}", flush=True)
        rows = int(os.environ.get("BENCH_CRON_PREDICTION_ROWS", 0))
        if rows:
            predictions_after(bench, worker.pid, rows)
        return {"node": node, "seconds": ran, "images": total, "rss": {pid: rss_mb(pid) for pid in pids}}
    finally:
        api.stop()
        for label, process in list(bench.processes):
            if label == name:
                bench.stop_process(label, process)
                bench.processes.remove((label, process))


def _one_run(bench, name, worker, job, total, pages, mode, api, processes, *, label):
    """One run of ``job`` on the worker: its figures printed; (execution, its batches, run seconds)."""
    from scheduling import services as core
    from scheduling.models import Execution
    from vision_pipeline.models import Batch, BatchImage

    uploads = len(api.uploads)
    cpu_before = worker_cpu_seconds(worker.pid)
    started = time.perf_counter()
    requested = time.time()
    execution = core.job_execute(job=job, force=True)
    wait_finished(execution, Execution.ACTIVE_STATUSES, started, what="run", log=lambda: bench.log_tail(name))
    elapsed = time.perf_counter() - started
    cpu = worker_cpu_seconds(worker.pid) - cpu_before
    ran = (execution.completed_at - execution.started_at).total_seconds()
    batches = Batch.objects.filter(execution=execution)
    by_run: dict = {}
    read = 0
    for run, metrics in BatchImage.objects.filter(batch__in=batches).values_list("claimed_by_id", "metrics"):
        by_run[run] = by_run.get(run, 0) + 1
        read += bool((metrics or {}).get("ocr", {}).get("text"))
    share = ", ".join(f"{'cron run' if run == execution.pk else f'chunk {run}'}: {n}"
                      for run, n in sorted(by_run.items(), key=lambda item: -item[1]))
    print(f"[cron] {processes} worker process(es), {label}, VISION_OCR={mode}: {total} images ({pages} pages of text) "
          f"downloaded, analysed, reported and uploaded in {ran:.2f} s = {total / ran:.1f} images/s "
          f"(request to end {elapsed:.2f} s); status {execution.status}; {len(api.uploads) - uploads} report(s) "
          f"uploaded; text read on {read} image(s); images per run: {share}; the worker's processes used "
          f"{cpu:.2f} CPU-s = {total / cpu:.1f} images per CPU-second", flush=True)
    print(f"[cron] timeline, {timeline(requested, execution, list(batches))}; uptime: {uptime()}", flush=True)
    # every chunk run of it over before anything else is measured
    deadline = time.monotonic() + 60
    chunk_ids = [i for b in batches for i in (b.chunk_execution_ids or [])]
    while Execution.objects.filter(pk__in=chunk_ids, status__in=Execution.ACTIVE_STATUSES).exists():
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return execution, batches, ran


def predictions_after(bench, worker_pid: int, rows: int) -> None:
    """A ``rows``-row predictions upload on the same worker, right after the
    vision run: the peak RSS (VmHWM) of each of its processes meanwhile."""
    from benchmarks.bench_predictions import make_csv
    from predictions import services as predictions
    from predictions.uploads import store_local_file
    from scheduling.models import Execution

    path = bench.tmp / "annual.csv"
    if not path.exists():
        make_csv(path, rows)
    upload = predictions.upload_create(user=None, job_type="annual", stored=store_local_file(path),
                                       file_format="csv")
    started = time.perf_counter()
    peaks: dict[int, float] = {}
    while True:
        for pid in children(worker_pid):
            peaks[pid] = max(peaks.get(pid, 0.0), rss_mb(pid, "VmHWM"))
        execution = Execution.objects.get(pk=upload.execution_id)
        if execution.status not in Execution.ACTIVE_STATUSES:
            break
        if time.perf_counter() - started > 600:
            raise RuntimeError("the predictions upload did not finish in 600 s")
        time.sleep(0.2)
    runner = execution.worker or ""
    print(f"[cron] then a {rows:,}-row predictions upload on the same worker: {execution.status} in "
          f"{time.perf_counter() - started:.1f} s (run by {runner}); peak RSS per worker process meanwhile: "
          + ", ".join(f"{pid}: {mb:.0f} MB" for pid, mb in peaks.items()), flush=True)


def _analyse_share(paths, ready, go, out) -> None:
    """One process of ``bench_scaling``: warm up, wait for the start, analyse ``paths``."""
    import django

    django.setup()  # a fresh interpreter (spawned: OpenCV's and OpenBLAS's threads do not survive a fork)
    from vision_pipeline import analyzers
    from vision_pipeline.analyzers import BatchContext
    from vision_pipeline.images import load_image

    inspector = analyzers.get("inspector")
    inspector.analyze_image(load_image(paths[0]), description="", context=BatchContext())  # imports, caches
    ready.put(os.getpid())
    go.wait()
    cpu = time.process_time()
    for path in paths:
        inspector.analyze_image(load_image(path), description="", context=BatchContext())
    out.put((time.time(), time.process_time() - cpu))


def bench_scaling(bench, count: int = 100) -> None:
    """The machine's own ceiling for this work (``BENCH_PARTS=scaling``): the
    default analysis (decode, measurements, thumbnail, the text check) of
    ``count`` 1600 x 1200 photos in 1, then 2 plain processes sharing them,
    with no database, broker or download. What 2 worker processes can gain over
    1 is at most this ratio, whatever the pipeline does."""
    import multiprocessing

    from vision_pipeline import samples

    folder = bench.tmp / "scaling"
    folder.mkdir(exist_ok=True)
    paths = []
    for n in range(count):
        path = folder / f"{n:03d}.jpg"
        path.write_bytes(samples.encode(samples.variant(samples.VARIANTS[n % len(samples.VARIANTS)], 1600, 1200,
                                                        seed=n)))
        paths.append(path)
    context = multiprocessing.get_context("spawn")
    rates = {}
    for processes in (1, 2, 1, 2):
        ready, out, go = context.Queue(), context.Queue(), context.Event()
        workers = [context.Process(target=_analyse_share, args=(paths[i::processes], ready, go, out), daemon=True)
                   for i in range(processes)]
        for worker in workers:
            worker.start()
        for _ in workers:
            ready.get(timeout=120)
        started = time.time()
        go.set()
        ends = [out.get(timeout=600) for _ in workers]
        for worker in workers:
            worker.join()
        elapsed = max(end for end, _cpu in ends) - started
        cpu = sum(cpu for _end, cpu in ends)
        rates.setdefault(processes, []).append(count / elapsed)
        print(f"[scaling] {processes} plain process(es): {count} photos analysed in {elapsed:.2f} s = "
              f"{count / elapsed:.1f} images/s, {1000 * cpu / count:.0f} ms CPU an image; uptime: {uptime()}",
              flush=True)
    print(f"[scaling] 2 processes / 1 process, best rounds: {max(rates[2]) / max(rates[1]):.2f}x", flush=True)
