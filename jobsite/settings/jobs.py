"""The scheduling core (scheduling/): default jobs, task modules, timeouts,
retention, and the sweeps that keep runs honest under faults (lost messages,
lost workers). README "Run semantics" says what each sweep does; beat runs
them (settings/beat.py)."""
from jobsite.settings.base import VAR_DIR, env

# ---------------------------------------------------------------------------
# Jobs
# ---------------------------------------------------------------------------
# `migrate` installs the default jobs (idempotent) unless this is false.
JOBS_CREATE_DEFAULT_JOBS = env.bool("JOBS_CREATE_DEFAULT_JOBS", default=True)
# Modules that register your own @schedulable tasks (imported on first use).
JOBS_TASK_MODULES = env.list("JOBS_TASK_MODULES", default=[])
# A run past its timeout gets SoftTimeLimitExceeded; one that ignores it is killed this much later.
JOBS_HARD_TIMEOUT_GRACE_SECONDS = env.int("JOBS_HARD_TIMEOUT_GRACE_SECONDS", default=30)
JOBS_OVERDUE_GRACE_SECONDS = env.int("JOBS_OVERDUE_GRACE_SECONDS", default=300)
# The largest JSON a job parameter may hold (task_args, task_kwargs, config, a workflow's input,
# a run's override_kwargs), in bytes of UTF-8 JSON: larger is a 400 naming the field.
JOBS_JSON_PARAM_MAX_BYTES = env.int("JOBS_JSON_PARAM_MAX_BYTES", default=64 * 1024)
# Jobs as code (./manage jobs apply, POST /api/v1/jobs/apply): the largest file read, in bytes.
JOBS_APPLY_MAX_BYTES = env.int("JOBS_APPLY_MAX_BYTES", default=20 * 1024 * 1024)
# Backfill: the most due times one request may cover (more: a 400 asking for a shorter range).
JOBS_BACKFILL_MAX = env.int("JOBS_BACKFILL_MAX", default=1000)
JOBS_EXECUTION_RETENTION_DAYS = env.int("JOBS_EXECUTION_RETENTION_DAYS", default=90)
JOBS_TEMP_RETENTION_HOURS = env.int("JOBS_TEMP_RETENTION_HOURS", default=24)
JOBS_TEMP_DIR = env.path("JOBS_TEMP_DIR", default=str(VAR_DIR / "tmp"))
# MCP servers the maintenance probe checks (scheduling/maintenance/mcp.py).
MCP_SERVER_URLS = env.list("MCP_SERVER_URLS", default=[])

# ---------------------------------------------------------------------------
# Runs under faults: lost messages, lost workers
# ---------------------------------------------------------------------------
# A queued execution whose message is in no queue and was not delivered to a worker
# lately is sent again (same task id) once it has been queued this long.
JOBS_QUEUED_STALE_SECONDS = env.int("JOBS_QUEUED_STALE_SECONDS", default=60)
# How often beat runs the stale-queued sweep.
JOBS_STALE_QUEUED_SWEEP_SECONDS = env.int("JOBS_STALE_QUEUED_SWEEP_SECONDS", default=30)
# Each worker writes a heartbeat (scheduling/heartbeat.py) this often; a running execution whose
# worker has not written one for JOBS_WORKER_HEARTBEAT_TIMEOUT_SECONDS is marked lost and retried
# by the lost-run sweep, which runs every JOBS_LOST_SWEEP_SECONDS: a dead worker's runs are found
# between the heartbeat timeout and the timeout plus one sweep interval after it died.
JOBS_WORKER_HEARTBEAT_SECONDS = env.int("JOBS_WORKER_HEARTBEAT_SECONDS", default=10)
JOBS_WORKER_HEARTBEAT_TIMEOUT_SECONDS = env.int("JOBS_WORKER_HEARTBEAT_TIMEOUT_SECONDS", default=45)
JOBS_LOST_SWEEP_SECONDS = env.int("JOBS_LOST_SWEEP_SECONDS", default=15)
