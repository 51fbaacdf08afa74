"""The ``task`` kind: call one allow-listed schedulable function.

Only functions registered with ``@schedulable`` can be named in
``Job.task_name``; anything else is refused at create time, so a job can never
call an arbitrary Celery task or import path. The function runs inside the
execution's own Celery task (so it has that task's id, time limits and cancel).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

from .base import RunResult, register_executor


@dataclass(frozen=True)
class SchedulableTask:
    name: str
    func: Callable[..., RunResult]
    description: str
    default_queue: str = "default"


_TASKS: dict[str, SchedulableTask] = {}


def schedulable(name: str, *, description: str = "", queue: str = "default"):
    """Register ``func(*args, execution=..., **kwargs) -> RunResult`` as schedulable under ``name``."""

    def decorator(func):
        doc = description or (inspect.getdoc(func) or "").split("\n")[0]
        _TASKS[name] = SchedulableTask(name=name, func=func, description=doc, default_queue=queue)
        return func

    return decorator


def _load() -> None:
    # Built-in maintenance tasks live in scheduling.maintenance; projects add
    # their own modules with the JOBS_TASK_MODULES setting.
    from importlib import import_module

    from django.conf import settings

    import scheduling.maintenance  # noqa: F401

    for module in settings.JOBS_TASK_MODULES:
        import_module(module)


def schedulable_tasks() -> dict[str, SchedulableTask]:
    _load()
    return dict(sorted(_TASKS.items()))


def schedulable_task(name: str) -> SchedulableTask | None:
    _load()
    return _TASKS.get(name)


@register_executor("task")
def run_task(job, execution, kwargs: dict) -> RunResult:
    task = schedulable_task(job.task_name)
    if task is None:
        raise LookupError(f"Task '{job.task_name}' is not a registered schedulable task.")
    outcome = task.func(*list(job.task_args or []), execution=execution, **kwargs)
    if isinstance(outcome, RunResult):
        return outcome
    return RunResult(output=str(outcome or "done"), result={"value": outcome} if outcome is not None else {})
