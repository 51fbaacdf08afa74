"""Schemathesis against the project's own OpenAPI schema: the schema is the API.

The schema is loaded in-process from the WSGI app (``/api/schema/``, with a
real JWT), and every operation in it is called with generated requests —
valid ones and deliberately invalid ones — through the whole Django stack.
Every answer goes through these checks:

- ``not_a_server_error``: no 5xx (``/health``'s documented 503 aside);
- ``status_code_conformance``, ``content_type_conformance``,
  ``response_headers_conformance``, ``response_schema_conformance``: the
  status, content type, headers and body are the ones the schema declares;
- ``positive_data_acceptance``: a request valid by the schema is accepted
  (where the schema can say what is valid: see ``SEMANTIC_CHECKS``);
- ``negative_data_rejection``: a request the schema calls invalid (an
  unknown key where ``additionalProperties: false``, a wrong type) is a 4xx,
  but for the values DRF reads as the declared type (``drf_reads_as``).

The caller is a real superuser who owns one object of every kind (a task
job and its runs, a workflow and its schedule and run, a prediction upload,
a vision batch and a vision cron job). Two ways reach them:

- seeded path parameters: most examples of a detail route name one of those
  objects (the rest are generated, to see the 404s);
- stateful testing: the schema's OpenAPI links (jobsite/openapi.py,
  ``x-jobsite-links`` next to the views) lead from each list and create to
  the routes of the objects it answers with, and schemathesis's state machine
  follows them.

The counts (requests, by status class, share naming an existing object)
are printed at the end of the run.

Bounded and repeatable: ``FUZZ_MAX_EXAMPLES`` examples per operation
(default 8; ``make fuzz`` uses 200), Hypothesis derandomized, no example
database. Each request (each stateful scenario) runs inside a savepoint that
is rolled back, so every example sees the same rows, and the ``on_commit``
sends to Celery never happen: nothing reaches the queues other tests use
(checked at the end). Host names are never resolved (the SSRF guard sees
them as unresolvable), so no request leaves the machine.
"""
from __future__ import annotations

import os
import re
import socket
import traceback
import zlib
from collections import Counter
from contextlib import contextmanager
from urllib.parse import unquote

import pytest
import schemathesis
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.signals import got_request_exception, request_finished, request_started
from django.db import close_old_connections, transaction
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck
from rest_framework import serializers
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ensure_resource_availability,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)

from tests.predictions_files import annual_row, csv_bytes

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "8"))
SEED = int(os.environ.get("FUZZ_SEED", "20261111"))
#: The values DRF's fields read as another JSON type, on purpose: a number
#: sent for a text field is read as its digits, and these for a boolean.
DRF_BOOLEANS = serializers.BooleanField.TRUE_VALUES | serializers.BooleanField.FALSE_VALUES


def drf_reads_as(schema_type, value) -> bool:
    if schema_type == "string":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if schema_type == "boolean":
        # 0.0 == 0: a float that equals one of them is read as it
        return isinstance(value, (int, float, str)) and not isinstance(value, bool) and value in DRF_BOOLEANS
    return False


def _body_property_type(case, name: str):
    body = case.operation.definition.raw.get("requestBody", {}).get("content", {}).get(case.media_type or "", {})
    target = body.get("schema", {})
    if "$ref" in target:
        target = schema.raw_schema["components"]["schemas"][target["$ref"].rsplit("/", 1)[-1]]
    return target.get("properties", {}).get(name, {}).get("type")


def only_drf_coercions(case) -> bool:
    """A negative case whose only invalid part is a body value DRF reads as
    the declared type (``"description": 5`` as "5", ``"enabled": 0`` as false)."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_negative or not isinstance(case.body, dict):
        return False
    data = meta.phase.data
    mutations = getattr(data, "mutations", ()) or ()
    if mutations:
        return all(m.parameter_location == ParameterLocation.BODY and "type" in m.keywords and len(m.path) == 1
                   and drf_reads_as(m.original_value, case.body.get(m.path[0])) for m in mutations)
    # The coverage phase names the property by its schema location: /properties/<name>/type.
    location = getattr(data, "location", None) or ""
    parts = location.strip("/").split("/")
    if (getattr(data, "scenario", None) == "incorrect_type" and data.parameter_location == ParameterLocation.BODY
            and len(parts) == 3 and parts[0] == "properties" and parts[2] == "type"):
        return drf_reads_as(_body_property_type(case, parts[1]), case.body.get(parts[1]))
    return False


@schemathesis.check
def negative_data_rejection_beyond_drf_coercions(ctx, response, case):
    """``negative_data_rejection``, but for the values DRF reads as the declared type."""
    if only_drf_coercions(case):
        return None
    return negative_data_rejection(ctx, response, case)


CHECKS = [
    not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
    response_schema_conformance, positive_data_acceptance, negative_data_rejection_beyond_drf_coercions,
]
#: Checks only a sequence of calls can make: a created object can be read,
#: a deleted one cannot.
STATEFUL_CHECKS = [*CHECKS, ensure_resource_availability, use_after_free]
COVERAGE = os.environ.get("FUZZ_COVERAGE", "1" if MAX_EXAMPLES > 8 else "0") == "1"
#: Out of ten examples of a detail route, how many name an existing object.
REAL_SHARE = 9

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


#: Operations whose positive examples the schema cannot make valid: what they
#: accept depends on rows or on a grammar JSON Schema does not express. Their
#: refusals are still checked for a documented 4xx with the error body.
SEMANTIC_CHECKS: dict[str, str] = {
    "api_cron_jobs_cron_create": "cron_expression is read by the cron grammar; timezone must name an IANA zone",
    "api_cron_jobs_interval_create": "at least one of hours, minutes, seconds above 0; timezone an IANA zone",
    "api_v1_jobs_create": "schedule_expression is read by schedule_type's grammar; kind and task_name come from "
                          "the registries; organization_id must exist",
    "api_v1_jobs_update": "as the create",
    "api_v1_executions_list": "cursor must be the next of an earlier answer (an opaque text), and is not "
                              "taken with page",
    "api_v1_jobs_executions_retrieve": "as the executions list",
    "api_v1_jobs_partial_update": "as the create",
    "api_v1_jobs_notifications_update": "destinations must be ones the settings configure",
    "api_v1_jobs_notifications_partial_update": "as the full update",
    "api_v1_predictions_annual_bulk_upload_async_create": "the file must be a CSV or XLSX with the template's header",
    "api_v1_predictions_quarterly_bulk_upload_async_create": "as the annual upload",
    "api_v1_predictions_jobs_retry_failed_create": "as the upload",
    "api_v1_predictions_jobs_results_retrieve": "there are results once the upload has completed (400 until then)",
    "api_v1_predictions_jobs_errors.csv_retrieve": "there are errors once the upload has finished (400 until then)",
    "api_v1_predictions_jobs_cancel_create": "only a pending or processing upload can be cancelled (400 otherwise)",
    "api_v1_predictions_jobs_destroy": "a processing upload cannot be deleted (400 until it has finished)",
    "api_v1_vision_batches_create": "each file must be an image the analyzers can decode",
    "api_workflows_create": "steps are read by the step grammar (types, task names, ${...} templates); secret "
                            "names are identifiers",
    "api_workflows_update": "as the create",
    "api_workflows_partial_update": "as the create",
    "cron_jobs_create": "schedule is read by the cron grammar; URLs must pass the outbound guard",
    "api_v1_jobs_apply_create": "the body is a jobs-as-code file: YAML text or JSON read by its own grammar "
                                "(sections, documents, names)",
    "api_v1_jobs_backfill_create": "start and end are ISO 8601 read in the job's zone; end after start and not in "
                                   "the future; at most JOBS_BACKFILL_MAX due times",
    "api_v1_jobs_calendars_update": "calendars must name existing calendars",
    "api_v1_jobs_validate_schedule_create": "calendars must name calendars the caller can see",
    "api_v1_jobs_run_after_update": "the jobs named must exist (by id or name) and close no cycle",
    "api_v1_maintenance_create": "scope organization names an existing organization, scope queue a queue, the "
                                 "others neither; until is in the future",
    "api_v1_calendars_create": "timezone an IANA zone; dates YYYY-MM-DD; windows HH:MM; holidays_country a country "
                               "the holidays library knows; ical an iCalendar file",
    "api_v1_calendars_update": "as the create",
    "api_v1_calendars_partial_update": "as the create",
}



def checks_for(case, checks: list) -> list:
    if case.operation.definition.raw.get("operationId") in SEMANTIC_CHECKS:
        return [check for check in checks if check is not positive_data_acceptance]
    return checks


schema = schemathesis.openapi.from_dict(served_schema(), config=schemathesis.Config.from_dict({
    "seed": SEED,
    "generation": {
        "max-examples": MAX_EXAMPLES,
        "deterministic": True,  # Hypothesis derandomized: the same examples on every run
        "database": "none",  # no replay of earlier failures either
        "with-security-parameters": False,  # the test sends a real token
        # The schema's description says no text holds U+0000 (jobsite.openapi.TEXT_RULE; a 400
        # naming the field, jobsite/parsers.py): JSON Schema has no way to say it
        # of every string, key and free-form value.
        "allow-x00": False,
    },
    "suppress-health-check": ["all"],
    # The coverage phase's boundary values (many per parameter) make most of a
    # run's requests: `make fuzz` has them, `make test`'s short run does not.
    "phases": {"coverage": {"enabled": COVERAGE}, "stateful": {
        # Only the schema's own links: name-based guesses join ids of different kinds.
        "inference": {"algorithms": []},
        "max-steps": 6,
    }},
    "operations": [
        # /health answers its documented 503 here: no worker or beat runs during this test.
        {"include-path": "/health",
         "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]}}},
    ],
}))
# Called in-process through the WSGI app (no server, no socket).
schema.app = get_wsgi_application()

#: Real path parameter values for the running test (filled by the ``fuzz_rows`` fixture).
REAL_ROWS: dict[str, list] = {}

#: Every path parameter's pattern: a generated value that breaks it is a
#: negative example, sent as generated (a real id there would make it valid).
PATTERNS = {
    (path, parameter["name"]): re.compile(parameter["schema"].get("pattern", ""))
    for path, item in schema.raw_schema["paths"].items()
    for operation in item.values() if isinstance(operation, dict)
    for parameter in operation.get("parameters", []) if parameter["in"] == "path"
}


def seed_path_parameters(case) -> None:
    """Nine examples in ten of a detail route name a real row (generated ids
    alone would nearly always be a 404). Chosen from the generated value, so
    a run is repeatable; a value that breaks the parameter's pattern is a
    negative example and is sent as generated (a real id would make it valid)."""
    values = _real_values(REAL_ROWS, case.operation.path)
    if not values or len(case.path_parameters or {}) != 1:
        return
    ((name, generated),) = case.path_parameters.items()
    if case.meta is not None and case.meta.generation.mode.is_negative:
        # A negative case stays one only through a part other than its path.
        negated = {location for location, info in case.meta.components.items() if info.mode.is_negative}
        if not negated or ParameterLocation.PATH in negated:
            return
    if not PATTERNS[(case.operation.path, name)].search(unquote(str(generated))):
        return
    digest = zlib.crc32(repr(generated).encode())
    if digest % 10 < REAL_SHARE:
        # As text: the parameter is a string, and schemathesis revalidates a changed one.
        case.path_parameters = {name: str(values[digest // 10 % len(values)])}


# ---------------------------------------------------------------------------
# Counts: what the fuzzing reached
# ---------------------------------------------------------------------------
#: Per kind of run ("stateless", "stateful"): requests, by status class, and
#: how many of those on detail routes named an existing object.
COUNTS: dict[str, Counter] = {}


def count(kind: str, case, response) -> None:
    counts = COUNTS.setdefault(kind, Counter())
    counts["requests"] += 1
    counts[f"{response.status_code // 100}xx"] += 1
    counts["404"] += response.status_code == 404
    counts["documented 503 (/health)"] += response.status_code == 503 and case.operation.path == "/health"
    if case.path_parameters:
        counts["detail"] += 1
        real = {str(value) for value in _real_values(REAL_ROWS, case.operation.path)}
        counts["existing"] += all(unquote(str(v)) in real for v in case.path_parameters.values())


def summary(kind: str, counts: Counter) -> str:
    total, detail = counts["requests"], counts["detail"]
    classes = ", ".join(f"{key} {counts[key]}" for key in ("2xx", "3xx", "4xx", "5xx") if counts[key])
    return (f"fuzz {kind}: {total} requests ({classes}; of them 404 {counts['404']} = "
            f"{100 * counts['404'] / total:.1f}%, documented 503 (/health) {counts['documented 503 (/health)']}); "
            f"{detail} on detail routes, {counts['existing']} ({100 * counts['existing'] / max(detail, 1):.1f}%) "
            f"naming an existing object")


@pytest.fixture(scope="module", autouse=True)
def report_counts(request):
    """Prints what the fuzzing reached, once, at the end of the module."""
    COUNTS.clear()
    yield
    if COUNTS:
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print("\n" + "\n".join(summary(kind, counts) for kind, counts in COUNTS.items()))


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
    seed_path_parameters(case)
    with rolled_back():
        response = case.call(headers=bearer)
    count("stateless", case, response)
    if response.status_code >= 500 and in_process_requests:
        print("\n".join(in_process_requests))
    case.validate_response(response, checks=checks_for(case, CHECKS), headers=bearer)


def test_call_sequences_along_the_schema_links_hold_every_check(bearer, real_rows, in_process_requests,
                                                                queues_untouched):
    """Stateful: each scenario starts at a list or a create and follows the
    schema's links to the objects it answered with (a scenario in one
    savepoint, rolled back: each starts from the fixture's rows)."""
    links = sum(len(response.get("links", {})) for item in schema.raw_schema["paths"].values()
                for operation in item.values() if isinstance(operation, dict)
                for response in operation.get("responses", {}).values())
    assert links >= 50, "the schema lost its links (jobsite.openapi.link_declared_targets)"

    class Scenario(schema.as_state_machine()):
        def setup(self):
            self.savepoint = transaction.atomic()
            self.savepoint.__enter__()

        def teardown(self):
            transaction.set_rollback(True)
            self.savepoint.__exit__(None, None, None)

        def get_call_kwargs(self, case):
            return {"headers": bearer}

        def after_call(self, response, case):
            super().after_call(response, case)
            count("stateful", case, response)
            if response.status_code >= 500 and in_process_requests:
                print("\n".join(in_process_requests))
            in_process_requests.clear()

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=checks_for(case, STATEFUL_CHECKS), headers=bearer,
                                   recorder=getattr(self, "recorder", None))

    Scenario.run(settings=hypothesis_settings(
        max_examples=max(10, MAX_EXAMPLES * 4), stateful_step_count=6, deadline=None, derandomize=True,
        database=None, suppress_health_check=list(HealthCheck),
    ))


@schema.parametrize()
@hypothesis_settings(max_examples=1)
def test_without_a_token_nothing_is_served_and_every_status_is_documented(case, in_process_requests):
    """No credentials: a 401 (or a 404 for a path no route matches), never data;
    the token endpoint aside, which needs none."""
    response = case.call()
    if case.operation.path != "/api/auth/token":
        assert response.status_code in (401, 404), response.text
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance, content_type_conformance])


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


def test_the_schema_declares_what_the_api_answers_and_refuses():
    """The shapes, content types and closed bodies the fuzzing checks, named:
    list envelopes are objects, downloads declare their media types, and
    exactly the bodies whose serializer refuses unknown keys are closed."""
    from jobsite.openapi import PROBE_KEY

    paths, components = schema.raw_schema["paths"], schema.raw_schema["components"]["schemas"]

    def ok_body(path, method="get", status="200"):
        return paths[path][method]["responses"][status]["content"]

    for path in ("/api/cron/jobs/", "/api/workflows/", "/api/workflows/runs/"):
        ref = ok_body(path)["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        assert components[ref]["type"] == "object", path
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert set(ok_body("/api/v1/predictions/templates/annual")) == {"text/csv", xlsx}
    assert set(ok_body("/api/v1/predictions/jobs/{job_id}/results")) == {"text/csv"}
    assert set(ok_body("/api/v1/vision/batches/{batch_id}/report/")) == {"text/html"}

    closed = {name for name, component in components.items() if component.get("additionalProperties") is False}
    assert {"JobCreateRequest", "PatchedJobUpdateRequest", "JobExecuteRequest",
            "JobNotificationSettingsUpdateRequest", "WorkflowUpdateRequest"} <= closed, closed
    assert "ScheduleValidateInputRequest" not in closed
    assert PROBE_KEY not in str(schema.raw_schema)


def test_an_unknown_key_is_refused_where_the_schema_closes_the_body(fuzz_user, org, client_for):
    """The other side of additionalProperties: false, on closed bodies."""
    from tests.factories import JobFactory

    api = client_for(fuzz_user)
    job = JobFactory(name="closed-body-job", task_name="tests.noop", owner=fuzz_user, organization=org)
    for url, method, body in (
        (f"/api/v1/jobs/{job.pk}", "patch", {"title": "x", "titel": "typo"}),
        (f"/api/v1/jobs/{job.pk}/execute", "post", {"force": False, "forse": True}),
    ):
        response = getattr(api, method)(url, body, format="json")
        assert response.status_code == 400, (url, response.content)
        assert "Unknown field" in str(response.json()["errors"]), response.json()
