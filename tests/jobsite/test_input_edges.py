"""No 5xx on any input: NUL characters and broken Unicode in paths, query
strings and bodies, and bodies over the size limit (jobsite.middleware).

The routes come from the URL resolver, so a route added later is probed too.
Run it with DATABASE_URL set as well: PostgreSQL refuses NUL in text, where
SQLite does not."""
from __future__ import annotations

import re

import pytest
from django.urls import get_resolver, resolve
from django.urls.exceptions import Resolver404
from django.urls.resolvers import RoutePattern, URLResolver
from rest_framework.test import APIClient

from scheduling.models import Job
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")
NUL = "a%00b"
# A lone surrogate as a client would have to send it: its UTF-8 form, which is not valid UTF-8.
SURROGATE = "a%ED%A0%80b"
_SEGMENT = "{segment}"
_NAMED_GROUP = re.compile(r"\(\?P<\w+>[^)]*\)")
_REGEX_LEFTOVER = re.compile(r"[()\[\]|*+?\\^$]")


def _template(pattern) -> str:
    """One pattern's text with each of its parameters as ``{segment}``."""
    text = str(pattern)
    if isinstance(pattern, RoutePattern):
        return re.sub(r"<[^>]+>", _SEGMENT, text)
    text = text.removeprefix("^").removesuffix("$").replace("(?:/)?", "")
    text = text.removesuffix("/?").replace("/?", "/")
    return _NAMED_GROUP.sub(_SEGMENT, text).replace(r"\.", ".")


def _routes(patterns=None, prefix=""):
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            yield from _routes(entry.url_patterns, prefix + _template(entry.pattern))
        else:
            yield prefix + _template(entry.pattern)


ALL_ROUTES = sorted(set(_routes()))
# Routes spelt as plain text with parameters: what a client can address.
BUILDABLE = [route for route in ALL_ROUTES if not _REGEX_LEFTOVER.search(route)]
SEGMENT_ROUTES = [route for route in BUILDABLE if _SEGMENT in route]
PLAIN_ROUTES = [route for route in BUILDABLE if _SEGMENT not in route]


def _url(route: str, value: str) -> str:
    return "/" + route.replace(_SEGMENT, value)


@pytest.fixture
def root_client(superuser):
    # A session login, so the admin's pages are reached too; DRF takes the same session.
    client = APIClient(raise_request_exception=False)
    client.force_login(superuser)
    return client


def test_the_resolver_yields_the_routes_the_issue_names():
    # given the resolver walk, then the routes that failed on PostgreSQL are among those probed
    for route in ("api/v1/jobs/{segment}", "api/v1/jobs/{segment}/executions", "api/v1/jobs/{segment}/stats",
                  "api/v1/jobs/{segment}/execute", "api/v1/jobs/{segment}/pause",
                  "api/cron/jobs/{segment}", "api/cron/jobs/{segment}/trigger", "cron-jobs/{segment}",
                  "admin/scheduling/job/{segment}/change/"):
        assert route in SEGMENT_ROUTES, route
    assert len(SEGMENT_ROUTES) >= 100  # the admin's object pages and every API detail route


@pytest.mark.parametrize("route", SEGMENT_ROUTES)
def test_a_nul_in_a_path_segment_is_a_json_404_on_every_route(root_client, route):
    for method in METHODS:
        response = getattr(root_client, method)(_url(route, NUL))
        assert response.status_code == 404, (method, route, response.content[:300])
        assert response["Content-Type"].startswith("application/json"), (method, route)


@pytest.mark.parametrize("route", SEGMENT_ROUTES)
def test_broken_unicode_in_a_path_segment_is_never_a_5xx(root_client, route):
    # The segment reaches the views (Django keeps invalid UTF-8 percent-encoded): a real lookup answers.
    for method in METHODS:
        response = getattr(root_client, method)(_url(route, SURROGATE))
        assert response.status_code < 500, (method, route, response.content[:300])
        if route.startswith("api/") and response.status_code != 405:
            assert response["Content-Type"].startswith("application/json"), (method, route)


@pytest.mark.parametrize("route", PLAIN_ROUTES)
@pytest.mark.parametrize(("query", "named", "why"), [
    ("status=%00", "status", "NUL"),
    ("name=a%00b&page=1", "name", "NUL"),
    ("%00=1", "\\x00", "NUL"),
])
def test_a_nul_in_the_query_string_is_a_400_naming_the_parameter(root_client, route, query, named, why):
    response = root_client.get(f"{_url(route, '')}?{query}")
    assert response.status_code == 400, (route, response.content[:300])
    detail = response.json()["detail"]
    assert f"Query parameter '{named}'" in detail and why in detail


@pytest.mark.parametrize("path", [
    "/api/v1/jobs/?search=a%ED%A0%80b", "/api/v1/executions/?status=%ED%A0%80",
    "/api/cron/jobs?name=%ED%A0%80", "/admin/scheduling/job/?q=%ED%A0%80", "/api/v1/jobs/?search=%5Cud800",
])
def test_broken_unicode_in_the_query_string_is_never_a_5xx(root_client, path):
    response = root_client.get(path)
    assert response.status_code < 500, response.content[:300]


def test_a_job_named_like_a_probe_is_still_found_by_name(root_client, superuser):
    # given a job whose name holds the characters around the probe
    job = JobFactory(name="a.b", owner=superuser)
    # then it is found, and the NUL variant of it is not
    assert root_client.get("/api/v1/jobs/a.b").json()["id"] == job.pk
    assert root_client.get("/api/v1/jobs/a.b%00").status_code == 404


def test_the_lookup_helper_refuses_nul_for_callers_without_a_request(superuser):
    from jobsite.exceptions import NotFound
    from scheduling.selectors import job_get

    with pytest.raises(NotFound):
        job_get(job_id="a\x00b", user=superuser)


@pytest.mark.parametrize(("path", "content_type"), [
    ("/api/v1/jobs/", "application/json"),
    ("/api/cron/jobs/cron", "application/json"),
    ("/api/auth/token", "application/json"),
    ("/cron-jobs", "application/json"),
    ("/admin/login/", "application/x-www-form-urlencoded"),
])
def test_a_body_over_the_limit_is_a_json_413(root_client, settings, path, content_type):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = b'{"name": "' + b"x" * 2048 + b'"}'
    response = root_client.post(path, data=body, content_type=content_type)
    assert response.status_code == 413
    assert "1024 bytes" in response.json()["detail"]
    assert not Job.objects.exists()


def test_a_body_over_the_default_limit_is_a_json_413(root_client, settings):
    # given Django's own limit as configured (10 MB)
    body = b'{"name": "big", "description": "' + b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1) + b'"}'
    response = root_client.post("/api/v1/jobs/", data=body, content_type="application/json")
    assert response.status_code == 413
    assert "DATA_UPLOAD_MAX_MEMORY_SIZE" in response.json()["detail"]


def test_a_body_under_the_limit_still_reaches_the_view(root_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    response = root_client.post("/api/v1/jobs/", data=b'{"name": 1}', content_type="application/json")
    assert response.status_code == 400  # the serializer's answer, not the boundary's


def test_parse_depth_stays_capped(root_client, settings):
    response = root_client.post("/api/v1/jobs/validate-schedule", data="[" * 40 + "]" * 40,
                                content_type="application/json")
    assert response.status_code == 400
    assert f"deeper than {settings.API_MAX_JSON_DEPTH}" in response.json()["detail"]


def test_every_probed_route_resolves():
    # a template that no longer resolves would probe the catch-all, not the route
    unresolved = []
    for route in PLAIN_ROUTES + SEGMENT_ROUTES:
        try:
            resolve(_url(route, "1"))
        except Resolver404:
            unresolved.append(route)
    assert not unresolved


def test_a_surrogate_that_reaches_a_query_value_is_named():
    # Django's WSGI decoding replaces invalid UTF-8, but a server or client that hands over a
    # decoded surrogate gets the same 400 as a NUL.
    from django.http import QueryDict

    from jobsite.middleware import query_string_problem

    query = QueryDict(mutable=True)
    query["name"] = "a\ud800b"
    assert query_string_problem(query) == (
        "Query parameter 'name': an unpaired surrogate (\\ud800-\\udfff) is not valid Unicode text.")


def test_too_many_query_parameters_is_a_json_400(root_client, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    response = root_client.get("/api/v1/jobs/?" + "&".join(f"p{n}=1" for n in range(20)))
    assert response.status_code == 400
    assert "Too many query parameters" in response.json()["detail"]
