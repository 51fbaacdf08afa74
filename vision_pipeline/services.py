"""Services of the vision pipeline: the only code here that writes.

- ``/cron-jobs`` (seed 000) jobs are core Jobs of kind ``vision_analysis``,
  written only through ``scheduling.services``; the external API key is the
  job's encrypted secret (``job_set_secrets``/``job_secrets``).
- A cron run (``cron_run``, in the worker) and the one-shot processor
  (``process_analyses``) share one flow: fetch every unprocessed analysis,
  and for each one download, make a Batch, analyse, render, upload. One
  failing analysis is recorded and the next one runs.
- Batches made through the API are Executions of the ``vision.batch`` manual
  job, so cancel is the core's ``execution_cancel``.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from jobsite import http
from jobsite.exceptions import ApplicationError, Conflict
from scheduling import services as core
from scheduling.executors import RunResult
from scheduling.models import Execution, Job
from vision_pipeline import analyzers, external
from vision_pipeline.errors import ErrorCode
from vision_pipeline.images import ImageRefused, check_header, load_image
from vision_pipeline.models import Batch, BatchImage
from vision_pipeline.report import render_report

logger = logging.getLogger(__name__)

KIND = "vision_analysis"
BATCH_KIND = "vision_batch"
BATCH_JOB_NAME = "vision.batch"
CHUNK_KIND = "vision_batch_chunk"
CHUNK_JOB_NAME = "vision.batch-chunk"
SECRET_KEY_NAME = "external_api_key"
BACKEND_SECRET_NAME = "backend_api_key"
DEFAULT_BACKEND_URL = "http://localhost:8000"
CONFIG_FIELDS = ("external_api_get_url", "external_api_post_url", "backend_api_url", "organization_id")


class AnalysisTimeout(Exception):
    pass


class BatchStopped(Exception):
    pass


# ---------------------------------------------------------------------------
# /cron-jobs (seed 000)
# ---------------------------------------------------------------------------
def _rename(errors: ValidationError) -> ValidationError:
    """The core names its fields; the seed names them differently."""
    names = {"schedule_expression": "schedule", "title": "name", "is_enabled": "enabled"}
    return ValidationError({names.get(k, k): v for k, v in errors.message_dict.items()})


def check_outbound_url(field_name: str, url: str) -> None:
    """A 400 naming the field when the SSRF guard would refuse ``url``."""
    try:
        http.check_url(url)
    except http.BlockedURL as exc:
        raise ValidationError({field_name: [exc.detail]}) from None


@transaction.atomic
def cron_job_create(
    *, actor, name: str, schedule: str, external_api_get_url: str, external_api_post_url: str,
    external_api_key: str, organization_id: str, backend_api_url: str = DEFAULT_BACKEND_URL, enabled: bool = True,
    analyzer: str = analyzers.DEFAULT, analysis_timeout_seconds: int | None = None, page_size: int | None = None,
    backend_api_key: str = "", timezone_name: str = "UTC",
) -> Job:
    """Create a ``vision_analysis`` job on a cron schedule; the key is stored encrypted."""
    from jobsite.tenancy import user_default_organization

    for field_name, url in (("external_api_get_url", external_api_get_url),
                            ("external_api_post_url", external_api_post_url)):
        check_outbound_url(field_name, url)
    config = {
        "external_api_get_url": external_api_get_url,
        "external_api_post_url": external_api_post_url,
        "backend_api_url": backend_api_url or DEFAULT_BACKEND_URL,
        "organization_id": organization_id,
        "analyzer": analyzer,
        "analysis_timeout_seconds": int(analysis_timeout_seconds or settings.VISION_ANALYSIS_TIMEOUT_SECONDS),
        "page_size": int(page_size or settings.VISION_EXTERNAL_PAGE_SIZE),
    }
    secrets = {SECRET_KEY_NAME: external_api_key}
    if backend_api_key:
        secrets[BACKEND_SECRET_NAME] = backend_api_key
    owner = actor if getattr(actor, "pk", None) else None
    try:
        return core.job_create(
            actor=owner, actor_label=getattr(actor, "username", "") or "system",
            name=f"vision-{uuid.uuid4().hex[:16]}", title=name.strip(), kind=KIND,
            job_type=Job.JobType.VISION_ANALYSIS, schedule_type=Job.ScheduleType.CRON,
            schedule_expression=schedule, timezone=timezone_name, config=config, secrets=secrets,
            queue=settings.VISION_QUEUE, timeout_seconds=settings.VISION_JOB_TIMEOUT_SECONDS,
            is_enabled=enabled, owner=owner, organization=user_default_organization(owner),
            description=f"Vision analysis for organization {organization_id} (seed 000 /cron-jobs).",
        )
    except ValidationError as exc:
        raise _rename(exc) from None


@transaction.atomic
def cron_job_set_enabled(*, job: Job, enabled: bool, actor=None) -> Job:
    return core.job_set_enabled(job=job, enabled=enabled, actor=actor if getattr(actor, "pk", None) else None,
                                actor_label=getattr(actor, "username", "") or "system")


@transaction.atomic
def cron_job_delete(*, job: Job, actor=None) -> None:
    core.job_delete(job=job, actor=actor if getattr(actor, "pk", None) else None,
                    actor_label=getattr(actor, "username", "") or "system")


# ---------------------------------------------------------------------------
# The shared flow: fetch, then one batch per analysis
# ---------------------------------------------------------------------------
@dataclass
class ProcessorConfig:
    external_api_get_url: str
    external_api_post_url: str
    external_api_key: str
    organization_id: str
    backend_api_url: str = DEFAULT_BACKEND_URL
    backend_api_key: str = ""
    analyzer: str = analyzers.DEFAULT
    analysis_timeout_seconds: int = 3600
    page_size: int = 50

    @classmethod
    def for_job(cls, job: Job) -> ProcessorConfig:
        secrets = core.job_secrets(job)
        config = job.config or {}
        return cls(
            external_api_get_url=config["external_api_get_url"], external_api_post_url=config["external_api_post_url"],
            external_api_key=secrets.get(SECRET_KEY_NAME, ""), organization_id=config["organization_id"],
            backend_api_url=config.get("backend_api_url") or DEFAULT_BACKEND_URL,
            backend_api_key=secrets.get(BACKEND_SECRET_NAME, ""),
            analyzer=config.get("analyzer") or analyzers.DEFAULT,
            analysis_timeout_seconds=int(config.get("analysis_timeout_seconds")
                                         or settings.VISION_ANALYSIS_TIMEOUT_SECONDS),
            page_size=int(config.get("page_size") or settings.VISION_EXTERNAL_PAGE_SIZE),
        )

    @property
    def backend_is_local(self) -> bool:
        url = (self.backend_api_url or "").rstrip("/")
        return not url or url in {u.rstrip("/") for u in settings.VISION_LOCAL_BACKEND_URLS}


@dataclass
class ProcessSummary:
    results: list[dict[str, Any]] = field(default_factory=list)
    pages: int = 0
    error: str = ""  # the fetch itself failed

    @property
    def succeeded(self) -> int:
        return sum(1 for r in self.results if r["status"] == "success")

    @property
    def failed(self) -> int:
        return len(self.results) - self.succeeded

    @property
    def images(self) -> int:
        return sum(r.get("images", 0) for r in self.results)

    @property
    def batch_ids(self) -> list[str]:
        return [r["batch_id"] for r in self.results if r.get("batch_id")]

    @property
    def ok(self) -> bool:
        return not self.error and self.failed == 0

    @property
    def output(self) -> str:
        if self.error:
            return f"Error: {self.error}"
        if not self.results:
            return "No unprocessed analyses"
        return (f"Processed {len(self.results)} analyses: {self.succeeded} succeeded, {self.failed} failed "
                f"({self.images} images)")

    def as_result(self) -> dict[str, Any]:
        return {"analyses": self.results, "total": len(self.results), "succeeded": self.succeeded,
                "failed": self.failed, "images": self.images, "batch_ids": self.batch_ids, "pages": self.pages,
                **({"error": self.error} if self.error else {})}


def process_analyses(*, config: ProcessorConfig, execution: Execution | None = None, owner=None,
                     organization=None, source: str = Batch.Source.CRON, dry_run: bool = False,
                     log: logging.Logger = logger) -> ProcessSummary:
    """Fetch every unprocessed analysis and process each one (see the module docstring)."""
    key = config.external_api_key
    summary = ProcessSummary()
    try:
        fetched = external.fetch_unprocessed(get_url=config.external_api_get_url, key=key,
                                             organization_id=config.organization_id, page_size=config.page_size)
    except external.ExternalAPIError as exc:
        summary.error = external.scrub(str(exc), key)
        log.error("fetching analyses failed: %s", summary.error)
        return summary
    summary.pages = fetched.pages
    log.info("fetched %d unprocessed analyses (%d pages, %d invalid, %d of other organizations)",
             len(fetched.analyses), fetched.pages, len(fetched.invalid), fetched.skipped_other_organization)
    for bad in fetched.invalid:
        summary.results.append({"vision_analysis_id": bad["vision_analysis_id"], "status": "failed",
                                "error": external.scrub(bad["error"], key), "images": 0})
    if dry_run:
        for analysis in fetched.analyses:
            summary.results.append({"vision_analysis_id": analysis.vision_analysis_id, "status": "success",
                                    "images": len(analysis.images), "dry_run": True,
                                    "descriptions": analysis.descriptions_document is not None})
        return summary
    temp_root = Path(settings.JOBS_TEMP_DIR)
    temp_root.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"vision-run-{execution.pk if execution else 'cli'}-", dir=temp_root))
    try:
        for index, analysis in enumerate(fetched.analyses):
            result = process_one(analysis, config=config, workdir=workdir / f"{index:03d}", execution=execution,
                                 owner=owner, organization=organization, source=source, log=log)
            summary.results.append(result)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return summary


def process_one(analysis: external.Analysis, *, config: ProcessorConfig, workdir: Path,
                execution: Execution | None, owner, organization, source: str,
                log: logging.Logger = logger) -> dict[str, Any]:
    """Download, analyse, render and upload one analysis; never raises."""
    key = config.external_api_key
    started = time.monotonic()
    deadline = started + config.analysis_timeout_seconds
    result: dict[str, Any] = {"vision_analysis_id": analysis.vision_analysis_id, "run_code": analysis.run_code,
                              "images": len(analysis.images), "batch_id": None}
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        files = external.download_images(analysis, dest=workdir, key=key, api_url=config.external_api_get_url)
        for item in files:
            try:
                check_header(item.path, filename=item.name)
            except ImageRefused as exc:
                raise external.ExternalAPIError(f"Image {exc}") from None
        descriptions = external.download_descriptions(analysis, dest=workdir, key=key,
                                                      api_url=config.external_api_get_url)
        _check_deadline(deadline, config.analysis_timeout_seconds)
        if config.backend_is_local:
            batch = batch_create(
                source=source, files=[(item.name, item.path) for item in files], user_query=analysis.user_query,
                descriptions=descriptions, model=config.analyzer, execution=execution, owner=owner,
                organization=organization, vision_analysis_id=analysis.vision_analysis_id,
                run_code=analysis.run_code, external_organization_id=analysis.organization_id,
                organization_name=analysis.organization_name, store_images=False,
            )
            result["batch_id"] = str(batch.pk)
            batch = batch_analyze(batch=batch, files=[(item.name, item.path) for item in files], deadline=deadline,
                                  timeout_seconds=config.analysis_timeout_seconds, execution=execution)
            if batch.status != Batch.Status.COMPLETED:
                raise external.ExternalAPIError(f"Batch {batch.pk} failed: {batch.error}")
            html = Path(batch_report_path(batch)).read_bytes()
            result.update(flagged=batch.flagged_images, failed_images=batch.failed_images)
        else:
            batch_id, html = remote_batch(config=config, analysis=analysis, files=files, descriptions=descriptions,
                                          deadline=deadline)
            result["batch_id"] = batch_id
        _check_deadline(deadline, config.analysis_timeout_seconds)
        external.upload_report(post_url=config.external_api_post_url, key=key, batch_id=result["batch_id"],
                               html=html, organization_id=analysis.organization_id or config.organization_id,
                               vision_analysis_id=analysis.vision_analysis_id)
        result["status"] = "success"
        result["report_bytes"] = len(html)
    except AnalysisTimeout as exc:
        result.update(status="timeout", error=str(exc))
    except (external.ExternalAPIError, ImageRefused, analyzers.openai_compatible_error()) as exc:
        result.update(status="failed", error=external.scrub(str(exc), key))
    except Exception as exc:  # one analysis never stops the others
        log.exception("analysis %s failed unexpectedly", analysis.vision_analysis_id)
        result.update(status="error", error=external.scrub(f"{type(exc).__name__}: {exc}", key))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["seconds"] = round(time.monotonic() - started, 2)
    log.info("analysis %s: %s%s", analysis.vision_analysis_id, result["status"],
             f" ({result['error']})" if result.get("error") else "")
    return result


def _check_deadline(deadline: float | None, timeout_seconds: int | float) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise AnalysisTimeout(f"Analysis exceeded its timeout of {timeout_seconds:g} seconds")


def cron_run(*, job: Job, execution: Execution) -> RunResult:
    """One run of a ``vision_analysis`` job (the executor's ``run``)."""
    summary = process_analyses(config=ProcessorConfig.for_job(job), execution=execution, owner=job.owner,
                               organization=job.organization)
    batch_ids = summary.batch_ids
    statuses = {result.get("status") for result in summary.results if result.get("status") != "success"}
    # seed 000's "timeout": every analysis that did not succeed ran out of time
    status = "timeout" if not summary.error and statuses == {"timeout"} else None
    return RunResult(output=summary.output, result=summary.as_result(), ok=summary.ok,
                     batch_id=batch_ids[0] if batch_ids else None, status=status)


# ---------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------
def storage_dir(batch: Batch | str) -> Path:
    return Path(settings.VISION_STORAGE_DIR) / str(getattr(batch, "pk", batch))


def batch_report_path(batch: Batch) -> Path:
    return Path(settings.VISION_STORAGE_DIR) / batch.report_path


@transaction.atomic
def batch_create(*, source: str, files: list[tuple[str, Path]], user_query: str = "",
                 descriptions: dict[str, str] | None = None, model: str = analyzers.DEFAULT,
                 execution: Execution | None = None, owner=None, organization=None, vision_analysis_id: str = "",
                 run_code: str = "", external_organization_id: str = "", organization_name: str = "",
                 store_images: bool = True) -> Batch:
    """Record a batch and its images (copied into storage when ``store_images``)."""
    try:
        analyzers.get(model)
    except LookupError as exc:
        raise ApplicationError(str(exc), status=400, code=ErrorCode.UNKNOWN_MODEL) from None
    descriptions = descriptions or {}
    batch = Batch.objects.create(
        source=source, execution=execution, user_query=user_query, model=model, descriptions=descriptions,
        total_images=len(files), owner=owner if getattr(owner, "pk", None) else None, organization=organization,
        vision_analysis_id=vision_analysis_id, run_code=run_code, external_organization_id=external_organization_id,
        organization_name=organization_name,
    )
    rows = []
    for position, (name, path) in enumerate(files):
        stored = ""
        if store_images:
            stored = external.safe_filename(name, position)
            target = storage_dir(batch) / "images" / stored
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        rows.append(BatchImage(batch=batch, position=position, filename=name[:255], stored_name=stored,
                               description=descriptions.get(name, ""), size_bytes=Path(path).stat().st_size))
    BatchImage.objects.bulk_create(rows)
    return batch


# -- analysis: every run sharing a batch claims its pending images ----------
# A few at a time, so that the batch's own run and its chunk runs balance by
# themselves whatever each image costs.
CLAIM_SIZE = 2
WAIT_POLL_SECONDS = 0.2
# A claim this old is taken over even if its run still reads "running" (a hung worker).
CLAIM_STALE_SECONDS = 600


def chunk_runs_for(pending: int) -> int:
    """How many chunk runs to queue beside a batch's own run for ``pending`` images:
    one per ``VISION_CHUNK_SIZE`` images beyond the first chunk, at most
    ``VISION_MAX_CHUNKS`` runs in all."""
    size = max(1, settings.VISION_CHUNK_SIZE)
    most = max(1, settings.VISION_MAX_CHUNKS)
    return max(0, min(-(-pending // size), most) - 1)


def _image_path(batch: Batch, row: BatchImage, paths: dict[int, Path]) -> Path:
    return paths.get(row.position) or storage_dir(batch) / "images" / row.stored_name


def _claim(batch_id, claimer_id: int | None, limit: int = CLAIM_SIZE) -> list[BatchImage]:
    """Up to ``limit`` pending images of the batch, now claimed by ``claimer_id``
    (a conditional update: two runs never get the same image). [] when none is pending."""
    while True:
        pending = list(BatchImage.objects.filter(batch_id=batch_id, status=BatchImage.Status.PENDING)
                       .order_by("position").values_list("pk", flat=True)[:limit])
        if not pending:
            return []
        now = timezone.now()
        BatchImage.objects.filter(pk__in=pending, status=BatchImage.Status.PENDING).update(
            status=BatchImage.Status.WORKING, claimed_by_id=claimer_id, claimed_at=now)
        rows = list(BatchImage.objects.filter(pk__in=pending, status=BatchImage.Status.WORKING,
                                              claimed_by_id=claimer_id, claimed_at=now).order_by("position"))
        if rows:
            return rows  # else another run won every one of them: look again


def _record(batch: Batch, row: BatchImage, *, analysis: analyzers.ImageAnalysis | None = None,
            thumbnail: str = "", error: str = "") -> bool:
    """Store one image's outcome, only while this run's claim on it holds (a
    claim taken over meanwhile means the other run's outcome counts)."""
    if analysis is not None:
        values = {"status": BatchImage.Status.DONE, "metrics": analysis.metrics, "flags": analysis.flags,
                  "findings": analysis.findings, "thumbnail": thumbnail}
    else:
        values = {"status": BatchImage.Status.FAILED, "error": error}
    updated = BatchImage.objects.filter(pk=row.pk, status=BatchImage.Status.WORKING, claimed_by_id=row.claimed_by_id,
                                        claimed_at=row.claimed_at).update(**values)
    if updated:
        Batch.objects.filter(pk=batch.pk).update(
            processed_images=F("processed_images") + 1,
            failed_images=F("failed_images") + (0 if analysis is not None else 1),
            flagged_images=F("flagged_images") + (1 if analysis is not None and analysis.flags else 0),
            updated_at=timezone.now(),
        )
    return bool(updated)


def _work(batch: Batch, analyzer: analyzers.Analyzer, context: analyzers.BatchContext, *, claimer_id: int | None,
          paths: dict[int, Path], deadline: float | None, timeout_seconds: float,
          should_stop: Callable[[], bool] | None) -> int:
    """Claim and analyse the batch's pending images until none is left; how many this run analysed.
    A damaged image is recorded on its card and the next one goes on."""
    analysed = 0
    while True:
        rows = _claim(batch.pk, claimer_id)
        if not rows:
            return analysed
        for row in rows:
            _check_deadline(deadline, timeout_seconds)
            if should_stop is not None and should_stop():
                raise BatchStopped("The batch was cancelled")
            description = (batch.descriptions or {}).get(row.filename, "")
            try:
                image = load_image(_image_path(batch, row, paths), filename=row.filename)
            except ImageRefused as exc:
                _record(batch, row, error=str(exc))
                continue
            analysis = analyzer.analyze_image(image, description=description, context=context)
            if _record(batch, row, analysis=analysis, thumbnail=image.thumbnail):
                analysed += 1


def _wait_for_others(batch: Batch, *, claimer_id: int | None, deadline: float | None, timeout_seconds: float,
                     should_stop: Callable[[], bool] | None) -> bool:
    """Wait while other runs finish the images they claimed. An image whose run
    is no longer running (cancelled, failed, lost) or whose claim is stale goes
    back to pending: True then, and the caller analyses it."""
    while True:
        working = list(BatchImage.objects.filter(batch_id=batch.pk, status=BatchImage.Status.WORKING)
                       .values_list("pk", "claimed_by_id", "claimed_at"))
        if not working:
            return False
        others = {run for _pk, run, _at in working if run is not None and run != claimer_id}
        alive = set(Execution.objects.filter(pk__in=others, status=Execution.Status.RUNNING)
                    .values_list("pk", flat=True))
        stale = timezone.now() - timedelta(seconds=CLAIM_STALE_SECONDS)
        handed_back = 0
        for pk, run, at in working:
            if run not in alive or (at is not None and at < stale):
                handed_back += BatchImage.objects.filter(pk=pk, status=BatchImage.Status.WORKING, claimed_by_id=run,
                                                         claimed_at=at).update(
                    status=BatchImage.Status.PENDING, claimed_by=None, claimed_at=None)
        if handed_back:
            logger.warning("batch %s: %d image(s) claimed by runs that are gone were handed back", batch.pk,
                           handed_back)
            return True
        _check_deadline(deadline, timeout_seconds)
        if should_stop is not None and should_stop():
            raise BatchStopped("The batch was cancelled")
        time.sleep(WAIT_POLL_SECONDS)


def batch_analyze(*, batch: Batch, files: list[tuple[str, Path]] | None = None, deadline: float | None = None,
                  timeout_seconds: float = 0, should_stop: Callable[[], bool] | None = None,
                  execution: Execution | None = None) -> Batch:
    """Analyse every image of ``batch`` — with whichever chunk runs share it —
    and write its report. ``files`` (name, path) in position order, else the
    stored images. ``execution`` is the run doing it (its claims carry its
    id). A damaged image is recorded on its card; a timeout, a stop request or
    an analyzer failure fails the batch (``status`` and ``error``)."""
    analyzer = analyzers.get(batch.model)
    now = timezone.now()
    Batch.objects.filter(pk=batch.pk, status__in=Batch.ACTIVE_STATUSES).update(
        status=Batch.Status.PROCESSING, started_at=now, updated_at=now)
    context = analyzers.BatchContext(user_query=batch.user_query, descriptions=batch.descriptions or {},
                                     deadline=deadline)
    paths = {position: Path(path) for position, (_name, path) in enumerate(files or [])}
    claimer_id = execution.pk if execution is not None else None
    options = {"deadline": deadline, "timeout_seconds": timeout_seconds, "should_stop": should_stop}
    try:
        while True:
            _work(batch, analyzer, context, claimer_id=claimer_id, paths=paths, **options)
            if not _wait_for_others(batch, claimer_id=claimer_id, **options):
                break
        _check_deadline(deadline, timeout_seconds)
        done = [row for row in batch.images.all() if row.status == BatchImage.Status.DONE]
        context.image_paths = [(row.filename, str(_image_path(batch, row, paths))) for row in done]
        results = [(row.filename, analyzers.ImageAnalysis(metrics=row.metrics, flags=row.flags,
                                                          findings=row.findings)) for row in done]
        answer = analyzer.summarize(context, results) if results else {}
    except (AnalysisTimeout, BatchStopped) as exc:
        _batch_fail(batch, str(exc), cancelled=isinstance(exc, BatchStopped))
        if isinstance(exc, AnalysisTimeout):
            raise
        batch.refresh_from_db()
        return batch
    except analyzers.openai_compatible_error() as exc:
        _batch_fail(batch, str(exc))
        batch.refresh_from_db()
        return batch
    batch.refresh_from_db()
    flag_counts: dict[str, int] = {}
    for _name, analysis in results:
        for flag in analysis.flags:
            flag_counts[flag] = flag_counts.get(flag, 0) + 1
    html = render_report(
        batch_id=str(batch.pk), run_code=batch.run_code, organization=batch.organization_name
        or batch.external_organization_id, user_query=batch.user_query, model=batch.model, created=timezone.now(),
        images=[_image_dict(row) for row in batch.images.all()], answer=answer,
    ).encode("utf-8")
    target = storage_dir(batch) / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(html)
    Batch.objects.filter(pk=batch.pk, status__in=Batch.ACTIVE_STATUSES).update(
        status=Batch.Status.COMPLETED, completed_at=timezone.now(), report_path=f"{batch.pk}/report.html",
        report_size=len(html), summary={"flags": flag_counts, **({"answer": answer} if answer else {})},
        updated_at=timezone.now(),
    )
    batch.refresh_from_db()
    return batch


def _image_dict(row: BatchImage) -> dict[str, Any]:
    return {"filename": row.filename, "description": row.description, "status": row.status, "metrics": row.metrics,
            "flags": row.flags, "findings": row.findings, "thumbnail": row.thumbnail, "error": row.error}


def _batch_fail(batch: Batch, error: str, *, cancelled: bool = False) -> None:
    Batch.objects.filter(pk=batch.pk, status__in=Batch.ACTIVE_STATUSES).update(
        status=Batch.Status.CANCELLED if cancelled else Batch.Status.FAILED, error=error[:2000],
        completed_at=timezone.now(), updated_at=timezone.now(),
    )


# -- batches made through the API: runs of the vision.batch manual job ------
def batch_job() -> Job:
    return core.job_ensure_manual(
        name=BATCH_JOB_NAME, kind=BATCH_KIND, queue=settings.VISION_QUEUE,
        timeout_seconds=settings.VISION_ANALYSIS_TIMEOUT_SECONDS, title="Vision batches",
        description="Analyses batches uploaded to /api/v1/vision/batches. Each batch is one run; tune the queue, "
                    "timeout and retries here.",
    )


def chunk_job() -> Job:
    return core.job_ensure_manual(
        name=CHUNK_JOB_NAME, kind=CHUNK_KIND, queue=settings.VISION_QUEUE,
        timeout_seconds=settings.VISION_ANALYSIS_TIMEOUT_SECONDS, title="Vision batch chunks",
        description="Share the images of a large vision batch with its own run, on other worker processes. "
                    "Cancelled with their batch; pause this job to analyse each batch in its own run only.",
    )


def batch_submit(*, user, files: list[tuple[str, Path]], user_query: str, descriptions: dict[str, str],
                 model: str, organization_id: str = "") -> Batch:
    """Record an uploaded batch and queue its analysis (202)."""
    from jobsite.tenancy import user_default_organization

    if model != analyzers.DEFAULT:
        try:
            ok, why = analyzers.get(model).available()
        except LookupError as exc:
            raise ApplicationError(str(exc), status=400, code=ErrorCode.UNKNOWN_MODEL) from None
        if not ok:
            raise ApplicationError(f"Model '{model}' is not available: {why}", status=400,
                                   code=ErrorCode.MODEL_NOT_CONFIGURED)
    with transaction.atomic():
        owner = user if getattr(user, "pk", None) else None
        batch = batch_create(source=Batch.Source.API, files=files, user_query=user_query, descriptions=descriptions,
                             model=model, owner=owner, organization=user_default_organization(owner),
                             external_organization_id=organization_id)
        core.job_execute_for(
            obj=batch, job=batch_job(), actor=owner, actor_label=getattr(user, "username", ""),
            override_kwargs={"batch_id": str(batch.pk)},
            paused_message=f"Vision batches are paused by an operator (job '{BATCH_JOB_NAME}'); try again later.",
        )
    return batch


def batch_fan_out(*, batch: Batch, execution: Execution) -> list[int]:
    """Queue the chunk runs that share ``batch``'s pending images with its own
    run ``execution``; their ids are recorded on the batch (cancel cancels
    them). None when the batch is small, or the chunk job is paused or cannot
    be queued: the batch's own run then analyses every image."""
    count = chunk_runs_for(batch.images.filter(status=BatchImage.Status.PENDING).count())
    if not count:
        return []
    ids: list[int] = []
    try:
        with transaction.atomic():
            job = chunk_job()
            for _ in range(count):
                chunk = core.job_execute(job=job, actor_label=f"vision batch {batch.pk}",
                                         override_kwargs={"batch_id": str(batch.pk),
                                                          "parent_execution_id": execution.pk})
                ids.append(chunk.pk)
            Batch.objects.filter(pk=batch.pk).update(chunk_execution_ids=[*(batch.chunk_execution_ids or []), *ids])
    except (Conflict, ApplicationError) as exc:  # paused, or the broker is down: this run does it all
        logger.warning("batch %s: no chunk runs (%s); its own run analyses every image", batch.pk, exc)
        batch.refresh_from_db()
        return []
    batch.chunk_execution_ids = [*(batch.chunk_execution_ids or []), *ids]
    return ids


def batch_run(*, execution: Execution, batch_id: str) -> RunResult:
    """The vision.batch executor's run: queue the chunk runs, analyse the stored
    batch with them, write the report."""
    batch = Batch.objects.filter(pk=batch_id).first()
    if batch is None:
        return RunResult(ok=False, output=f"Batch {batch_id} was deleted before it ran.")
    if batch.status not in Batch.ACTIVE_STATUSES:
        return RunResult(ok=False, output=f"Batch {batch_id} is already {batch.status}.", batch_id=str(batch.pk))
    chunks = batch_fan_out(batch=batch, execution=execution)

    def stopped() -> bool:
        return not core.execution_is_running(execution=execution)

    try:
        batch = batch_analyze(batch=batch, should_stop=stopped, execution=execution)
    except AnalysisTimeout as exc:
        return RunResult(ok=False, output=str(exc), batch_id=str(batch.pk))
    ok = batch.status == Batch.Status.COMPLETED
    mine = BatchImage.objects.filter(batch=batch, claimed_by=execution).count()
    output = (f"Analysed {batch.processed_images - batch.failed_images} of {batch.total_images} images, "
              f"{batch.flagged_images} with findings" if ok else f"Batch failed: {batch.error}")
    if ok and chunks:
        output += f" ({mine} here, the rest in {len(chunks)} chunk runs)"
    return RunResult(ok=ok, output=output, batch_id=str(batch.pk),
                     result={"batch_id": str(batch.pk), "total_images": batch.total_images,
                             "failed_images": batch.failed_images, "flagged_images": batch.flagged_images,
                             "chunk_execution_ids": chunks, "analysed_here": mine})


def batch_chunk_run(*, execution: Execution, batch_id: str, parent_execution_id: int) -> RunResult:
    """A vision.batch-chunk run: analyse pending images of the batch while its own run goes on."""
    batch = Batch.objects.filter(pk=batch_id).first()
    if batch is None:
        return RunResult(output=f"Nothing to do: batch {batch_id} was deleted.")
    runs = [execution.pk, int(parent_execution_id)]

    def stopped() -> bool:  # this run cancelled, or the batch's own run gone (cancelled, failed, finished)
        return Execution.objects.filter(pk__in=runs, status=Execution.Status.RUNNING).count() < len(runs)

    if batch.status not in Batch.ACTIVE_STATUSES or stopped():
        return RunResult(output=f"Nothing to do: batch {batch.pk} is {batch.effective_status}.", batch_id=str(batch.pk))
    context = analyzers.BatchContext(user_query=batch.user_query, descriptions=batch.descriptions or {})
    analysed = 0
    try:
        analysed = _work(batch, analyzers.get(batch.model), context, claimer_id=execution.pk, paths={},
                         deadline=None, timeout_seconds=0, should_stop=stopped)
    except BatchStopped:
        return RunResult(output=f"Stopped: batch {batch.pk} is no longer being analysed.", batch_id=str(batch.pk),
                         result={"batch_id": str(batch.pk), "analysed": analysed})
    return RunResult(output=f"Analysed {analysed} images of batch {batch.pk}", batch_id=str(batch.pk),
                     result={"batch_id": str(batch.pk), "analysed": analysed})


def batch_cancel(*, batch: Batch, actor) -> Batch:
    """Cancel a pending or processing batch: its run and its chunk runs are
    cancelled (revoked) by the core."""
    if batch.effective_status not in Batch.ACTIVE_STATUSES or batch.execution is None \
            or batch.source != Batch.Source.API:
        raise ApplicationError(f"Batch {batch.pk} is {batch.effective_status}; only pending or processing batches "
                               f"uploaded through the API can be cancelled.", status=409,
                               code=ErrorCode.BATCH_NOT_ACTIVE)
    by = {"actor": actor if getattr(actor, "pk", None) else None, "actor_label": getattr(actor, "username", "")}
    runs = [batch.execution, *Execution.objects.filter(pk__in=batch.chunk_execution_ids or [],
                                                       status__in=Execution.ACTIVE_STATUSES)]
    for run in runs:
        try:
            core.execution_cancel(execution=run, reason="batch cancelled through the API", **by)
        except Conflict:
            pass  # finished meanwhile
    _batch_fail(batch, "Cancelled", cancelled=True)
    batch.refresh_from_db()
    return batch


# -- a remote backend (backend_api_url names another installation) --------
REMOTE_POLL_SECONDS = 2.0


def remote_batch(*, config: ProcessorConfig, analysis: external.Analysis, files, descriptions: dict[str, str],
                 deadline: float) -> tuple[str, bytes]:
    """Create the batch on the backend at ``backend_api_url`` over HTTP, wait for
    it, and return (batch_id, report bytes)."""
    import json

    base = config.backend_api_url.rstrip("/")
    headers = {"Authorization": f"Bearer {config.backend_api_key}"} if config.backend_api_key else {}
    secrets = (config.external_api_key, config.backend_api_key)
    handles = [open(item.path, "rb") for item in files]
    try:
        response = http.request(
            "POST", f"{base}/api/v1/vision/batches", headers=headers, timeout=(10.0, 300.0),
            data={"user_query": analysis.user_query, "descriptions": json.dumps(descriptions),
                  "organization_id": analysis.organization_id, "model": config.analyzer},
            files=[("images", (item.name, handle, "application/octet-stream")) for item, handle in zip(files, handles)],
        )
        batch_id = response.json()["batch_id"]
        while True:
            _check_deadline(deadline, config.analysis_timeout_seconds)
            status = http.get_json(f"{base}/api/v1/vision/batches/{batch_id}", headers=headers)
            if status.get("status") == Batch.Status.COMPLETED:
                break
            if status.get("status") in (Batch.Status.FAILED, Batch.Status.CANCELLED):
                raise external.ExternalAPIError(f"Remote batch {batch_id} {status.get('status')}: "
                                                f"{status.get('error') or ''}".strip())
            time.sleep(REMOTE_POLL_SECONDS)
        report = http.request("GET", f"{base}/api/v1/vision/batches/{batch_id}/report", headers=headers,
                              timeout=(10.0, 120.0))
        return str(batch_id), report.content
    except http.HTTPStatusError as exc:
        raise external.ExternalAPIError(f"Backend API returned {exc.status_code}") from None
    except http.OutboundHTTPError as exc:
        raise external.ExternalAPIError(external.scrub(f"Backend API failed: {exc}", *secrets)) from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise external.ExternalAPIError("Backend API answered something that is not a batch") from None
    finally:
        for handle in handles:
            handle.close()
