"""Notifications (scheduling/notifications): email, the global default
destinations and events, delivery retries, the overdue check."""
from jobsite.settings.base import DEBUG, env

# Email: EMAIL_URL in django-environ's form, e.g. smtp+tls://user:password@smtp.example.com:587
# (https://django-environ.readthedocs.io/en/latest/types.html#environ-env-email-url).
# Default: printed to the worker's log in development, localhost:25 in production.
# The URL becomes Django's EMAIL_BACKEND, EMAIL_HOST, EMAIL_PORT... settings.
globals().update(env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25"))
NOTIFICATIONS_EMAIL_FROM = env.str("NOTIFICATIONS_EMAIL_FROM", default="jobsite@localhost")
# The global default: destinations (names, see the admin's Notifications > Destinations) and
# events for every job that has no notification settings of its own.
NOTIFICATIONS_DEFAULT_DESTINATIONS = env.list("NOTIFICATIONS_DEFAULT_DESTINATIONS", default=[])
NOTIFICATIONS_DEFAULT_EVENTS = env.list("NOTIFICATIONS_DEFAULT_EVENTS", default=["failure", "recovery", "overdue"])
# Each delivery is tried this many times, waiting backoff x 2^(n-1) seconds (at most 1 h) between tries.
NOTIFICATIONS_MAX_ATTEMPTS = env.int("NOTIFICATIONS_MAX_ATTEMPTS", default=5)
NOTIFICATIONS_RETRY_BACKOFF_SECONDS = env.int("NOTIFICATIONS_RETRY_BACKOFF_SECONDS", default=30)
NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS = env.float("NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS", default=10.0)
# The dead-man's switch: how often overdue jobs are looked for (each episode is notified once;
# beat runs the check, settings/beat.py).
NOTIFICATIONS_OVERDUE_CHECK_SECONDS = env.int("NOTIFICATIONS_OVERDUE_CHECK_SECONDS", default=60)
