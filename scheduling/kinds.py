"""The job kinds: which executor runs each ``Job.kind``.

A kind is an ``Executor`` subclass (``scheduling.executors.base``) registered
with ``@register``, living in its own app or package as an ``executors``
module; ``SchedulingConfig.ready`` finds them with
``autodiscover_modules("executors")``. ``Job.kind``'s choices, the CLI's
``--kind`` and the services' validation all read this registry.

It imports nothing of the app: the Job model takes its choices from here, and
the executors, which read the model, stay out of the model's imports.

A kind is **internal** when its executor says ``internal = True``: its jobs
exist only as the manual job a facade runs its one-off work as
(``services.job_ensure_manual``: a bulk upload, a vision batch), never made
by a user. The admin lists them apart from users' jobs and offers them no
Pause and no Run now: their runs come from their facade's objects.
"""
from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

#: The kind of a job created without one: the executors' ``TaskExecutor``.
DEFAULT_KIND = "task"

#: kind → its ``Executor`` instance.
_EXECUTORS: dict[str, Any] = {}


def register(cls: type) -> type:
    """Class decorator: make ``cls`` (an ``Executor`` subclass) the executor of ``cls.kind``."""
    kind = getattr(cls, "kind", "")
    if not kind or len(kind) > 32 or not getattr(cls, "label", ""):
        raise ImproperlyConfigured(f"{cls.__qualname__} needs a kind (at most 32 characters) and a label.")
    existing = _EXECUTORS.get(kind)
    if existing is not None and type(existing).__qualname__ != cls.__qualname__:
        raise ImproperlyConfigured(
            f"Job kind '{kind}' is registered twice: {type(existing).__module__}.{type(existing).__qualname__} "
            f"and {cls.__module__}.{cls.__qualname__}."
        )
    _EXECUTORS[kind] = cls()
    return cls


def unregister(kind: str) -> None:
    """Remove a kind (tests that register one of their own)."""
    _EXECUTORS.pop(kind, None)


def executor_for(kind: str):
    """The ``Executor`` of ``kind``; LookupError if no app registered one."""
    try:
        return _EXECUTORS[kind]
    except KeyError:
        raise LookupError(f"No executor is registered for job kind '{kind}'.") from None


def registered_kinds() -> list[str]:
    return sorted(_EXECUTORS)


def kind_choices() -> list[tuple[str, str]]:
    """``Job.kind``'s choices (a callable, so migrations never list the kinds)."""
    return [(kind, _EXECUTORS[kind].label) for kind in registered_kinds()]


def is_internal_kind(kind: str) -> bool:
    """Whether jobs of ``kind`` are a facade's internal manual jobs (its executor's ``internal``)."""
    return bool(getattr(_EXECUTORS.get(kind), "internal", False))


def internal_kinds() -> list[str]:
    """The internal kinds (``is_internal_kind``), sorted."""
    return [kind for kind in registered_kinds() if is_internal_kind(kind)]
