"""Schemathesis against the project's own OpenAPI schema (issue 11).

The schema is loaded in-process from the WSGI app (``/api/schema/``, with a
real JWT), and every operation in it is called with generated requests —
valid ones and deliberately invalid ones — through the whole Django stack.
Two checks apply to every answer:

- ``not_a_server_error``: no 5xx (``/health``'s documented 503 aside);
- ``status_code_conformance``: the status is one the schema documents for
  that operation.

The caller is a real superuser who owns one object of every kind (a task
job and its runs, a workflow and its schedule and run, a prediction upload,
a vision batch and a vision cron job), and detail routes are fed those
objects' ids as well as generated ones, so they reach real rows.

Bounded and repeatable: ``FUZZ_MAX_EXAMPLES`` examples per operation
(default 8; ``make fuzz`` uses 200), Hypothesis derandomized, no example
database. Each request runs inside a savepoint that is rolled back, so every
example sees the same rows, and the ``on_commit`` sends to Celery never
happen: nothing reaches the queues other tests use (checked at the end).
Host names are never resolved (the SSRF guard sees them as unresolvable),
so no request leaves the machine.
"""
from __future__ import annotations

import os
import socket
import traceback
from contextlib import contextmanager

import pytest
import schemathesis
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.signals import got_request_exception, request_finished, request_started
from django.db import close_old_connections, transaction
from django.core.wsgi import get_wsgi_application
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from tests.predictions_files import annual_row, csv_bytes

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "8"))
SEED = int(os.environ.get("FUZZ_SEED", "20261111"))
CHECKS = [not_a_server_error, status_code_conformance]

pytestmark = [
    pytest.mark.django_db,
    # `make fuzz` runs 200 examples per operation: give it room.
    pytest.mark.timeout(max(300, MAX_EXAMPLES * 20)),
]


# ---------------------------------------------------------------------------
# Data the fuzzing user owns
# ---------------------------------------------------------------------------
@pytest.fixture
def fuzz_storage(settings, tmp_path):
    settings.PREDICTIONS_STORAGE_DIR = tmp_path / "predictions"
    settings.VISION_STORAGE_DIR = str(tmp_path / "vision")
    settings.JOBS_TEMP_DIR = str(tmp_path / "tmp")


@pytest.fixture
def offline_dns(monkeypatch):
    """Names other than loopback do not resolve: the outbound URL checks of
    create calls (vision cron jobs, workflow http steps) never send a DNS query."""
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host or "")
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in name else socket.AF_INET, name.strip("[]"))
        except OSError:
            if name.lower() not in ("localhost", ""):
                raise socket.gaierror(socket.EAI_NONAME, "name resolution disabled in the fuzz test") from None
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def fuzz_user(make_user, org):
    return make_user("fuzzer", organization=org, superuser=True)


@pytest.fixture
def fuzz_rows(fuzz_user, org, client_for, fuzz_storage, offline_dns) -> dict[str, list]:
    """One object of every kind, owned by ``fuzz_user``; returns the real
    values of each detail route's path parameter, by path prefix."""
    from scheduling.models import Execution
    from tests.factories import ExecutionFactory, JobFactory
    from vision_pipeline import samples

    api = client_for(fuzz_user)

    job = JobFactory(name="fuzz-job", task_name="tests.noop", owner=fuzz_user, organization=org)
    executions = [ExecutionFactory(job=job, status=status) for status in
                  (Execution.Status.QUEUED, Execution.Status.RUNNING, Execution.Status.SUCCESS,
                   Execution.Status.FAILED)]

    def created(response, *codes):
        assert response.status_code in codes, response.content
        return response.json()

    workflow = created(api.post("/api/workflows/", {
        "id": "fuzz-workflow", "name": "Fuzz workflow",
        "steps": [{"name": "echo", "type": "task", "task_name": "tests.echo", "kwargs": {"text": "${input}"}}],
    }, format="json"), 201)
    created(api.post("/api/cron/jobs/cron", {
        "job_id": "fuzz-schedule", "workflow_id": workflow["id"], "user_id": str(fuzz_user.pk),
        "input": "hello", "cron_expression": "0 9 * * *",
    }, format="json"), 200)
    run = created(api.post("/api/cron/jobs/fuzz-schedule/trigger"), 200)

    upload = created(api.post("/api/v1/predictions/annual/bulk-upload-async",
                              {"file": SimpleUploadedFile("fuzz.csv", csv_bytes([annual_row(0), annual_row(1)]))},
                              format="multipart"), 202)
    image = SimpleUploadedFile("fuzz.jpg", samples.encode(samples.variant("rust", 64, 48, seed=0)), "image/jpeg")
    batch = created(api.post("/api/v1/vision/batches", {"images": [image]}, format="multipart"), 202)
    vision_job = created(api.post("/cron-jobs", {
        "name": "Fuzz vision job", "schedule": "0 2 * * *",
        "external_api_get_url": "https://api.example.com/documents",
        "external_api_post_url": "https://api.example.com/documents/upload",
        "external_api_key": "fuzz-key", "organization_id": "38162954-469A-40BC-B619-3E9F71DE6DB9",
    }, format="json"), 201)

    return {
        "/api/v1/jobs/": [job.pk, job.name],
        "/api/v1/executions/": [e.pk for e in executions],
        "/api/cron/jobs/": ["fuzz-schedule"],
        "/api/workflows/": [workflow["id"]],
        "/api/workflows/runs/": [run["execution_id"]],
        "/api/v1/predictions/jobs/": [upload["job_id"]],
        "/api/v1/vision/batches/": [batch["batch_id"]],
        "/cron-jobs/": [vision_job["job_id"]],
    }


def _real_values(rows: dict[str, list], path: str) -> list:
    """The real ids for the operation at ``path`` (its longest matching prefix)."""
    prefixes = [prefix for prefix in rows if path.startswith(prefix) and "{" in path[len(prefix):]]
    return rows[max(prefixes, key=len)] if prefixes else []


# ---------------------------------------------------------------------------
# The schema
# ---------------------------------------------------------------------------
def served_schema() -> dict:
    """What GET /api/schema/?format=json answers, built in-process by the same
    generator and renderer as the view. Built at collection time, without a
    database or a token (the view itself wants both, which pytest-django only
    gives to a running test); test_the_fuzzed_schema_is_the_served_one checks
    that the app serves exactly this."""
    import json

    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer
    from drf_spectacular.settings import spectacular_settings

    generated = SchemaGenerator().get_schema(request=None, public=spectacular_settings.SERVE_PUBLIC)
    return json.loads(OpenApiJsonRenderer().render(generated, renderer_context={}))


schema = schemathesis.openapi.from_dict(served_schema(), config=schemathesis.Config.from_dict({
    "seed": SEED,
    "generation": {
        "max-examples": MAX_EXAMPLES,
        "deterministic": True,  # Hypothesis derandomized: the same examples on every run
        "database": "none",  # no replay of earlier failures either
        "with-security-parameters": False,  # the test sends a real token
    },
    "suppress-health-check": ["all"],
    # /health answers its documented 503 here: no worker or beat runs during this test.
    "operations": [{"include-path": "/health",
                    "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]}}}],
}))
# Called in-process through the WSGI app (no server, no socket).
schema.app = get_wsgi_application()

#: Real path parameter values for the running test (filled by the ``fuzz_rows`` fixture).
REAL_ROWS: dict[str, list] = {}


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """About half of a detail route's examples name a real row: generated ids
    alone would nearly always be a 404."""
    values = _real_values(REAL_ROWS, context.operation.path)
    if not values or len(path_parameters) != 1:
        return st.just(path_parameters)
    (name,) = path_parameters
    return st.one_of(st.just(path_parameters), st.sampled_from(values).map(lambda value: {name: value}))


@pytest.fixture
def real_rows(fuzz_rows):
    REAL_ROWS.clear()
    REAL_ROWS.update(fuzz_rows)
    yield REAL_ROWS
    REAL_ROWS.clear()


@pytest.fixture
def in_process_requests():
    """Requests through the WSGI app share the test's database connection
    (as Django's test client arranges): the per-request connection cleanup
    would close it mid-transaction. Server-side exceptions are kept, so a 500
    shows its traceback."""
    errors: list[str] = []

    def keep(sender, request=None, **kwargs):
        errors.append(f"{request.method} {request.get_full_path()}\n{traceback.format_exc()}")

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    got_request_exception.connect(keep)
    try:
        yield errors
    finally:
        got_request_exception.disconnect(keep)
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _queued_messages() -> int:
    """Messages waiting in the project's Celery queues on the test Redis."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        total = 0
        for queue in settings.JOBS_QUEUES:
            for key in client.scan_iter(match=f"{queue}*", count=1000):
                if client.type(key) == b"list":
                    total += client.llen(key)
        return total
    finally:
        client.close()


@pytest.fixture
def queues_untouched():
    before = _queued_messages()
    yield
    assert _queued_messages() <= before, "the fuzz test left messages in the Celery queues"


@contextmanager
def rolled_back():
    """Each request in a savepoint that is rolled back: every example sees the
    fixture's rows, and on_commit callbacks (sends to Celery) are dropped."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


@pytest.fixture
def bearer(fuzz_user) -> dict[str, str]:
    from jobsite.auth import access_token_for

    return {"Authorization": f"Bearer {access_token_for(fuzz_user)}"}


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------
def test_the_fuzzed_schema_is_the_served_one(bearer, in_process_requests):
    response = schemathesis.openapi.from_wsgi("/api/schema/?format=json", schema.app, headers=bearer)
    assert response.raw_schema == schema.raw_schema


@schema.parametrize()
def test_every_operation_answers_a_documented_status_and_never_5xx(
    case, bearer, real_rows, in_process_requests, queues_untouched,
):
    in_process_requests.clear()
    with rolled_back():
        response = case.call(headers=bearer)
    if response.status_code >= 500 and in_process_requests:
        print("\n".join(in_process_requests))
    case.validate_response(response, checks=CHECKS)


@schema.parametrize()
@hypothesis_settings(max_examples=1)
def test_without_a_token_nothing_is_served_and_every_status_is_documented(case, in_process_requests):
    """No credentials: a 401 (or a 404 for a path no route matches), never data;
    the token endpoint aside, which needs none."""
    response = case.call()
    if case.operation.path != "/api/auth/token":
        assert response.status_code in (401, 404), response.text
    case.validate_response(response, checks=CHECKS)


def test_a_reserved_word_in_a_detail_path_answers_the_documented_405(api, in_process_requests):
    """Found by `make fuzz`: GET /api/cron/jobs/cron reached the create route
    (POST only) and answered an undocumented 405. The schema now documents it
    on every detail operation whose parameter can spell another route's path,
    and each of those words answers exactly that, with the JSON error body."""
    from jobsite.openapi import reserved_words_without

    paths = schema.raw_schema["paths"]
    tried = []
    for path, item in paths.items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            words = reserved_words_without(paths, path, method)
            assert bool(words) == ("405" in operation["responses"]), (method, path)
            for word in words:
                url = path.rsplit("{", 1)[0] + word
                response = getattr(api, method)(url, {}, format="json")
                assert response.status_code == 405, (method, url, response.status_code)
                assert response.json()["detail"], (method, url)
                tried.append(f"{method.upper()} {url}")
    assert "GET /api/cron/jobs/cron" in tried and "DELETE /api/v1/jobs/tasks" in tried, tried
