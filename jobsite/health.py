"""GET /health: is the platform able to run work right now?

The checks live in jobsite.services_health (also used by the
``system_health_check`` job); this view only maps the report to 200/503.
API clients get JSON; a browser (``Accept: text/html``) gets the same report
as a page, and is sent to the admin login first when signed out.
"""
from django.template.loader import render_to_string
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobsite.services_health import health_report, record_beat_heartbeat  # noqa: F401 (re-exported)
from jobsite.views import _LoginRedirectMixin

CHECK_NAMES = {"database": "Database", "broker": "Broker", "workers": "Workers", "beat": "Beat", "disk": "Disk"}

_EXAMPLE = {
    "status": "ok",
    "checked_at": "2025-01-01T12:00:00+00:00",
    "duration_ms": 1012.4,
    "checks": {
        "database": {"ok": True, "detail": "sqlite answered SELECT 1", "latency_ms": 0.8},
        "broker": {"ok": True, "detail": "connected to redis://127.0.0.1:6390/0", "latency_ms": 1.9},
        "workers": {"ok": True, "detail": "1 worker(s) answered ping", "workers": ["worker1@host"], "latency_ms": 1003.0},
        "beat": {"ok": True, "detail": "celerybeat@host answered ping", "nodes": ["celerybeat@host"], "latency_ms": 1003.0},
        "disk": {"ok": True, "detail": "80950 MB free under /srv/jobsite/var (minimum 512 MB)", "latency_ms": 0.1},
    },
}


class HealthPageRenderer(BaseRenderer):
    """The report as a page a person reads: one row per check, its state in
    colour and words. JSON stays first in the view's renderers, so a client
    that accepts anything (``*/*``, curl, monitors) still gets JSON."""

    media_type = "text/html"
    format = "html"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        data = data if isinstance(data, dict) else {}
        checks = [{"key": key, "name": CHECK_NAMES.get(key, key.title()), **check}
                  for key, check in (data.get("checks") or {}).items()]
        request = (renderer_context or {}).get("request")
        return render_to_string("jobsite/health.html", {"report": data, "checks": checks,
                                                        "detail": data.get("detail", "")},
                                request=getattr(request, "_request", None))


class HealthApi(_LoginRedirectMixin, APIView):
    """Database, broker, workers, beat and free disk, each with a short deadline."""

    renderer_classes = [JSONRenderer, HealthPageRenderer]

    @extend_schema(
        summary="Platform health",
        description=(
            "Checks the database (SELECT 1), the broker (connect + ping), live Celery workers "
            "(broadcast ping), beat (remote-control ping, heartbeat or last periodic run) and free "
            "disk space. 200 when everything is ok, 503 with status 'degraded' otherwise. "
            "Answers within a few seconds even when a dependency hangs."
        ),
        # ?format= picks the page or the JSON for a person trying it in a browser; API clients
        # get JSON without it, so the API documents no such parameter
        parameters=[OpenApiParameter("format", exclude=True)],
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="All checks ok.",
                                 examples=[OpenApiExample("ok", value=_EXAMPLE)]),
            503: OpenApiResponse(OpenApiTypes.OBJECT, description="At least one check failed (status 'degraded')."),
        },
    )
    def get(self, request: Request) -> Response:
        report = health_report()
        code = status.HTTP_200_OK if report["status"] == "ok" else status.HTTP_503_SERVICE_UNAVAILABLE
        return Response(report, status=code, headers={"Cache-Control": "no-store"})
