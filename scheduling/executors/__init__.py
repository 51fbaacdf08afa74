"""Executors: one per job kind, looked up by ``Job.kind``.

Adding a kind is adding one module that calls ``register_executor``. Every
executor has one entry point ``run(job, execution, kwargs) -> RunResult``;
raising means the run failed (the dispatcher records the error, retries per
policy), returning ``RunResult(ok=False, ...)`` means a handled failure.
"""
from .base import RunResult, executor_for, register_executor, registered_kinds  # noqa: F401
from .tasks import schedulable, schedulable_task, schedulable_tasks  # noqa: F401
