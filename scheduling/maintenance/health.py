"""system_health_check: the same checks as GET /health, as a scheduled job."""
from __future__ import annotations

import logging

from scheduling.executors import RunResult, schedulable
from scheduling.maintenance.common import QUEUE, bool_option

logger = logging.getLogger(__name__)


@schedulable(
    "scheduling.system_health_check",
    description="Check the database, broker, Celery workers, beat and free disk; fails when any is down.",
    queue=QUEUE,
)
def system_health_check(*, execution=None, include_workers: bool = True) -> RunResult:
    """The same checks as GET /health (jobsite.services_health.health_report).

    ``include_workers=False`` leaves the broadcast worker ping out. Anything
    down makes the run a handled failure whose output names what is down.
    """
    from jobsite.services_health import health_report

    report = health_report(include_workers=bool_option("include_workers", include_workers))
    checks = report["checks"]
    down = {name: check for name, check in checks.items() if not check.get("ok")}
    if down:
        problems = "; ".join(f"{name} down ({check.get('detail', 'no detail')})" for name, check in down.items())
        logger.warning("system health check: %s", problems)
        return RunResult(ok=False, output=f"Unhealthy: {problems}"[:1000], result=report)
    return RunResult(output=f"Healthy: {', '.join(checks)} ok in {report['duration_ms']:.0f} ms", result=report)
