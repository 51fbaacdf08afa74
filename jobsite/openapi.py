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

A third hook turns each operation's ``x-jobsite-links`` (declared next to
the view with ``extend_schema(extensions=...)``) into OpenAPI links on its
success responses: a list or a create names where its answer's object ids
are, and which routes take them. Stateful testing follows those links, so
its calls reach objects that exist.

A second hook declares ``additionalProperties: false`` on the request bodies
whose serializer refuses keys it does not know. It asks each serializer
rather than keeping a list, so the schema cannot drift from what the
serializers do.
"""
from __future__ import annotations

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from rest_framework import serializers

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


#: What no JSON Schema keyword can say of every string, key and free-form
#: value at once (jobsite.parsers refuses it before any view runs).
TEXT_RULE = ("Text never holds a NUL character (U+0000) or an unpaired surrogate, in a path, a query "
             "parameter, a form field or anywhere in a JSON body: such input is a 400 naming where it is.")


def document_framework_responses(result, generator, request, public):
    """POSTPROCESSING_HOOKS entry: add the framework's error responses."""
    info = result.setdefault("info", {})
    if TEXT_RULE not in info.get("description", ""):
        info["description"] = f"{info.get('description', '')}\n\n{TEXT_RULE}".strip()
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


#: A key no serializer declares: a serializer that names it in its errors
#: refuses unknown keys.
PROBE_KEY = "x-unknown-key-probe"


def refuses_unknown_keys(serializer) -> bool:
    """Whether ``serializer`` (a class or an instance) answers an unknown key
    with an error naming it. Only the probe key is sent, as a partial update,
    so no field of its own is validated (and no database is read)."""
    serializer_class = serializer if isinstance(serializer, type) else type(serializer)
    if not issubclass(serializer_class, serializers.Serializer):
        return False
    try:
        probe = serializer_class(data={PROBE_KEY: None}, partial=True)
        probe.is_valid()
        errors = probe.errors
    except Exception:  # noqa: BLE001 - a serializer that cannot be built bare is left undeclared
        return False
    return isinstance(errors, dict) and PROBE_KEY in errors


def _references(value) -> set[str]:
    """Names of the schema components ``value`` refers to (``$ref``), at any depth."""
    names: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                names.add(ref.rsplit("/", 1)[-1])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return names


FORM_MEDIA_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def request_components(result, media_types: tuple[str, ...] | None = None) -> set[str]:
    """The schema components a request body (of one of ``media_types``, or
    any) uses, directly or nested."""
    schemas = result.get("components", {}).get("schemas", {})
    bodies = [media for item in result.get("paths", {}).values()
              for method, operation in item.items() if method in HTTP_METHODS
              for media_type, media in operation.get("requestBody", {}).get("content", {}).items()
              if media_types is None or media_type in media_types]
    found: set[str] = set()
    pending = _references(bodies)
    while pending:
        name = pending.pop()
        if name not in found and name in schemas:
            found.add(name)
            pending |= _references(schemas[name]) - found
    return found


#: A string that is not only whitespace, in Python's sense (``str.isspace``,
#: which DRF's trimming uses): every such character listed, as ``\s`` means
#: other sets in other regex dialects.
NOT_BLANK = r"[^\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"


class NonBlankCharField(OpenApiSerializerFieldExtension):
    """DRF trims a CharField's input, so one that refuses blanks refuses a
    whitespace-only value too: as input (a body or a query parameter) it gets
    the ``NOT_BLANK`` pattern. (A form body's empty optional field means absent:
    ``open_optional_form_fields`` takes the rule back there.)"""

    target_class = "rest_framework.fields.CharField"
    match_subclasses = True  # a project field that narrows CharField (a time zone name) keeps the rule

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        field = self.target
        if (direction == "request" and field.trim_whitespace and not field.allow_blank
                and schema.get("type") == "string" and not {"pattern", "enum", "format"} & set(schema)):
            schema["pattern"] = NOT_BLANK
        return schema


def open_optional_form_fields(result) -> None:
    """A form field sent empty and not required is read as absent (DRF), so
    neither the not-blank rule nor a minimum length of 1 holds for it there."""
    schemas = result.get("components", {}).get("schemas", {})
    for name in request_components(result, FORM_MEDIA_TYPES):
        schema = schemas[name]
        for prop, prop_schema in schema.get("properties", {}).items():
            if prop in schema.get("required", []) or prop_schema.get("type") != "string":
                continue
            if prop_schema.get("pattern") == NOT_BLANK:
                del prop_schema["pattern"]
            if prop_schema.get("minLength") == 1:
                del prop_schema["minLength"]


def optional_bodies(result) -> None:
    """A body whose schemas require nothing may be left out (DRF reads no
    body as an empty one)."""
    schemas = result.get("components", {}).get("schemas", {})
    for item in result.get("paths", {}).values():
        for method, operation in item.items():
            body = operation.get("requestBody") if method in HTTP_METHODS else None
            if not body or not body.get("required"):
                continue
            targets = [media.get("schema", {}) for media in body.get("content", {}).values()]
            resolved = [schemas.get(t["$ref"].rsplit("/", 1)[-1], {}) if "$ref" in t else t for t in targets]
            if resolved and all(t.get("type") == "object" and not t.get("required") for t in resolved):
                body["required"] = False


def declare_closed_request_bodies(result, generator, request, public):
    """POSTPROCESSING_HOOKS entry: ``additionalProperties: false`` on each
    request body component whose serializer refuses unknown keys; the
    not-blank rule off optional form fields; bodies that require nothing optional."""
    schemas = result.get("components", {}).get("schemas", {})
    used = request_components(result)
    for component in list(generator.registry._components.values()):
        if component.type != component.SCHEMA or component.name not in used:
            continue
        schema = schemas.get(component.name)
        if not schema or schema.get("type") != "object":
            continue
        if refuses_unknown_keys(component.object):
            schema["additionalProperties"] = False
    open_optional_form_fields(result)
    optional_bodies(result)
    return result


#: ``extend_schema(extensions={LINKS_EXTENSION: {target: pointer}})``: the
#: object id at ``pointer`` (a JSON pointer into the success body, without
#: its leading slash: ``items/0/id``) fills the path parameter that ends
#: ``target`` (``/api/workflows/{id}``), on every operation at or under it.
LINKS_EXTENSION = "x-jobsite-links"


def links(targets: dict[str, str]) -> dict:
    """``extend_schema(extensions=links({target: pointer}))``: see LINKS_EXTENSION."""
    return {LINKS_EXTENSION: targets}


def _link_name(method: str, path: str) -> str:
    words = [word.strip("{}") for word in _segments(path) if word]
    return method.upper() + "".join(word[:1].upper() + word[1:] for word in words).replace("-", "").replace(".", "")


def link_declared_targets(result, generator, request, public):
    """POSTPROCESSING_HOOKS entry: OpenAPI links from ``x-jobsite-links``."""
    paths = result.get("paths", {})
    for item in paths.values():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            declared = operation.pop(LINKS_EXTENSION, None)
            if not declared:
                continue
            links = {}
            for target, pointer in declared.items():
                parameter = _segments(target)[-1].strip("{}")
                for path, target_item in paths.items():
                    if path.rstrip("/") != target.rstrip("/") and not path.startswith(target.rstrip("/") + "/"):
                        continue
                    for target_method, target_operation in target_item.items():
                        if target_method in HTTP_METHODS and "operationId" in target_operation:
                            links[_link_name(target_method, path)] = {
                                "operationId": target_operation["operationId"],
                                "parameters": {f"path.{parameter}": f"$response.body#/{pointer}"},
                            }
            for status, response in operation.get("responses", {}).items():
                if status.startswith("2") and links:
                    response["links"] = dict(sorted(links.items()))
    return result
