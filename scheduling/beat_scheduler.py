"""Beat scheduler: django-celery-beat's DatabaseScheduler plus a heartbeat.

The heartbeat lets /health tell whether beat is alive (a beat that stopped
ticking schedules nothing, and nothing else would notice).
"""
import logging
import time

from django_celery_beat.schedulers import DatabaseScheduler

logger = logging.getLogger(__name__)
HEARTBEAT_EVERY_SECONDS = 5.0


class Scheduler(DatabaseScheduler):
    _last_heartbeat = 0.0

    def tick(self, *args, **kwargs):
        interval = super().tick(*args, **kwargs)
        now = time.monotonic()
        if now - self._last_heartbeat >= HEARTBEAT_EVERY_SECONDS:
            self._last_heartbeat = now
            try:
                from jobsite.health import record_beat_heartbeat

                record_beat_heartbeat()
            except Exception:  # a heartbeat must never stop beat
                logger.warning("beat heartbeat could not be recorded", exc_info=True)
        return min(interval, HEARTBEAT_EVERY_SECONDS)
