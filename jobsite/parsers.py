"""The project's JSON parser: refuses, with a 400 that names where, what no
database or renderer of ours can hold.

DRF's JSONParser (``json.loads``) accepts text that later breaks a request
halfway: ``1e400`` (infinity), NaN, NUL characters (PostgreSQL text and
jsonb cannot store U+0000), unpaired surrogates (no UTF-8 encoding: SQLite's
JSON_VALID check fails after part of the work is done, and every page that
renders the value fails with it), and nesting deep enough to exhaust the
recursion limit. Each is refused here, before any view runs.
"""
from __future__ import annotations

import json
import math
import re

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable_text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored (a NUL, an unpaired surrogate), or None."""
    match = _UNSTORABLE.search(text)
    if match is None:
        return None
    if match.group() == "\x00":
        return "NUL characters (\\u0000) are not allowed"
    return "an unpaired surrogate (\\ud800-\\udfff) is not valid Unicode text"


def nesting_depth(text: str) -> int:
    """Deepest ``[``/``{`` nesting of a JSON text, counted outside strings
    (linear, no recursion: it runs before the recursive decoder)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def unstorable_value(value, path: str = "") -> str | None:
    """The first place in a decoded JSON value that cannot be stored, as
    ``"<path>: <why>"``; None when every string, key and number is fine."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{path or 'body'}: numbers must be finite (this one is too large, or NaN/Infinity)"
    if isinstance(value, str):
        problem = unstorable_text_problem(value)
        return f"{path or 'body'}: {problem}" if problem else None
    if isinstance(value, dict):
        for key, item in value.items():
            shown = str(key).encode("utf-8", "backslashreplace").decode("utf-8")  # a refused key, quoted escaped
            where = f"{path}.{shown}" if path else shown
            problem = unstorable_value(key, where) or unstorable_value(item, where)
            if problem:
                return problem
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problem = unstorable_value(item, f"{path}[{index}]" if path else f"[{index}]")
            if problem:
                return problem
    return None


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = stream.read().decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(f"not valid {encoding} text ({exc.reason}).") from None
        limit = settings.API_MAX_JSON_DEPTH
        if nesting_depth(text) > limit:
            raise ParseError(f"JSON nested deeper than {limit} levels.")
        try:
            data = json.loads(text)  # 1e400 decodes as inf, NaN as nan: unstorable_value names them
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        problem = unstorable_value(data)
        if problem:
            raise ParseError(f"{problem}.")
        return data
