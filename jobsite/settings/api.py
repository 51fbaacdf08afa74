"""The REST API (Django REST framework) and its OpenAPI schema and docs
(drf-spectacular)."""
from jobsite.settings.base import env

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "jobsite.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "jobsite.parsers.StrictJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "jobsite.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Counted in the process-local cache: the limit applies per web process.
    "DEFAULT_THROTTLE_RATES": {
        "auth_token": env.str("AUTH_TOKEN_THROTTLE_RATE", default="20/min"),
        "auth_token_username": env.str("AUTH_TOKEN_USERNAME_THROTTLE_RATE", default="10/min"),
    },
    # How many proxies in front of the web process append to X-Forwarded-For.
    # 0 (the default): the header is ignored and the client is REMOTE_ADDR, so
    # a client cannot pick its own address to dodge the login throttle.
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
}
# Request bodies: JSON nested deeper than this is refused (400) before decoding.
API_MAX_JSON_DEPTH = env.int("API_MAX_JSON_DEPTH", default=32)
SPECTACULAR_SETTINGS = {
    "TITLE": "jobsite API",
    "DESCRIPTION": "Schedule, run, track and cancel background work.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Each tag names the API it groups and its paths, in the docs' order.
    "TAGS": [
        {"name": "jobs", "description": "Jobs API (/api/v1/jobs): jobs of every kind; create, change, run now, "
                                        "pause, resume, statistics."},
        {"name": "calendars", "description": "Calendars (/api/v1/calendars): holidays, dates, date ranges, weekly "
                                             "windows and iCalendar files whose days and hours a job's fires skip."},
        {"name": "executions", "description": "Runs of every job (/api/v1/executions); cancel one."},
        {"name": "notifications", "description": "Where a job's outcomes are sent (/api/v1/jobs/{id}/notifications)."},
        {"name": "workflow schedules", "description": "Workflow schedules API (/api/cron/jobs): run a stored "
                                                      "workflow on a cron or interval schedule, per user."},
        {"name": "workflows", "description": "Stored workflows and their runs, step by step (/api/workflows)."},
        {"name": "vision cron jobs", "description": "Vision cron jobs (/cron-jobs): fetch unprocessed analyses from "
                                                    "an external document API on a schedule, analyse their images, "
                                                    "upload the reports."},
        {"name": "vision batches", "description": "Vision batches (/api/v1/vision/batches, /available_models): "
                                                  "upload images, follow their analysis, fetch the HTML report."},
        {"name": "predictions", "description": "Bulk predictions (/api/v1/predictions): upload a CSV or XLSX file "
                                               "of loans, follow its scoring row by row, download the results."},
        {"name": "auth", "description": "Bearer tokens (JWT) for a username and password."},
        {"name": "health", "description": "Database, broker, workers, beat and disk."},
        {"name": "meta", "description": "The API's entry points."},
    ],
    "COMPONENT_SPLIT_REQUEST": True,
    # The schema and docs pages need a login like every endpoint (bearer token,
    # or the admin session in a browser).
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI and ReDoc come from the project's own static files
    # (drf-spectacular-sidecar, pinned in pyproject.toml), never from a CDN, so
    # the docs work offline. https://drf-spectacular.readthedocs.io/en/latest/settings.html
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The answers DRF gives whatever the view (401, 400/415 from the parsers, 404
    # from lookups, 403 from CSRF), documented once on every operation
    # (jobsite/openapi.py). https://drf-spectacular.readthedocs.io/en/latest/customization.html
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "jobsite.openapi.document_framework_responses",
        # additionalProperties: false where a serializer refuses unknown keys.
        "jobsite.openapi.declare_closed_request_bodies",
        # OpenAPI links from each view's x-jobsite-links (stateful testing follows them).
        "jobsite.openapi.link_declared_targets",
    ],
}
