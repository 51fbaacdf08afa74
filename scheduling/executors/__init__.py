"""Executors: one per job kind, looked up by ``Job.kind`` (see base.py).

This package is the scheduling app's own ``executors`` module: autodiscovery
imports it like any other app's, which registers the built-in ``task`` kind.
The registry itself is ``scheduling.kinds``; its names are handed on here so
a plug-in imports everything it needs from one place.
"""
from scheduling.kinds import (  # noqa: F401
    DEFAULT_KIND,
    executor_for,
    kind_choices,
    register,
    registered_kinds,
    unregister,
)

from .base import Executor, RunResult  # noqa: F401
from .tasks import TaskExecutor, schedulable, schedulable_task, schedulable_tasks  # noqa: F401
