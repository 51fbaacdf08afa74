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




@schedulable("tests.heap", description="Reports the pool process's frozen heap (test task).")
def heap(*, execution, **kwargs):
    import gc

    return RunResult(output="heap", result={"frozen": gc.get_freeze_count(), "pid": __import__("os").getpid()})


@schedulable("tests.noop", description="Does nothing (jobs API tests).")
def noop(*, execution, **kwargs):
    return RunResult(output="ok")


@schedulable("tests.stubborn", description="Ignores the soft time limit (test task).")
def stubborn(*, execution, seconds=30.0, **kwargs):
    from celery.exceptions import SoftTimeLimitExceeded

    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        try:
            time.sleep(0.05)
        except SoftTimeLimitExceeded:
            continue  # a badly behaved task: only the hard limit stops it
    return RunResult(output="finished anyway")
