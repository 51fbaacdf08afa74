"""The request boundary: text no database of ours can hold, and bodies over
the size limit, are answered here before any view, lookup or parser runs.

- A path holding a NUL character (``/api/v1/jobs/a%00b``) names nothing: 404.
  PostgreSQL refuses NUL in text, so without this every lookup by name
  would fail with a database error on PostgreSQL and a 404 on SQLite.
- A query string holding a NUL or an unpaired surrogate is a 400 naming the
  parameter (filters, admin search and ordering all reach the database).
- A body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (multipart uploads aside: their
  files are streamed to disk and counted by their own limits) is a JSON 413.
  Django would raise RequestDataTooBig wherever the body is first read and
  answer its HTML 400 page. (A body without a length is not read at all
  under WSGI: Django's stream stops at the announced length.)

JSON bodies are checked by jobsite.parsers.StrictJSONParser (which names the
key at fault), form and multipart fields by its Strict*Parser siblings.
"""
from __future__ import annotations

from django.conf import settings
from django.core.exceptions import TooManyFieldsSent
from django.http import JsonResponse

from jobsite.parsers import unstorable_text_problem


def query_string_problem(query) -> str | None:
    """The first query parameter (name or value) that cannot be stored, as a
    sentence naming it; None when all are fine."""
    for name, values in query.lists():
        for text in (name, *values):
            problem = unstorable_text_problem(text)
            if problem:
                shown = name.encode("unicode_escape").decode("ascii")
                return f"Query parameter '{shown}': {problem}."
    return None


def _body_too_big(request) -> JsonResponse | None:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is None or request.content_type == "multipart/form-data":
        return None
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length <= limit:
        return None
    return JsonResponse(
        {"detail": f"Request body too large: the limit is {limit} bytes (DATA_UPLOAD_MAX_MEMORY_SIZE)."},
        status=413,
    )


class InputBoundaryMiddleware:
    """Refuses what the module docstring lists, as JSON, before the view."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if unstorable_text_problem(request.path_info):
            return JsonResponse({"detail": "Not found: a path may not hold NUL characters."}, status=404)
        try:
            problem = query_string_problem(request.GET)
        except TooManyFieldsSent:
            limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
            problem = f"Too many query parameters (over DATA_UPLOAD_MAX_NUMBER_FIELDS, {limit})."
        if problem:
            return JsonResponse({"detail": problem}, status=400)
        too_big = _body_too_big(request)
        if too_big is not None:
            return too_big
        return self.get_response(request)
