"""Services of the vision pipeline: the only code here that writes. One
concern a module; callers keep ``from vision_pipeline import services``.

- ``cron_jobs``: ``/cron-jobs`` (seed 000) jobs on the core.
- ``config``, ``flow``, ``remote``: the flow a cron run and the one-shot
  processor share, with a local or a remote batch backend.
- ``analysis``, ``claims``, ``storage``, ``deadlines``: a batch's analysis,
  shared image by image between the runs that work on it.
- ``batches``: batches made through the API, runs of manual jobs.
"""
from vision_pipeline.services.analysis import batch_analyze, batch_create, batch_fail
from vision_pipeline.services.batches import (
    BATCH_JOB_NAME, BATCH_KIND, CHUNK_JOB_NAME, CHUNK_KIND, batch_cancel, batch_chunk_run, batch_fan_out, batch_job,
    batch_run, batch_submit, chunk_job, chunk_runs_for,
)
from vision_pipeline.services.config import (
    BACKEND_SECRET_NAME, DEFAULT_BACKEND_URL, SECRET_KEY_NAME, ProcessorConfig, is_this_server,
)
from vision_pipeline.services.cron_jobs import (
    check_outbound_urls, cron_job_create, cron_job_delete, cron_job_set_enabled, outbound_url_problems,
)
from vision_pipeline.services.deadlines import AnalysisTimeout, BatchStopped
from vision_pipeline.services.flow import ProcessSummary, cron_run, process_analyses, process_one
from vision_pipeline.services.remote import remote_batch
from vision_pipeline.services.storage import batch_report_file, batch_report_path, storage_dir

__all__ = [
    "AnalysisTimeout", "BACKEND_SECRET_NAME", "BATCH_JOB_NAME", "BATCH_KIND", "BatchStopped", "CHUNK_JOB_NAME",
    "CHUNK_KIND", "DEFAULT_BACKEND_URL", "ProcessSummary", "ProcessorConfig", "SECRET_KEY_NAME", "batch_analyze",
    "batch_cancel", "batch_chunk_run", "batch_create", "batch_fail", "batch_fan_out", "batch_job",
    "batch_report_file", "batch_report_path", "batch_run", "batch_submit", "check_outbound_urls", "chunk_job", "chunk_runs_for",
    "cron_job_create", "cron_job_delete", "cron_job_set_enabled", "cron_run", "is_this_server",
    "outbound_url_problems", "process_analyses", "process_one", "remote_batch", "storage_dir",
]
