"""Schedulable tasks for the test-suite. Worker subprocesses load them through
JOBS_TASK_MODULES (tests/plugin.py), the same way a project adds its own."""
import time

from scheduling.executors import schedulable
from scheduling.executors.base import RunResult


@schedulable("tests.echo", description="Echo kwargs back (test task).")
def echo(*args, execution, **kwargs):
    return RunResult(output=f"echo {kwargs}", result={"args": list(args), "kwargs": kwargs})


@schedulable("tests.fail", description="Always fails (test task).")
def fail(*, execution, **kwargs):
    raise RuntimeError(kwargs.get("message", "boom"))


@schedulable("tests.sleep", description="Sleeps `seconds` (test task).")
def sleep(*, execution, seconds=1.0, **kwargs):
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return RunResult(output=f"slept {seconds}s")




@schedulable("tests.noop", description="Does nothing (jobs API tests).")
def noop(*, execution, **kwargs):
    return RunResult(output="ok")
