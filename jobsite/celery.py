"""The Celery application: configured from Django settings (CELERY_*)."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")

app = Celery("jobsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="jobsite.ping")
def ping() -> str:
    """Round-trip probe used by /health and the test-suite."""
    return "pong"
