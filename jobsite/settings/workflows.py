"""Workflow schedules (scheduling/workflows)."""
from jobsite.settings.base import env

# Queue and soft time limit of new workflow schedules (operators can change
# both per job afterwards, like on any job).
WORKFLOWS_QUEUE = env.str("WORKFLOWS_QUEUE", default="workflows")
WORKFLOWS_JOB_TIMEOUT_SECONDS = env.int("WORKFLOWS_JOB_TIMEOUT_SECONDS", default=3600)
# Schedulable tasks that any user's workflow may call in a `task` step;
# superusers' workflows may call every schedulable task.
WORKFLOWS_TASK_NAMES = env.list("WORKFLOWS_TASK_NAMES", default=[])
WORKFLOWS_MAX_STEPS = env.int("WORKFLOWS_MAX_STEPS", default=50)
# Each step's recorded output is cut to this many bytes (the run's result row stays small).
WORKFLOWS_STEP_OUTPUT_MAX_BYTES = env.int("WORKFLOWS_STEP_OUTPUT_MAX_BYTES", default=16 * 1024)
# Response size cap of an `http` step (the outbound client refuses larger bodies).
WORKFLOWS_HTTP_MAX_BYTES = env.int("WORKFLOWS_HTTP_MAX_BYTES", default=1024 * 1024)
