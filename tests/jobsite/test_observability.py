"""Optional tracing and Sentry (issue 26, item 7): off unless configured, and
then without secrets. The trace through a real worker: test_tracing_e2e.py."""
import gzip
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings

from jobsite.observability import scrub_event, task_ids, tracing_configured

BASE_DIR = Path(settings.BASE_DIR)
CONFIG_VARIABLES = ("JOBSITE_OTEL", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "SENTRY_DSN")


def run_python(code: str, tmp_path, **env_vars) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in CONFIG_VARIABLES}
    env.update(JOBSITE_VAR_DIR=str(tmp_path), **env_vars)
    done = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True,
                          timeout=90)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.parametrize("environ, expected", [
    ({}, False),
    ({"JOBSITE_OTEL": "1"}, True),
    ({"JOBSITE_OTEL": "true"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "JOBSITE_OTEL": "0"}, False),
    ({"JOBSITE_OTEL": ""}, False),
])
def test_tracing_is_on_only_when_configured(environ, expected):
    assert tracing_configured(environ) is expected


STARTUP = (
    "import json, sys\n"
    "import django; django.setup()\n"
    "import jobsite.wsgi, jobsite.celery\n"
    "from celery import signals\n"
    "signals.worker_process_init.send(sender=None); signals.beat_init.send(sender=None)\n"
    "from jobsite import observability\n"
    "print(json.dumps({'loaded': sorted(m for m in sys.modules if m.startswith(('opentelemetry.instrumentation', "
    "'opentelemetry.sdk.trace', 'opentelemetry.exporter', 'sentry_sdk'))), "
    "'provider': observability._provider is not None}))\n"
)


def test_with_nothing_configured_nothing_is_imported_or_set_up(tmp_path):
    # the web's, a pool process's and beat's start-up, in one process
    report = json.loads(run_python(STARTUP, tmp_path).stdout.strip().splitlines()[-1])

    assert report == {"loaded": [], "provider": False}


def test_with_an_otlp_endpoint_the_web_and_workers_are_instrumented(tmp_path):
    report = json.loads(run_python(STARTUP, tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9").stdout
                        .strip().splitlines()[-1])

    assert report["provider"] is True
    assert "opentelemetry.instrumentation.django" in report["loaded"]
    assert "opentelemetry.instrumentation.celery" in report["loaded"]
    assert not any(name.startswith("sentry_sdk") for name in report["loaded"])


def test_a_task_span_records_ids_only():
    from jobsite.celery import app

    @app.task(name="tests.observability.ids", shared=False)
    def sample(job_id, execution_id=None, token="", params=None):
        pass

    ids = task_ids(sample, [7], {"execution_id": 12, "token": "s3cr3t-token", "params": {"a": 1}})

    assert ids == {"job_id": 7, "execution_id": 12}


# ---------------------------------------------------------------------------
# Sentry
# ---------------------------------------------------------------------------
class SentryReceiver(ThreadingHTTPServer):
    """Sentry's envelope endpoint (POST /api/<project>/envelope/), keeping each body."""

    def __init__(self):
        self.bodies = []
        super().__init__(("127.0.0.1", 0), _SentryHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


class _SentryHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.bodies.append(body.decode("utf-8", errors="replace"))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def sentry():
    server = SentryReceiver()
    yield server
    server.shutdown()
    server.server_close()


SECRET_KEY = "django-secret-key-value-for-this-test-0123456789"
ERROR = (
    "import django; django.setup()\n"
    "import sentry_sdk\n"
    "assert sentry_sdk.get_client().is_active()\n"
    "def call_out():\n"
    "    api_key = 'local-variable-api-key-1234'\n"
    "    raise RuntimeError('GET https://bob:hunter2-password@api.example.com/x?token=query-token-5678 failed; '\n"
    "                       'key " + SECRET_KEY + "')\n"
    "try:\n"
    "    call_out()\n"
    "except RuntimeError:\n"
    "    sentry_sdk.capture_exception()\n"
    "sentry_sdk.flush(10)\n"
)


def test_sentry_reports_an_error_only_with_a_dsn_and_without_its_secrets(sentry, tmp_path):
    dsn = f"http://publickey@127.0.0.1:{sentry.server_port}/1"

    run_python(ERROR, tmp_path, SENTRY_DSN=dsn, SECRET_KEY=SECRET_KEY)

    events = [body for body in sentry.bodies if '"type":"event"' in body.replace(" ", "")]
    assert len(events) == 1, sentry.bodies
    event = events[0]
    assert "RuntimeError" in event and "call_out" in event  # the error itself is there
    for secret in ("hunter2-password", "query-token-5678", "local-variable-api-key-1234", SECRET_KEY):
        assert secret not in event, secret
    assert "***" in event


def test_without_a_dsn_sentry_is_not_initialised(tmp_path):
    done = run_python("import sys, django; django.setup(); print('sentry_sdk' in sys.modules)", tmp_path)

    assert done.stdout.strip().splitlines()[-1] == "False"


def test_scrub_event_applies_the_redaction_rules(settings):
    settings.METRICS_TOKEN = "metrics-token-abcdef"
    event = {
        "request": {"url": "https://api.example.com/x?api_key=k-123456789&page=2",
                    "headers": {"Authorization": "Bearer abc.def.ghi", "Accept": "text/html"},
                    "query_string": [["token", "t-123456789"], ["page", "2"]]},
        "exception": {"values": [{"value": "cannot reach redis://:pw-987654321@cache:6379/0 with metrics-token-abcdef",
                                  "stacktrace": {"frames": [{"vars": {"password": "pw-1", "count": 3}}]}}]},
        "level": "error",
    }

    scrubbed = scrub_event(event, {})

    assert scrubbed["request"]["url"] == "https://api.example.com/x?api_key=***&page=2"
    assert scrubbed["request"]["headers"] == {"Authorization": "***", "Accept": "text/html"}
    assert scrubbed["request"]["query_string"] == [["token", "***"], ["page", "2"]]
    value = scrubbed["exception"]["values"][0]["value"]
    assert "pw-987654321" not in value and "metrics-token-abcdef" not in value
    assert scrubbed["exception"]["values"][0]["stacktrace"]["frames"][0]["vars"] == {"password": "***", "count": 3}
    assert scrubbed["level"] == "error"
