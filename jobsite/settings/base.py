"""Django itself: paths, DEBUG and SECRET_KEY, apps, middleware, templates,
locale, static files, uploads, logging."""
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# A local .env is convenient for development; the process environment wins.
env.read_env(BASE_DIR / ".env", overwrite=False)

# Runtime state of the embedded defaults (SQLite, Redis data, temp files).
VAR_DIR = Path(env.str("JOBSITE_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# ---------------------------------------------------------------------------
# Core
# ---------------------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=True)


def is_placeholder(value: str) -> bool:
    """True for the `change-me-...` placeholders that .env.example ships."""
    return value.strip().lower().startswith("change-me")


# With DEBUG=false a bad secret stops the process with one line that names the
# variable and the fix, never the value (the message lands in logs).
generate_secret_hint = 'generate one with: python3 -c "import secrets; print(secrets.token_urlsafe(50))"'
SECRET_KEY_MIN_LENGTH = 32
SECRET_KEY = env.str("SECRET_KEY", default="")
if not DEBUG:
    if not SECRET_KEY:
        raise ImproperlyConfigured(f"SECRET_KEY must be set when DEBUG is false; {generate_secret_hint}")
    if is_placeholder(SECRET_KEY):
        raise ImproperlyConfigured(
            f"SECRET_KEY is still the change-me placeholder of .env.example; {generate_secret_hint}"
        )
    if len(SECRET_KEY) < SECRET_KEY_MIN_LENGTH:
        raise ImproperlyConfigured(
            f"SECRET_KEY is shorter than {SECRET_KEY_MIN_LENGTH} characters; {generate_secret_hint}"
        )
if not SECRET_KEY:
    # Development only: a stable per-checkout key kept under var/.
    _key_file = VAR_DIR / "secret_key"
    if not _key_file.exists():
        import secrets

        _key_file.write_text(secrets.token_urlsafe(50))
        _key_file.chmod(0o600)
    SECRET_KEY = _key_file.read_text().strip()

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    # Before django.contrib.admin, so its admin/base_site.html (the operator-warning
    # banner, the Flower link) overrides the admin's own (Django's documented way).
    "jobsite",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    # Swagger UI and ReDoc's files (SPECTACULAR_SETTINGS "SIDECAR", settings/api.py), as static files.
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "scheduling",
    "scheduling.workflows",
    "scheduling.notifications",
    "vision_pipeline",
    "predictions",
    # Your own apps, e.g. ones that add job kinds in an ``executors`` module.
    *env.list("JOBS_EXTRA_APPS", default=[]),
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # NUL/surrogates in paths and query strings, oversized bodies: refused as JSON before anything reads them
    "jobsite.middleware.InputBoundaryMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "jobsite.urls"
WSGI_APPLICATION = "jobsite.wsgi.application"
# API paths have no trailing slash (/cron-jobs/{id}); never redirect POSTs.
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Times with seconds and time zone everywhere (jobsite/formats/en/formats.py).
FORMAT_MODULE_PATH = ["jobsite.formats"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=str(VAR_DIR / "static"))

# ---------------------------------------------------------------------------
# Uploads (the vision batch upload raises the file count, settings/vision.py)
# ---------------------------------------------------------------------------
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# ---------------------------------------------------------------------------
# Logging: one line per event
# ---------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# Every handler redacts what it writes (jobsite.redaction.RedactingLogFilter): a
# credential in an exception's text, a URL or a header never reaches a log line.
# The worker and beat put the same filter on Celery's handlers (jobsite/celery.py).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact": {"()": "jobsite.redaction.RedactingLogFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "django.server": {"()": "django.utils.log.ServerFormatter", "format": "[{server_time}] {message}",
                          "style": "{"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]},
        # runserver's access log (Django's own handler, with the filter): a query string may hold a token
        "django.server": {"class": "logging.StreamHandler", "formatter": "django.server", "filters": ["redact"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own default config gives "django" a console handler of its own
        # (under DEBUG) that also propagates to the root: each 4xx/5xx would be
        # written twice ("Not Found: /x", then the same line formatted). The root
        # writes it once. (django.server, runserver's access log, keeps its own.)
        "django": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        "django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False},
        "django.db.backends": {"level": "WARNING"},
    },
}
