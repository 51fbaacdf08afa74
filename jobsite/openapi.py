"""OpenAPI schema post-processing (drf-spectacular ``POSTPROCESSING_HOOKS``).

Some answers come from the framework rather than from a view, so every view
would otherwise have to repeat them in its ``@extend_schema(responses=...)``:
DRF's authentication (401), its parsers (400 for a malformed body, 415 for a
Content-Type the operation does not read), its lookups (404 for an id that
names nothing visible), CSRF on session-authenticated writes (403), and its
router (405 where a path parameter takes a reserved word that is another
route's path, e.g. GET ``/api/cron/jobs/cron``: that route only creates). This
hook documents them once, on every operation they apply to, with the
project's error body (jobsite.exceptions.exception_handler). A response an
operation documents itself is left as it is: its description is the more
precise one. Schemathesis checks the result (tests/jobsite/test_fuzz_openapi.py).
"""
from __future__ import annotations

ERROR_COMPONENT = "Error"

#: The body of every error (jobsite.exceptions.exception_handler); the same
#: shape as scheduling.serializers.ErrorSerializer, which names this component
#: first when the scheduling app is installed.
ERROR_SCHEMA = {
    "type": "object",
    "description": "The project's error body (jobsite.exceptions.exception_handler).",
    "properties": {
        "detail": {"type": "string", "description": "Readable message; validation errors name the field."},
        "code": {"type": "string"},
        "errors": {"type": "object", "additionalProperties": {}, "description": "Validation errors by field."},
    },
    "required": ["detail"],
}

UNSAFE_METHODS = {"post", "put", "patch", "delete"}
HTTP_METHODS = UNSAFE_METHODS | {"get", "head", "options", "trace"}

DESCRIPTIONS = {
    "400": "Invalid input: `detail` names the field, parameter or body problem.",
    "401": "No valid credentials: send `Authorization: Bearer <token>`.",
    "403": "Not allowed for this user (or a session-authenticated write without its CSRF token).",
    "404": "No such object visible to you.",
    "413": "The request body is larger than DATA_UPLOAD_MAX_MEMORY_SIZE (jobsite.middleware).",
    "415": "The request body's Content-Type is not one this operation reads.",
}


def _segments(path: str) -> tuple[str, ...]:
    return tuple(path.strip("/").split("/"))


def reserved_words_without(paths: dict, path: str, method: str) -> list[str]:
    """The words that, put in ``path``'s last segment (a parameter), name
    another route of the schema that does not take ``method``: the router
    answers those with 405 (the words are reserved, never an object's id)."""
    *parent, last = _segments(path)
    if not (last.startswith("{") and last.endswith("}")):
        return []
    words = []
    for other, item in paths.items():
        *other_parent, word = _segments(other)
        if other_parent == parent and not word.startswith("{") and method not in item:
            words.append(word)
    return sorted(words)


def _requires_authentication(operation: dict) -> bool:
    security = operation.get("security")
    # Absent or [] means no authentication; an empty requirement ({}) makes it optional.
    return bool(security) and {} not in security


def framework_statuses(path: str, method: str, operation: dict) -> list[str]:
    """The statuses DRF itself may answer for ``operation``, whatever the view does."""
    statuses = []
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    if has_body or any(p.get("in") == "query" for p in parameters):
        statuses.append("400")
    if _requires_authentication(operation):
        statuses.append("401")
        if method in UNSAFE_METHODS and any("cookieAuth" in requirement for requirement in operation["security"]):
            statuses.append("403")
    if "{" in path:
        statuses.append("404")
    if has_body:
        statuses += ["413", "415"]
    return statuses


def document_framework_responses(result, generator, request, public):
    """POSTPROCESSING_HOOKS entry: add the framework's error responses."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(ERROR_COMPONENT, ERROR_SCHEMA)
    error_body = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}}}
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for status in framework_statuses(path, method, operation):
                if status not in responses:
                    responses[status] = {"description": DESCRIPTIONS[status], "content": error_body}
            words = reserved_words_without(result["paths"], path, method)
            if words and "405" not in responses:
                responses["405"] = {
                    "description": f"The path names another route, which does not take {method.upper()}: "
                                   + ", ".join(f"`{word}`" for word in words) + " (reserved, never an id).",
                    "content": error_body,
                }
            # Keep the responses in status order, as the views write them.
            operation["responses"] = dict(sorted(responses.items()))
    return result
