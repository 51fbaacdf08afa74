import time

from django.core.exceptions import ValidationError
from rest_framework import serializers

from scheduling.executors import Executor, RunResult, register


class CountdownConfigSerializer(serializers.Serializer):
    label = serializers.CharField(max_length=40)
    step_seconds = serializers.FloatField(min_value=0.01, max_value=5, default=0.05)


@register
class CountdownExecutor(Executor):
    """Counts down ``ticks`` steps of ``config.step_seconds``, recording each."""

    kind = "test_countdown"
    label = "Countdown (test kind)"
    config_serializer = CountdownConfigSerializer

    def validate_params(self, job, params):
        ticks = params.get("ticks", 3)
        if not isinstance(ticks, int) or isinstance(ticks, bool) or not 0 <= ticks <= 10_000:
            raise ValidationError({"override_kwargs": ["ticks must be an integer from 0 to 10000."]})

    def run(self, job, execution, params):
        step = float(job.config.get("step_seconds", 0.05))
        ticks = params.get("ticks", 3)
        for _ in range(ticks):
            time.sleep(step)
        return RunResult(output=f"{job.config['label']}: counted down {ticks}", result={"ticks": ticks})
