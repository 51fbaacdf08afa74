from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class SchedulingConfig(AppConfig):
    name = "scheduling"
    verbose_name = "Scheduling"

    def ready(self):
        # Every installed app's ``executors`` module registers its job kinds
        # (this app's registers ``task``); the maintenance package registers the
        # built-in schedulable tasks; the Celery tasks are registered in every
        # process, as the services send runs by task name; the defaults module
        # connects the post_migrate hook that installs the seed-003 default jobs.
        autodiscover_modules("executors")
        from scheduling import defaults, maintenance, tasks  # noqa: F401
