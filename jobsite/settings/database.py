"""The database: PostgreSQL via DATABASE_URL, else SQLite under var/."""
from django.core.exceptions import ImproperlyConfigured

from jobsite.settings.base import DEBUG, VAR_DIR, env, is_placeholder

SQLITE_PATH = VAR_DIR / "jobsite.sqlite3"
# Empty counts as unset (`DATABASE_URL=` in a .env), like SECRET_KEY.
# Private: not a setting, so the debug page and diffsettings never show the
# password it embeds.
_database_url = env.str("DATABASE_URL", default="")
if not DEBUG and not _database_url:
    # Production must never write to a SQLite file that a container restart loses.
    raise ImproperlyConfigured(
        "DATABASE_URL must be set when DEBUG is false (e.g. postgres://user:password@host:5432/jobsite); "
        "there is no SQLite fallback in production."
    )
DATABASES = {"default": env.db_url_config(_database_url or f"sqlite:///{SQLITE_PATH}")}
if not DEBUG and is_placeholder(DATABASES["default"].get("PASSWORD") or ""):
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
    # jobsite's backend is Django's, but waits for the write lock in short steps
    # (jobsite/backends/sqlite3/base.py).
    DATABASES["default"]["ENGINE"] = "jobsite.backends.sqlite3"
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
# many short tasks a second, and Celery's Django fix-up closes an obsolete
# connection after each one (opening a SQLite connection runs the PRAGMAs
# above; a PostgreSQL one forks a backend). Checked before reuse.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
