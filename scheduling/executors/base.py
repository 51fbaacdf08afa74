from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from scheduling.models import Execution, Job


@dataclass
class RunResult:
    """What one run produced: a one-line ``output`` summary, a structured
    ``result`` (JSON-safe), and ``ok`` False for a handled failure."""

    output: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    ok: bool = True
    batch_id: str | None = None


Executor = Callable[["Job", "Execution", dict], RunResult]
_EXECUTORS: dict[str, Executor] = {}


def register_executor(kind: str):
    def decorator(func: Executor) -> Executor:
        _EXECUTORS[kind] = func
        return func

    return decorator


def executor_for(kind: str) -> Executor:
    _load_builtin_executors()
    try:
        return _EXECUTORS[kind]
    except KeyError:
        raise LookupError(f"No executor is registered for job kind '{kind}'.") from None


def registered_kinds() -> list[str]:
    _load_builtin_executors()
    return sorted(_EXECUTORS)


def _load_builtin_executors() -> None:
    # Executors of other apps register when their module is imported; the apps'
    # ready() hooks import them, this covers scripts that skip app loading order.
    from . import tasks  # noqa: F401
