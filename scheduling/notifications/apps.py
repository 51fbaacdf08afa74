from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "scheduling.notifications"
    label = "notifications"
    verbose_name = "Notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # The receiver of the core's execution_finished signal, and the
        # Celery tasks (incl. the @schedulable overdue check) in every process.
        from scheduling.notifications import receivers, tasks  # noqa: F401
