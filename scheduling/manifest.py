"""The jobs-as-code file: read (and check) it, and write it.

The format (YAML or JSON, one top-level mapping)::

    calendars:                 # keyed by name: days and hours the jobs that list them skip
      - name: DE holidays
        holidays_country: DE
        timezone: Europe/Berlin
    workflows:                 # keyed by id; the body of POST /api/workflows/
      - id: nightly-etl
        name: Nightly ETL
        steps: [...]
        secrets: {TOKEN: {from_env: ETL_TOKEN}}
    jobs:                      # keyed by name; the body of POST /api/v1/jobs/
      - name: nightly-report
        schedule_type: daily
        schedule_expression: "02:00"
        task_name: scheduling.user_activity_digest
        paused: true           # optional
        organization: Acme     # by name; null: none
        secrets: {API_KEY: {from_env: REPORT_API_KEY}}
        calendars: [DE holidays]

Reading refuses, before anything is planned: a file over
``JOBS_APPLY_MAX_BYTES``, YAML aliases (``*name``: the "billion laughs"
bomb is made of them), anything but a mapping of lists of mappings, unknown
sections, duplicate names, and every document the API's serializer refuses
(unknown field, wrong type...). Errors name the file, the document (section,
index, name) and the field. The services (scheduling.services.apply) do the rest.
"""
from __future__ import annotations

import json
from collections.abc import Mapping

import yaml
from django.conf import settings
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.fields import empty

from jobsite.exceptions import flatten_errors
from scheduling.code_serializers import ManifestCalendarSerializer, ManifestJobSerializer
from scheduling.services.apply import DocumentError, ManifestError, manifest_export, sections

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
#: The core's sections' document serializers (other apps' sections bring their own).
CORE_SERIALIZERS = {"jobs": ManifestJobSerializer, "calendars": ManifestCalendarSerializer}
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def max_bytes() -> int:
    return int(getattr(settings, "JOBS_APPLY_MAX_BYTES", DEFAULT_MAX_BYTES))


def _fail(message: str, *, file: str, field: str = "") -> ManifestError:
    return ManifestError([DocumentError("", None, "", field, message)], file=file)


def parse(text: str | bytes, *, file: str = "<input>"):
    """The file's data: JSON when it is JSON, else YAML (safe types only, no aliases)."""
    if isinstance(text, bytes):
        if len(text) > max_bytes():
            raise _fail(f"The file is {len(text)} bytes; at most {max_bytes()} are read (JOBS_APPLY_MAX_BYTES).", file=file)
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _fail(f"Not UTF-8 text (byte {exc.start}).", file=file) from None
    if len(text.encode("utf-8", "surrogatepass")) > max_bytes():
        raise _fail(f"The file is larger than {max_bytes()} bytes (JOBS_APPLY_MAX_BYTES).", file=file)
    if "\x00" in text:
        raise _fail("NUL characters are not allowed.", file=file)
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise _fail(f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).", file=file) from None
    loader = _Loader(text)
    try:
        # One pass: the node graph is composed (an alias is the node it names, shared, never
        # expanded), checked for shared nodes — aliases, of which a few lines make the billions
        # of nodes of a "billion laughs" — and only then turned into Python values.
        node = loader.get_single_node()
        _refuse_aliases(node, file=file)
        return loader.construct_document(node) if node is not None else {}
    except yaml.composer.ComposerError as exc:
        if "single document" in str(exc):
            raise _fail("Put everything in one YAML document (one mapping with the sections), "
                        "not several separated by ---.", file=file) from None
        raise _fail(f"Not valid YAML: {_where(exc)}{getattr(exc, 'problem', None) or exc}.", file=file) from None
    except yaml.YAMLError as exc:
        raise _fail(f"Not valid YAML: {_where(exc)}{getattr(exc, 'problem', None) or exc}.", file=file) from None
    finally:
        loader.dispose()


def _where(exc) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""


def _refuse_aliases(node, *, file: str) -> None:
    seen: set[int] = set()
    stack = [node] if node is not None else []
    while stack:
        current = stack.pop()
        if id(current) in seen:
            line = current.start_mark.line + 1 if current.start_mark else "?"
            raise _fail(f"YAML aliases (*name) are not allowed: the value anchored at line {line} is used again; "
                        f"write it out.", file=file)
        seen.add(id(current))
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                stack.append(key)
                stack.append(value)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)


def read(text: str | bytes | Mapping, *, file: str = "<input>") -> dict[str, list[tuple[int, dict]]]:
    """The validated documents of a file (its text, or data already parsed
    from JSON): section → [(index, document)], ready for ``manifest_apply``.
    Raises ManifestError naming every problem."""
    data = parse(text, file=file) if isinstance(text, (str, bytes)) else text  # else: JSON already parsed
    if not isinstance(data, Mapping):
        raise _fail(f"The file must be a mapping with {_section_names()}; got {type(data).__name__}.", file=file)
    known = {section.name: section for section in sections()}
    errors: list[DocumentError] = []
    for name in data:
        if name not in known:
            errors.append(DocumentError(str(name), None, "", "", f"Unknown section. Use {_section_names()}."))
    out: dict[str, list[tuple[int, dict]]] = {}
    for name, section in known.items():
        documents = data.get(name) or []
        if not isinstance(documents, list):
            errors.append(DocumentError(name, None, "", "", f"Must be a list of {name}; got {type(documents).__name__}."))
            continue
        # One serializer for every document: DRF copies its fields per instance, which would cost more
        # than the validation itself (docs/benchmarks.md, jobs as code).
        serializer = _memoized((section.serializer or CORE_SERIALIZERS[name])())
        seen: dict[str, int] = {}
        out[name] = []
        for index, document in enumerate(documents):
            key = document.get(section.key) if isinstance(document, Mapping) else None
            label = key if isinstance(key, str) else ""
            if not isinstance(document, Mapping):
                errors.append(DocumentError(name, index, "", "", f"Must be a mapping; got {type(document).__name__}."))
                continue
            serializer.initial_data = dict(document)
            try:
                values = dict(serializer.run_validation(serializer.initial_data))
            except ValidationError as exc:
                detail = exc.detail if isinstance(exc.detail, Mapping) else {"non_field_errors": exc.detail}
                errors.extend(_field_errors(detail, section=name, index=index, name=label))
                continue
            if label in seen:
                errors.append(DocumentError(name, index, label, section.key,
                                            f"Duplicate {section.key}: {name}[{seen[label]}] has it too."))
                continue
            seen[label] = index
            out[name].append((index, values))
    if errors:
        raise ManifestError(errors, file=file)
    return out


#: Fields whose check of a str, int or bool depends on nothing but that value.
_PURE_FIELDS = (serializers.CharField, serializers.IntegerField, serializers.BooleanField, serializers.ChoiceField)
_SCALARS = (str, int, bool)


def _memoized(serializer):
    """``serializer`` with each plain field's check remembered per value for
    the whole file: thousands of documents repeat the same task name, kind,
    schedule type, time zone... and each check is then done once. A value it
    refused is checked again each time (its error is raised afresh)."""
    for field in serializer.fields.values():
        if isinstance(field, _PURE_FIELDS) and not any(getattr(v, "requires_context", False) for v in field.validators):
            field.run_validation = _remembering(field.run_validation)
    return serializer


def _remembering(check):
    seen: dict = {}

    def run_validation(data=empty):
        if type(data) not in _SCALARS:
            return check(data)
        key = (type(data), data)
        if key not in seen:
            seen[key] = check(data)  # raises for a refused value: nothing remembered
        return seen[key]

    return run_validation


def _field_errors(detail, *, section: str, index: int, name: str, prefix: str = "") -> list[DocumentError]:
    errors = []
    for field, messages in detail.items():
        # an item of a list (run_after's) is named as the file shows it: run_after[0].job
        where = f"{prefix.rstrip('.')}[{field}]" if isinstance(field, int) or str(field).isdigit() else f"{prefix}{field}"
        if isinstance(messages, list) and messages and all(isinstance(m, Mapping) for m in messages):
            messages = {i: m for i, m in enumerate(messages) if m}  # a list's errors, one mapping per item
        if isinstance(messages, Mapping):
            errors.extend(_field_errors(messages, section=section, index=index, name=name, prefix=f"{where}."))
        else:
            errors.append(DocumentError(section, index, name, where, flatten_errors(messages)))
    return errors


def _section_names() -> str:
    names = [f"'{s.name}:'" for s in sections()]
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]


def dump(data: Mapping) -> str:
    """The file's text (YAML) for ``data`` (``export``'s)."""
    return yaml.dump(dict(data), Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False,
                     width=120)


def export(*, kinds: list[str] | None = None) -> str:
    """Every job (of ``kinds``) and workflow as the text of a jobs-as-code file."""
    from scheduling.services.apply_jobs import export_left_out

    header = ("# jobsite jobs as code: `./manage jobs apply -f FILE --dry-run` shows the plan, without it applies it.\n"
              "# Secrets are references: set each from_env variable where the file is applied.\n")
    left_out = export_left_out(kinds)
    if left_out:
        header += f"# Left out: one-off jobs whose time has passed (they cannot be created again): {', '.join(left_out)}\n"
    return header + dump(manifest_export(kinds=kinds))


class ManifestTextParser:
    """DRF parser for ``POST /api/v1/jobs/apply`` with the file's text as the
    body (YAML, or JSON sent as text): hands the bytes on, capped, unparsed."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        data = stream.read(max_bytes() + 1) if stream is not None else b""
        return {"_manifest_text": data}


#: The media types the apply endpoint reads as the file's text.
TEXT_MEDIA_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain")


def text_parser(media: str):
    parser = type(f"ManifestTextParser_{media.replace('/', '_').replace('-', '_')}", (ManifestTextParser,),
                  {"media_type": media})
    return parser


TEXT_PARSERS = [text_parser(media) for media in TEXT_MEDIA_TYPES]


def read_request_data(data, *, file: str = "request body") -> dict[str, list[tuple[int, dict]]]:
    """``read`` for what a DRF request parsed: the text parsers' bytes, or JSON data."""
    if isinstance(data, Mapping) and set(data) == {"_manifest_text"}:
        return read(data["_manifest_text"], file=file)
    return read(data, file=file)
