"""The beat runtime: how jobs become django-celery-beat entries and are fired.

* ``sync``: one PeriodicTask per job, written in the job's own transaction,
  and the drift check that compares (and repairs) the two;
* ``preview``: a schedule in words, its preview, a job's next runs;
* ``entry``: ``JobEntry``, what beat fires for a job;
* ``scheduler``: the DatabaseScheduler that scales to tens of thousands of jobs;
* ``lock``: ``LockedScheduler``, the project's beat (``CELERY_BEAT_SCHEDULER``),
  active only while it holds a Redis lock.

Only the first three are re-exported here: Celery loads ``scheduler`` and
``lock`` by their dotted paths, and ``lock`` records fires through the
services, which import this package.
"""
from scheduling.beat.entry import JobEntry  # noqa: F401
from scheduling.beat.preview import job_next_runs, schedule_description, schedule_preview  # noqa: F401
from scheduling.beat.sync import (  # noqa: F401
    DISPATCH_TASK,
    PERIODIC_TASK_PREFIX,
    DriftReport,
    beat_drift_check,
    celery_priority,
    job_schedule,
    periodic_task_delete,
    periodic_task_name,
    periodic_task_sync,
    periodic_tasks_record_fires,
)
