"""Loaded with ``-p tests.plugin`` before Django settings are read.

When REDIS_URL is unset (a fresh machine), start the project's embedded Redis
on a free port for this test session and point the settings at it; it is
stopped when the session ends. With REDIS_URL set, that Redis is used.
"""
import atexit
import os
import tempfile
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
os.environ.setdefault("DEBUG", "true")
# Tests stand real local HTTP servers in for external APIs on 127.0.0.1.
os.environ.setdefault("OUTBOUND_HTTP_ALLOW_LOOPBACK", "true")
# Tests create the default jobs explicitly where they want them.
os.environ.setdefault("JOBS_CREATE_DEFAULT_JOBS", "false")
# The suite logs in far more often than a person; test_auth checks the limit itself.
os.environ.setdefault("AUTH_TOKEN_THROTTLE_RATE", "10000/min")
os.environ.setdefault("AUTH_TOKEN_USERNAME_THROTTLE_RATE", "10000/min")
# The tests.* schedulable tasks, in this process and in worker subprocesses.
os.environ.setdefault("JOBS_TASK_MODULES", "tests.tasks")
# A test-only app that adds a job kind of its own (tests/kinds), as a project would.
os.environ.setdefault("JOBS_EXTRA_APPS", "tests.kinds")

# Each test session (one `pytest` run, its xdist workers included: they inherit
# this environment) gets a token and a directory of its own, so two sessions on
# one checkout (or a session beside `make run`) share no test database, no var/
# directory (files, temp dir, storage) and no Redis. The token names the
# PostgreSQL test databases (tests/conftest.py); the directory holds the SQLite
# test database and the var/ directory, and is removed when the session ends.
if "JOBSITE_TEST_SESSION" not in os.environ:
    import shutil
    import uuid

    _session_dir = Path(tempfile.mkdtemp(prefix="jobsite-test-"))
    os.environ["JOBSITE_TEST_SESSION"] = uuid.uuid4().hex[:8]
    os.environ.setdefault("JOBSITE_TEST_SQLITE_PATH", str(_session_dir / "test.sqlite3"))
    os.environ.setdefault("JOBSITE_VAR_DIR", str(_session_dir / "var"))
    atexit.register(shutil.rmtree, _session_dir, ignore_errors=True)

# Under pytest-xdist (`make test` runs the suite in PYTEST_WORKERS processes) each
# worker process is a session of its own: its own Redis (so its own broker queues,
# beat lock and Celery workers), and pytest-django gives it its own test database.
# A worker inherits the environment of the process that started it: an embedded
# Redis started there is not its own, and a given REDIS_URL gets a database of its own.
_xdist_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
_inherited = os.environ.get("JOBSITE_TEST_REDIS_OWNER") not in (None, str(os.getpid()))
if _xdist_worker and os.environ.get("REDIS_URL") and not _inherited:
    from urllib.parse import urlsplit, urlunsplit

    _parts = urlsplit(os.environ["REDIS_URL"])
    os.environ["REDIS_URL"] = urlunsplit(_parts._replace(path=f"/{int(_xdist_worker.removeprefix('gw')) + 1}"))
    print(f"[tests] {_xdist_worker}: Redis database {os.environ['REDIS_URL']}")

_embedded = None
if not os.environ.get("REDIS_URL") or _inherited:
    from jobsite.runtime import EmbeddedRedis, free_port

    _embedded = EmbeddedRedis(
        port=free_port(), data_dir=Path(tempfile.mkdtemp(prefix="jobsite-test-redis-")), persistent=False
    ).start()
    os.environ["REDIS_URL"] = _embedded.url
    os.environ["JOBSITE_TEST_REDIS_OWNER"] = str(os.getpid())
    atexit.register(_embedded.stop)
    print(f"[tests] embedded Redis started at {_embedded.url}")
