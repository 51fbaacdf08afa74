"""The admin for jobs and their runs: an operations console.

Writes go through the services, as everywhere else; executions, audit
entries, daily statistics and django-celery-beat's rows are history or
derived, read-only here. One module a page family: ``dashboard`` (the admin
index), ``jobs`` (the job list, form, buttons and actions), ``executions``
(runs and history), ``workers`` (the Workers and queues page), ``beat``
(django-celery-beat's models). The
widgets and base classes every app's admin shares are in ``jobsite.admin``;
``widgets`` here binds them to the core's statuses.

Django's admin autodiscovery imports this package: importing the modules
registers their admins.
"""
from scheduling.admin import beat, dashboard, executions, jobs, workers  # noqa: F401  (registers the admins)
