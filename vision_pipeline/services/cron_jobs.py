"""``/cron-jobs`` (seed 000): jobs of kind ``vision_analysis`` on the core,
written only through ``scheduling.services``; the external API key is the
job's encrypted secret (``job_set_secrets``/``job_secrets``)."""
from __future__ import annotations

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from jobsite import http
from scheduling import services as core
from scheduling.models import Job
from vision_pipeline import analyzers
from vision_pipeline.selectors import KIND
from vision_pipeline.services.config import BACKEND_SECRET_NAME, DEFAULT_BACKEND_URL, SECRET_KEY_NAME, is_this_server


def _rename(errors: ValidationError) -> ValidationError:
    """The core names its fields; the seed names them differently."""
    names = {"schedule_expression": "schedule", "title": "name", "is_enabled": "enabled"}
    return ValidationError({names.get(k, k): v for k, v in errors.message_dict.items()})


def _by(actor) -> dict:
    """The core's actor arguments for ``actor`` (a user, or None/anonymous: the system)."""
    return {"actor": actor if getattr(actor, "pk", None) else None,
            "actor_label": getattr(actor, "username", "") or "system"}


URL_FIELDS = ("external_api_get_url", "external_api_post_url", "backend_api_url")


def outbound_url_problems(values: dict) -> dict[str, list[str]]:
    """Field → messages for each URL of ``values`` (``URL_FIELDS``) that the
    SSRF guard would refuse. A ``backend_api_url`` naming this installation is
    never called over HTTP (its batches run in-process), so it passes."""
    problems: dict[str, list[str]] = {}
    for field_name in URL_FIELDS:
        url = values.get(field_name)
        if not isinstance(url, str) or not url or (field_name == "backend_api_url" and is_this_server(url)):
            continue
        try:
            http.check_url(url)
        except http.BlockedURL as exc:
            problems[field_name] = [exc.detail]
    return problems


def check_outbound_urls(values: dict) -> None:
    """A 400 naming every URL field of ``values`` the SSRF guard would refuse."""
    problems = outbound_url_problems(values)
    if problems:
        raise ValidationError(problems)


@transaction.atomic
def cron_job_create(
    *, actor, name: str, schedule: str, external_api_get_url: str, external_api_post_url: str,
    external_api_key: str, organization_id: str, backend_api_url: str = DEFAULT_BACKEND_URL, enabled: bool = True,
    analyzer: str = analyzers.DEFAULT, analysis_timeout_seconds: int | None = None, page_size: int | None = None,
    backend_api_key: str = "", timezone_name: str = "UTC",
) -> Job:
    """Create a ``vision_analysis`` job on a cron schedule; the key is stored encrypted."""
    from jobsite.tenancy import user_default_organization

    check_outbound_urls({"external_api_get_url": external_api_get_url, "external_api_post_url": external_api_post_url,
                         "backend_api_url": backend_api_url})
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
    by = _by(actor)
    owner = by["actor"]
    try:
        return core.job_create(
            **by, name=f"vision-{uuid.uuid4().hex[:16]}", title=name.strip(), kind=KIND,
            job_type=Job.JobType.VISION_ANALYSIS, schedule_type=Job.ScheduleType.CRON,
            schedule_expression=schedule, timezone=timezone_name, config=config, secrets=secrets,
            queue=settings.VISION_QUEUE, timeout_seconds=settings.VISION_JOB_TIMEOUT_SECONDS,
            is_enabled=enabled, owner=owner, organization=user_default_organization(owner),
            description=f"Vision analysis for organization {organization_id} (created through /cron-jobs).",
        )
    except ValidationError as exc:
        raise _rename(exc) from None


@transaction.atomic
def cron_job_set_enabled(*, job: Job, enabled: bool, actor=None) -> Job:
    return core.job_set_enabled(job=job, enabled=enabled, **_by(actor))


@transaction.atomic
def cron_job_delete(*, job: Job, actor=None) -> None:
    core.job_delete(job=job, **_by(actor))
