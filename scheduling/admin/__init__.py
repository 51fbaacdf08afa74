"""The admin for jobs and their runs: an operations console.

Writes go through the services, as everywhere else; executions, audit
entries, daily statistics and django-celery-beat's rows are history or
derived, read-only here. One module a page family: ``dashboard`` (the admin
index), ``jobs`` (the job list, form, buttons and actions), ``executions``
(runs and history), ``workers`` (the Workers and queues page), ``beat``
(django-celery-beat's models), ``backfill`` (a job's Backfill page),
``calendars`` (calendars with their next 12 months), ``run_control``
(concurrency groups, maintenance pauses). The
widgets and base classes every app's admin shares are in ``jobsite.admin``;
``widgets`` here binds them to the core's statuses.

Django's admin autodiscovery imports this package: importing the modules
registers their admins.
"""
from scheduling.admin import (  # noqa: F401  (registers the admins)
    beat, calendars, dashboard, executions, jobs, run_control, workers,
)
