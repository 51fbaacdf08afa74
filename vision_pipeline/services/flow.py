"""The flow a ``/cron-jobs`` run (``cron_run``, in the worker) and the one-shot
processor (``process_analyses``) share: fetch every unprocessed analysis, and
for each one download, make a Batch (here, or on a remote backend), analyse,
render, upload. One failing analysis is recorded and the next one runs."""
from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from scheduling.executors import RunResult
from scheduling.models import Execution, Job
from vision_pipeline import analyzers, external
from vision_pipeline.images import ImageRefused, check_header
from vision_pipeline.models import Batch
from vision_pipeline.services.analysis import batch_analyze, batch_create, batch_fail, batch_forget_images
from vision_pipeline.services.batches import batch_fan_out, chunk_runs_for
from vision_pipeline.services.config import ProcessorConfig
from vision_pipeline.services.deadlines import AnalysisTimeout, check_deadline
from vision_pipeline.services.feed import ImageFeed
from vision_pipeline.services.progress import RunProgress
from vision_pipeline.services.remote import remote_batch
from vision_pipeline.services.storage import batch_report_path

logger = logging.getLogger(__name__)


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
    progress = RunProgress(execution, total_images=sum(len(analysis.images) for analysis in fetched.analyses))
    try:
        for index, analysis in enumerate(fetched.analyses):
            result = process_one(analysis, config=config, workdir=workdir / f"{index:03d}", execution=execution,
                                 owner=owner, organization=organization, source=source, log=log, progress=progress)
            summary.results.append(result)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return summary


def process_one(analysis: external.Analysis, *, config: ProcessorConfig, workdir: Path,
                execution: Execution | None, owner, organization, source: str,
                log: logging.Logger = logger, progress: RunProgress | None = None) -> dict[str, Any]:
    """Download, analyse, render and upload one analysis; never raises.

    With the local backend the images stream into the batch as they download
    (services.feed) and, in the worker, a large analysis's chunk runs are
    queued before the first image lands: they and this run analyse the first
    images while the rest download."""
    key = config.external_api_key
    started = time.monotonic()
    deadline = started + config.analysis_timeout_seconds
    result: dict[str, Any] = {"vision_analysis_id": analysis.vision_analysis_id, "run_code": analysis.run_code,
                              "images": len(analysis.images), "batch_id": None}
    batch = feed = None
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        descriptions = external.download_descriptions(analysis, dest=workdir, key=key,
                                                      api_url=config.external_api_get_url)
        check_deadline(deadline, config.analysis_timeout_seconds)
        if config.backend_is_local:
            # A run in the worker shares a large analysis with chunk runs, as an API
            # batch does (services.batches); they read the images from storage, so
            # they are stored for the analysis and removed after it.
            spread = execution is not None and chunk_runs_for(len(analysis.images)) > 0
            batch = batch_create(
                source=source, files=[], arriving=[document.name for document in analysis.images],
                user_query=analysis.user_query, descriptions=descriptions, model=config.analyzer,
                execution=execution, owner=owner, organization=organization,
                vision_analysis_id=analysis.vision_analysis_id, run_code=analysis.run_code,
                external_organization_id=analysis.organization_id, organization_name=analysis.organization_name,
                store_images=spread,
            )
            result["batch_id"] = str(batch.pk)
            try:
                if spread:
                    # Queued before the downloads start: queueing a run from this thread while
                    # 8 download threads share its GIL took ~40 ms a run, against ~3 ms
                    # without them (docs/benchmarks.md, 2026-12-08).
                    batch_fan_out(batch=batch, execution=execution)  # their ids are on the batch
                feed = ImageFeed(batch, analysis.images, store=spread, workdir=workdir, key=key,
                                 api_url=config.external_api_get_url).start()
                batch = batch_analyze(batch=batch, feed=feed, deadline=deadline,
                                      timeout_seconds=config.analysis_timeout_seconds, execution=execution,
                                      progress=progress)
            except Exception as exc:
                # a failed download (or worse): the batch fails first, which stops its
                # chunk runs (they wait while its images arrive), then its copies go
                batch_fail(batch, _failure_text(exc, key))
                raise
            finally:
                if feed is not None:
                    feed.close()
                if spread:
                    batch_forget_images(batch)
            if batch.status != Batch.Status.COMPLETED:
                raise external.ExternalAPIError(f"Batch {batch.pk} failed: {batch.error}")
            html = Path(batch_report_path(batch)).read_bytes()
            result.update(flagged=batch.flagged_images, failed_images=batch.failed_images)
        else:
            files = external.download_images(analysis, dest=workdir, key=key, api_url=config.external_api_get_url)
            for item in files:
                try:
                    check_header(item.path, filename=item.name)
                except ImageRefused as exc:
                    raise external.ExternalAPIError(f"Image {exc}") from None
            check_deadline(deadline, config.analysis_timeout_seconds)
            batch_id, html = remote_batch(config=config, analysis=analysis, files=files, descriptions=descriptions,
                                          deadline=deadline)
            result["batch_id"] = batch_id
        check_deadline(deadline, config.analysis_timeout_seconds)
        external.upload_report(post_url=config.external_api_post_url, key=key, batch_id=result["batch_id"],
                               html=html, organization_id=analysis.organization_id or config.organization_id,
                               vision_analysis_id=analysis.vision_analysis_id)
        result["status"] = "success"
        result["report_bytes"] = len(html)
    except AnalysisTimeout as exc:
        result.update(status="timeout", error=str(exc))
    except (external.ExternalAPIError, ImageRefused, analyzers.ModelError) as exc:
        result.update(status="failed", error=external.scrub(str(exc), key))
    except Exception as exc:  # one analysis never stops the others
        log.exception("analysis %s failed unexpectedly", analysis.vision_analysis_id)
        result.update(status="error", error=_failure_text(exc, key))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if progress is not None:
        failed = len(analysis.images) if result["status"] != "success" else result.get("failed_images", 0)
        progress.end_batch(len(analysis.images), failed)
    result["seconds"] = round(time.monotonic() - started, 2)
    log.info("analysis %s: %s%s", analysis.vision_analysis_id, result["status"],
             f" ({result['error']})" if result.get("error") else "")
    return result


def _failure_text(exc: Exception, key: str) -> str:
    known = (AnalysisTimeout, external.ExternalAPIError, ImageRefused, analyzers.ModelError)
    return external.scrub(str(exc) if isinstance(exc, known) else f"{type(exc).__name__}: {exc}", key)


def cron_run(*, job: Job, execution: Execution) -> RunResult:
    """One run of a ``vision_analysis`` job (the executor's ``run``)."""
    summary = process_analyses(config=ProcessorConfig.for_job(job), execution=execution, owner=job.owner,
                               organization=job.organization)
    batch_ids = summary.batch_ids
    statuses = {result.get("status") for result in summary.results if result.get("status") != "success"}
    # seed 000's "timeout": every analysis that did not succeed ran out of time
    status = RunResult.Outcome.TIMEOUT if not summary.error and statuses == {"timeout"} else None
    return RunResult(output=summary.output, result=summary.as_result(), ok=summary.ok,
                     batch_id=batch_ids[0] if batch_ids else None, status=status)
