from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "scheduling"
    verbose_name = "Scheduling"

    def ready(self):
        # Connects the post_migrate hook that installs the seed-003 default jobs,
        # and registers the built-in schedulable tasks.
        from scheduling import defaults, maintenance  # noqa: F401
