"""What operators look at: /health, /metrics, the admin's ops console."""
from jobsite.settings.base import env

# /health: when beat writes no heartbeat here, it counts as down once its last periodic
# task run is older than this (its heartbeat, when there is one, is judged by its own 5 s
# cadence: services_health.BEAT_DOWN_AFTER_SECONDS). The disk check wants this much free
# space under var/ and JOBS_TEMP_DIR.
HEALTH_BEAT_MAX_AGE_SECONDS = env.int("HEALTH_BEAT_MAX_AGE_SECONDS", default=120)
HEALTH_DISK_MIN_FREE_MB = env.int("HEALTH_DISK_MIN_FREE_MB", default=512)
# GET /metrics (Prometheus) needs "Authorization: Bearer <METRICS_TOKEN>"; unset: /metrics answers 404.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Flower's address (e.g. http://127.0.0.1:5555/): the admin's header links to it when set.
FLOWER_URL = env.str("FLOWER_URL", default="")
# Admin pages that list runs reload themselves this often while a run is queued or running.
ADMIN_REFRESH_SECONDS = 5
# The Workers and queues page: how long to wait for workers to answer `inspect`.
ADMIN_INSPECT_TIMEOUT_SECONDS = 1.0
