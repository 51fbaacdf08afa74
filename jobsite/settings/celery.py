"""Celery: broker and results, serialization, acks, time limits, queues.
REDIS_URL unset → the Redis of the local stack `make run` is running from this
checkout (var/stack.json), else the embedded Redis's port. The beat side is in
settings/beat.py. https://docs.celeryq.dev/en/stable/userguide/configuration.html"""
from datetime import timedelta

from kombu import Queue

from jobsite.runtime import running_stack
from jobsite.settings.base import VAR_DIR, env

EMBEDDED_REDIS_PORT = env.int("EMBEDDED_REDIS_PORT", default=6390)
# The local stack `make run` (./manage runstack) started with this var/ directory,
# while its runstack process lives: any ./manage command, started without
# REDIS_URL, uses that stack's Redis whatever port it was given (`make run
# REDIS_PORT=...`). A file left by a stack that died is ignored (its pid is checked).
LOCAL_STACK = None if env.str("REDIS_URL", default="") else running_stack(VAR_DIR)
REDIS_URL = env.str("REDIS_URL", default=(LOCAL_STACK or {}).get("redis_url")
                    or f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=REDIS_URL)
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_RESULT_EXPIRES = timedelta(days=env.int("CELERY_RESULT_EXPIRES_DAYS", default=7))
CELERY_RESULT_EXTENDED = True
CELERY_TASK_TRACK_STARTED = True
# Celery's defaults, set here because Celery reads them on every message sent: a
# CELERY_* name missing from Django's settings is looked up under each of its
# spellings (and fails) before Celery falls back to its default, ~20 us each time.
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_POOL_ACQUIRE_TIMEOUT = None
# Tasks are idempotent on their Execution row, so ack late: a worker that dies
# mid-task leaves the message to be redelivered, and reject-on-lost requeues it.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Messages each worker process reserves ahead: 1 keeps long runs from waiting
# behind a busy process; short runs in bulk go faster with 4-8 (README, scaling).
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_WORKER_PREFETCH_MULTIPLIER", default=1)
# A worker process whose peak memory passed this many MB by the end of a task
# is replaced by a fresh one (forked from the worker, ~100 MB): what a vision
# run loads (OpenCV, numpy, the OCR engine and its models, 250-450 MB) is not
# kept by a process that serves every queue, for every later run. Checked
# against the process's peak, so no process stays above it at idle. 0: never.
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#worker-max-memory-per-child
CELERY_WORKER_MAX_MEMORY_PER_CHILD = env.int("CELERY_WORKER_MAX_MEMORY_PER_CHILD_MB", default=240) * 1024 or None
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=3600)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=3660)
CELERY_TASK_DEFAULT_QUEUE = "default"
# Named queues; a worker consumes all of them unless started with -Q.
JOBS_QUEUES = env.list("CELERY_QUEUES", default=["default", "maintenance", "vision", "workflows", "predictions"])
CELERY_TASK_QUEUES = [Queue(name) for name in JOBS_QUEUES]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis delivers an unacked message again after this long. A run may last longer:
# the copy finds its run going on with a live worker and is dropped (README, "Runs").
_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=4 * 3600)
# kombu looks for such messages every 10 × 10 s (interval × throttle); a short timeout
# is looked at about every tenth of it (kombu.transport.redis, "Transport Options").
_RESTORE_EVERY = min(max(_VISIBILITY_TIMEOUT // 10, 1), 100)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": _VISIBILITY_TIMEOUT,
    "unacked_restore_interval": min(_RESTORE_EVERY, 10),
    "unacked_restore_throttle": max(_RESTORE_EVERY // 10, 1),
}
# When Redis is down, fail a send within a few seconds instead of after the
# result backend's default 20 retries (a web request would hang before
# answering 503).
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {
    "retry_policy": {"max_retries": 3, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
}
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = 5
# Task events (Celery's defaults: off). Flower turns the workers' events on by
# itself while it runs (its enable_events broadcast); an exporter that reads them
# needs them on. They cost three broker round trips per run in the worker's main
# loop and one per send, which slows a burst of runs noticeably.
CELERY_WORKER_SEND_TASK_EVENTS = env.bool("CELERY_WORKER_SEND_TASK_EVENTS", default=False)
CELERY_TASK_SEND_SENT_EVENT = env.bool("CELERY_TASK_SEND_SENT_EVENT", default=False)
# Celery's Django fix-up closes the database connection before and after every
# task unless this is set; jobsite.celery closes only unusable or obsolete ones
# (CONN_MAX_AGE, health checks), as Django does around a request.
CELERY_DB_REUSE_MAX = 1_000_000
