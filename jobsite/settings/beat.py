"""Beat: django-celery-beat's database scheduler behind a Redis lock (one
active beat), catch-up of missed runs, and the project's own periodic tasks.
https://django-celery-beat.readthedocs.io/en/latest/"""
from jobsite.settings.base import env
from jobsite.settings.celery import CELERY_TASK_DEFAULT_QUEUE
from jobsite.settings.jobs import JOBS_LOST_SWEEP_SECONDS, JOBS_STALE_QUEUED_SWEEP_SECONDS
from jobsite.settings.notifications import NOTIFICATIONS_OVERDUE_CHECK_SECONDS

# One active beat (scheduling/beat/lock.py): the active beat renews a Redis lock with this TTL;
# a standby polls every JOBS_BEAT_STANDBY_POLL_SECONDS and takes over within TTL + poll.
CELERY_BEAT_SCHEDULER = "scheduling.beat.lock:LockedScheduler"
JOBS_BEAT_LOCK_TTL_SECONDS = env.int("JOBS_BEAT_LOCK_TTL_SECONDS", default=15)
JOBS_BEAT_STANDBY_POLL_SECONDS = env.int("JOBS_BEAT_STANDBY_POLL_SECONDS", default=2)
CELERY_BEAT_SYNC_EVERY = 1
# django-celery-beat re-reads the schedule when PeriodicTasks.last_update changes
# (checked at most every beat_max_loop_interval seconds).
CELERY_BEAT_MAX_LOOP_INTERVAL = env.int("CELERY_BEAT_MAX_LOOP_INTERVAL", default=5)
DJANGO_CELERY_BEAT_TZ_AWARE = True
# Beat answers `celery inspect ping` (and stops answering if its loop stalls): /health uses it.
CELERY_BEAT_ENABLE_REMOTE_CONTROL = True
# Runs that fell due while beat was down, caught up by a job's catch-up policy "all": at most this many.
JOBS_CATCH_UP_MAX = env.int("JOBS_CATCH_UP_MAX", default=10)
# A fire later than this after its due time counts as missed (policy "skip" does not run it).
JOBS_MISSED_GRACE_SECONDS = env.int("JOBS_MISSED_GRACE_SECONDS", default=60)

# Internal periodic tasks (DatabaseScheduler copies them into its tables); the
# intervals are the sweeps' settings (settings/jobs.py, settings/notifications.py).
CELERY_BEAT_SCHEDULE = {
    "jobsite: reap lost executions": {
        "task": "scheduling.reap_lost_executions",
        "schedule": float(JOBS_LOST_SWEEP_SECONDS),
        "options": {"queue": "maintenance", "expires": max(JOBS_LOST_SWEEP_SECONDS - 2, 1)},
    },
    "notifications: overdue check": {
        "task": "notifications.overdue_check",
        "schedule": float(NOTIFICATIONS_OVERDUE_CHECK_SECONDS),
        "options": {"queue": CELERY_TASK_DEFAULT_QUEUE, "expires": max(NOTIFICATIONS_OVERDUE_CHECK_SECONDS - 5, 1)},
    },
    "jobsite: resend stale queued executions": {
        "task": "scheduling.resend_stale_queued_executions",
        "schedule": float(JOBS_STALE_QUEUED_SWEEP_SECONDS),
        "options": {"queue": "maintenance", "expires": max(JOBS_STALE_QUEUED_SWEEP_SECONDS - 5, 1)},
    },
}
