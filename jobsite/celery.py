"""The Celery application: configured from Django settings (CELERY_*)."""
import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")

app = Celery("jobsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="jobsite.ping")
def ping() -> str:
    """Round-trip probe used by /health and the test-suite."""
    return "pong"


@signals.task_prerun.connect
@signals.task_postrun.connect
def _close_old_connections(sender=None, task=None, **kwargs):
    """Around each task, what Django does around a request: close the
    connections that are unusable or older than CONN_MAX_AGE, keep the others
    (CELERY_DB_REUSE_MAX stops Celery's fix-up from closing every one).
    Not for eager tasks: they run inside the caller's transaction."""
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
