"""Executors: one per job kind, looked up by ``Job.kind`` (see base.py).

This package is the scheduling app's own ``executors`` module: autodiscovery
imports it like any other app's, which registers the built-in ``task`` kind.
"""
from .base import (  # noqa: F401
    Executor,
    RunResult,
    executor_for,
    kind_choices,
    register,
    registered_kinds,
    unregister,
)
from .tasks import TaskExecutor, schedulable, schedulable_task, schedulable_tasks  # noqa: F401

#: The kind of a job created without one.
DEFAULT_KIND = TaskExecutor.kind
