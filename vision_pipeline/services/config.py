"""What one pass of the vision flow needs: where the external API and the
batch backend are, their keys, the analyzer and the limits
(``ProcessorConfig``), read from a ``/cron-jobs`` job or given by the
one-shot processor."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import validate_host

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
        return is_this_server(self.backend_api_url)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL, the port filled in; None for anything else."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def is_this_server(url: str) -> bool:
    """Whether a ``backend_api_url`` names this installation, whose batches are
    then made and analysed in-process: empty; the origin of ``JOBSITE_PUBLIC_URL``
    (the stack's own address) or of one of ``VISION_LOCAL_BACKEND_URLS``; or a
    host this site answers to (``ALLOWED_HOSTS``, a bare ``*`` aside: it would
    make every server this one) with the scheme and port of one of those origins."""
    if not (url or "").strip():
        return True
    target = _origin(url)
    if target is None:
        return False
    known = {origin for origin in map(_origin, [settings.JOBSITE_PUBLIC_URL, *settings.VISION_LOCAL_BACKEND_URLS])
             if origin is not None}
    if target in known:
        return True
    hosts = [host for host in settings.ALLOWED_HOSTS if host != "*"]
    scheme, host, port = target
    return (scheme, port) in {(known_scheme, known_port) for known_scheme, _host, known_port in known} \
        and validate_host(host, hosts)
