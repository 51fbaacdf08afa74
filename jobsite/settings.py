"""jobsite settings, read from the environment (12-factor).

Every variable read here is documented in README.md ("Configuration").
Embedded defaults (SQLite under var/, a project-started Redis) make `make run`
and `make test` work on a fresh machine; production sets DATABASE_URL,
REDIS_URL, SECRET_KEY and DEBUG=false.
"""
from datetime import timedelta
from pathlib import Path

import environ
from kombu import Queue
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

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


def _is_placeholder(value: str) -> bool:
    """True for the `change-me-...` placeholders that .env.example ships."""
    return value.strip().lower().startswith("change-me")


# With DEBUG=false a bad secret stops the process with one line that names the
# variable and the fix, never the value (the message lands in logs).
_GENERATE_SECRET = 'generate one with: python3 -c "import secrets; print(secrets.token_urlsafe(50))"'
SECRET_KEY_MIN_LENGTH = 32
SECRET_KEY = env.str("SECRET_KEY", default="")
if not DEBUG:
    if not SECRET_KEY:
        raise ImproperlyConfigured(f"SECRET_KEY must be set when DEBUG is false; {_GENERATE_SECRET}")
    if _is_placeholder(SECRET_KEY):
        raise ImproperlyConfigured(f"SECRET_KEY is still the change-me placeholder of .env.example; {_GENERATE_SECRET}")
    if len(SECRET_KEY) < SECRET_KEY_MIN_LENGTH:
        raise ImproperlyConfigured(
            f"SECRET_KEY is shorter than {SECRET_KEY_MIN_LENGTH} characters; {_GENERATE_SECRET}"
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

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "django_celery_beat",
    "jobsite",
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
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "jobsite.urls"
WSGI_APPLICATION = "jobsite.wsgi.application"
# Seed paths have no trailing slash (/cron-jobs/{id}); never redirect POSTs.
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
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=str(VAR_DIR / "static"))

# ---------------------------------------------------------------------------
# Database: PostgreSQL via DATABASE_URL, else SQLite under var/
# ---------------------------------------------------------------------------
SQLITE_PATH = VAR_DIR / "jobsite.sqlite3"
# Empty counts as unset (`DATABASE_URL=` in a .env), like SECRET_KEY above.
# Lower-case: not a setting, so the debug page and diffsettings never show
# the password it embeds.
_database_url = env.str("DATABASE_URL", default="")
if not DEBUG and not _database_url:
    # Production must never write to a SQLite file that a container restart loses.
    raise ImproperlyConfigured(
        "DATABASE_URL must be set when DEBUG is false (e.g. postgres://user:password@host:5432/jobsite); "
        "there is no SQLite fallback in production."
    )
DATABASES = {"default": env.db_url_config(_database_url or f"sqlite:///{SQLITE_PATH}")}
if not DEBUG and _is_placeholder(DATABASES["default"].get("PASSWORD") or ""):
    raise ImproperlyConfigured(
        "DATABASE_URL has the change-me placeholder password of .env.example; set a random "
        "POSTGRES_PASSWORD (docker-compose) or password in DATABASE_URL."
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # web + worker + beat write concurrently: WAL lets readers run beside the
    # writer, the busy timeout waits instead of failing, and IMMEDIATE
    # transactions take the write lock up front so two writers never deadlock
    # on a lock upgrade ("database is locked").
    # https://docs.djangoproject.com/en/5.2/ref/databases/#sqlite-notes
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
    }
    # A file, not :memory:, so worker subprocesses in end-to-end tests share it.
    DATABASES["default"]["TEST"] = {
        "NAME": env.str("JOBSITE_TEST_SQLITE_PATH", default=str(VAR_DIR / "test_jobsite.sqlite3"))
    }
# Persistent connections on every database, SQLite included: a worker runs
# hundreds of short tasks a second, and Celery's Django fix-up closes an
# obsolete connection after each one (opening a SQLite connection runs the
# PRAGMAs above; a PostgreSQL one forks a backend). Checked before reuse.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# ---------------------------------------------------------------------------
# Celery (broker + results); REDIS_URL unset → the embedded Redis under var/
# ---------------------------------------------------------------------------
EMBEDDED_REDIS_PORT = env.int("EMBEDDED_REDIS_PORT", default=6390)
REDIS_URL = env.str("REDIS_URL", default=f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=REDIS_URL)
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_RESULT_EXPIRES = timedelta(days=env.int("CELERY_RESULT_EXPIRES_DAYS", default=7))
CELERY_RESULT_EXTENDED = True
CELERY_TASK_TRACK_STARTED = True
# Tasks are idempotent on their Execution row, so ack late: a worker that dies
# mid-task leaves the message to be redelivered, and reject-on-lost requeues it.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Messages each worker process reserves ahead: 1 keeps long runs from waiting
# behind a busy process; short runs in bulk go faster with 4-8 (README, scaling).
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_WORKER_PREFETCH_MULTIPLIER", default=1)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=3600)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=3660)
CELERY_TASK_DEFAULT_QUEUE = "default"
# Named queues; a worker consumes all of them unless started with -Q.
JOBS_QUEUES = env.list("CELERY_QUEUES", default=["default", "maintenance", "vision", "workflows", "predictions"])
CELERY_TASK_QUEUES = [Queue(name) for name in JOBS_QUEUES]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A redelivered unacked message comes back after this long; it must exceed the
# longest task, or a slow task would run twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=4 * 3600),
}
# When Redis is down, fail a send in ~2 s instead of the result backend's default
# 20 retries (a web request would hang 20 s before answering 503).
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {
    "retry_policy": {"max_retries": 3, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
}
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = 5
# Task events (Celery's defaults: off). Flower turns the workers' events on by
# itself while it runs (its enable_events broadcast); an exporter that reads them
# needs them on. They cost three broker round trips per run in the worker's main
# loop and one per send: a 1,000-run burst started ~15 % sooner without them.
CELERY_WORKER_SEND_TASK_EVENTS = env.bool("CELERY_WORKER_SEND_TASK_EVENTS", default=False)
CELERY_TASK_SEND_SENT_EVENT = env.bool("CELERY_TASK_SEND_SENT_EVENT", default=False)
CELERY_BEAT_SCHEDULER = "scheduling.beat_scheduler:Scheduler"
CELERY_BEAT_SYNC_EVERY = 1
# django-celery-beat re-reads the schedule when PeriodicTasks.last_update changes
# (checked at most every beat_max_loop_interval seconds).
CELERY_BEAT_MAX_LOOP_INTERVAL = env.int("CELERY_BEAT_MAX_LOOP_INTERVAL", default=5)
# Celery's Django fix-up closes the database connection before and after every
# task unless this is set; jobsite.celery closes only unusable or obsolete ones
# (CONN_MAX_AGE, health checks), as Django does around a request.
CELERY_DB_REUSE_MAX = 1_000_000
DJANGO_CELERY_BEAT_TZ_AWARE = True
# Beat answers `celery inspect ping` (and stops answering if its loop stalls): /health uses it.
CELERY_BEAT_ENABLE_REMOTE_CONTROL = True

# ---------------------------------------------------------------------------
# REST framework, OpenAPI
# ---------------------------------------------------------------------------
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
    ],
}

# ---------------------------------------------------------------------------
# Auth: JWT (PyJWT). Local tokens are HS256 signed with JWT_SIGNING_KEY;
# external identity providers: HS256 shared secret or RS256/ES256 public key.
# ---------------------------------------------------------------------------
JWT_SIGNING_KEY = env.str("JWT_SIGNING_KEY", default="") or SECRET_KEY
if not DEBUG and (_is_placeholder(JWT_SIGNING_KEY) or len(JWT_SIGNING_KEY) < SECRET_KEY_MIN_LENGTH):
    # A placeholder from .env.example would let anyone forge a token for any user.
    raise ImproperlyConfigured(
        f"JWT_SIGNING_KEY is a change-me placeholder or shorter than {SECRET_KEY_MIN_LENGTH} characters; "
        f"{_GENERATE_SECRET} (or leave it unset to use SECRET_KEY)"
    )
JWT_ISSUER = env.str("JWT_ISSUER", default="jobsite")
JWT_AUDIENCE = env.str("JWT_AUDIENCE", default="jobsite")
JWT_ACCESS_TTL = timedelta(seconds=env.int("JWT_ACCESS_TTL_SECONDS", default=3600))
JWT_LEEWAY_SECONDS = env.int("JWT_LEEWAY_SECONDS", default=30)
# External provider (e.g. Supabase: HS256 secret, aud "authenticated").
JWT_EXTERNAL_HS256_SECRET = env.str("JWT_EXTERNAL_HS256_SECRET", default="")
JWT_EXTERNAL_PUBLIC_KEY = env.str("JWT_EXTERNAL_PUBLIC_KEY", default="").replace("\\n", "\n")
JWT_EXTERNAL_ALGORITHMS = env.list("JWT_EXTERNAL_ALGORITHMS", default=["RS256", "ES256"])
JWT_EXTERNAL_AUDIENCE = env.str("JWT_EXTERNAL_AUDIENCE", default="authenticated")
JWT_EXTERNAL_ISSUER = env.str("JWT_EXTERNAL_ISSUER", default="")

# ---------------------------------------------------------------------------
# Uploads and outbound HTTP
# ---------------------------------------------------------------------------
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# Read by jobsite/http.py, the one client every outbound call goes through.
OUTBOUND_HTTP_TIMEOUT = env.float("OUTBOUND_HTTP_TIMEOUT", default=30.0)
OUTBOUND_HTTP_RETRIES = env.int("OUTBOUND_HTTP_RETRIES", default=3)
OUTBOUND_HTTP_MAX_BYTES = env.int("OUTBOUND_HTTP_MAX_BYTES", default=50 * 1024 * 1024)
# SSRF guard: loopback, private, link-local, multicast and reserved targets are
# refused unless allowed here. ALLOW_PRIVATE covers RFC 1918/ULA/CGNAT only
# (never link-local such as cloud metadata at 169.254.169.254).
OUTBOUND_HTTP_ALLOW_PRIVATE = env.bool("OUTBOUND_HTTP_ALLOW_PRIVATE", default=False)
OUTBOUND_HTTP_ALLOW_LOOPBACK = env.bool("OUTBOUND_HTTP_ALLOW_LOOPBACK", default=DEBUG)
# Entries are `host`, `host:port`, `[v6]:port` or a CIDR; deny wins and also covers subdomains.
OUTBOUND_HTTP_ALLOW_HOSTS = env.list("OUTBOUND_HTTP_ALLOW_HOSTS", default=[])
OUTBOUND_HTTP_DENY_HOSTS = env.list("OUTBOUND_HTTP_DENY_HOSTS", default=[])

# ---------------------------------------------------------------------------
# Scheduling
# ---------------------------------------------------------------------------
# `migrate` installs the seed-003 default jobs (idempotent) unless this is false.
JOBS_CREATE_DEFAULT_JOBS = env.bool("JOBS_CREATE_DEFAULT_JOBS", default=True)
# Modules that register your own @schedulable tasks (imported on first use).
JOBS_TASK_MODULES = env.list("JOBS_TASK_MODULES", default=[])
# A run past its timeout gets SoftTimeLimitExceeded; one that ignores it is killed this much later.
JOBS_HARD_TIMEOUT_GRACE_SECONDS = env.int("JOBS_HARD_TIMEOUT_GRACE_SECONDS", default=30)
JOBS_OVERDUE_GRACE_SECONDS = env.int("JOBS_OVERDUE_GRACE_SECONDS", default=300)
JOBS_EXECUTION_RETENTION_DAYS = env.int("JOBS_EXECUTION_RETENTION_DAYS", default=90)
JOBS_TEMP_RETENTION_HOURS = env.int("JOBS_TEMP_RETENTION_HOURS", default=24)
JOBS_TEMP_DIR = env.path("JOBS_TEMP_DIR", default=str(VAR_DIR / "tmp"))
MCP_SERVER_URLS = env.list("MCP_SERVER_URLS", default=[])
HEALTH_BEAT_MAX_AGE_SECONDS = env.int("HEALTH_BEAT_MAX_AGE_SECONDS", default=120)
HEALTH_DISK_MIN_FREE_MB = env.int("HEALTH_DISK_MIN_FREE_MB", default=512)
# Encrypts credentials at rest (Fernet); derived from SECRET_KEY when unset.
# Optional, so that deployments which never set it keep reading what they
# stored; set it to rotate SECRET_KEY without losing stored credentials.
FIELD_ENCRYPTION_KEY = env.str("FIELD_ENCRYPTION_KEY", default="")
if not DEBUG and FIELD_ENCRYPTION_KEY:
    from cryptography.fernet import Fernet

    _GENERATE_FERNET = (
        'generate one with: python3 -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
    )
    if _is_placeholder(FIELD_ENCRYPTION_KEY):
        raise ImproperlyConfigured(
            f"FIELD_ENCRYPTION_KEY is still a change-me placeholder; {_GENERATE_FERNET}, "
            "or leave it empty to derive it from SECRET_KEY"
        )
    # jobsite.crypto also turns a passphrase into a key, but with one unsalted
    # SHA-256 a weak passphrase is cheap to guess offline: production wants the
    # real thing. https://cryptography.io/en/latest/fernet/
    try:
        Fernet(FIELD_ENCRYPTION_KEY)
    except ValueError:  # binascii.Error is a ValueError
        raise ImproperlyConfigured(
            f"FIELD_ENCRYPTION_KEY is not a Fernet key (32 url-safe base64-encoded bytes); {_GENERATE_FERNET}"
        ) from None

# ---------------------------------------------------------------------------
# Logging: one line per event, secrets never logged (jobsite.logging filter)
# ---------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
    },
}

if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Internal periodic tasks (DatabaseScheduler copies them into its tables).
CELERY_BEAT_SCHEDULE = {
    "jobsite: reap lost executions": {
        "task": "scheduling.reap_lost_executions",
        "schedule": 60.0,
        "options": {"queue": "maintenance", "expires": 55},
    },
}

# ---------------------------------------------------------------------------
# Predictions (seed 004 bulk uploads; predictions/)
# ---------------------------------------------------------------------------
# Largest bulk-upload file (CSV or XLSX); bigger ones answer 413. A 1,000,000-row
# annual CSV is about 125 MB. The upload streams to PREDICTIONS_STORAGE_DIR
# (never held in memory), so the limit is about disk and processing time.
PREDICTIONS_MAX_UPLOAD_MB = env.int("PREDICTIONS_MAX_UPLOAD_MB", default=256)
# Where uploaded files are kept until their job is deleted.
PREDICTIONS_STORAGE_DIR = env.path("PREDICTIONS_STORAGE_DIR", default=str(VAR_DIR / "predictions"))
# An XLSX is a zip: refuse one whose parts unzip to more than this (zip bombs).
PREDICTIONS_XLSX_MAX_UNCOMPRESSED_MB = env.int("PREDICTIONS_XLSX_MAX_UNCOMPRESSED_MB", default=1024)
# Soft time limit of one upload's run (set on the predictions.bulk-upload job when
# it is first created; change it there afterwards, like any job's timeout).
PREDICTIONS_TIMEOUT_SECONDS = env.int("PREDICTIONS_TIMEOUT_SECONDS", default=3600)

# ---------------------------------------------------------------------------
# Workflows (seed 002; scheduling/workflows)
# ---------------------------------------------------------------------------
# Queue and soft time limit of new workflow schedules (operators can change
# both per job afterwards, like on any job).
WORKFLOWS_QUEUE = env.str("WORKFLOWS_QUEUE", default="workflows")
WORKFLOWS_JOB_TIMEOUT_SECONDS = env.int("WORKFLOWS_JOB_TIMEOUT_SECONDS", default=3600)
# Schedulable tasks that any user's workflow may call in a `task` step;
# superusers' workflows may call every schedulable task.
WORKFLOWS_TASK_NAMES = env.list("WORKFLOWS_TASK_NAMES", default=[])
WORKFLOWS_MAX_STEPS = env.int("WORKFLOWS_MAX_STEPS", default=50)
# Each step's recorded output is cut to this many bytes (the run's result row stays small).
WORKFLOWS_STEP_OUTPUT_MAX_BYTES = env.int("WORKFLOWS_STEP_OUTPUT_MAX_BYTES", default=16 * 1024)
# Response size cap of an `http` step (the outbound client refuses larger bodies).
WORKFLOWS_HTTP_MAX_BYTES = env.int("WORKFLOWS_HTTP_MAX_BYTES", default=1024 * 1024)

# ---------------------------------------------------------------------------
# Vision pipeline (seeds 000, 001; vision_pipeline/)
# ---------------------------------------------------------------------------
# Images: refused above this many bytes (downloads are cut while streaming) or
# this many pixels (read from the header before anything is decoded, so a
# decompression bomb costs nothing). 40 MP covers every phone and most DSLRs.
VISION_MAX_IMAGE_BYTES = env.int("VISION_MAX_IMAGE_BYTES", default=30 * 1024 * 1024)
VISION_MAX_IMAGE_PIXELS = env.int("VISION_MAX_IMAGE_PIXELS", default=40_000_000)
VISION_MAX_IMAGES_PER_BATCH = env.int("VISION_MAX_IMAGES_PER_BATCH", default=500)
# The descriptions JSON of an analysis (file name → description).
VISION_MAX_DESCRIPTIONS_BYTES = env.int("VISION_MAX_DESCRIPTIONS_BYTES", default=1024 * 1024)
# Parallel image downloads per analysis.
VISION_DOWNLOAD_CONCURRENCY = env.int("VISION_DOWNLOAD_CONCURRENCY", default=8)
# Where batch images (API uploads) and HTML reports are kept.
VISION_STORAGE_DIR = env.path("VISION_STORAGE_DIR", default=str(VAR_DIR / "vision"))
# Queue, run time limit and per-analysis limit of new /cron-jobs jobs (each job
# can change them afterwards, like any job); the analysis limit is seed 000's "1 hour".
VISION_QUEUE = env.str("VISION_QUEUE", default="vision")
VISION_JOB_TIMEOUT_SECONDS = env.int("VISION_JOB_TIMEOUT_SECONDS", default=3 * 3600)
VISION_ANALYSIS_TIMEOUT_SECONDS = env.int("VISION_ANALYSIS_TIMEOUT_SECONDS", default=3600)
# Page size of the external GET API (seed 001 asks page=1&page_size=...).
VISION_EXTERNAL_PAGE_SIZE = env.int("VISION_EXTERNAL_PAGE_SIZE", default=50)
# backend_api_url values that mean "this installation": batches are then made
# and analysed in-process instead of over HTTP.
VISION_LOCAL_BACKEND_URLS = env.list("VISION_LOCAL_BACKEND_URLS",
                                     default=["http://localhost:8000", "http://127.0.0.1:8000"])
# The openai-compatible analyzer: any chat-completions endpoint that accepts images.
VISION_OPENAI_BASE_URL = env.str("VISION_OPENAI_BASE_URL", default="")
VISION_OPENAI_MODEL = env.str("VISION_OPENAI_MODEL", default="")
VISION_OPENAI_API_KEY = env.str("VISION_OPENAI_API_KEY", default="")
VISION_OPENAI_TIMEOUT_SECONDS = env.float("VISION_OPENAI_TIMEOUT_SECONDS", default=120.0)
# auto | on | off: whether the default analyzer also reads text (the [ocr] extra; on fails without it).
VISION_OCR = env.str("VISION_OCR", default="auto")
# A batch queues one chunk run per this many images beyond the first chunk, so
# free worker processes share it; at most VISION_MAX_CHUNKS runs per batch.
VISION_CHUNK_SIZE = env.int("VISION_CHUNK_SIZE", default=10)
VISION_MAX_CHUNKS = env.int("VISION_MAX_CHUNKS", default=8)
# A batch upload sends one form file per image: Django's default cap (100) would refuse big batches.
DATA_UPLOAD_MAX_NUMBER_FILES = max(100, VISION_MAX_IMAGES_PER_BATCH + 10)

# ---------------------------------------------------------------------------
# Operator experience: notifications (scheduling/notifications) and /metrics
# ---------------------------------------------------------------------------
# Email: EMAIL_URL in django-environ's form, e.g. smtp+tls://user:password@smtp.example.com:587
# (https://django-environ.readthedocs.io/en/latest/types.html#environ-env-email-url).
# Default: printed to the worker's log in development, localhost:25 in production.
vars().update(env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25"))
NOTIFICATIONS_EMAIL_FROM = env.str("NOTIFICATIONS_EMAIL_FROM", default="jobsite@localhost")
# The global default: destinations (names, see the admin's Notifications > Destinations) and
# events for every job that has no notification settings of its own.
NOTIFICATIONS_DEFAULT_DESTINATIONS = env.list("NOTIFICATIONS_DEFAULT_DESTINATIONS", default=[])
NOTIFICATIONS_DEFAULT_EVENTS = env.list("NOTIFICATIONS_DEFAULT_EVENTS", default=["failure", "recovery", "overdue"])
# Each delivery is tried this many times, waiting backoff x 2^(n-1) seconds (at most 1 h) between tries.
NOTIFICATIONS_MAX_ATTEMPTS = env.int("NOTIFICATIONS_MAX_ATTEMPTS", default=5)
NOTIFICATIONS_RETRY_BACKOFF_SECONDS = env.int("NOTIFICATIONS_RETRY_BACKOFF_SECONDS", default=30)
NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS = env.float("NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS", default=10.0)
# The dead-man's switch: how often overdue jobs are looked for (each episode is notified once).
NOTIFICATIONS_OVERDUE_CHECK_SECONDS = env.int("NOTIFICATIONS_OVERDUE_CHECK_SECONDS", default=60)
CELERY_BEAT_SCHEDULE["notifications: overdue check"] = {
    "task": "notifications.overdue_check",
    "schedule": float(NOTIFICATIONS_OVERDUE_CHECK_SECONDS),
    "options": {"queue": CELERY_TASK_DEFAULT_QUEUE, "expires": max(NOTIFICATIONS_OVERDUE_CHECK_SECONDS - 5, 1)},
}
# GET /metrics (Prometheus) needs "Authorization: Bearer <METRICS_TOKEN>"; unset: /metrics answers 404.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# ---------------------------------------------------------------------------
# Operator experience: offline API docs, admin ops console
# ---------------------------------------------------------------------------
# Swagger UI and ReDoc's files (SPECTACULAR_SETTINGS "SIDECAR" above), as static files.
INSTALLED_APPS += ["drf_spectacular_sidecar"]
# Times with seconds and time zone everywhere (jobsite/formats/en/formats.py).
FORMAT_MODULE_PATH = ["jobsite.formats"]
# Admin pages that list runs reload themselves this often while a run is queued or running.
ADMIN_REFRESH_SECONDS = 5
# The Workers and queues page: how long to wait for workers to answer `inspect`.
ADMIN_INSPECT_TIMEOUT_SECONDS = 1.0

# ---------------------------------------------------------------------------
# Core under faults (issue 11): sweeps for lost messages and lost workers,
# worker heartbeats, one active beat. README "Run semantics" says what each does.
# ---------------------------------------------------------------------------
# A queued execution whose message is in no queue and was not delivered to a worker
# lately is sent again (same task id) once it has been queued this long.
JOBS_QUEUED_STALE_SECONDS = env.int("JOBS_QUEUED_STALE_SECONDS", default=60)
# How often beat runs the stale-queued sweep.
JOBS_STALE_QUEUED_SWEEP_SECONDS = env.int("JOBS_STALE_QUEUED_SWEEP_SECONDS", default=30)
CELERY_BEAT_SCHEDULE["jobsite: resend stale queued executions"] = {
    "task": "scheduling.resend_stale_queued_executions",
    "schedule": float(JOBS_STALE_QUEUED_SWEEP_SECONDS),
    "options": {"queue": "maintenance", "expires": max(JOBS_STALE_QUEUED_SWEEP_SECONDS - 5, 1)},
}
# Each worker writes a heartbeat (scheduling/heartbeat.py) this often; a running execution whose
# worker has not written one for JOBS_WORKER_HEARTBEAT_TIMEOUT_SECONDS is marked lost and retried
# by the lost-run sweep, which runs every JOBS_LOST_SWEEP_SECONDS: found 45-60 s after the worker died.
JOBS_WORKER_HEARTBEAT_SECONDS = env.int("JOBS_WORKER_HEARTBEAT_SECONDS", default=10)
JOBS_WORKER_HEARTBEAT_TIMEOUT_SECONDS = env.int("JOBS_WORKER_HEARTBEAT_TIMEOUT_SECONDS", default=45)
JOBS_LOST_SWEEP_SECONDS = env.int("JOBS_LOST_SWEEP_SECONDS", default=15)
CELERY_BEAT_SCHEDULE["jobsite: reap lost executions"].update(
    schedule=float(JOBS_LOST_SWEEP_SECONDS), options={"queue": "maintenance", "expires": max(JOBS_LOST_SWEEP_SECONDS - 2, 1)},
)
# One active beat (scheduling/beat_lock.py): the active beat renews a Redis lock with this TTL;
# a standby polls every JOBS_BEAT_STANDBY_POLL_SECONDS and takes over within TTL + poll (17 s).
JOBS_BEAT_LOCK_TTL_SECONDS = env.int("JOBS_BEAT_LOCK_TTL_SECONDS", default=15)
JOBS_BEAT_STANDBY_POLL_SECONDS = env.int("JOBS_BEAT_STANDBY_POLL_SECONDS", default=2)
CELERY_BEAT_SCHEDULER = "scheduling.beat_lock:LockedScheduler"
# Runs that fell due while beat was down, caught up by a job's catch-up policy "all": at most this many.
JOBS_CATCH_UP_MAX = env.int("JOBS_CATCH_UP_MAX", default=10)
# A fire later than this after its due time counts as missed (policy "skip" does not run it).
JOBS_MISSED_GRACE_SECONDS = env.int("JOBS_MISSED_GRACE_SECONDS", default=60)
