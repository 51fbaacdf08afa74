"""factory_boy factories. Jobs are created through the service layer so their
beat PeriodicTask exists exactly as in production."""
import factory

from scheduling import services
from scheduling.executors import schedulable
from scheduling.executors.base import RunResult
from scheduling.models import Execution, Job


@schedulable("tests.echo", description="Echo kwargs back (test task).")
def echo(*args, execution, **kwargs):
    return RunResult(output=f"echo {kwargs}", result={"args": list(args), "kwargs": kwargs})


@schedulable("tests.fail", description="Always fails (test task).")
def fail(*, execution, **kwargs):
    raise RuntimeError(kwargs.get("message", "boom"))


@schedulable("tests.sleep", description="Sleeps `seconds` (test task).")
def sleep(*, execution, seconds=1.0, **kwargs):
    import time

    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return RunResult(output=f"slept {seconds}s")


class JobFactory(factory.Factory):
    class Meta:
        model = Job

    name = factory.Sequence(lambda n: f"job-{n}")
    schedule_type = "interval"
    schedule_expression = "30"
    task_name = "tests.echo"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return services.job_create(**kwargs)


class ExecutionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Execution

    job = factory.SubFactory(JobFactory)
    status = Execution.Status.SUCCESS
    trigger = Execution.Trigger.SCHEDULE
