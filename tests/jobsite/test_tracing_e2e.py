"""OpenTelemetry tracing (issue 26, item 7): a run requested through the API and
run by a real worker is one trace, from the request's span through the
publish to the worker's run, whose span names the execution and its job.

This process (the web side) keeps its spans in memory; the worker, started with
JOBSITE_OTEL=1, exports its own over OTLP/HTTP to a receiver served here."""
import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from jobsite import observability
from scheduling.models import Execution
from tests.factories import JobFactory
from tests.worker import start_worker_process, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
QUEUE = "tracing-test"  # a queue of its own: the session's worker never takes these runs


class OtlpReceiver(ThreadingHTTPServer):
    """The OTLP/HTTP trace endpoint (POST /v1/traces, protobuf), keeping each span it gets."""

    def __init__(self):
        self.spans = []
        super().__init__(("127.0.0.1", 0), _OtlpHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.server_port}"


class _OtlpHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}.get("service.name")
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = {a.key: _value(a.value) for a in span.attributes}
                    self.server.spans.append({
                        "name": span.name, "service": service, "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(), "parent_span_id": span.parent_span_id.hex(),
                        "attributes": attributes,
                    })
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def _value(any_value):
    return getattr(any_value, any_value.WhichOneof("value")) if any_value.WhichOneof("value") else None


@pytest.fixture
def receiver():
    server = OtlpReceiver()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def traced_worker(receiver, django_db_setup):
    worker = start_worker_process(concurrency=1, queues=[QUEUE], hostname="traced@%h", extra_env={
        "JOBSITE_OTEL": "1", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100",
    })
    yield worker
    worker.stop()


@pytest.fixture
def web_spans():
    """Tracing set up in this process as jobsite/wsgi.py does, spans kept in memory."""
    exporter = InMemorySpanExporter()
    observability.setup_tracing(service_name="jobsite-web", django=True, exporter=exporter, set_global=False)
    yield exporter
    observability.teardown_tracing()


@pytest.mark.timeout(120)
def test_a_run_requested_through_the_api_is_one_trace_through_the_worker(
        web_spans, traced_worker, receiver, client_for, superuser, settings):
    # given
    settings.JOBS_QUEUES = [*settings.JOBS_QUEUES, QUEUE]
    job = JobFactory(name="traced-job", task_name="tests.noop", queue=QUEUE, schedule_type="manual",
                     schedule_expression="")

    # when: a run is requested through the API, and the worker runs it
    response = client_for(superuser).post(f"/api/v1/jobs/{job.pk}/execute?token=not-in-any-span", {}, format="json")
    assert response.status_code == 202, response.content
    execution_id = response.json()["id"]
    wait_for(lambda: Execution.objects.get(pk=execution_id).status == Execution.Status.SUCCESS, timeout=60,
             message="the run to succeed")
    run_span = wait_for(lambda: next((span for span in receiver.spans
                                      if span["name"] == "run/scheduling.run_execution"), None),
                        timeout=30, message="the worker's span")

    # then: the request's span, the publish and the worker's run share one trace
    local = {span.name: span for span in web_spans.get_finished_spans()}
    request_span = next(span for name, span in local.items() if name.startswith("POST"))
    publish_span = local["apply_async/scheduling.run_execution"]
    trace_id = f"{request_span.context.trace_id:032x}"
    assert f"{publish_span.context.trace_id:032x}" == trace_id
    assert publish_span.parent.span_id == request_span.context.span_id
    assert run_span["trace_id"] == trace_id
    assert run_span["parent_span_id"] == f"{publish_span.context.span_id:016x}"
    assert run_span["service"] == "jobsite-worker"
    # with the execution's and its job's ids
    assert run_span["attributes"]["jobsite.execution_id"] == execution_id
    assert run_span["attributes"]["jobsite.job_id"] == job.pk
    assert publish_span.attributes["jobsite.execution_id"] == execution_id
    # and no secret: the request's URL is redacted on its span
    url_attributes = {key: value for key, value in request_span.attributes.items()
                      if key in ("http.url", "url.full", "http.target", "url.query")}
    assert url_attributes and not any("not-in-any-span" in str(value) for value in url_attributes.values())


@pytest.mark.timeout(120)
def test_a_beat_fire_is_one_trace_through_the_run(traced_worker, receiver, settings, tmp_path):
    import subprocess
    import sys

    from tests.worker import worker_env

    # given: an interval job on the traced worker's queue, and a traced beat
    settings.JOBS_QUEUES = [*settings.JOBS_QUEUES, QUEUE]
    job = JobFactory(name="traced-beat-job", task_name="tests.noop", queue=QUEUE, schedule_type="interval",
                     schedule_expression="2s")
    env = worker_env({"JOBSITE_OTEL": "1", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                      "OTEL_BSP_SCHEDULE_DELAY": "100"})
    with open(tmp_path / "beat.log", "wb") as log:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "jobsite", "beat", "--loglevel", "info", "--max-interval", "1",
             "-S", settings.CELERY_BEAT_SCHEDULER, "-s", str(tmp_path / "beat-schedule")],
            cwd=str(settings.BASE_DIR), env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        # when: beat fires it and the worker runs it
        def of_our_job(name):
            return [span for span in receiver.spans if span["name"] == name
                    and span["attributes"].get("jobsite.job_id") == job.pk]

        run = wait_for(lambda: (of_our_job("run/scheduling.run_execution") or [None])[0], timeout=60,
                       message=f"a traced run of the job; beat log: {(tmp_path / 'beat.log').read_text()[-2000:]}")
    finally:
        beat.terminate()
        beat.wait(timeout=15)

    # then: beat's send (the project's beat queues the run itself) and the run are one trace
    fire = next(span for span in receiver.spans
                if span["name"] == "apply_async/scheduling.run_execution" and span["span_id"] == run["parent_span_id"])
    assert fire["service"] == "jobsite-beat" and run["service"] == "jobsite-worker"
    assert fire["trace_id"] == run["trace_id"]
    assert fire["parent_span_id"] == ""  # the fire starts the trace
    assert fire["attributes"]["jobsite.execution_id"] == run["attributes"]["jobsite.execution_id"]
    assert Execution.objects.filter(pk=run["attributes"]["jobsite.execution_id"], job=job).exists()
