"""Schedulable tasks for the benchmarks, loaded through JOBS_TASK_MODULES=benchmarks._tasks
(in the benchmark process and in the worker/beat subprocesses it starts)."""
from scheduling.executors import schedulable
from scheduling.executors.base import RunResult


@schedulable("bench.noop", description="Does nothing (benchmark task).")
def noop(*args, execution, **kwargs):
    return RunResult(output="noop")
