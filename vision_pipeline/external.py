"""The external document API of seeds 000/001, through jobsite.http.

- ``fetch_unprocessed``: GET ``{get_url}?is_processed=false&page=N&page_size=M``
  with ``Authorization: Bearer {key}``, every page, envelope checked
  (``code`` 200, ``status`` "success", ``data.vision_analysis`` a list), each
  item checked on its own (a bad item is reported, the others go on), items of
  other organizations and processed ones left out.
- ``download_documents``: the analysis's input images (in parallel, size-capped)
  and its optional descriptions JSON. The Bearer key is sent only to the
  external API's own origin, never to a storage host named in a document.
- ``upload_report``: POST multipart ``file`` (``report_{batch_id}.html``,
  text/html), ``organization_id``, ``vision_analysis_id`` with the Bearer key.

Retries (connection errors and 5xx, backoff), timeouts, the size caps and the
SSRF guard are jobsite.http's. Messages never carry the key: the client
redacts URLs and headers, and ``scrub`` takes the key out of anything else.
"""
from __future__ import annotations

import json
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from jobsite import http
from jobsite.parsers import nesting_depth, unstorable_value
from jobsite.redaction import redact_values

logger = logging.getLogger(__name__)

MAX_PAGES = 1000
ENVELOPE_MAX_BYTES = 20 * 1024 * 1024
UPLOAD_TIMEOUT = (10.0, 120.0)


class ExternalAPIError(Exception):
    """The external API could not be used; the message is safe to show."""


@dataclass
class Document:
    name: str
    path: str  # the URL
    type: str
    is_input: bool


@dataclass
class Analysis:
    vision_analysis_id: str
    run_code: str = ""
    organization_id: str = ""
    organization_name: str = ""
    user_query: str = ""
    documents: list[Document] = field(default_factory=list)

    @property
    def images(self) -> list[Document]:
        return [d for d in self.documents if d.type == "image" and d.is_input]

    @property
    def descriptions_document(self) -> Document | None:
        return next((d for d in self.documents if d.type == "json" and d.is_input), None)


@dataclass
class FetchResult:
    analyses: list[Analysis]
    invalid: list[dict[str, str]]  # {"vision_analysis_id": ..., "error": ...}
    pages: int
    skipped_other_organization: int = 0


def scrub(text: str, *secrets: str) -> str:
    """``text`` with every secret replaced by ``***`` (and URLs redacted)."""
    return redact_values(http.redact_text(str(text)), secrets)  # whole tokens: "Backend" keeps its "end"


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)


def _http_failure(what: str, exc: http.OutboundHTTPError) -> str:
    if isinstance(exc, http.HTTPStatusError) and exc.status_code is not None:
        return f"{what} returned {exc.status_code}"
    return f"{what} failed: {exc.detail}"


# ---------------------------------------------------------------------------
# GET: unprocessed analyses
# ---------------------------------------------------------------------------
def _check_envelope(payload: Any) -> tuple[list, Any]:
    if not isinstance(payload, dict):
        raise ExternalAPIError("External API returned a malformed envelope: the body is not a JSON object")
    if payload.get("code") != 200:
        raise ExternalAPIError(f"External API returned a malformed envelope: code is {payload.get('code')!r}, not 200")
    if payload.get("status") != "success":
        raise ExternalAPIError(f"External API returned a malformed envelope: status is {payload.get('status')!r}, "
                               f"not 'success'")
    data = payload.get("data")
    if not isinstance(data, dict):
        raise ExternalAPIError("External API returned a malformed envelope: data is not an object")
    items = data.get("vision_analysis")
    if not isinstance(items, list):
        raise ExternalAPIError("External API returned a malformed envelope: data.vision_analysis is not a list")
    return items, data.get("total")


def _text(item: dict, name: str, *, required: bool = False, limit: int = 10_000) -> str:
    value = item.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValueError(f"{name} must be a non-empty string" if required else f"{name} must be a string")
    problem = unstorable_value(value, name)
    if problem:
        raise ValueError(problem)
    return value[:limit]


def parse_analysis(item: Any) -> Analysis:
    """One item of ``data.vision_analysis``, checked (ValueError naming the field)."""
    if not isinstance(item, dict):
        raise ValueError("the item is not an object")
    analysis = Analysis(
        vision_analysis_id=_text(item, "vision_analysis_id", required=True, limit=100),
        run_code=_text(item, "vision_analysis_run_code", limit=200),
        organization_id=_text(item, "organization_id", limit=100),
        organization_name=_text(item, "organization_name", limit=200),
        user_query=_text(item, "user_query"),
    )
    documents = item.get("documents")
    if not isinstance(documents, list):
        raise ValueError("documents must be a list")
    for index, document in enumerate(documents):
        if not isinstance(document, dict):
            raise ValueError(f"documents[{index}] is not an object")
        try:
            path = _text(document, "document_path", required=True, limit=4000)
            name = _text(document, "document_name", limit=255) or os.path.basename(urlsplit(path).path)
            doc_type = _text(document, "document_type", required=True, limit=20).lower()
        except ValueError as exc:
            raise ValueError(f"documents[{index}].{exc}") from None
        is_input = document.get("is_input", True)
        if not isinstance(is_input, bool):
            raise ValueError(f"documents[{index}].is_input must be true or false")
        if urlsplit(path).scheme.lower() not in ("http", "https"):
            raise ValueError(f"documents[{index}].document_path is not an http(s) URL")
        analysis.documents.append(Document(name=name, path=path, type=doc_type, is_input=is_input))
    if not analysis.images:
        raise ValueError("no input image among the documents")
    return analysis


def fetch_unprocessed(*, get_url: str, key: str, organization_id: str, page_size: int | None = None,
                      timeout: float | tuple[float, float] | None = None) -> FetchResult:
    """Every unprocessed analysis of ``organization_id``, all pages."""
    page_size = int(page_size or settings.VISION_EXTERNAL_PAGE_SIZE)
    analyses: list[Analysis] = []
    invalid: list[dict[str, str]] = []
    seen: set[str] = set()
    other_org = 0
    page = 1
    wanted = organization_id.strip().lower()
    while page <= MAX_PAGES:
        try:
            payload = http.get_json(get_url, params={"is_processed": "false", "page": page, "page_size": page_size},
                                    headers=_auth(key), timeout=timeout, max_bytes=ENVELOPE_MAX_BYTES)
        except http.HTTPStatusError as exc:
            raise ExternalAPIError(_http_failure("External API", exc)) from None
        except http.OutboundHTTPError as exc:
            raise ExternalAPIError(scrub(f"External API request failed: {exc}", key)) from None
        items, total = _check_envelope(payload)
        new = 0
        for index, item in enumerate(items):
            raw_id = item.get("vision_analysis_id") if isinstance(item, dict) else None
            if isinstance(raw_id, str) and raw_id in seen:
                continue  # a server that ignores `page` repeats itself
            if isinstance(raw_id, str):
                seen.add(raw_id)
            new += 1
            if isinstance(item, dict) and item.get("is_processed") is True:
                continue
            try:
                analysis = parse_analysis(item)
            except ValueError as exc:
                label = raw_id if isinstance(raw_id, str) and raw_id else f"page {page} item {index + 1}"
                invalid.append({"vision_analysis_id": str(label)[:100], "error": f"invalid item: {exc}"})
                continue
            if wanted and analysis.organization_id.strip().lower() not in ("", wanted):
                other_org += 1
                continue
            if not analysis.organization_id:
                analysis.organization_id = organization_id
            analyses.append(analysis)
        done = (not items or new == 0 or len(items) < page_size
                or (isinstance(total, int) and total > 0 and len(seen) >= total))
        if done:
            break
        page += 1
    return FetchResult(analyses=analyses, invalid=invalid, pages=page, skipped_other_organization=other_org)


# ---------------------------------------------------------------------------
# Downloads
# ---------------------------------------------------------------------------
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(name: str, index: int) -> str:
    base = _UNSAFE.sub("_", os.path.basename(name or "")).strip("._") or "image"
    return f"{index:04d}_{base[:120]}"


@dataclass
class Downloaded:
    name: str  # document_name
    path: Path


def download_image(document: Document, target: Path, *, key: str, api_url: str,
                   timeout: float | tuple[float, float] | None = None) -> Downloaded:
    """One input image into ``target``, capped at ``VISION_MAX_IMAGE_BYTES``
    (ExternalAPIError naming the image when it cannot be had)."""
    headers = _auth(key) if _same_origin(document.path, api_url) else {}
    try:
        http.download(document.path, target, max_bytes=int(settings.VISION_MAX_IMAGE_BYTES), headers=headers,
                      timeout=timeout)
    except http.HTTPStatusError as exc:
        raise ExternalAPIError(f"Image {document.name}: download returned {exc.status_code}") from None
    except http.OutboundHTTPError as exc:
        raise ExternalAPIError(scrub(f"Image {document.name}: {exc.detail}", key)) from None
    return Downloaded(name=document.name, path=target)


def download_images(analysis: Analysis, *, dest: Path, key: str, api_url: str,
                    timeout: float | tuple[float, float] | None = None) -> list[Downloaded]:
    """Every input image, ``VISION_DOWNLOAD_CONCURRENCY`` at a time, each capped
    at ``VISION_MAX_IMAGE_BYTES``. The first failure fails the analysis (its
    report would be incomplete): ExternalAPIError naming the image. (A run in
    the worker streams them into its batch instead: services.feed.)"""
    dest.mkdir(parents=True, exist_ok=True)
    documents = analysis.images

    def fetch(item: tuple[int, Document]) -> Downloaded:
        index, document = item
        return download_image(document, dest / safe_filename(document.name, index), key=key, api_url=api_url,
                              timeout=timeout)

    workers = max(1, min(int(settings.VISION_DOWNLOAD_CONCURRENCY), len(documents)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vision-download") as pool:
        return list(pool.map(fetch, enumerate(documents)))


def download_descriptions(analysis: Analysis, *, dest: Path, key: str, api_url: str,
                          timeout: float | tuple[float, float] | None = None) -> dict[str, str]:
    """The descriptions file (``{filename: description}``), or {} when there is none."""
    document = analysis.descriptions_document
    if document is None:
        return {}
    headers = _auth(key) if _same_origin(document.path, api_url) else {}
    try:
        response = http.request("GET", document.path, headers=headers, timeout=timeout,
                                max_bytes=int(settings.VISION_MAX_DESCRIPTIONS_BYTES))
    except http.HTTPStatusError as exc:
        raise ExternalAPIError(f"Descriptions {document.name}: download returned {exc.status_code}") from None
    except http.OutboundHTTPError as exc:
        raise ExternalAPIError(scrub(f"Descriptions {document.name}: {exc.detail}", key)) from None
    return parse_descriptions(response.content, name=document.name)


def parse_descriptions(raw: bytes | str, *, name: str = "descriptions") -> dict[str, str]:
    """A descriptions document: a flat JSON object of file name → description.
    Its nesting is measured before it is decoded (the decoder recurses once per
    level), and text no database can hold (NUL, unpaired surrogates) is refused."""
    shape = f"Descriptions {name}: must be a JSON object of file name → description strings"
    try:
        text = raw.decode(json.detect_encoding(raw)) if isinstance(raw, bytes) else raw
        if nesting_depth(text) > 1:
            raise ExternalAPIError(f"{shape}, not nested objects or lists")
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise ExternalAPIError(f"Descriptions {name}: not valid JSON") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ExternalAPIError(shape)
    problem = unstorable_value(data)
    if problem:
        raise ExternalAPIError(f"Descriptions {name}: {problem}")
    return {k[:255]: v[:5000] for k, v in data.items()}


# ---------------------------------------------------------------------------
# POST: the report
# ---------------------------------------------------------------------------
def upload_report(*, post_url: str, key: str, batch_id: str, html: bytes, organization_id: str,
                  vision_analysis_id: str) -> int:
    """POST the report; returns the answer's status code (ExternalAPIError on failure).

    Retried on connection errors and 5xx like a GET (``retry_post``): the
    external API files reports by vision_analysis_id, so a repeated upload
    replaces the same report, while a lost one leaves the analysis unprocessed."""
    try:
        response = http.request(
            "POST", post_url, headers=_auth(key), retry_post=True, timeout=UPLOAD_TIMEOUT, max_bytes=1024 * 1024,
            data={"organization_id": organization_id, "vision_analysis_id": vision_analysis_id},
            files={"file": (f"report_{batch_id}.html", html, "text/html")},
        )
    except http.HTTPStatusError as exc:
        raise ExternalAPIError(_http_failure("Report upload", exc)) from None
    except http.OutboundHTTPError as exc:
        raise ExternalAPIError(scrub(f"Report upload failed: {exc}", key)) from None
    return response.status_code
