"""Pages for people: the landing page at ``/``, the API index at ``/api/v1/``
and the interactive docs, which send a browser without a login to the admin
login and back (the schema itself stays a 401 for API clients).

jobsite serves every app and imports none of them: the index names the
facades' routes by URL name only.
"""
from pathlib import Path

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe
from django.urls import NoReverseMatch, reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated
from rest_framework.response import Response
from rest_framework.reverse import reverse as api_reverse
from rest_framework.views import APIView

#: The API's entry points, by facade: (key, URL name, what it is).
API_ROOTS = [
    ("jobs", "job-list", "General jobs: list, create, execute, pause, resume, stats"),
    ("executions", "execution-list", "Runs of every job, across jobs; cancel one with POST {id}/cancel"),
    ("cron_jobs", "cron-job-list", "Workflow schedules"),
    ("workflows", "workflow-list", "Stored workflows"),
    ("workflow_runs", "workflow-run-list", "Runs of workflows, step by step"),
    ("vision_cron_jobs", "vision-cron-jobs", "Vision-analysis cron jobs"),
    ("vision_batches", "vision-batches", "Vision batches"),
    ("available_models", "vision-available-models", "Vision analyzers"),
    ("predictions", "prediction-job-list", "Bulk prediction uploads"),
    ("auth_token", "auth-token", "POST username and password for a bearer token"),
    ("health", "health", "Database, broker, workers, beat and disk"),
    ("schema", "schema", "OpenAPI schema"),
    ("docs", "swagger-ui", "Interactive docs (Swagger UI)"),
    ("redoc", "redoc", "Reference docs (ReDoc)"),
]


def api_roots(request=None) -> list[dict]:
    roots = []
    for key, name, description in API_ROOTS:
        try:
            url = api_reverse(name, request=request)
        except NoReverseMatch:  # a facade left out of this installation
            continue
        roots.append({"key": key, "url": url, "description": description})
    return roots


FAVICON = Path(__file__).resolve().parent / "static" / "jobsite" / "favicon.ico"


@require_safe
@cache_control(public=True, max_age=86400)
def favicon(request):
    """``/favicon.ico``, which browsers ask for on every page (the admin's
    included): the icon itself rather than a 404 in the log each time."""
    return HttpResponse(FAVICON.read_bytes(), content_type="image/x-icon")


def home(request):
    """``/``: where to go from here."""
    return render(request, "jobsite/home.html", {
        "roots": api_roots(),
        "version": settings.SPECTACULAR_SETTINGS.get("VERSION", ""),
    })


class ApiIndex(APIView):
    """The API's entry points, one per facade, with links to the docs."""

    @extend_schema(operation_id="api_index", tags=["meta"], responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        roots = api_roots(request)
        return Response({
            "title": settings.SPECTACULAR_SETTINGS.get("TITLE", ""),
            "version": settings.SPECTACULAR_SETTINGS.get("VERSION", ""),
            "endpoints": {root["key"]: root["url"] for root in roots},
            "descriptions": {root["key"]: root["description"] for root in roots},
        })


class _LoginRedirectMixin:
    """An anonymous browser is sent to the admin login, which brings it back.
    A client that does not ask for HTML (curl, scripts) keeps the API's 401."""

    def handle_exception(self, exc):
        wants_html = "text/html" in self.request.META.get("HTTP_ACCEPT", "")
        if wants_html and isinstance(exc, (NotAuthenticated, AuthenticationFailed)):
            return redirect_to_login(self.request.get_full_path(), login_url=reverse("admin:login"))
        return super().handle_exception(exc)


class DocsSwaggerView(_LoginRedirectMixin, SpectacularSwaggerView):
    """Swagger UI, served from the project (drf-spectacular-sidecar)."""


class DocsRedocView(_LoginRedirectMixin, SpectacularRedocView):
    """ReDoc, served from the project (drf-spectacular-sidecar), without web fonts."""

    template_name = "jobsite/redoc.html"
