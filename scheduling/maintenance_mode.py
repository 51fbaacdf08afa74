"""Pause-all (maintenance mode), read side: which pauses are on, and whether
one covers a job. The writes (pause, resume, the catch-up at resume) are
``scheduling.services.pause_all``.

A pause covers the whole site, one organization or one queue, until it is
resumed or its ``until`` passes. While one covers a job, beat's fires of the
job record nothing and queue nothing (``services.dispatch``) and run requests
are refused unless forced (``services.requests``)."""
from __future__ import annotations

import threading
import time
from datetime import datetime
from enum import StrEnum

from django.utils import timezone

from jobsite.exceptions import Conflict
from scheduling.models import Job, MaintenancePause


class PauseErrorCode(StrEnum):
    MAINTENANCE = "maintenance"


def open_pauses() -> list[MaintenancePause]:
    """Every pause not ended yet (in force, or past its ``until`` and not yet
    ended): one query on a table of a few rows."""
    return list(MaintenancePause.objects.filter(ended_at__isnull=True).select_related("organization"))


def active_pauses(*, now: datetime | None = None) -> list[MaintenancePause]:
    """The pauses in force now, newest first (for the admin banner, the API and the CLI)."""
    now = now or timezone.now()
    return [pause for pause in open_pauses() if is_in_force(pause, now)]


def is_in_force(pause: MaintenancePause, now: datetime) -> bool:
    return pause.ended_at is None and (pause.until is None or pause.until > now)


def covers(pause: MaintenancePause, *, organization_id, queue: str) -> bool:
    """Whether ``pause`` covers a job of ``organization_id`` on ``queue``."""
    if pause.scope == MaintenancePause.Scope.SITE:
        return True
    if pause.scope == MaintenancePause.Scope.ORGANIZATION:
        return organization_id is not None and pause.organization_id == organization_id
    return pause.queue == queue


def pause_covering(job: Job, pauses: list[MaintenancePause]) -> MaintenancePause | None:
    """The first of ``pauses`` that covers ``job``."""
    for pause in pauses:
        if covers(pause, organization_id=job.organization_id, queue=job.queue):
            return pause
    return None


def pause_in_words(pause: MaintenancePause) -> str:
    """"the whole site is paused for maintenance until 10:00 UTC (reason)"."""
    if pause.scope == MaintenancePause.Scope.SITE:
        what = "the whole site is"
    elif pause.scope == MaintenancePause.Scope.ORGANIZATION:
        what = f"organization '{pause.organization.name if pause.organization else pause.organization_id}' is"
    else:
        what = f"queue '{pause.queue}' is"
    until = f" until {pause.until:%Y-%m-%d %H:%M} UTC" if pause.until else " until resumed"
    return f"{what} paused for maintenance{until}" + (f" ({pause.reason})" if pause.reason else "")


#: How long a process trusts what it last read of the pauses, for run requests
#: (their hot path writes in one statement, and reads nothing it need not):
#: a pause refuses requests everywhere within this, at once in the process that set it.
REQUEST_CACHE_SECONDS = 1.0
_cache_lock = threading.Lock()
_cached: tuple[float, list[MaintenancePause]] | None = None


def forget_cached_pauses() -> None:
    global _cached
    with _cache_lock:
        _cached = None


def _open_pauses_cached() -> list[MaintenancePause]:
    """``open_pauses()``, its answer "none" kept for ``REQUEST_CACHE_SECONDS``
    (the usual answer; while pauses are open every request reads them)."""
    global _cached
    with _cache_lock:
        held = _cached
    if held is not None and time.monotonic() - held[0] < REQUEST_CACHE_SECONDS:
        return held[1]
    pauses = open_pauses()
    if not pauses:
        with _cache_lock:
            _cached = (time.monotonic(), pauses)
    return pauses


def refuse_run_if_paused(job: Job) -> None:
    """A run request for a job a pause covers: 409, saying which pause and how to force it."""
    now = timezone.now()
    pause = pause_covering(job, [pause for pause in _open_pauses_cached() if is_in_force(pause, now)])
    if pause is not None:
        raise Conflict(f"Job '{job.name}' is not run: {pause_in_words(pause)}; use force to run it anyway.",
                       code=PauseErrorCode.MAINTENANCE)
