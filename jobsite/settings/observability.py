"""Optional tracing and error reporting (jobsite/observability.py), each off
unless configured.

OpenTelemetry tracing: JOBSITE_OTEL=1, or OTEL_EXPORTER_OTLP_ENDPOINT (or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) set; spans go over OTLP/HTTP to that
endpoint (default http://localhost:4318), named by OTEL_SERVICE_NAME (default
jobsite-web, jobsite-worker, jobsite-beat); JOBSITE_OTEL=0 turns it off.
The web sets it up in jobsite/wsgi.py, workers and beat in jobsite/celery.py.
https://opentelemetry.io/docs/languages/sdk-configuration/otlp-exporter/

Sentry: SENTRY_DSN set (SENTRY_ENVIRONMENT, SENTRY_RELEASE and
SENTRY_TRACES_SAMPLE_RATE optional); set up here, as Sentry's Django guide
does, so every process that reads the settings reports (web, workers, beat,
commands). https://docs.sentry.io/platforms/python/integrations/django/
"""
from jobsite.observability import setup_sentry, tracing_configured
from jobsite.settings.base import env

OTEL_ENABLED = tracing_configured()
SENTRY_DSN = env.str("SENTRY_DSN", default="")
SENTRY_ENVIRONMENT = env.str("SENTRY_ENVIRONMENT", default="")
SENTRY_RELEASE = env.str("SENTRY_RELEASE", default="")
SENTRY_TRACES_SAMPLE_RATE = env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0)
if SENTRY_DSN:
    setup_sentry(dsn=SENTRY_DSN, environment=SENTRY_ENVIRONMENT, release=SENTRY_RELEASE,
                 traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE)
