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
- **SSRF guard**: only http(s); the host is resolved (every A/AAAA record, and
  the inet_aton spellings ``2130706433``, ``0177.0.0.1``, ``0x7f.0.0.1``,
  ``127.1`` parsed here, not left to libc) and any loopback, private,
  link-local, multicast, reserved or unspecified address refuses the request,
  IPv4-mapped/6to4/NAT64 IPv6 included. Redirects are followed here, one hop
  at a time, and every Location is checked again.
  *DNS rebinding*: the check is repeated on the address actually connected to
  (``getpeername()`` of every new socket, in the urllib3 connection class), so
  a name that resolves to a public address for the check and to 127.0.0.1 for
  the connection is refused. This was chosen over pinning a resolved IP
  because it keeps TLS (SNI, certificate host names) and connection pooling
  untouched. Environment proxies are ignored for the same reason: through a
  proxy the peer would be the proxy, and the guard would check nothing.
- **Allow/deny lists**: ``OUTBOUND_HTTP_ALLOW_LOOPBACK``,
  ``OUTBOUND_HTTP_ALLOW_PRIVATE`` (RFC 1918, ULA, CGNAT only: link-local such
  as cloud metadata 169.254.169.254 stays refused), ``OUTBOUND_HTTP_ALLOW_HOSTS``
  (``host``, ``host:port`` or CIDR, allowed despite the guard) and
  ``OUTBOUND_HTTP_DENY_HOSTS`` (same forms; a host name also denies its
  subdomains; deny wins).
- **Redaction**: Authorization/Cookie/API-key headers, URL user info and
  query parameters named like token/key/secret/password/signature never
  appear in a log line or error message produced here (nor in urllib3's debug
  log lines, which get a redacting filter).

Errors are ``OutboundHTTPError`` subclasses, each with a ``reason``
(``blocked``, ``timeout``, ``connection``, ``too_large``, ``status``,
``redirects``, ``error``) and a message naming the redacted URL and what
happened.
"""
from __future__ import annotations

import contextvars
import ipaddress
import logging
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_plus, urljoin, urlsplit, urlunsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from requests.utils import requote_uri
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import DecodeError, HTTPError as Urllib3HTTPError, ReadTimeoutError

logger = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
MAX_REDIRECTS = 5
BACKOFF_SECONDS = 0.5  # first retry waits this long, then 2x, 4x, ... up to MAX_BACKOFF_SECONDS
MAX_BACKOFF_SECONDS = 10.0
CHUNK_BYTES = 64 * 1024
USER_AGENT = "jobsite"

_SECRET_NAME = re.compile(r"token|key|secret|passw|pwd|signature|sig$|auth|credential|session|cookie", re.I)
_SECRET_QUERY = re.compile(
    r"(?P<name>[?&;][^=&;#\s\"'<>]*"
    r"(?:token|key|secret|passw|pwd|signature|sig|auth|credential|session)[^=&;#\s\"'<>]*=)"
    r"[^&;#\s\"'<>]*",
    re.I,
)
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/?#@\s]+@", re.I)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")

# Extra allow-list entries of the call in progress (see ``request(allow_hosts=...)``),
# read by the connection class when it checks the connected peer.
_call_allow_hosts: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("allow_hosts", default=())


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------
# Redaction
# ---------------------------------------------------------------------------
def redact_url(url: str) -> str:
    """``url`` with user info and secret-looking query values replaced by ``***``
    (also inside a URL passed as a query value, encoded or not) and the
    fragment dropped; safe to log or show."""
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return redact_text(str(url))
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "&".join(map(_redact_pair, parts.query.split("&")))
                       if parts.query else "", ""))


def _redact_pair(pair: str) -> str:
    name, equals, value = pair.partition("=")
    if equals and _SECRET_NAME.search(unquote_plus(name)):
        return f"{name}=***"
    plain = unquote_plus(value)
    redacted = redact_text(plain)
    if redacted == plain:
        return pair
    return f"{name}{equals}{redacted if plain == value else quote(redacted, safe=':/?=@*')}"


def redact_text(text: str) -> str:
    """Free text (e.g. a third-party log line) with URL user info and secret
    query values replaced by ``***``."""
    text = _USERINFO.sub(r"\g<scheme>***@", text)
    return _SECRET_QUERY.sub(r"\g<name>***", text)


def redact_headers(headers: Any) -> dict[str, str]:
    """A copy of ``headers`` with credential-bearing values (Authorization,
    Cookie, X-Api-Key, anything named like a token/key/secret) as ``***``."""
    return {name: "***" if _SECRET_NAME.search(name) else value for name, value in dict(headers or {}).items()}


class _RedactingFilter(logging.Filter):
    """urllib3 logs request lines with the full path and query at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact_text(record.getMessage()), None
        return True


for _name in ("urllib3.connectionpool", "urllib3.util.retry"):
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, _RedactingFilter) for f in _logger.filters):
        _logger.addFilter(_RedactingFilter())


# ---------------------------------------------------------------------------
# The SSRF guard
# ---------------------------------------------------------------------------
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _loose_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """inet_aton's spellings of an IPv4 address (``127.1``, ``0x7f.0.0.1``,
    ``0177.0.0.1``, ``2130706433``), which URL parsers pass through as names
    and libc then resolves to loopback."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = []
    for part in parts:
        if re.fullmatch(r"0[xX][0-9a-fA-F]*", part):
            numbers.append(int(part[2:] or "0", 16))
        elif re.fullmatch(r"0[0-7]*", part):
            numbers.append(int(part, 8))
        elif re.fullmatch(r"[1-9][0-9]*", part):
            numbers.append(int(part))
        else:
            return None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        return None
    value = sum(n << (8 * (3 - i)) for i, n in enumerate(head)) + last
    return ipaddress.IPv4Address(value)


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return _normalized(ipaddress.ip_address(host.strip("[]").split("%")[0]))
    except ValueError:
        return _loose_ipv4(host)


def _normalized(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64), else ``ip``."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return ip.ipv4_mapped
        if ip.sixtofour:
            return ip.sixtofour
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def _address_kind(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public unicast address, or None when it is."""
    if ip.is_loopback:
        return "loopback"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private or ip in _CGNAT:
        return "private"
    if not ip.is_global:
        return "reserved"
    return None


@dataclass(frozen=True)
class _Entry:
    """One allow/deny list entry: a host name or an IP network, optionally a port."""

    host: str | None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    port: int | None

    @classmethod
    def parse(cls, text: str) -> _Entry:
        text = text.strip().lower()
        port = None
        match = re.fullmatch(r"\[(?P<v6>[^\]]+)\](?::(?P<port>\d+))?|(?P<host>[^:]+):(?P<port2>\d+)", text)
        if match:
            text = match["v6"] or match["host"]
            port = int(match["port"] or match["port2"]) if (match["port"] or match["port2"]) else None
        try:
            return cls(None, ipaddress.ip_network(text, strict=False), port)
        except ValueError:
            loose = _loose_ipv4(text)
            if loose is not None:
                return cls(None, ipaddress.ip_network(loose), port)
            return cls(text.rstrip("."), None, port)

    def matches(self, host: str, port: int, ip: IPAddress | None, *, subdomains: bool) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return ip is not None and ip.version == self.network.version and ip in self.network
        return host == self.host or (subdomains and host.endswith("." + self.host))


def _entries(values: Iterable[str]) -> list[_Entry]:
    return [_Entry.parse(value) for value in values if value and value.strip()]


def _ip_refusal(host: str, port: int, ip: IPAddress, extra_allow: Iterable[str]) -> str | None:
    """Why connecting to ``ip`` for ``host:port`` is refused, or None."""
    if any(entry.matches(host, port, ip, subdomains=True)
           for entry in _entries(getattr(settings, "OUTBOUND_HTTP_DENY_HOSTS", []))):
        return f"refused: {host} ({ip}) is denied by OUTBOUND_HTTP_DENY_HOSTS"
    kind = _address_kind(ip)
    if kind is None:
        return None
    allow = _entries([*getattr(settings, "OUTBOUND_HTTP_ALLOW_HOSTS", []), *extra_allow])
    if any(entry.matches(host, port, ip, subdomains=False) for entry in allow):
        return None
    if kind == "loopback" and getattr(settings, "OUTBOUND_HTTP_ALLOW_LOOPBACK", False):
        return None
    if kind == "private" and getattr(settings, "OUTBOUND_HTTP_ALLOW_PRIVATE", False):
        return None
    switch = {"loopback": " or OUTBOUND_HTTP_ALLOW_LOOPBACK",
              "private": " or OUTBOUND_HTTP_ALLOW_PRIVATE"}.get(kind, "")
    where = f"{ip} is" if _ip_literal(host) is not None else f"{host} resolves to {ip},"
    article = "an" if kind[0] in "aeiou" else "a"
    return f"refused: {where} {article} {kind} address (allow it with OUTBOUND_HTTP_ALLOW_HOSTS{switch})"


def _target(url: str, method: str | None = None) -> tuple[str, int]:
    """(host, port) of an http(s) URL, or BlockedURL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise BlockedURL.for_url(method, url, "not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise BlockedURL.for_url(method, url, "not an http(s) URL")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise BlockedURL.for_url(method, url, "the URL has no host")
    return host, port or (443 if parts.scheme.lower() == "https" else 80)


def _guard(url: str, extra_allow: Iterable[str], *, method: str | None = None, resolve_errors: bool = True) -> None:
    """Refuse ``url`` (BlockedURL) unless every address its host resolves to is allowed."""
    host, port = _target(url, method)
    if any(entry.host is not None and entry.matches(host, port, None, subdomains=True)
           for entry in _entries(getattr(settings, "OUTBOUND_HTTP_DENY_HOSTS", []))):
        raise BlockedURL.for_url(method, url, f"refused: {host} is denied by OUTBOUND_HTTP_DENY_HOSTS")
    literal = _ip_literal(host)
    if literal is not None:
        addresses = {literal}
    else:
        try:
            infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError):
            if not resolve_errors:
                return
            raise OutboundConnectionError.for_url(method, url, f"cannot resolve {host}") from None
        addresses = {_normalized(ipaddress.ip_address(info[4][0].split("%")[0])) for info in infos}
    for ip in sorted(addresses, key=str):
        refusal = _ip_refusal(host, port, ip, extra_allow)
        if refusal:
            raise BlockedURL.for_url(method, url, refusal)


def check_url(url: str, *, allow_hosts: Iterable[str] = ()) -> None:
    """Raise ``BlockedURL`` (a ValueError; its message is fit for a form or
    ``ValidationError``) when ``url`` would be refused: not http(s), denied,
    or resolving to an address the guard refuses. A host that does not
    resolve right now passes: that is an availability question, and requests
    to it are checked again anyway."""
    _guard(url, allow_hosts, resolve_errors=False)


class _PeerRefused(Exception):
    """Raised inside urllib3 when the connected address is refused; not an
    OSError, so urllib3 and requests let it through unwrapped."""


def _check_peer(connection: HTTPConnection, sock: socket.socket) -> None:
    try:
        peer = _normalized(ipaddress.ip_address(sock.getpeername()[0].split("%")[0]))
    except (OSError, ValueError):
        return  # not an inet socket: nothing to check
    host = connection.host.strip("[]").lower()
    refusal = _ip_refusal(host, connection.port or 0, peer, _call_allow_hosts.get())
    if refusal:
        sock.close()
        raise _PeerRefused(f"{refusal} (at connect time)")


class _GuardedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _check_peer(self, sock)
        return sock


class _GuardedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _check_peer(self, sock)
        return sock


class _GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPConnectionPool,
                                                   "https": _GuardedHTTPSConnectionPool}


_adapters: dict[int, HTTPAdapter] = {}


def _adapter() -> HTTPAdapter:
    """One connection pool per process (a forked Celery worker must not share sockets)."""
    pid = os.getpid()
    adapter = _adapters.get(pid)
    if adapter is None:
        _adapters.clear()
        adapter = _adapters[pid] = _GuardedAdapter(max_retries=0, pool_maxsize=16)
    return adapter


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
            _guard(url, extra_allow, method=method)  # BlockedURL goes straight up: never retried
            response = _adapter().send(prepared, stream=True, timeout=timeout, verify=_verify(), proxies={})
        except OutboundConnectionError as exc:  # the host did not resolve
            error = exc
        except _PeerRefused as exc:
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
        for name in [name for name in following.headers if _SECRET_NAME.search(name)]:
            del following.headers[name]
    return following


def _open(method: str, url: str, *, headers, params, json, data, files, timeout, retries, allow_redirects,
          max_redirects, retry_post, extra_allow) -> requests.Response:
    method = method.upper()
    _target(url, method)  # a clear refusal before requests says "No connection adapters"
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
    token = _call_allow_hosts.set(tuple(allow_hosts))
    response = None
    try:
        response = _open(method, url, headers=headers, params=params, json=json, data=data, files=files,
                         timeout=timeout, retries=retries, allow_redirects=allow_redirects,
                         max_redirects=max_redirects, retry_post=retry_post, extra_allow=tuple(allow_hosts))
        if raise_for_status and response.status_code >= 400:
            raise HTTPStatusError.for_url(method.upper(), url, f"HTTP {response.status_code} {response.reason or ''}"
                                          .strip(), response=response)
        yield response
    finally:
        if response is not None:
            response.close()
        _call_allow_hosts.reset(token)


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
