"""The ``task`` kind: call one allow-listed schedulable function.

Only functions registered with ``@schedulable`` can be named in
``Job.task_name``; anything else is refused at create time, so a job can never
call an arbitrary Celery task or import path. The function runs inside the
execution's own Celery task (so it has that task's id, time limits and cancel).
Its arguments are checked against the function's signature when a job is
saved and when a run is requested, so a misspelt parameter is a 400, not a
``TypeError`` in the worker.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable

from django.core.exceptions import ValidationError

from scheduling.kinds import DEFAULT_KIND, register

from .base import Executor, RunResult


@dataclass(frozen=True)
class SchedulableTask:
    name: str
    func: Callable[..., RunResult]
    description: str
    default_queue: str = "default"

    @cached_property
    def _parameters(self) -> list[inspect.Parameter]:
        # read once per task: every run request checks its arguments against it
        return [p for p in inspect.signature(self.func).parameters.values() if p.name != "execution"]

    def argument_errors(self, args: list, kwargs: dict[str, Any]) -> dict[str, list[str]]:
        """Why ``func(*args, execution=..., **kwargs)`` would not bind, under
        ``task_args`` / ``task_kwargs`` (empty: it would)."""
        parameters = self._parameters
        positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        named = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        takes_any_args = any(p.kind == p.VAR_POSITIONAL for p in parameters)
        takes_any_kwargs = any(p.kind == p.VAR_KEYWORD for p in parameters)
        accepts = ", ".join(named) or "no parameters"
        errors: dict[str, list[str]] = {}
        if len(args) > len(positional) and not takes_any_args:
            errors["task_args"] = [f"Task '{self.name}' takes {len(positional)} positional argument(s); {len(args)} given."]
        problems = errors.setdefault("task_kwargs", [])
        if "execution" in kwargs:
            problems.append(f"'execution' is passed by the scheduler to task '{self.name}'; it cannot be a parameter.")
        bound_by_position = {p.name for p in positional[:len(args)]}
        if not takes_any_kwargs:
            for key in sorted(set(kwargs) - set(named)):
                problems.append(f"Unknown parameter '{key}' for task '{self.name}'. It accepts: {accepts}.")
        for key in sorted(bound_by_position & set(kwargs)):
            problems.append(f"Parameter '{key}' of task '{self.name}' is given both by position and by name.")
        for p in parameters:
            required = p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            if required and p.name not in kwargs and p.name not in bound_by_position:
                problems.append(f"Missing required parameter '{p.name}' for task '{self.name}'.")
        return {field: messages for field, messages in errors.items() if messages}


_TASKS: dict[str, SchedulableTask] = {}


def schedulable(name: str, *, description: str = "", queue: str = "default"):
    """Register ``func(*args, execution=..., **kwargs) -> RunResult`` as schedulable under ``name``."""

    def decorator(func):
        doc = description or (inspect.getdoc(func) or "").split("\n")[0]
        _TASKS[name] = SchedulableTask(name=name, func=func, description=doc, default_queue=queue)
        return func

    return decorator


def _load() -> None:
    # A project's own task modules, named by the JOBS_TASK_MODULES setting, are
    # imported on first use. Apps register theirs when they are ready (the
    # built-in maintenance tasks: SchedulingConfig.ready), so this registry
    # never imports what registers into it.
    from importlib import import_module

    from django.conf import settings

    for module in settings.JOBS_TASK_MODULES:
        import_module(module)


def schedulable_tasks() -> dict[str, SchedulableTask]:
    _load()
    return dict(sorted(_TASKS.items()))


def schedulable_task(name: str) -> SchedulableTask | None:
    _load()
    return _TASKS.get(name)


@register
class TaskExecutor(Executor):
    kind = DEFAULT_KIND
    label = "Schedulable task"

    def check(self, job, *, errors) -> dict[str, list[str]]:
        problems: dict[str, list[str]] = {}
        task = None
        if not job.task_name:
            problems["task_name"] = ["This field is required for jobs of kind 'task'."]
        else:
            task = schedulable_task(job.task_name)
            if task is None:
                available = ", ".join(schedulable_tasks()) or "none registered"
                problems["task_name"] = [f"'{job.task_name}' is not a schedulable task. Available: {available}."]
        if task is not None and isinstance(job.task_args, list) and isinstance(job.task_kwargs, dict):
            problems.update(task.argument_errors(job.task_args, job.task_kwargs))
        return problems

    def validate_params(self, job, params: dict[str, Any]) -> None:
        task = schedulable_task(job.task_name)
        if task is None:
            return  # the job itself is invalid; run() reports it
        problems = task.argument_errors(list(job.task_args or []), params)
        if problems:
            raise ValidationError({"override_kwargs": [m for messages in problems.values() for m in messages]})

    def run(self, job, execution, params: dict[str, Any]) -> RunResult:
        task = schedulable_task(job.task_name)
        if task is None:
            raise LookupError(f"Task '{job.task_name}' is not a registered schedulable task.")
        outcome = task.func(*list(job.task_args or []), execution=execution, **params)
        if isinstance(outcome, RunResult):
            return outcome
        return RunResult(output=str(outcome or "done"), result={"value": outcome} if outcome is not None else {})
