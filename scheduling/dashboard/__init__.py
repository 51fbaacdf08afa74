"""The operations dashboard's reads (the admin index): what the system is
doing now, at a glance. Selectors only, tenancy-scoped inside like
``scheduling.selectors``; the admin page (``scheduling.admin.dashboard``)
turns them into panels and charts.

Every read is bounded: a fixed number of queries whatever the number of
jobs and runs (each on an index: docs/benchmarks.md, "The admin at
1,000,000 runs"), and the cluster's state from Redis in one round trip per
server, never a remote-control broadcast (which waits for answers).

- ``runs``: runs per hour by outcome, active runs with progress and ETA,
  the latest failures;
- ``jobs``: overdue jobs, the next 24 hours of scheduled runs, the audit
  trail, the daily statistics' state;
- ``cluster``: queues (depth, latency), workers, beat, and the operator
  warnings every admin page shows.
"""
from scheduling.dashboard.cluster import (  # noqa: F401
    BeatState,
    ClusterState,
    OperatorWarning,
    QueueState,
    WorkerState,
    cluster_state,
    operator_warnings,
)
from scheduling.dashboard.jobs import (  # noqa: F401
    OVERDUE_COUNT_CAP,
    audit_trail,
    daily_statistics_state,
    overdue_jobs,
    upcoming_runs,
)
from scheduling.dashboard.runs import (  # noqa: F401
    OUTCOMES,
    ActiveRun,
    active_runs,
    latest_failures,
    run_progress,
    runs_per_hour,
)
