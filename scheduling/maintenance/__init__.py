"""Built-in schedulable maintenance tasks (the seed-003 default jobs), one
module per task; importing this package registers them all.

Each task is ``f(*, execution, **options) -> RunResult``, registered with
``@schedulable`` so a ``task`` job can name it; the ``task`` executor runs it
inside the execution's own Celery task, with the job's ``task_kwargs`` and the
run's ``override_kwargs`` as keyword arguments. Options are explicit keyword
parameters, so a misspelt one fails the run with a clear ``TypeError`` instead
of being ignored.

A monitoring task that finds something down returns ``RunResult(ok=False)``
(a handled failure, recorded as ``failed`` with the summary as error); a task
that cannot do its work raises.
"""
from scheduling.maintenance.activity import user_activity_digest
from scheduling.maintenance.analytics import analytics_aggregation
from scheduling.maintenance.cleanup import document_cleanup
from scheduling.maintenance.database import database_maintenance
from scheduling.maintenance.demo import demo_sleep
from scheduling.maintenance.health import system_health_check
from scheduling.maintenance.mcp import mcp_server_health_check

__all__ = [
    "analytics_aggregation", "database_maintenance", "demo_sleep", "document_cleanup", "mcp_server_health_check",
    "system_health_check", "user_activity_digest",
]
