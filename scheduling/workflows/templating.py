"""The one templating of step fields: ``${path}`` placeholders, nothing else.

No expressions, no calls, no attribute access: a placeholder names a value by
a dotted path into a fixed set of roots, so a workflow author cannot make the
worker evaluate anything (no ``eval``, no template engine).

Roots:

- ``${input}``: the run's input text (seed 002 ``input``);
- ``${previous}`` / ``${previous.body.id}``: the output of the step just before;
- ``${steps.<name>.output}`` / ``${steps.<name>.output.<key>...}`` and
  ``${steps.<name>.status}``: an earlier step's output or status;
- ``${secrets.<NAME>}``: one of the workflow's encrypted credentials;
- ``${job_id}``, ``${execution_id}``, ``${workflow_id}``.

List items are addressed by number (``${steps.search.output.body.items.0}``).
``$$`` is a literal ``$``. A string that is exactly one placeholder takes the
value as it is (a number stays a number in a JSON body); inside a longer
string a non-string value is written as JSON. In URLs every value substituted
into a longer string is percent-encoded (``quote_url``), so input text cannot
add query parameters or change the path; a URL that is one placeholder is
taken as it is (and checked by the SSRF guard when it is requested).
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

PLACEHOLDER = re.compile(r"\$(?:\$|\{\s*(?P<path>[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*)\s*\})")
_LOOSE = re.compile(r"\$\{[^}]*\}?")
ROOTS = ("input", "previous", "steps", "secrets", "job_id", "execution_id", "workflow_id")


class TemplateError(ValueError):
    """A placeholder names nothing (a bad path, or a key the value lacks)."""


def references(value: Any) -> Iterator[str]:
    """Every placeholder path in ``value`` (strings inside lists/dicts too)."""
    if isinstance(value, str):
        for match in PLACEHOLDER.finditer(value):
            if match["path"]:
                yield match["path"]
    elif isinstance(value, dict):
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def malformed(value: Any) -> Iterator[str]:
    """Text that looks like a placeholder but is not one (``${a b}``, ``${x``)."""
    if isinstance(value, str):
        for match in _LOOSE.finditer(value):
            if not PLACEHOLDER.fullmatch(match.group(0)):
                yield match.group(0)
    elif isinstance(value, dict):
        for item in value.values():
            yield from malformed(item)
    elif isinstance(value, list):
        for item in value:
            yield from malformed(item)


def resolve(path: str, variables: dict[str, Any]) -> Any:
    """The value ``path`` names in ``variables``; TemplateError if none."""
    parts = path.split(".")
    if parts[0] not in variables:
        raise TemplateError(f"${{{path}}}: unknown name '{parts[0]}'. Use one of: {', '.join(ROOTS)}.")
    value = variables[parts[0]]
    for depth, part in enumerate(parts[1:], start=1):
        where = ".".join(parts[:depth])
        if isinstance(value, dict):
            if part not in value:
                raise TemplateError(f"${{{path}}}: {where} has no key '{part}'.")
            value = value[part]
        elif isinstance(value, list) and part.isdigit():
            index = int(part)
            if index >= len(value):
                raise TemplateError(f"${{{path}}}: {where} has {len(value)} item(s), no item {index}.")
            value = value[index]
        else:
            raise TemplateError(f"${{{path}}}: {where} is {type(value).__name__}, it has no '{part}'.")
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def render(value: Any, variables: dict[str, Any], *, quote_url: bool = False) -> Any:
    """``value`` with every placeholder replaced (recursively in lists/dicts)."""
    if isinstance(value, dict):
        return {key: render(item, variables, quote_url=quote_url) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, variables, quote_url=quote_url) for item in value]
    if not isinstance(value, str):
        return value
    whole = PLACEHOLDER.fullmatch(value.strip())
    if whole and whole["path"]:
        # The whole field is one value: a URL taken as it is from an earlier
        # step (the SSRF guard checks it at request time), a number kept a number.
        resolved = resolve(whole["path"], variables)
        return _text(resolved) if quote_url else resolved

    def substitute(match: re.Match) -> str:
        if not match["path"]:
            return "$"
        text = _text(resolve(match["path"], variables))
        return quote(text, safe="") if quote_url else text

    return PLACEHOLDER.sub(substitute, value)
