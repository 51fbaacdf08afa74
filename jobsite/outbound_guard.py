"""The SSRF guard of the outbound HTTP client (DESIGN §4 "Outbound HTTP").

Only http(s); the host is resolved (every A/AAAA record, and the inet_aton
spellings ``2130706433``, ``0177.0.0.1``, ``0x7f.0.0.1``, ``127.1`` parsed
here, not left to libc) and any loopback, private, link-local, multicast,
reserved or unspecified address refuses the request, IPv4-mapped/6to4/NAT64
IPv6 included. jobsite.http follows redirects one hop at a time and checks
every Location here again.

*DNS rebinding*: the check is repeated on the address actually connected to
(``getpeername()`` of every new socket, in the urllib3 connection class of
``guarded_adapter()``), so a name that resolves to a public address for the
check and to 127.0.0.1 for the connection is refused. This was chosen over
pinning a resolved IP because it keeps TLS (SNI, certificate host names) and
connection pooling untouched.

Allow/deny lists: ``OUTBOUND_HTTP_ALLOW_LOOPBACK``,
``OUTBOUND_HTTP_ALLOW_PRIVATE`` (RFC 1918, ULA, CGNAT only: link-local such
as cloud metadata 169.254.169.254 stays refused), ``OUTBOUND_HTTP_ALLOW_HOSTS``
(``host``, ``host:port`` or CIDR, allowed despite the guard) and
``OUTBOUND_HTTP_DENY_HOSTS`` (same forms; a host name also denies its
subdomains; deny wins).
"""
from __future__ import annotations

import contextvars
import ipaddress
import os
import re
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from jobsite.outbound_errors import BlockedURL, OutboundConnectionError

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")

# Extra allow-list entries of the call in progress (see ``allowing_hosts``),
# read by the connection class when it checks the connected peer.
_call_allow_hosts: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("allow_hosts", default=())

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


def url_target(url: str, method: str | None = None) -> tuple[str, int]:
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


def guard_url(url: str, extra_allow: Iterable[str], *, method: str | None = None, resolve_errors: bool = True) -> None:
    """Refuse ``url`` (BlockedURL) unless every address its host resolves to is allowed."""
    host, port = url_target(url, method)
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


@contextmanager
def allowing_hosts(allow_hosts: Iterable[str]) -> Iterator[None]:
    """Add ``allow_hosts`` to the allow-list while the block runs, for the
    connect-time peer check of the call in progress."""
    token = _call_allow_hosts.set(tuple(allow_hosts))
    try:
        yield
    finally:
        _call_allow_hosts.reset(token)


def check_url(url: str, *, allow_hosts: Iterable[str] = ()) -> None:
    """Raise ``BlockedURL`` (a ValueError; its message is fit for a form or
    ``ValidationError``) when ``url`` would be refused: not http(s), denied,
    or resolving to an address the guard refuses. A host that does not
    resolve right now passes: that is an availability question, and requests
    to it are checked again anyway."""
    guard_url(url, allow_hosts, resolve_errors=False)


class PeerRefused(Exception):
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
        raise PeerRefused(f"{refusal} (at connect time)")


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


def guarded_adapter() -> HTTPAdapter:
    """One connection pool per process (a forked Celery worker must not share sockets)."""
    pid = os.getpid()
    adapter = _adapters.get(pid)
    if adapter is None:
        _adapters.clear()
        adapter = _adapters[pid] = _GuardedAdapter(max_retries=0, pool_maxsize=16)
    return adapter

