"""user_activity_digest: per user, jobs created and executions triggered lately."""
from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db.models import Count
from django.utils import timezone

from scheduling.executors import RunResult, schedulable
from scheduling.maintenance.common import QUEUE, int_option
from scheduling.models import Execution, Job


@schedulable(
    "scheduling.user_activity_digest",
    description="Per user: jobs created and executions triggered in the last `days` days (default 7).",
    queue=QUEUE,
)
def user_activity_digest(*, execution=None, days: int = 7) -> RunResult:
    """Count, per user, the jobs they own that were created and the executions
    they triggered (manual, API, CLI) in the last ``days`` days."""
    days = int_option("days", days, minimum=1)
    since = timezone.now() - timedelta(days=days)
    created = dict(
        Job.objects.filter(created_at__gte=since).exclude(owner=None)
        .order_by().values("owner").annotate(n=Count("id")).values_list("owner", "n")
    )
    triggered = dict(
        Execution.objects.filter(created_at__gte=since).exclude(triggered_by=None)
        .order_by().values("triggered_by").annotate(n=Count("id")).values_list("triggered_by", "n")
    )
    user_ids = set(created) | set(triggered)
    names = dict(get_user_model().objects.filter(pk__in=user_ids).values_list("pk", "username"))
    users = sorted(
        (
            {"user_id": pk, "username": names.get(pk, ""), "jobs_created": created.get(pk, 0),
             "executions_triggered": triggered.get(pk, 0)}
            for pk in user_ids
        ),
        key=lambda row: (-(row["jobs_created"] + row["executions_triggered"]), row["username"]),
    )
    totals = {"jobs_created": sum(created.values()), "executions_triggered": sum(triggered.values())}
    output = (
        f"{len(users)} active user(s) in the last {days} day(s): "
        f"{totals['jobs_created']} job(s) created, {totals['executions_triggered']} execution(s) triggered"
    )
    return RunResult(output=output, result={"days": days, "since": since.isoformat(), "users": users, "totals": totals})
