"""Optional tracing (OpenTelemetry) and error reporting (Sentry), each off
unless configured; then set up once per process by what starts the process:

- tracing (``JOBSITE_OTEL=1``, or ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` set; ``JOBSITE_OTEL=0`` keeps it off):
  jobsite/wsgi.py for the web (Django and Celery instrumentation: a request's
  span is the parent of the task it sends), jobsite/celery.py for each worker
  process and for beat (Celery instrumentation). The trace context travels in
  the task message's headers, so a request, or a beat fire, and the worker run
  it causes are one trace; a task's span carries the ids it was given
  (``jobsite.job_id``, ``jobsite.execution_id``, ...). Spans go to the OTLP/HTTP
  endpoint the standard ``OTEL_EXPORTER_OTLP_*`` variables name
  (https://opentelemetry.io/docs/specs/otel/protocol/exporter/).
- Sentry (``SENTRY_DSN`` set): jobsite/settings/observability.py, in every
  process that reads the settings (Sentry's Django and Celery integrations
  enable themselves). Every event passes ``scrub_event`` (jobsite.redaction's
  rules) before it leaves.

Secrets never reach either: request URLs on spans are redacted like every URL
the project shows, tasks' arguments are not recorded (only their ids), and
Sentry events lose credential-named fields, URL credentials and the values
of the project's secret settings. With neither configured, nothing of
opentelemetry or sentry_sdk is imported.
"""
from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

_ON = {"1", "true", "yes", "on"}
_OFF = {"0", "false", "no", "off"}
#: The task arguments a task span records, as ``jobsite.<name>``: ids only.
_ID_ARGUMENT_SUFFIX = "_id"
_ID_MAX_CHARS = 64
#: Span attributes that hold a request's URL (old and new HTTP semantic conventions).
_URL_ATTRIBUTES = ("http.url", "url.full", "http.target", "url.query")

_provider = None  # the TracerProvider, once tracing is set up in this process
_instrumentors: list = []


# ---------------------------------------------------------------------------
# Tracing (OpenTelemetry)
# ---------------------------------------------------------------------------
def tracing_configured(environ: Mapping[str, str] | None = None) -> bool:
    """Whether tracing is asked for: JOBSITE_OTEL=1, or an OTLP endpoint set
    (JOBSITE_OTEL=0 wins over the endpoint)."""
    environ = os.environ if environ is None else environ
    flag = environ.get("JOBSITE_OTEL", "").strip().lower()
    if flag in _OFF:
        return False
    return flag in _ON or bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                               or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def setup_tracing_if_configured(*, service_name: str, django: bool) -> None:
    """What the entry points call: set tracing up only when it is configured."""
    if tracing_configured():
        setup_tracing(service_name=service_name, django=django)


def setup_tracing(*, service_name: str, django: bool, exporter=None, set_global: bool = True):
    """Instrument Celery (and Django when ``django``) in this process and send
    spans to ``exporter`` (default: OTLP over HTTP, configured by the standard
    OTEL_EXPORTER_OTLP_* variables, in batches). Once per process; returns
    the TracerProvider. OTEL_SERVICE_NAME, when set, names the service.

    ``exporter`` given (tests: an in-memory exporter), spans are handed to it
    as each ends; ``set_global=False`` leaves OpenTelemetry's global provider
    alone (a test process sets tracing up and tears it down again)."""
    global _provider
    if _provider is not None:
        return _provider
    from opentelemetry import trace
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME") or service_name}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # (the batch processor restarts its export thread in a forked child)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    if set_global:
        trace.set_tracer_provider(provider)

    celery_instrumentor = CeleryInstrumentor()
    celery_instrumentor.instrument(tracer_provider=provider)
    _instrumentors.append(celery_instrumentor)
    from celery import signals

    # After the instrumentor's own handlers, which open the task's and the send's spans.
    signals.task_prerun.connect(_annotate_task_span, weak=False, dispatch_uid="jobsite.observability")
    signals.before_task_publish.connect(_annotate_publish_span, weak=False, dispatch_uid="jobsite.observability")
    if django:
        from opentelemetry.instrumentation.django import DjangoInstrumentor

        django_instrumentor = DjangoInstrumentor()
        django_instrumentor.instrument(tracer_provider=provider, request_hook=_redact_request_span)
        _instrumentors.append(django_instrumentor)
    _provider = provider
    logger.info("OpenTelemetry tracing on (service %s)", service_name)
    return provider


def teardown_tracing() -> None:
    """Undo setup_tracing in this process (tests): instrumentation off, spans flushed."""
    global _provider
    from celery import signals

    signals.task_prerun.disconnect(dispatch_uid="jobsite.observability")
    signals.before_task_publish.disconnect(dispatch_uid="jobsite.observability")
    while _instrumentors:
        _instrumentors.pop().uninstrument()
    if _provider is not None:
        _provider.shutdown()
    _provider = None


def task_ids(task, args, kwargs) -> dict[str, Any]:
    """The ids among a task's arguments (``job_id``, ``execution_id``, ...), by
    the parameter names of its function; nothing else of its arguments."""
    try:
        bound = inspect.signature(task.run).bind_partial(*(args or ()), **(kwargs or {}))
    except (TypeError, ValueError):
        return {}
    return {name: value for name, value in bound.arguments.items()
            if name.endswith(_ID_ARGUMENT_SUFFIX) and isinstance(value, (int, str))
            and not isinstance(value, bool) and len(str(value)) <= _ID_MAX_CHARS}


def _annotate_task_span(sender=None, task_id=None, task=None, args=None, kwargs=None, **_):
    from opentelemetry import trace

    span = trace.get_current_span()
    if task is None or not span.is_recording():
        return
    ids = task_ids(task, args, kwargs)
    if "execution_id" in ids and "job_id" not in ids:
        job_id = _job_of_execution(ids["execution_id"])
        if job_id is not None:
            ids["job_id"] = job_id
    for name, value in ids.items():
        span.set_attribute(f"jobsite.{name}", value)


def _annotate_publish_span(sender=None, body=None, **_):
    """A send's span gets the ids the task is sent with (no lookup: beat may
    send a thousand runs at once)."""
    from celery import current_app
    from opentelemetry import trace

    span = trace.get_current_span()
    task = current_app.tasks.get(sender) if isinstance(sender, str) else None
    if task is None or not span.is_recording() or not isinstance(body, (list, tuple)) or len(body) < 2:
        return
    for name, value in task_ids(task, body[0], body[1]).items():
        span.set_attribute(f"jobsite.{name}", value)


def _job_of_execution(execution_id) -> int | None:
    """The job of a run (one indexed read; only while tracing is on). Through
    the app registry: jobsite imports none of the apps."""
    try:
        from django.apps import apps

        execution_model = apps.get_model("scheduling", "Execution")
        return execution_model.objects.filter(pk=execution_id).values_list("job_id", flat=True).first()
    except Exception:  # no such app, or the database is away: the span goes without it
        return None


def _redact_request_span(span, request) -> None:
    """Django's request span, its URL redacted as the project shows every URL."""
    from jobsite.redaction import redact_url

    attributes = getattr(span, "attributes", None) or {}
    for name in _URL_ATTRIBUTES:
        value = attributes.get(name)
        if isinstance(value, str) and value:
            span.set_attribute(name, redact_url(value) if name != "url.query" else redact_url(f"?{value}")[1:])


# ---------------------------------------------------------------------------
# Error reporting (Sentry)
# ---------------------------------------------------------------------------
def setup_sentry(*, dsn: str, environment: str = "", release: str = "", traces_sample_rate: float = 0.0) -> None:
    """Sentry with its Django and Celery integrations (enabled by themselves),
    without user identities or request bodies, and ``scrub_event`` before each
    event is sent. https://docs.sentry.io/platforms/python/configuration/options/"""
    import sentry_sdk

    sentry_sdk.init(
        dsn=dsn, environment=environment or None, release=release or None,
        data_collection={"user_info": False, "http_bodies": []},
        traces_sample_rate=traces_sample_rate, before_send=scrub_event,
        # spans too, when SENTRY_TRACES_SAMPLE_RATE sends them (their name and attributes)
        before_send_span=scrub_event,
    )


def scrub_event(event: dict, hint: dict | None = None) -> dict:
    """A Sentry event with jobsite.redaction's rules applied throughout:
    fields named like a credential become ``***``, URL user info and secret
    query values are cut from every string, and the values of the project's
    secret settings (SECRET_KEY, FIELD_ENCRYPTION_KEY, tokens, passwords)
    disappear wherever they appear."""
    from jobsite.redaction import secret_setting_values

    secrets = secret_setting_values()
    return {key: _scrub(value, secrets) for key, value in event.items()}


def _scrub(value, secrets: list[str], depth: int = 0):
    from jobsite.redaction import SECRET_NAME, redact_text, redact_values

    if depth > 20:
        return value
    if isinstance(value, str):
        return redact_values(redact_text(value), secrets)
    if isinstance(value, Mapping):
        return {key: "***" if isinstance(key, str) and SECRET_NAME.search(key) and value[key] not in (None, "")
                else _scrub(value[key], secrets, depth + 1) for key in value}
    if isinstance(value, (list, tuple)):
        # [name, value] pairs: Sentry sends headers and query strings this way
        if len(value) == 2 and isinstance(value[0], str) and SECRET_NAME.search(value[0]):
            return [value[0], "***"]
        return [_scrub(item, secrets, depth + 1) for item in value]
    return value
