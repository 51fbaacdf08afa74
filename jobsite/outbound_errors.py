"""What the outbound HTTP client (jobsite.http) raises.

Every error is an ``OutboundHTTPError`` with a ``reason`` (``blocked``,
``timeout``, ``connection``, ``too_large``, ``status``, ``redirects``,
``error``) and a message naming the redacted URL and what happened. Callers
catch them as ``jobsite.http.<Name>``; they live here so that the SSRF guard
(jobsite.outbound_guard) and the client can both raise them.
"""
from __future__ import annotations

import requests

from jobsite.redaction import redact_url


class OutboundHTTPError(Exception):
    """An outbound request failed. ``str()`` names the redacted URL and what
    happened; ``detail`` is what happened alone (for short summaries).

    The only positional argument is the full message, so the exception
    pickles and rebuilds like any other (Celery result backends)."""

    reason = "error"

    def __init__(self, message: str, *, url: str = "", detail: str = "", response: requests.Response | None = None):
        super().__init__(message)
        self.url = url
        self.detail = detail or message
        self.response = response

    @classmethod
    def for_url(cls, method: str | None, url: str, detail: str, **kwargs):
        shown = redact_url(url)
        return cls(f"{method} {shown}: {detail}" if method else f"{shown}: {detail}", url=shown, detail=detail,
                   **kwargs)


class BlockedURL(OutboundHTTPError, ValueError):
    """The URL is refused by policy (scheme, SSRF guard, deny list). A
    ``ValueError`` too, so validating code can treat it as bad input."""

    reason = "blocked"


class OutboundTimeout(OutboundHTTPError):
    reason = "timeout"


class OutboundConnectionError(OutboundHTTPError):
    reason = "connection"


class ResponseTooLarge(OutboundHTTPError):
    reason = "too_large"


class TooManyRedirects(OutboundHTTPError):
    reason = "redirects"


class HTTPStatusError(OutboundHTTPError):
    """A 4xx/5xx answer (after any retries). ``response`` holds it, body read under the cap."""

    reason = "status"

    @property
    def status_code(self) -> int | None:
        return self.response.status_code if self.response is not None else None
