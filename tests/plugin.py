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

# Each test session gets its own SQLite test database file, so two sessions
# on one checkout (or a session beside `make run`) never share one.
os.environ.setdefault(
    "JOBSITE_TEST_SQLITE_PATH", str(Path(tempfile.mkdtemp(prefix="jobsite-test-db-")) / "test.sqlite3")
)

_embedded = None
if not os.environ.get("REDIS_URL"):
    from jobsite.runtime import EmbeddedRedis, free_port

    _embedded = EmbeddedRedis(
        port=free_port(), data_dir=Path(tempfile.mkdtemp(prefix="jobsite-test-redis-")), persistent=False
    ).start()
    os.environ["REDIS_URL"] = _embedded.url
    atexit.register(_embedded.stop)
    print(f"[tests] embedded Redis started at {_embedded.url}")
