"""Shared fixtures. Redis is real (tests/plugin.py); e2e tests use a real
Celery worker subprocess (tests/worker.py)."""
import os
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError
from django.db.backends.base.operations import BaseDatabaseOperations
from rest_framework.test import APIClient

from jobsite.models import Membership, Organization
from tests.worker import celery_worker_process  # noqa: F401  (session fixture)

_execute_sql_flush = BaseDatabaseOperations.execute_sql_flush


def _execute_sql_flush_retrying_deadlocks(self, sql_list):
    """The flush that ends a transactional test, retried when PostgreSQL picks
    its TRUNCATE as a deadlock's victim: the session's worker may still be
    writing the tail of the previous test's run (its finish, its counters)
    while the tables are emptied. The worker's transaction ends, the retry
    goes through."""
    for attempt in range(5):
        try:
            return _execute_sql_flush(self, sql_list)
        except OperationalError as exc:
            if "deadlock detected" not in str(exc) or attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))


BaseDatabaseOperations.execute_sql_flush = _execute_sql_flush_retrying_deadlocks


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """Server test databases (PostgreSQL) named for this session too, after
    pytest-django's per-xdist-worker suffix (test_<name>_gw0_<session>): two
    copies of the suite on one server never create, use or drop each other's.
    pytest-django drops them when the session ends. (The SQLite test database
    is already a file of the session's own: tests/plugin.py.)"""
    from django.conf import settings

    for db_settings in settings.DATABASES.values():
        if db_settings["ENGINE"].endswith("sqlite3"):
            continue
        test_settings = db_settings.setdefault("TEST", {})
        name = test_settings.get("NAME") or f"test_{db_settings['NAME']}"
        test_settings["NAME"] = f"{name}_{os.environ['JOBSITE_TEST_SESSION']}"


@pytest.fixture(autouse=True)
def _empty_cache():
    # What one test kept (an estimated total, a dashboard's history) is not another's.
    yield
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Real hashing costs ~0.3 s a user; tests don't need its strength.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def make_user(db):
    def make(username="alice", *, organization=None, superuser=False, password="s3cret-pass!"):
        User = get_user_model()
        if superuser:
            user = User.objects.create_superuser(username=username, password=password, email=f"{username}@example.com")
        else:
            user = User.objects.create_user(username=username, password=password, email=f"{username}@example.com")
        if organization is not None:
            Membership.objects.create(user=user, organization=organization)
        return user

    return make


@pytest.fixture
def org(db):
    return Organization.objects.create(name="Acme")


@pytest.fixture
def other_org(db):
    return Organization.objects.create(name="Globex")


@pytest.fixture
def user(make_user, org):
    return make_user("alice", organization=org)


@pytest.fixture
def superuser(make_user):
    return make_user("root", superuser=True)


@pytest.fixture
def client_for():
    """An APIClient that sends a real JWT for ``user`` (issued by jobsite.auth)."""
    from jobsite.auth import access_token_for

    def make(user):
        client = APIClient()
        if user is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(user)}")
        return client

    return make


@pytest.fixture
def api(client_for, user):
    return client_for(user)


@pytest.fixture
def admin_api(client_for, superuser):
    return client_for(superuser)


@pytest.fixture
def job(user, org):
    """alice's job, in her organization."""
    from tests.factories import JobFactory

    return JobFactory(name="alice-job", task_name="tests.noop", owner=user, organization=org)


@pytest.fixture
def org_mate_job(make_user, org):
    """Owned by another member of alice's organization: alice sees it."""
    from tests.factories import JobFactory

    return JobFactory(name="bob-job", owner=make_user("bob", organization=org), organization=org)


@pytest.fixture
def foreign_job(make_user, other_org):
    """In another organization: alice must not even learn it exists."""
    from tests.factories import JobFactory

    return JobFactory(name="globex-job", owner=make_user("carol", organization=other_org), organization=other_org)


@pytest.fixture
def serve_directory(settings):
    """``serve_directory(folder) -> base_url``: a real local HTTP server for the
    files of ``folder``, reachable through the outbound client's allow-list only
    (loopback stays refused otherwise). Stopped at the end of the test."""
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    servers = []

    def serve(folder) -> str:
        handler = partial(SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *args: None
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        host = f"127.0.0.1:{server.server_port}"
        settings.OUTBOUND_HTTP_ALLOW_LOOPBACK = False
        settings.OUTBOUND_HTTP_ALLOW_HOSTS = [*settings.OUTBOUND_HTTP_ALLOW_HOSTS, host]
        return f"http://{host}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


# Tiers by folder: tests that start real processes of their own (beat, runstack,
# a killed worker) live in e2e/ or faults/, browser tests in browser/.
FOLDER_MARKERS = {"e2e": "e2e", "faults": "faults", "browser": "browser"}
FOLDER_MARKERS["docs"] = "e2e"  # tests/docs runs every documented command against a live stack
TESTS_ROOT = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items):
    """Each test gets its folder's tier marker. A test elsewhere that uses the
    session's real worker is end-to-end too: `make test-quick`
    (-m 'not e2e and not faults and not browser') must not start one."""
    for item in items:
        parts = Path(str(item.path)).resolve().relative_to(TESTS_ROOT).parts
        marker = FOLDER_MARKERS.get(parts[0]) if len(parts) > 1 else None
        if marker:
            item.add_marker(getattr(pytest.mark, marker))
        if "celery_worker_process" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.e2e)
