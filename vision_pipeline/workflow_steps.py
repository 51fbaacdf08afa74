"""The ``vision_analysis`` workflow step: analyse images fetched from URLs as a vision batch.

Found by the workflows app (docs/architecture.md, "Workflow step types")
without either app importing the other: this module only lists the type, built
on the core's step-type base (scheduling.steps).
The step downloads every image through the one outbound client (SSRF guard
on every hop, size cap ``VISION_MAX_IMAGE_BYTES``, ≤ 8 at a time), checks
that each really is an image under the pixel limit, then files them exactly
like an upload to ``POST /api/v1/vision/batches`` on behalf of the
workflow's owner; the batch is analysed as its own run (``vision.batch``,
with chunk runs for a large one). The step's output is the batch id and
where to follow it, for later steps (``${steps.<name>.output.batch_id}``).
"""
from __future__ import annotations

import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.conf import settings
from rest_framework import serializers

from jobsite import http
from jobsite.exceptions import error_message
from scheduling.steps import StepField, StepType

URL_PATTERN = re.compile(r"^https?://", re.IGNORECASE)


class VisionAnalysisStepConfig(serializers.Serializer):
    image_urls = serializers.ListField(
        child=serializers.CharField(max_length=2000), min_length=1,
        help_text="http(s) URLs of the images; each may use ${...}.")
    query = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000,
                                  help_text="What to look for (the batch's user_query); may use ${...}.")
    descriptions = serializers.DictField(child=serializers.CharField(max_length=2000, allow_blank=True),
                                         required=False, default=dict,
                                         help_text="File name (the URL's last path segment) → description.")
    model = serializers.CharField(required=False, default="inspector", max_length=64, help_text="GET /available_models.")
    organization_id = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)

    def validate_image_urls(self, value):
        limit = settings.VISION_MAX_IMAGES_PER_BATCH
        if len(value) > limit:
            raise serializers.ValidationError(f"At most {limit} images per batch (VISION_MAX_IMAGES_PER_BATCH).")
        return value

    def validate_model(self, value):
        from vision_pipeline import analyzers

        if value not in analyzers.names():
            raise serializers.ValidationError(f"Unknown model '{value}'. Use one of: {', '.join(analyzers.names())}.")
        return value


def _file_name(url: str, index: int, taken: set[str]) -> str:
    name = Path(unquote(urlsplit(url).path)).name.strip() or f"image{index + 1}"
    name = name[:200]
    if name in taken:
        stem, dot, ext = name.rpartition(".")
        name = f"{stem or name}-{index + 1}{dot}{ext}" if stem else f"{name}-{index + 1}"
    taken.add(name)
    return name


def _model_names() -> list[str]:
    from vision_pipeline import analyzers

    return list(analyzers.names())


class VisionAnalysisStep(StepType):
    """Download images from URLs and analyse them as one vision batch; the
    output is the batch's id and the address of its report."""

    type = "vision_analysis"
    label = "Vision analysis of images at URLs"
    templated_fields = ("image_urls", "query")
    url_fields = ("image_urls",)
    config_serializer = VisionAnalysisStepConfig
    fields = (
        StepField("image_urls", "list", "Image URLs", required=True,
                  placeholder="https://files.example.com/site-12/photo-1.jpg",
                  help="One http(s) URL a line; each may use ${...}."),
        StepField("query", "long_text", "What to look for", placeholder="Rust or cracks on the beams?",
                  help="The batch's question to the model; may use ${input}."),
        StepField("descriptions", "mapping", "Descriptions", placeholder="photo-1.jpg: north beam",
                  help="One 'file name: description' a line (the file name is the URL's last part)."),
        StepField("model", "text", "Model", default="inspector", suggestions=_model_names,
                  help="The analyzer (GET /available_models)."),
        StepField("organization_id", "text", "Organization id", help="Shown on the report (optional)."),
    )
    default_timeout_seconds = 600  # the downloads and the header checks; the analysis runs as the batch's own run

    def check(self, config: dict, *, owner) -> dict[str, list[str]]:
        problems = []
        for index, url in enumerate(config["image_urls"]):
            url = url.strip()
            if not URL_PATTERN.match(url):
                problems.append(
                    f"Item {index + 1}: must start with http:// or https:// (a placeholder may not supply the scheme).")
            elif "${" not in url:  # a templated URL is checked when it is known, at run time
                try:
                    http.check_url(url)
                except ValueError as exc:
                    problems.append(f"Item {index + 1}: {exc}")
        return {"image_urls": problems} if problems else {}

    def run(self, config: dict, context) -> dict:
        from vision_pipeline import services
        from vision_pipeline.images import ImageRefused, check_header

        data = VisionAnalysisStepConfig(data=config)
        data.is_valid(raise_exception=True)
        options = data.validated_data
        urls = [url.strip() for url in options["image_urls"]]
        for index, url in enumerate(urls):
            if not URL_PATTERN.match(url):
                raise RuntimeError(f"Image {index + 1}: '{http.redact_url(url)}' is not an http(s) URL.")
        taken: set[str] = set()
        names = [_file_name(url, index, taken) for index, url in enumerate(urls)]
        root = Path(settings.JOBS_TEMP_DIR)
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="jobsite-wf-vision-", dir=root) as tmp:
            targets = [Path(tmp) / f"{index:04d}" for index in range(len(urls))]

            def fetch(index: int) -> None:
                try:
                    http.download(urls[index], targets[index], max_bytes=settings.VISION_MAX_IMAGE_BYTES)
                except http.OutboundHTTPError as exc:
                    raise RuntimeError(f"Image {index + 1} ({names[index]}) could not be downloaded: {exc}") from None
                try:
                    check_header(targets[index], filename=names[index])
                except ImageRefused as exc:
                    raise RuntimeError(f"Image {index + 1}: {exc}") from None

            workers = max(1, min(int(settings.VISION_DOWNLOAD_CONCURRENCY), len(urls)))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wf-vision-download") as pool:
                for future in [pool.submit(fetch, index) for index in range(len(urls))]:
                    future.result()  # the first failure fails the step, with its message
            try:
                batch = services.batch_submit(
                    user=context.owner, files=list(zip(names, targets)), user_query=options["query"],
                    descriptions=options["descriptions"], model=options["model"],
                    organization_id=options["organization_id"],
                )
            except Exception as exc:  # refused as the batch API would refuse it, with its message
                raise RuntimeError(f"The batch was refused: {error_message(exc)}") from None
        return {"batch_id": str(batch.pk), "status": "pending", "total_images": batch.total_images,
                "status_url": f"/api/v1/vision/batches/{batch.pk}",
                "report_url": f"/api/v1/vision/batches/{batch.pk}/report"}


WORKFLOW_STEP_TYPES = [VisionAnalysisStep]
