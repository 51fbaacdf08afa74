"""What one pass of the vision flow needs: where the external API and the
batch backend are, their keys, the analyzer and the limits
(``ProcessorConfig``), read from a ``/cron-jobs`` job or given by the
one-shot processor."""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from scheduling import services as core
from scheduling.models import Job
from vision_pipeline import analyzers

SECRET_KEY_NAME = "external_api_key"
BACKEND_SECRET_NAME = "backend_api_key"
DEFAULT_BACKEND_URL = "http://localhost:8000"


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
