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


# ---------------------------------------------------------------------------
# How `make test` spreads the suite over its processes (--dist loadgroup)
# ---------------------------------------------------------------------------
# A work unit is a test file, as with --dist loadfile (a file's tests share its
# module fixtures and run in one process), except for the tests of
# ONE_UNIT_EACH, each a unit of its own: the documented pages (tests/docs) spread
# over the processes instead of filling one. Those go first, then the files; each
# longest first (by estimate: no run history is kept), so that no long one is
# left to start when the others are done.
#
# (Not xdist's own loadgroup: it reads ``xdist_group`` marks by suffixing each
# test's node id in the worker, which pytest 9 no longer lets a plugin change, and
# makes every test without a mark a unit of its own.)
import pytest  # noqa: E402  (after the environment above, which settings read)

#: Tests (node id prefixes) that are a work unit each.
ONE_UNIT_EACH = ("tests/docs/test_docs_run.py::test_page_runs_as_written[",)
#: Estimated seconds of one test, when it does not say (``estimated_seconds`` marker):
#: the folders whose tests start real processes of their own, then any other.
SLOW_FOLDER_SECONDS = {"e2e": 5.0, "faults": 5.0, "browser": 5.0}
DEFAULT_SECONDS = 0.1


def work_unit(nodeid: str) -> str:
    """The unit a test belongs to: itself (ONE_UNIT_EACH), else its file."""
    return nodeid if nodeid.startswith(ONE_UNIT_EACH) else nodeid.split("::", 1)[0]


def estimated_seconds(item) -> float:
    marker = item.get_closest_marker("estimated_seconds")
    if marker is not None:
        return float(marker.args[0])
    parts = item.nodeid.split("::", 1)[0].split("/")
    return SLOW_FOLDER_SECONDS.get(parts[1], DEFAULT_SECONDS) if len(parts) > 2 else DEFAULT_SECONDS


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """In an xdist worker under --dist loadgroup: the collection in work units,
    longest first, each unit's tests in their own order (the controller queues
    the units in the order the workers collected them)."""
    if not getattr(config.option, "loadgroup", False):  # (set in xdist workers only)
        return
    units: dict[str, list] = {}
    for item in items:
        units.setdefault(work_unit(item.nodeid), []).append(item)
    # The tests of ONE_UNIT_EACH first (the doc pages: the pages a process runs one
    # after another share its stack, which a page coming later would start anew),
    # then the files; each part longest first.
    ordered = sorted(units.values(), key=lambda unit: (not unit[0].nodeid.startswith(ONE_UNIT_EACH),
                                                       -sum(map(estimated_seconds, unit))))  # (stable)
    items[:] = [item for unit in ordered for item in unit]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """--dist loadgroup: the units above, in the workers' collection order."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileOrOwnUnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    # The units in the workers' collection order (longest first, above), not by test count.
    config.option.loadscopereorder = False
    return FileOrOwnUnitScheduling(config, log)
