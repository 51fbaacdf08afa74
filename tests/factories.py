"""factory_boy factories. Jobs are created through the service layer so their
beat PeriodicTask exists exactly as in production."""
import factory

import tests.tasks  # noqa: F401  (registers the tests.* schedulable tasks)
from scheduling import services
from scheduling.models import Execution, Job


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
