"""The default jobs (seed 003, "Default Jobs"): built-in maintenance tasks
installed once, then owned by the operators.

``jobs_init_defaults()`` is the one implementation; it runs after every
``migrate`` (the ``post_migrate`` handler below, connected when
SchedulingConfig.ready() imports this module) and from ``jobs init-defaults``.
It only creates what is missing, by name: a default job an operator changed
(schedule, enabled, queue, ...) is never touched again. A default job that was
deleted comes back at the next migrate; disable it instead of deleting it.
"""
from __future__ import annotations

import logging
import sys

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models.signals import post_migrate

from jobsite.exceptions import Conflict
from scheduling.executors import TaskExecutor
from scheduling.models import Job
from scheduling.services import job_create

logger = logging.getLogger(__name__)

DEFAULT_QUEUE = "maintenance"

# job_create keyword arguments, one dict per default job; titles and purposes
# are seed 003's.
DEFAULT_JOBS: list[dict] = [
    {
        "name": "system_health_check",
        "title": "System Health Check",
        "description": "Monitor system components and send alerts",
        "job_type": Job.JobType.SYSTEM_HEALTH_CHECK,
        "schedule_type": Job.ScheduleType.INTERVAL,
        "schedule_expression": "15",  # every 15 minutes
        "task_name": "scheduling.system_health_check",
        "timeout_seconds": 120,
        "is_enabled": True,
    },
    {
        "name": "document_cleanup",
        "title": "Document Cleanup",
        "description": "Clean up old documents and temporary files",
        "job_type": Job.JobType.DOCUMENT_CLEANUP,
        "schedule_type": Job.ScheduleType.DAILY,
        "schedule_expression": "02:00",
        "task_name": "scheduling.document_cleanup",
        "task_kwargs": {"cleanup_level": "standard"},
        "timeout_seconds": 3600,
        "is_enabled": True,
    },
    {
        "name": "analytics_aggregation",
        "title": "Analytics Aggregation",
        "description": "Aggregate usage statistics and generate reports",
        "job_type": Job.JobType.ANALYTICS_AGGREGATION,
        "schedule_type": Job.ScheduleType.DAILY,
        "schedule_expression": "01:00",
        "task_name": "scheduling.analytics_aggregation",
        "timeout_seconds": 1800,
        "is_enabled": True,
    },
    {
        "name": "database_maintenance",
        "title": "Database Maintenance",
        "description": "Perform database optimization and maintenance (disabled by default: enable it manually)",
        "job_type": Job.JobType.DATABASE_MAINTENANCE,
        "schedule_type": Job.ScheduleType.WEEKLY,
        "schedule_expression": "0:03:00",  # Monday 03:00
        "task_name": "scheduling.database_maintenance",
        "timeout_seconds": 3600,
        "is_enabled": False,
    },
    {
        "name": "mcp_server_health_check",
        "title": "MCP Server Health Check",
        "description": "Monitor MCP server connectivity and performance",
        "job_type": Job.JobType.MCP_SERVER_HEALTH_CHECK,
        "schedule_type": Job.ScheduleType.INTERVAL,
        "schedule_expression": "30",  # every 30 minutes
        "task_name": "scheduling.mcp_server_health_check",
        "timeout_seconds": 300,
        "is_enabled": True,
    },
]


def _default_queue() -> str:
    """``maintenance``, unless CELERY_QUEUES leaves it out: then the default queue."""
    queues = list(settings.JOBS_QUEUES)
    if DEFAULT_QUEUE in queues:
        return DEFAULT_QUEUE
    fallback = settings.CELERY_TASK_DEFAULT_QUEUE if settings.CELERY_TASK_DEFAULT_QUEUE in queues else queues[0]
    logger.warning("Queue '%s' is not in CELERY_QUEUES; default jobs go to '%s'.", DEFAULT_QUEUE, fallback)
    return fallback


@transaction.atomic
def jobs_init_defaults(*, actor_label: str = "system") -> list[tuple[Job, bool]]:
    """Create the seed-003 default jobs that do not exist yet (matched by name)
    with job_create, so each gets its beat PeriodicTask and an audit entry.

    Returns ``(job, created)`` for every default job, in DEFAULT_JOBS order.
    Existing jobs are returned as they are: operators' changes survive.
    """
    queue = _default_queue()
    existing = {job.name: job for job in Job.objects.filter(name__in=[spec["name"] for spec in DEFAULT_JOBS])}
    results: list[tuple[Job, bool]] = []
    for spec in DEFAULT_JOBS:
        job = existing.get(spec["name"])
        if job is not None:
            results.append((job, False))
            continue
        try:
            job = job_create(actor_label=actor_label, queue=queue, kind=TaskExecutor.kind, **spec)
        except Conflict:
            # Created concurrently (two deploys migrating at once): theirs stands.
            results.append((Job.objects.get(name=spec["name"]), False))
            continue
        results.append((job, True))
    return results


# ---------------------------------------------------------------------------
# After `migrate`
# ---------------------------------------------------------------------------
def _fully_migrated(using: str) -> bool:
    """True when no migration of any app is left to apply: only then do the
    real models (which jobs_init_defaults uses) match the tables."""
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connections[using])
    return not executor.migration_plan(executor.loader.graph.leaf_nodes())


def create_default_jobs_after_migrate(sender, *, using: str = DEFAULT_DB_ALIAS, verbosity: int = 1,
                                      stdout=None, **kwargs) -> None:
    """post_migrate receiver: install missing default jobs once the database is
    fully migrated. Off with settings.JOBS_CREATE_DEFAULT_JOBS = False (the
    test-suite: flushes of transactional tests send post_migrate too).

    Never fails ``migrate``: the migrations are applied by now, and a default
    job that cannot be created is reported and can be retried with
    ``jobs init-defaults``.
    """
    if getattr(sender, "label", None) != "scheduling" or using != DEFAULT_DB_ALIAS:
        return
    if not getattr(settings, "JOBS_CREATE_DEFAULT_JOBS", True):
        return
    out = stdout or sys.stdout
    if not _fully_migrated(using):
        if verbosity >= 1:
            out.write("  Default jobs not installed: migrations are still pending.\n")
        return
    try:
        results = jobs_init_defaults(actor_label="system")
    except Exception as exc:  # see docstring: report, do not undo a successful migrate
        logger.exception("Default jobs were not installed")
        out.write(f"  Default jobs not installed ({type(exc).__name__}: {exc}); retry with `jobs init-defaults`.\n")
        return
    created = [job.name for job, was_created in results if was_created]
    if created and verbosity >= 1:
        out.write(f"  Installed default jobs: {', '.join(created)}\n")


post_migrate.connect(create_default_jobs_after_migrate, dispatch_uid="scheduling.defaults.create_default_jobs")
