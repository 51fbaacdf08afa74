from django.apps import AppConfig


class JobsiteConfig(AppConfig):
    name = "jobsite"
    verbose_name = "Accounts and organizations"

    def ready(self):
        from jobsite import checks  # noqa: F401  (registers the system checks)
