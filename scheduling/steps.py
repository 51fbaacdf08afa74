"""Workflow step types: the base class and the registry, from the ``type`` of
a step definition to the object that validates and runs it.

Here in the core so that every app offering a step type (the workflows
package's built-in ``http``, ``task`` and ``delay``; ``vision_analysis``;
``bulk_prediction``) builds on the same base without importing another
facade. An installed app's ``workflow_steps`` module lists its types in
``WORKFLOW_STEP_TYPES``, and ``load_app_step_types`` (called by the
workflows app when it is ready) registers them. A step type is any object
with::

    type: str                       # the step's "type"
    label: str
    templated_fields: tuple[str]    # config fields rendered with ${...} before run
    url_fields: tuple[str]          # (optional) of those, the ones percent-encoded as URLs
    def validate(self, config: dict, *, owner) -> dict[str, list[str]]   # field → messages
    def run(self, config: dict, context) -> Any                          # JSON-safe output

``run`` gets the config with its templated fields already rendered; raising
means the step failed (its message is the step's error); ``context`` is the
workflows package's ``StepContext``. Optional: ``timeout_for(config) ->
seconds``, the default ``timeout_seconds`` of a step that sets none.
``StepType`` is the convenience base for types whose config a DRF
serializer checks.

Every type also declares its config fields for people (``fields``: a tuple
of ``StepField``, in the order a form shows them): the admin's step editor
draws a step's form from them, and ``step_type_spec`` is what it reads. They
describe; ``validate`` still decides.
"""
from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any, ClassVar

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import module_has_submodule
from rest_framework import serializers

from jobsite.exceptions import flatten_errors

_STEP_TYPES: dict[str, Any] = {}


def register_step_type(step_type):
    """Register a step type (a class, instantiated here, or an instance). Usable as a decorator."""
    instance = step_type() if inspect.isclass(step_type) else step_type
    name = getattr(instance, "type", "")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", name):
        raise ImproperlyConfigured(f"Step type {instance!r} needs a 'type' of 1-32 lowercase letters, digits and _.")
    for method in ("validate", "run"):
        if not callable(getattr(instance, method, None)):
            raise ImproperlyConfigured(f"Step type '{name}' has no {method}() method.")
    existing = _STEP_TYPES.get(name)
    if existing is not None and type(existing).__qualname__ != type(instance).__qualname__:
        raise ImproperlyConfigured(f"Step type '{name}' is registered twice.")
    _STEP_TYPES[name] = instance
    return step_type


def unregister_step_type(name: str) -> None:
    _STEP_TYPES.pop(name, None)


def step_type_for(name: str):
    return _STEP_TYPES.get(name)


def step_types() -> dict[str, Any]:
    return dict(sorted(_STEP_TYPES.items()))


def load_app_step_types() -> None:
    """Register the ``WORKFLOW_STEP_TYPES`` of every installed app's ``workflow_steps`` module."""
    for app_config in apps.get_app_configs():
        if not module_has_submodule(app_config.module, "workflow_steps"):
            continue
        module = import_module(f"{app_config.name}.workflow_steps")
        for step_type in getattr(module, "WORKFLOW_STEP_TYPES", ()):
            register_step_type(step_type)


# ---------------------------------------------------------------------------
# Field declarations (what a form shows of a step's config)
# ---------------------------------------------------------------------------
FIELD_KINDS = (
    "text",       # one line of text
    "long_text",  # several lines of text
    "url",        # an http(s) URL
    "choice",     # one of ``choices``
    "number",     # a number (decimals allowed)
    "integer",    # a whole number
    "boolean",    # true / false
    "list",       # a list of strings, one a line
    "mapping",    # string → string, one ``key: value`` a line
    "json",       # any JSON value (an object, usually)
)


@dataclass(frozen=True)
class StepField:
    """One config field of a step type, as a form shows it.

    ``choices`` are the only values a ``choice`` field takes; ``suggestions``
    (a list, or a callable returning one) are offered while typing a ``text``
    field that takes other values too. ``default`` is what an absent field
    means (shown as a placeholder, never written into the step)."""

    name: str
    kind: str
    label: str
    help: str = ""
    required: bool = False
    choices: tuple[str, ...] = ()
    suggestions: tuple[str, ...] | Callable[[], list[str]] = ()
    default: Any = None
    placeholder: str = ""

    def __post_init__(self):
        if self.kind not in FIELD_KINDS:
            raise ImproperlyConfigured(f"Step field '{self.name}': kind '{self.kind}' is not one of {FIELD_KINDS}.")
        if self.kind == "choice" and not self.choices:
            raise ImproperlyConfigured(f"Step field '{self.name}' is a choice with no choices.")

    def as_dict(self, *, templated: bool) -> dict[str, Any]:
        suggestions = self.suggestions() if callable(self.suggestions) else self.suggestions
        return {"name": self.name, "kind": self.kind, "label": self.label, "help": self.help,
                "required": self.required, "choices": list(self.choices), "suggestions": list(suggestions),
                "default": self.default, "placeholder": self.placeholder, "templated": templated}


def step_type_fields(step_type) -> tuple[StepField, ...]:
    """The declared fields of ``step_type``; a duck-typed type that declares
    none gets one text field per templated field (all a form can know)."""
    declared = getattr(step_type, "fields", None)
    if declared is not None:
        return tuple(declared)
    return tuple(StepField(name, "text", name.replace("_", " ").capitalize())
                 for name in getattr(step_type, "templated_fields", ()))


def step_type_spec(step_type) -> dict[str, Any]:
    """What a form needs to draw a step of ``step_type``: its type, label,
    description and fields (JSON-safe)."""
    templated = set(getattr(step_type, "templated_fields", ()))
    doc = inspect.cleandoc(type(step_type).__dict__.get("__doc__") or "")  # its own, not its base's
    return {
        "type": step_type.type,
        "label": getattr(step_type, "label", step_type.type),
        "description": getattr(step_type, "description", "") or " ".join(doc.split("\n\n")[0].split()),
        "fields": [field.as_dict(templated=field.name in templated) for field in step_type_fields(step_type)],
        "default_timeout_seconds": getattr(step_type, "default_timeout_seconds", None),
    }


def step_type_specs() -> list[dict[str, Any]]:
    """``step_type_spec`` of every registered type, by type name."""
    return [step_type_spec(step_type) for step_type in step_types().values()]


class StepType:
    """A step type whose config ``config_serializer`` checks: unknown fields
    and the serializer's errors are reported by field, then ``check`` adds the
    rules beyond the serializer's types."""

    type: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str] = ""  # one sentence for people; default: the class docstring's first paragraph
    templated_fields: ClassVar[tuple[str, ...]] = ()
    url_fields: ClassVar[tuple[str, ...]] = ()
    config_serializer: ClassVar[type[serializers.Serializer]]
    fields: ClassVar[tuple[StepField, ...]] = ()
    default_timeout_seconds: ClassVar[float] = 60

    def validate(self, config: dict, *, owner) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        allowed = set(self.config_serializer().fields)
        for key in sorted(set(config) - allowed):
            errors[key] = [f"Unknown field for a '{self.type}' step. Its fields: {', '.join(sorted(allowed))}."]
        serializer = self.config_serializer(data=config)
        if not serializer.is_valid():
            for key, messages in serializer.errors.items():
                errors.setdefault(key, []).append(flatten_errors(messages))
        else:
            for key, messages in self.check(serializer.validated_data, owner=owner).items():
                errors.setdefault(key, []).extend(messages)
        return errors

    def check(self, config: dict, *, owner) -> dict[str, list[str]]:
        """Rules beyond the serializer's types (a field → messages dict)."""
        return {}

    def timeout_for(self, config: dict) -> float:
        return self.default_timeout_seconds

    def run(self, config: dict, context) -> Any:
        raise NotImplementedError
