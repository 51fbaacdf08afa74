"""The outbound HTTP client (jobsite.http) against real local HTTP servers.

Loopback is never let through by switching the guard off: each test allows
exactly its server's host:port with OUTBOUND_HTTP_ALLOW_HOSTS."""
import json
import logging
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import urllib3.util.connection

from jobsite import http
from jobsite.runtime import free_port


# ---------------------------------------------------------------------------
# A real local server
# ---------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    """Routes by path; every request is counted on the server."""

    def do_GET(self):  # noqa: N802 (http.server API)
        self._route()

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self._route()

    def _route(self):
        path = urlsplit(self.path).path
        query = parse_qs(urlsplit(self.path).query)
        server = self.server
        with server.lock:
            server.hits[path] += 1
            hits = server.hits[path]
        if path == "/json":
            self._send(200, b'{"ok": true}', "application/json")
        elif path == "/not-json":
            self._send(200, b"<html>", "text/html")
        elif path.startswith("/flaky/"):  # /flaky/<n>: n times 503, then 200
            self._send(503, b"busy") if hits <= int(path.rsplit("/", 1)[1]) else self._send(200, b"finally")
        elif path.startswith("/status/"):
            self._send(int(path.rsplit("/", 1)[1]), b"nope")
        elif path == "/slow":
            server.release.wait(5)
            self._send(200, b"late")
        elif path == "/stall":  # headers at once, then the body never comes
            self.send_response(200)
            self.send_header("Content-Length", "10")
            self.end_headers()
            self.wfile.write(b"abc")
            self.wfile.flush()
            server.release.wait(5)
        elif path == "/bytes":  # ?n=<size>&length=0 to leave Content-Length out (body ends at close)
            size = int(query["n"][0])
            self.send_response(200)
            if query.get("length", ["1"])[0] == "1":
                self.send_header("Content-Length", str(size))
            self.end_headers()
            for start in range(0, size, 8192):
                self.wfile.write(b"x" * min(8192, size - start))
        elif path == "/redirect":
            self.send_response(int(query.get("status", ["302"])[0]))
            self.send_header("Location", query["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/loop":
            self.send_response(302)
            self.send_header("Location", f"/loop?n={hits}")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/headers":
            body = json.dumps({"method": self.command, **dict(self.headers)}).encode()
            self._send(200, body, "application/json")
        else:
            self._send(404, b"no such path")

    def _send(self, status, body, content_type="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class LocalServer:
    def __init__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.hits = Counter()
        self.httpd.lock = threading.Lock()
        self.httpd.release = threading.Event()
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def hits(self, path: str) -> int:
        return self.httpd.hits[path]

    def stop(self):
        self.httpd.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def strict(settings):
    """The production policy: nothing private or loopback, no extra entries."""
    settings.OUTBOUND_HTTP_ALLOW_LOOPBACK = False
    settings.OUTBOUND_HTTP_ALLOW_PRIVATE = False
    settings.OUTBOUND_HTTP_ALLOW_HOSTS = []
    settings.OUTBOUND_HTTP_DENY_HOSTS = []
    settings.OUTBOUND_HTTP_TIMEOUT = 5.0
    settings.OUTBOUND_HTTP_RETRIES = 2
    settings.OUTBOUND_HTTP_MAX_BYTES = 1024 * 1024
    return settings


@pytest.fixture
def server(strict):
    """A local server whose host:port (only) is allowed."""
    local = LocalServer()
    strict.OUTBOUND_HTTP_ALLOW_HOSTS = [f"127.0.0.1:{local.port}"]
    yield local
    local.stop()


@pytest.fixture
def other_server():
    """A second local server that is NOT on the allow list."""
    local = LocalServer()
    yield local
    local.stop()


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(http, "BACKOFF_SECONDS", 0.01)


# ---------------------------------------------------------------------------
# Plain requests
# ---------------------------------------------------------------------------
def test_get_json_from_an_allowed_server(server):
    assert http.get_json(server.url("/json")) == {"ok": True}


def test_get_json_refuses_a_body_that_is_not_json(server):
    with pytest.raises(http.OutboundHTTPError, match="not valid JSON") as caught:
        http.get_json(server.url("/not-json"))
    assert caught.value.reason == "error"


def test_request_returns_the_body_already_read(server):
    response = http.request("POST", server.url("/headers"), json={"a": 1}, headers={"X-Trace": "t1"})

    assert response.status_code == 200
    echoed = response.json()
    assert echoed["method"] == "POST" and echoed["X-Trace"] == "t1"
    assert echoed["User-Agent"] == http.USER_AGENT


# ---------------------------------------------------------------------------
# Timeouts
# ---------------------------------------------------------------------------
def test_a_slow_server_times_out_without_retrying(server):
    started = time.monotonic()
    with pytest.raises(http.OutboundTimeout, match=r"GET http://127\.0\.0\.1:\d+/slow: no answer within 0\.3s") \
            as caught:
        http.request("GET", server.url("/slow"), timeout=0.3)

    assert time.monotonic() - started < 2
    assert caught.value.reason == "timeout"
    assert server.hits("/slow") == 1  # a read timeout is not retried: the server has the request


def test_a_body_that_stalls_times_out(server):
    with pytest.raises(http.OutboundTimeout, match="the body stalled"):
        http.request("GET", server.url("/stall"), timeout=(2, 0.3))


def test_the_default_timeout_comes_from_settings(server, settings):
    settings.OUTBOUND_HTTP_TIMEOUT = 0.3

    with pytest.raises(http.OutboundTimeout, match="within 0.3s"):
        http.request("GET", server.url("/slow"))


# ---------------------------------------------------------------------------
# Retries
# ---------------------------------------------------------------------------
def test_a_503_is_retried_until_it_succeeds(server):
    response = http.request("GET", server.url("/flaky/2"))

    assert response.status_code == 200 and response.content == b"finally"
    assert server.hits("/flaky/2") == 3  # two 503s (OUTBOUND_HTTP_RETRIES = 2), then success


def test_a_5xx_after_the_last_retry_raises_a_status_error(server):
    with pytest.raises(http.HTTPStatusError) as caught:
        http.request("GET", server.url("/flaky/9"), retries=1)

    assert server.hits("/flaky/9") == 2
    assert caught.value.reason == "status" and caught.value.status_code == 503
    assert caught.value.response.content == b"busy"


@pytest.mark.parametrize("status", [400, 404, 429])
def test_a_4xx_is_never_retried(server, status):
    with pytest.raises(http.HTTPStatusError, match=f"HTTP {status}"):
        http.request("GET", server.url(f"/status/{status}"))

    assert server.hits(f"/status/{status}") == 1


def test_raise_for_status_false_returns_the_error_response(server):
    response = http.request("GET", server.url("/status/404"), raise_for_status=False)

    assert response.status_code == 404 and response.content == b"nope"


def test_post_is_retried_only_when_asked(server):
    with pytest.raises(http.HTTPStatusError):
        http.request("POST", server.url("/flaky/1"), data=b"payload")
    assert server.hits("/flaky/1") == 1

    response = http.request("POST", server.url("/flaky/1"), data=b"payload", retry_post=True)
    assert response.status_code == 200 and server.hits("/flaky/1") == 2


def test_connection_errors_are_retried_then_reported(strict, caplog):
    port = free_port()
    strict.OUTBOUND_HTTP_ALLOW_HOSTS = [f"127.0.0.1:{port}"]

    with caplog.at_level(logging.WARNING, logger="jobsite.http"):
        with pytest.raises(http.OutboundConnectionError, match="connection failed") as caught:
            http.request("GET", f"http://127.0.0.1:{port}/")

    assert caught.value.reason == "connection"
    assert [r.message.split("; ")[1] for r in caplog.records] == ["retry 1 of 2 in 0.0s", "retry 2 of 2 in 0.0s"]


# ---------------------------------------------------------------------------
# Size cap
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("with_length", [True, False])
def test_a_body_over_the_cap_is_refused(server, with_length):
    url = server.url(f"/bytes?n=200000&length={int(with_length)}")

    with pytest.raises(http.ResponseTooLarge, match="100000-byte limit") as caught:
        http.request("GET", url, max_bytes=100_000)

    assert caught.value.reason == "too_large"
    assert http.request("GET", url, max_bytes=200_000).content == b"x" * 200_000


def test_the_cap_defaults_to_the_setting(server, settings):
    settings.OUTBOUND_HTTP_MAX_BYTES = 1000

    with pytest.raises(http.ResponseTooLarge, match="1000-byte limit"):
        http.request("GET", server.url("/bytes?n=1001&length=0"))


def test_download_streams_to_the_file(server, tmp_path):
    dest = tmp_path / "image.bin"

    result = http.download(server.url("/bytes?n=300000&length=0"), dest)

    assert result.size == 300_000 and result.path == dest
    assert dest.read_bytes() == b"x" * 300_000
    assert [p.name for p in tmp_path.iterdir()] == ["image.bin"]


@pytest.mark.parametrize("path", ["/bytes?n=300000&length=0", "/bytes?n=300000", "/status/404"])
def test_a_failed_download_leaves_no_file_behind(server, tmp_path, path):
    dest = tmp_path / "image.bin"

    with pytest.raises(http.OutboundHTTPError):
        http.download(server.url(path), dest, max_bytes=100_000)

    assert list(tmp_path.iterdir()) == []


def test_a_failed_download_keeps_an_existing_file(server, tmp_path):
    dest = tmp_path / "image.bin"
    dest.write_bytes(b"previous")

    with pytest.raises(http.ResponseTooLarge):
        http.download(server.url("/bytes?n=5000&length=0"), dest, max_bytes=1000)

    assert dest.read_bytes() == b"previous" and [p.name for p in tmp_path.iterdir()] == ["image.bin"]


# ---------------------------------------------------------------------------
# SSRF guard
# ---------------------------------------------------------------------------
BLOCKED = [
    ("http://127.0.0.1/", "loopback"),
    ("http://localhost:8000/", "loopback"),
    ("http://2130706433/", "loopback"),
    ("http://0177.0.0.1/", "loopback"),
    ("http://0x7f.0.0.1/", "loopback"),
    ("http://0x7f000001/", "loopback"),
    ("http://127.1/", "loopback"),
    ("http://127.0.0.1./", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://[::ffff:7f00:1]/", "loopback"),
    ("http://[2002:7f00:1::]/", "loopback"),  # 6to4 around 127.0.0.1
    ("http://10.0.0.1/", "private"),
    ("http://172.16.5.4/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://100.64.0.1/", "private"),
    ("http://[fd00::1]/", "private"),
    ("http://[::ffff:10.0.0.1]/", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://0/", "unspecified"),
    ("http://[::]/", "unspecified"),
]


@pytest.mark.parametrize("url, kind", BLOCKED)
def test_internal_targets_are_refused_before_connecting(strict, monkeypatch, url, kind):
    def no_connection(*args, **kwargs):
        raise AssertionError("the guard must refuse before connecting")

    monkeypatch.setattr(urllib3.util.connection, "create_connection", no_connection)

    with pytest.raises(http.BlockedURL, match=f"refused: .* an? {kind} address") as caught:
        http.request("GET", url)
    assert caught.value.reason == "blocked"
    with pytest.raises(http.BlockedURL, match=f"an? {kind} address"):
        http.check_url(url)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "gopher://127.0.0.1:25/",
                                 "javascript:alert(1)", "http:///nohost"])
def test_only_http_urls_with_a_host_are_accepted(strict, url):
    with pytest.raises(http.BlockedURL, match="not an http|no host"):
        http.check_url(url)
    with pytest.raises(http.BlockedURL):
        http.request("GET", url)


def test_blocked_urls_are_value_errors_for_validation_code(strict):
    with pytest.raises(ValueError, match=r"^http://10\.1\.2\.3/x: refused: 10\.1\.2\.3 is a private address"):
        http.check_url("http://10.1.2.3/x")


def test_the_private_and_loopback_switches(strict):
    strict.OUTBOUND_HTTP_ALLOW_PRIVATE = True
    http.check_url("http://10.0.0.1/")
    http.check_url("http://[fd00::1]/")
    with pytest.raises(http.BlockedURL, match="link-local"):  # cloud metadata stays out of reach
        http.check_url("http://169.254.169.254/")
    with pytest.raises(http.BlockedURL, match="loopback"):
        http.check_url("http://127.0.0.1/")

    strict.OUTBOUND_HTTP_ALLOW_LOOPBACK = True
    http.check_url("http://127.0.0.1/")
    http.check_url("http://2130706433/")


def test_allow_hosts_entries_by_cidr_host_and_port(strict):
    strict.OUTBOUND_HTTP_ALLOW_HOSTS = ["10.20.0.0/16", "127.0.0.1:8080", "[::1]:9000", "localhost"]

    http.check_url("http://10.20.3.4/")
    http.check_url("http://127.0.0.1:8080/")
    http.check_url("http://0x7f.0.0.1:8080/")  # the same address, spelt otherwise
    http.check_url("http://[::1]:9000/")
    http.check_url("http://localhost:1234/")
    for url in ["http://10.21.0.1/", "http://127.0.0.1:8081/", "http://127.0.0.1/", "http://[::1]:9001/"]:
        with pytest.raises(http.BlockedURL):
            http.check_url(url)


def test_deny_hosts_win_over_everything(strict):
    strict.OUTBOUND_HTTP_ALLOW_HOSTS = ["127.0.0.1"]
    strict.OUTBOUND_HTTP_DENY_HOSTS = ["example.com", "127.0.0.1:9"]

    for url in ["http://example.com/", "https://api.example.com/", "http://127.0.0.1:9/"]:
        with pytest.raises(http.BlockedURL, match="denied by OUTBOUND_HTTP_DENY_HOSTS"):
            http.check_url(url)
    http.check_url("http://127.0.0.1:10/")


def test_a_redirect_to_a_port_that_is_not_allowed_is_refused(server, other_server):
    target = other_server.url("/json")

    with pytest.raises(http.BlockedURL, match=rf"{other_server.port}/json: refused: 127\.0\.0\.1 is a loopback"):
        http.request("GET", server.url(f"/redirect?to={target}"))

    assert server.hits("/redirect") == 1 and other_server.hits("/json") == 0


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/admin",
                                    "http://[::ffff:127.0.0.1]:1/", "file:///etc/passwd"])
def test_a_redirect_to_an_internal_address_is_refused(server, target):
    with pytest.raises(http.BlockedURL):
        http.request("GET", server.url(f"/redirect?to={target}"))


def test_allowed_redirects_are_followed_with_browser_semantics(server):
    # 303 after POST becomes a GET without the body
    response = http.request("POST", server.url(f"/redirect?status=303&to={server.url('/headers')}"),
                            json={"a": 1}, headers={"Authorization": "Bearer t"})

    echoed = response.json()
    assert echoed["method"] == "GET" and "Content-Type" not in echoed
    assert echoed["Authorization"] == "Bearer t"  # same origin: credentials kept
    assert [r.status_code for r in response.history] == [303]


def test_credentials_are_not_forwarded_to_another_origin(server, other_server, strict):
    strict.OUTBOUND_HTTP_ALLOW_HOSTS = [f"127.0.0.1:{server.port}", f"127.0.0.1:{other_server.port}"]

    response = http.request("GET", server.url(f"/redirect?to={other_server.url('/headers')}"),
                            headers={"Authorization": "Bearer t", "X-Api-Key": "k", "X-Trace": "kept"})

    echoed = response.json()
    assert "Authorization" not in echoed and "X-Api-Key" not in echoed and echoed["X-Trace"] == "kept"


def test_redirect_loops_stop_at_the_limit(server):
    with pytest.raises(http.TooManyRedirects, match="more than 3 redirects") as caught:
        http.request("GET", server.url("/loop"), max_redirects=3)

    assert caught.value.reason == "redirects"
    assert server.hits("/loop") == 4


def test_redirects_are_returned_when_not_followed(server):
    response = http.request("GET", server.url("/redirect?to=http://10.0.0.1/"), allow_redirects=False)

    assert response.status_code == 302 and response.headers["Location"] == "http://10.0.0.1/"


def test_dns_rebinding_is_caught_at_connect_time(strict, other_server, monkeypatch):
    # given: a name that resolves to a public address for the check, then to 127.0.0.1
    real_getaddrinfo = socket.getaddrinfo
    lookups = []

    def rebinding(host, port, *args, **kwargs):
        if host != "rebind.test":
            return real_getaddrinfo(host, port, *args, **kwargs)
        lookups.append(host)
        address = "93.184.216.34" if len(lookups) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)

    with pytest.raises(http.BlockedURL, match="127.0.0.1, a loopback address .*at connect time"):
        http.request("GET", f"http://rebind.test:{other_server.port}/json", retries=0)

    assert len(lookups) == 2 and other_server.hits("/json") == 0


def test_per_call_allow_hosts_extend_the_settings(strict, other_server):
    url = other_server.url("/json")
    with pytest.raises(http.BlockedURL):
        http.request("GET", url)

    assert http.request("GET", url, allow_hosts=[f"127.0.0.1:{other_server.port}"]).json() == {"ok": True}


def test_stream_does_not_read_the_body(server):
    with http.stream("GET", server.url("/stall"), timeout=(2, 0.3)) as response:
        assert response.status_code == 200


# ---------------------------------------------------------------------------
# Redaction
# ---------------------------------------------------------------------------
SECRETS = ("s3cr3t-bearer", "k3y-in-query", "us3r-pass", "sig-valu3")


@pytest.mark.parametrize("path, error", [
    ("/status/401", http.HTTPStatusError),
    ("/flaky/9", http.HTTPStatusError),
    ("/bytes?n=5000&length=0", http.ResponseTooLarge),
    ("/slow", http.OutboundTimeout),
    ("/redirect?to=http://10.0.0.1/?token=s3cr3t-bearer", http.BlockedURL),
])
def test_credentials_never_appear_in_errors_or_logs(server, caplog, path, error):
    separator = "&" if "?" in path else "?"
    url = server.url(path).replace("http://", "http://admin:us3r-pass@", 1) + \
        f"{separator}api_key=k3y-in-query&X-Amz-Signature=sig-valu3&page=2"
    caplog.set_level(logging.DEBUG)

    with pytest.raises(error) as caught:
        http.request("GET", url, headers={"Authorization": "Bearer s3cr3t-bearer", "Cookie": "sid=s3cr3t-bearer"},
                     timeout=0.5, max_bytes=1000, retries=1)

    message = str(caught.value)
    if error is http.BlockedURL:  # the message names the hop that was refused
        assert message.startswith("GET http://10.0.0.1/?token=***")
    else:
        assert "api_key=***" in message and "page=2" in message and "***@127.0.0.1" in message
    logged = caplog.text + " ".join(repr(r.args) for r in caplog.records)
    for secret in SECRETS:
        assert secret not in message, message
        assert secret not in logged, logged
    assert "GET http://***@127.0.0.1" in caplog.text


def test_connection_errors_are_redacted(strict, caplog):
    port = free_port()
    strict.OUTBOUND_HTTP_ALLOW_HOSTS = [f"127.0.0.1:{port}"]
    caplog.set_level(logging.DEBUG)

    with pytest.raises(http.OutboundConnectionError) as caught:
        http.request("GET", f"http://u:us3r-pass@127.0.0.1:{port}/?token=s3cr3t-bearer",
                     headers={"X-Api-Key": "k3y-in-query"}, retries=1)

    for secret in SECRETS:
        assert secret not in str(caught.value) and secret not in caplog.text


def test_redact_helpers():
    assert http.redact_url("https://u:p@h.example/p?access_token=a&q=1&signature=b#frag") == \
        "https://***@h.example/p?access_token=***&q=1&signature=***"
    assert http.redact_headers({"Authorization": "Bearer x", "X-Api-Key": "k", "Cookie": "c", "Accept": "a"}) == \
        {"Authorization": "***", "X-Api-Key": "***", "Cookie": "***", "Accept": "a"}
    # a URL inside a query value, plain or encoded
    assert http.redact_url("http://h/r?to=http://u:p@x/?token=t&n=1") == "http://h/r?to=http://***@x/?token=***&n=1"
    assert http.redact_url("http://h/r?next=http%3A%2F%2Fx%2F%3Fapi_key%3Dk&n=1") == \
        "http://h/r?next=http://x/?api_key=***&n=1"
    assert http.redact_text('"GET /x?api_key=abc&n=1 HTTP/1.1" via https://user:pw@host/') == \
        '"GET /x?api_key=***&n=1 HTTP/1.1" via https://***@host/'
