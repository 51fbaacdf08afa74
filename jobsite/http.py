"""The one outbound HTTP client (DESIGN §1, §4 "Outbound HTTP").

Every call out of the project goes through here, so that the rules hold
everywhere at once:

- **Timeouts**: connect and read, ``OUTBOUND_HTTP_TIMEOUT`` seconds unless a
  call passes ``timeout`` (a number, or a ``(connect, read)`` pair).
- **Retries** with exponential backoff on connection errors (including connect
  timeouts) and 5xx answers, never on 4xx, nor on a read timeout (the server
  got the request; waiting again would multiply the delay).
  ``OUTBOUND_HTTP_RETRIES`` times, for idempotent methods only unless
  ``retry_post=True``.
- **Size cap**: a body larger than ``OUTBOUND_HTTP_MAX_BYTES`` (or
  ``max_bytes``) raises ``ResponseTooLarge``, checked against Content-Length
  and again while streaming (the header may lie or be missing; decoded bytes
  are counted, so a gzip bomb is caught too).
- **SSRF guard** (jobsite.outbound_guard): only http(s) to public addresses
  unless allowed by setting, checked on every redirect hop and again on the
  address actually connected to. Redirects are followed here, one hop at a
  time. Environment proxies are ignored: through a proxy the peer would be
  the proxy, and the guard would check nothing.
- **Redaction** (jobsite.redaction): Authorization/Cookie/API-key headers,
  URL user info and query parameters named like token/key/secret/password/
  signature never appear in a log line or error message produced here (nor
  in urllib3's debug log lines, which get a redacting filter).

Errors are ``OutboundHTTPError`` subclasses (jobsite.outbound_errors), each
with a ``reason`` (``blocked``, ``timeout``, ``connection``, ``too_large``,
``status``, ``redirects``, ``error``) and a message naming the redacted URL
and what happened. Callers use them, ``check_url`` and the ``redact_*``
helpers through this module.
"""
from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings
from requests.utils import requote_uri
from urllib3.exceptions import DecodeError, HTTPError as Urllib3HTTPError, ReadTimeoutError

from jobsite.outbound_errors import (
    BlockedURL, HTTPStatusError, OutboundConnectionError, OutboundHTTPError, OutboundTimeout, ResponseTooLarge,
    TooManyRedirects,
)
from jobsite.outbound_guard import PeerRefused, allowing_hosts, check_url, guard_url, guarded_adapter, url_target
from jobsite.redaction import SECRET_NAME, redact_headers, redact_text, redact_url

__all__ = [
    "BlockedURL", "Download", "HTTPStatusError", "OutboundConnectionError", "OutboundHTTPError", "OutboundTimeout",
    "ResponseTooLarge", "TooManyRedirects", "check_url", "download", "get_json", "redact_headers", "redact_text",
    "redact_url", "request", "stream",
]

logger = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
MAX_REDIRECTS = 5
BACKOFF_SECONDS = 0.5  # first retry waits this long, then 2x, 4x, ... up to MAX_BACKOFF_SECONDS
MAX_BACKOFF_SECONDS = 10.0
CHUNK_BYTES = 64 * 1024
USER_AGENT = "jobsite"


# ---------------------------------------------------------------------------
# Sending: retries, redirects
# ---------------------------------------------------------------------------
def _timeouts(timeout: float | tuple[float, float] | None) -> tuple[float, float]:
    if timeout is None:
        timeout = float(settings.OUTBOUND_HTTP_TIMEOUT)
    connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    return float(connect), float(read)


def _backoff(attempt: int) -> float:
    return min(MAX_BACKOFF_SECONDS, BACKOFF_SECONDS * 2 ** attempt)


def _connection_problem(exc: BaseException) -> str:
    """A short, secret-free description of a connection failure, from the
    innermost OS error (never the library's message: it carries the URL)."""
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        reason = getattr(exc, "reason", None)
        nested = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
        exc = reason if isinstance(reason, BaseException) else (nested or exc.__cause__ or exc.__context__)
    for cause in reversed(chain):
        if isinstance(cause, socket.gaierror):
            return "cannot resolve the host"
        if isinstance(cause, OSError) and isinstance(cause.errno, int) and cause.strerror:
            return f"connection failed ({cause.strerror.lower()})"
    return "connection failed"


def _send_once(prepared: requests.PreparedRequest, timeout: tuple[float, float], extra_allow: tuple[str, ...],
               *, retries: int) -> requests.Response:
    """Send one hop, with its retries: connection errors and 5xx only."""
    method, url = prepared.method, prepared.url
    for attempt in range(retries + 1):
        started = time.monotonic()
        try:
            guard_url(url, extra_allow, method=method)  # BlockedURL goes straight up: never retried
            response = guarded_adapter().send(prepared, stream=True, timeout=timeout, verify=_verify(), proxies={})
        except OutboundConnectionError as exc:  # the host did not resolve
            error = exc
        except PeerRefused as exc:
            raise BlockedURL.for_url(method, url, str(exc)) from None
        except requests.ConnectTimeout:
            error = OutboundTimeout.for_url(method, url, f"connect timed out after {timeout[0]:g}s")
        except requests.Timeout:
            raise OutboundTimeout.for_url(method, url, f"no answer within {timeout[1]:g}s") from None
        except requests.exceptions.SSLError:
            raise OutboundConnectionError.for_url(method, url, "TLS handshake or certificate check failed") from None
        except requests.ConnectionError as exc:
            error = OutboundConnectionError.for_url(method, url, _connection_problem(exc))
        except requests.RequestException as exc:
            raise OutboundHTTPError.for_url(method, url, f"request failed ({type(exc).__name__})") from None
        else:
            elapsed_ms = (time.monotonic() - started) * 1000
            logger.debug("%s %s -> %s in %.0f ms", method, redact_url(url), response.status_code, elapsed_ms)
            if response.status_code < 500 or attempt == retries:
                return response
            response.close()
            error = OutboundHTTPError.for_url(method, url, f"HTTP {response.status_code}")
        if attempt == retries:
            raise error
        delay = _backoff(attempt)
        logger.warning("%s; retry %d of %d in %.1fs", error, attempt + 1, retries, delay)
        time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _verify() -> str | bool:
    # Without a Session, requests does not read the CA bundle variables itself.
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or ""), parts.port


def _redirect(prepared: requests.PreparedRequest, response: requests.Response) -> requests.PreparedRequest:
    """The request for the next hop, as a browser would make it: 303 (and
    301/302 after POST) become a body-less GET; credentials are not sent to
    another origin."""
    target = requote_uri(urljoin(prepared.url, response.headers["Location"]))
    following = prepared.copy()
    try:
        following.prepare_url(target, None)
    except (requests.RequestException, ValueError):
        raise BlockedURL.for_url(prepared.method, target, "redirected to an invalid URL") from None
    status = response.status_code
    if (status == 303 and prepared.method != "HEAD") or (status in (301, 302) and prepared.method == "POST"):
        following.method, following.body = "GET", None
        for name in ("Content-Type", "Content-Length", "Transfer-Encoding"):
            following.headers.pop(name, None)
    if _origin(following.url) != _origin(prepared.url):
        for name in [name for name in following.headers if SECRET_NAME.search(name)]:
            del following.headers[name]
    return following


def _open(method: str, url: str, *, headers, params, json, data, files, timeout, retries, allow_redirects,
          max_redirects, retry_post, extra_allow) -> requests.Response:
    method = method.upper()
    url_target(url, method)  # a clear refusal before requests says "No connection adapters"
    try:
        prepared = requests.Request(method, url, headers={"User-Agent": USER_AGENT, **(headers or {})},
                                    params=params, json=json, data=data, files=files).prepare()
    except (requests.RequestException, ValueError) as exc:
        raise OutboundHTTPError.for_url(method, url, f"cannot build the request ({type(exc).__name__})") from None
    logger.debug("%s %s headers=%s", method, redact_url(prepared.url), redact_headers(prepared.headers))
    retries = int(settings.OUTBOUND_HTTP_RETRIES if retries is None else retries)
    replayable = prepared.body is None or isinstance(prepared.body, (bytes, str))
    timeouts = _timeouts(timeout)
    history: list[requests.Response] = []
    while True:
        may_retry = replayable and (prepared.method in IDEMPOTENT_METHODS or retry_post)
        response = _send_once(prepared, timeouts, extra_allow, retries=retries if may_retry else 0)
        if not (allow_redirects and response.is_redirect):
            response.history = history
            return response
        response.close()
        history.append(response)
        if len(history) > max_redirects:
            raise TooManyRedirects.for_url(method, url, f"more than {max_redirects} redirects")
        prepared = _redirect(prepared, response)


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------
@contextmanager
def stream(method: str, url: str, *, headers: dict | None = None, params: Any = None, json: Any = None,
           data: Any = None, files: Any = None, timeout: float | tuple[float, float] | None = None,
           retries: int | None = None, allow_redirects: bool = True, max_redirects: int = MAX_REDIRECTS,
           retry_post: bool = False, raise_for_status: bool = True,
           allow_hosts: Iterable[str] = ()) -> Iterator[requests.Response]:
    """Send a request and yield the response with its body NOT read (for
    headers-only probes such as an SSE endpoint, or your own capped reading);
    the connection is closed on exit. Same arguments as ``request``."""
    response = None
    with allowing_hosts(allow_hosts):
        try:
            response = _open(method, url, headers=headers, params=params, json=json, data=data, files=files,
                             timeout=timeout, retries=retries, allow_redirects=allow_redirects,
                             max_redirects=max_redirects, retry_post=retry_post, extra_allow=tuple(allow_hosts))
            if raise_for_status and response.status_code >= 400:
                raise HTTPStatusError.for_url(method.upper(), url, f"HTTP {response.status_code} "
                                              f"{response.reason or ''}".strip(), response=response)
            yield response
        finally:
            if response is not None:
                response.close()


def request(method: str, url: str, *, headers: dict | None = None, params: Any = None, json: Any = None,
            data: Any = None, files: Any = None, timeout: float | tuple[float, float] | None = None,
            retries: int | None = None, max_bytes: int | None = None, allow_redirects: bool = True,
            max_redirects: int = MAX_REDIRECTS, retry_post: bool = False, raise_for_status: bool = True,
            allow_hosts: Iterable[str] = ()) -> requests.Response:
    """Send a request through the guard and return the ``requests.Response``
    with ``.content`` already read (at most ``max_bytes``).

    ``timeout``: seconds, or ``(connect, read)``; ``retries``: on connection
    errors and 5xx, idempotent methods only unless ``retry_post`` (for a POST
    or PATCH the server is known to deduplicate);
    ``raise_for_status``: a 4xx/5xx raises ``HTTPStatusError`` (its
    ``response`` has the body). ``allow_hosts`` adds allow-list entries for
    this call only: for targets an operator configured in settings (e.g.
    MCP_SERVER_URLS), never for user input.
    """
    with stream(method, url, headers=headers, params=params, json=json, data=data, files=files, timeout=timeout,
                retries=retries, allow_redirects=allow_redirects, max_redirects=max_redirects,
                retry_post=retry_post, raise_for_status=False, allow_hosts=allow_hosts) as response:
        buffer = bytearray()
        _read_body(response, buffer.extend, max_bytes=max_bytes)
        response._content, response._content_consumed = bytes(buffer), True
    if raise_for_status and response.status_code >= 400:
        raise HTTPStatusError.for_url(method.upper(), url, f"HTTP {response.status_code} {response.reason or ''}"
                                      .strip(), response=response)
    return response


def get_json(url: str, **kwargs) -> Any:
    """GET ``url`` and decode its JSON body (``request``'s keyword arguments)."""
    response = request("GET", url, **kwargs)
    try:
        return response.json()
    except ValueError:
        raise OutboundHTTPError.for_url("GET", url, "the response is not valid JSON", response=response) from None


@dataclass(frozen=True)
class Download:
    path: Path
    size: int
    content_type: str


def download(url: str, dest_path: str | os.PathLike, *, max_bytes: int | None = None, **kwargs) -> Download:
    """Stream a GET of ``url`` into ``dest_path`` under the size cap. The body
    goes to a temporary file next to it, renamed into place when complete, so
    a failure (cap, timeout, broken connection) leaves no partial file and
    never clobbers an existing one."""
    dest = Path(dest_path)
    fd, partial = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, stream("GET", url, **kwargs) as response:
            size = _read_body(response, out.write, max_bytes=max_bytes)
            content_type = response.headers.get("Content-Type", "")
        os.replace(partial, dest)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(partial)
        raise
    return Download(path=dest, size=size, content_type=content_type)


def _read_body(response: requests.Response, sink: Callable[[bytes], Any], *, max_bytes: int | None) -> int:
    """Feed the (decoded) body to ``sink`` chunk by chunk; ResponseTooLarge
    as soon as it passes the cap."""
    method, url = response.request.method, response.request.url
    limit = int(settings.OUTBOUND_HTTP_MAX_BYTES if max_bytes is None else max_bytes)
    declared = response.headers.get("Content-Length", "") if method != "HEAD" else ""
    if declared.isdigit() and int(declared) > limit:
        raise ResponseTooLarge.for_url(method, url, f"the body is {declared} bytes, over the {limit}-byte limit")
    total = 0
    try:
        for chunk in response.raw.stream(CHUNK_BYTES, decode_content=True):
            total += len(chunk)
            if total > limit:
                raise ResponseTooLarge.for_url(method, url, f"the body passed the {limit}-byte limit")
            sink(chunk)
    except ReadTimeoutError:
        raise OutboundTimeout.for_url(method, url, "the body stalled past the read timeout") from None
    except DecodeError:
        raise OutboundHTTPError.for_url(method, url, "the body could not be decoded") from None
    except (Urllib3HTTPError, OSError) as exc:
        raise OutboundConnectionError.for_url(method, url, f"connection broken while reading the body "
                                              f"({type(exc).__name__})") from None
    return total
