"""mcp_server_health_check: is every MCP server answering?

Probes go through the outbound HTTP client (jobsite.http) like every call
out: its SSRF guard, timeouts and redaction. URLs in settings.MCP_SERVER_URLS
are the operator's own and may well be internal, so each one's host:port is
allowed for its own probe; URLs given as a run option get the plain policy.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from jobsite import http
from scheduling.executors import RunResult, schedulable
from scheduling.maintenance.common import QUEUE

logger = logging.getLogger(__name__)

MCP_TIMEOUT_SECONDS = 5.0
MCP_MAX_PARALLEL = 8


def _own_target(url: str) -> tuple[str, ...]:
    """The allow-list entry (``host:port``) naming exactly ``url``'s server;
    none for a URL without a usable host (the guard then says what is wrong)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return ()
    if not host:
        return ()
    return (f"[{host}]:{port}" if ":" in host else f"{host}:{port}",)


def mcp_server_probe(url: str, *, timeout: float = MCP_TIMEOUT_SECONDS,
                     allow_hosts: tuple[str, ...] = ()) -> dict[str, Any]:
    """GET ``url`` and time it to the response headers. Any HTTP answer below
    500 means the server is up: an MCP endpoint may well answer a bare GET with
    400/405/406, which still proves it is listening. The body is never read
    (an SSE endpoint would stream forever), no redirect is followed and
    nothing is retried: the probe measures this one answer."""
    shown = http.redact_url(url)
    started = time.perf_counter()
    try:
        with http.stream(
            "GET", url, timeout=timeout, retries=0, allow_redirects=False, raise_for_status=False,
            allow_hosts=allow_hosts,
            headers={"Accept": "application/json, text/event-stream", "User-Agent": "jobsite-mcp-health-check"},
        ) as response:
            latency = round((time.perf_counter() - started) * 1000, 1)
            up = response.status_code < 500
            return {"url": shown, "ok": up, "status_code": response.status_code, "latency_ms": latency,
                    "error": "" if up else f"HTTP {response.status_code} {response.reason or ''}".strip()}
    except http.OutboundHTTPError as exc:
        latency = round((time.perf_counter() - started) * 1000, 1)
        reason = {"timeout": f"timed out after {timeout:g}s", "connection": "connection failed"}.get(
            exc.reason, exc.detail)
        return {"url": shown, "ok": False, "status_code": None, "latency_ms": latency, "error": reason}


@schedulable(
    "scheduling.mcp_server_health_check",
    description="GET every MCP server in MCP_SERVER_URLS; fails when any does not answer.",
    queue=QUEUE,
)
def mcp_server_health_check(*, execution=None, urls: list[str] | None = None,
                            timeout: float = MCP_TIMEOUT_SECONDS) -> RunResult:
    """Probe each MCP server URL (settings.MCP_SERVER_URLS, or ``urls``) in
    parallel; record status code and latency. Any server down fails the run.
    A URL the outbound policy refuses fails the run before anything is probed."""
    if urls is None:
        targets = list(settings.MCP_SERVER_URLS)
    else:
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise ValueError("urls must be a list of http(s) URLs.")
        targets = urls
    trusted = {url: _own_target(url) if urls is None else () for url in targets}
    for url in targets:
        http.check_url(url, allow_hosts=trusted[url])  # BlockedURL is a ValueError: the run fails, clearly
    try:
        timeout = float(timeout)
    except (TypeError, ValueError):
        raise ValueError(f"timeout must be a number of seconds, got {timeout!r}.") from None
    if not 0 < timeout <= 60:
        raise ValueError("timeout must be between 0 and 60 seconds.")
    if not targets:
        return RunResult(output="No MCP servers configured (MCP_SERVER_URLS is empty)", result={"servers": []})

    with ThreadPoolExecutor(max_workers=min(MCP_MAX_PARALLEL, len(targets))) as pool:
        servers = list(pool.map(lambda url: mcp_server_probe(url, timeout=timeout, allow_hosts=trusted[url]),
                                targets))
    down = [server for server in servers if not server["ok"]]
    result = {"servers": servers, "up": len(servers) - len(down), "down": len(down)}
    if down:
        problems = "; ".join(f"{server['url']} ({server['error']})" for server in down)
        logger.warning("MCP server health check: %s", problems)
        return RunResult(ok=False, output=f"{len(down)} of {len(servers)} MCP server(s) down: {problems}"[:1000],
                         result=result)
    slowest = max(server["latency_ms"] for server in servers)
    return RunResult(output=f"All {len(servers)} MCP server(s) up (slowest {slowest:.0f} ms)", result=result)
