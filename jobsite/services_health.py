"""Health of the running system: database, broker, workers, beat and disk.

``health_report()`` is the one entry point; GET /health (jobsite.health) and
the ``system_health_check`` default job both call it. Every check runs in its
own daemon thread with a deadline, so a dead dependency (a PostgreSQL host
that swallows SYNs, a Redis that never answers) makes the report say so
instead of hanging the request.

Beat liveness has three sources, any one of which is enough:

* a reply to the remote-control ``ping`` from a ``celerybeat@`` node: beat
  answers it when started with ``--enable-remote-control`` (Celery >= 5.6;
  ``make run`` and docker-compose.yml start it that way), and stops answering
  once its scheduler has not ticked for a minute;
* the Redis key ``jobsite:beat:heartbeat`` written by ``record_beat_heartbeat()``
  from beat's tick every ``BEAT_HEARTBEAT_EVERY_SECONDS``: beat is down once it
  is older than ``BEAT_DOWN_AFTER_SECONDS``;
* the newest ``PeriodicTask.last_run_at`` (a task that beat sent recently),
  judged by ``HEALTH_BEAT_MAX_AGE_SECONDS``, and only when beat has never
  written a heartbeat here (a scheduler without the tick hook, or Redis lost
  its data): periodic tasks fire every few minutes at best, so this source
  cannot be held to the heartbeat's few seconds.
"""
from __future__ import annotations

import logging
import shutil
import threading
import time
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from pathlib import Path
from typing import Any, Callable

import redis
from django.conf import settings
from django.db import connections
from kombu.utils.url import maybe_sanitize_url

logger = logging.getLogger(__name__)

BEAT_HEARTBEAT_KEY = "jobsite:beat:heartbeat"
# The key outlives any sensible HEALTH_BEAT_MAX_AGE_SECONDS; a stale value is
# reported as stale rather than as "never seen".
BEAT_HEARTBEAT_TTL_SECONDS = 7 * 24 * 3600
BEAT_NODE_PREFIX = "celerybeat@"
# Beat's tick writes the heartbeat this often (scheduling.beat.scheduler sleeps
# at most this long between ticks, and renews it between the transactions of a
# long burst). Down after four missed beats: past the beat lock's TTL (15 s, a
# standby takes over then), so a live beat busy with a large minute's burst never
# reads as down, and a stopped one reads as down within 20 s (the admin's banner
# and /health alike).
BEAT_HEARTBEAT_EVERY_SECONDS = 5.0
BEAT_DOWN_AFTER_SECONDS = 4 * BEAT_HEARTBEAT_EVERY_SECONDS

# Deadlines: the independent checks share one, the broadcast ping (which only
# runs once the broker answered) gets its own. Worst case ~5 s for the report.
CHECK_TIMEOUT_SECONDS = 2.5
PING_TIMEOUT_SECONDS = 1.0
SOCKET_TIMEOUT_SECONDS = 1.5

Check = dict[str, Any]


# ---------------------------------------------------------------------------
# Individual checks: each returns {"ok": bool, "detail": str, ...} or raises.
# ---------------------------------------------------------------------------
def check_database() -> Check:
    connection = connections["default"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True, "detail": f"{connection.vendor} answered SELECT 1"}


def check_broker() -> Check:
    url = settings.CELERY_BROKER_URL
    shown = maybe_sanitize_url(url)
    if url.startswith(("redis://", "rediss://", "unix://")):
        client = _redis_client(url)
        try:
            client.ping()
        finally:
            client.close()
    else:  # RabbitMQ (amqp://) or any other kombu transport
        from kombu import Connection

        with Connection(url, connect_timeout=SOCKET_TIMEOUT_SECONDS) as conn:
            conn.ensure_connection(max_retries=1, timeout=SOCKET_TIMEOUT_SECONDS)
    return {"ok": True, "detail": f"connected to {shown}"}


def check_disk() -> Check:
    """Free space where the project writes (var/, temp downloads)."""
    minimum_mb = settings.HEALTH_DISK_MIN_FREE_MB
    paths = []
    for candidate in (Path(settings.VAR_DIR), Path(settings.JOBS_TEMP_DIR)):
        existing = _nearest_existing(candidate)
        if existing not in paths:
            paths.append(existing)
    free = {str(path): shutil.disk_usage(path).free // (1024 * 1024) for path in paths}
    lowest_path, lowest_mb = min(free.items(), key=lambda item: item[1])
    ok = lowest_mb >= minimum_mb
    return {
        "ok": ok,
        "detail": f"{lowest_mb} MB free under {lowest_path} (minimum {minimum_mb} MB)",
        "free_mb": free,
        "min_free_mb": minimum_mb,
    }


def ping_nodes(*, timeout: float = PING_TIMEOUT_SECONDS) -> list[str]:
    """Names of every Celery node answering a broadcast ping within ``timeout``:
    workers, and beat (``celerybeat@host``) when it runs with remote control."""
    from jobsite.celery import app

    replies = app.control.ping(timeout=timeout)
    return sorted(name for reply in replies for name in reply)


def beat_heartbeat_at() -> datetime | None:
    """When beat last wrote its heartbeat (None: never, or Redis unreadable)."""
    try:
        raw = _redis_client(settings.REDIS_URL).get(BEAT_HEARTBEAT_KEY)
    except redis.RedisError as exc:
        logger.debug("beat heartbeat unreadable: %s", exc)
        return None
    try:
        return datetime.fromtimestamp(float(raw), tz=dt_timezone.utc) if raw is not None else None
    except ValueError:
        return None


def beat_last_seen() -> tuple[datetime | None, str]:
    """The newest sign of life from beat that does not need a broadcast:
    the heartbeat key, else (beat never wrote one) the newest
    ``PeriodicTask.last_run_at``."""
    from django.db.models import Max
    from django_celery_beat.models import PeriodicTask

    heartbeat = beat_heartbeat_at()
    if heartbeat is not None:
        return heartbeat, "heartbeat"
    last_run = PeriodicTask.objects.aggregate(last=Max("last_run_at"))["last"]
    if last_run is not None:
        return last_run, "periodic task run"
    return None, ""


def beat_max_age_seconds(source: str) -> float:
    """How old ``source``'s last sign of life may be while beat counts as up."""
    return BEAT_DOWN_AFTER_SECONDS if source == "heartbeat" else float(settings.HEALTH_BEAT_MAX_AGE_SECONDS)


def record_beat_heartbeat(*, at: float | None = None) -> bool:
    """Record that beat is alive (call from a beat tick hook).

    Writes the epoch seconds to the Redis key ``jobsite:beat:heartbeat`` at
    settings.REDIS_URL. Never raises: a health probe must not take beat down;
    returns False when Redis could not be written.
    """
    try:
        client = _redis_client(settings.REDIS_URL)
        client.set(BEAT_HEARTBEAT_KEY, f"{time.time() if at is None else at:.3f}", ex=BEAT_HEARTBEAT_TTL_SECONDS)
        return True
    except redis.RedisError as exc:
        logger.warning("Could not record the beat heartbeat: %s", exc)
        return False


# ---------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------
def health_report(*, include_workers: bool = True) -> dict:
    """Run every check within a bounded time and return
    ``{"status": "ok"|"degraded", "checked_at", "duration_ms", "checks": {...}}``.

    Each check is ``{"ok": bool, "detail": str, "latency_ms": float, ...}``.
    ``include_workers=False`` leaves the worker check out (for callers that
    run inside a worker, which is proof enough that one is alive); beat is
    still checked and may then ping beat itself.
    """
    started = time.perf_counter()

    first = _run_all(
        {
            "database": check_database,
            "broker": check_broker,
            "disk": check_disk,
            "beat": _beat_from_records,
        },
        timeout=CHECK_TIMEOUT_SECONDS,
    )
    checks: dict[str, Check] = {name: first[name] for name in ("database", "broker")}

    beat = first["beat"]
    threshold = timedelta(seconds=beat_max_age_seconds(beat.get("source", "")))
    beat_fresh = beat.get("ok", False) and beat.get("age_seconds", float("inf")) <= threshold.total_seconds()
    nodes: list[str] | None = None
    ping: Check = {}
    if checks["broker"]["ok"] and (include_workers or not beat_fresh):
        ping = _run_all({"ping": lambda: {"ok": True, "nodes": ping_nodes()}}, timeout=PING_TIMEOUT_SECONDS + 2.0)["ping"]
        nodes = ping.get("nodes") if ping["ok"] else None

    if include_workers:
        checks["workers"] = _workers_check(nodes, ping, broker_ok=checks["broker"]["ok"])
    checks["beat"] = _beat_check(beat, nodes, ping, threshold=threshold, fresh=beat_fresh)
    checks["disk"] = first["disk"]

    ok = all(check["ok"] for check in checks.values())
    return {
        "status": "ok" if ok else "degraded",
        "checked_at": datetime.now(tz=dt_timezone.utc).isoformat(),
        "duration_ms": _ms(started),
        "checks": checks,
    }


def _beat_from_records() -> Check:
    seen_at, source = beat_last_seen()
    if seen_at is None:
        return {"ok": False, "detail": "no beat heartbeat or periodic task run recorded"}
    age = (datetime.now(tz=dt_timezone.utc) - seen_at).total_seconds()
    return {"ok": True, "last_seen": seen_at.isoformat(), "age_seconds": round(max(age, 0.0), 1), "source": source}


def _workers_check(nodes: list[str] | None, ping: Check, *, broker_ok: bool) -> Check:
    if not broker_ok:
        return {"ok": False, "detail": "not checked: the broker is unreachable", "workers": []}
    if nodes is None:
        return {"ok": False, "detail": f"ping failed: {ping.get('detail', 'unknown error')}", "workers": [],
                "latency_ms": ping.get("latency_ms")}
    workers = [name for name in nodes if not name.startswith(BEAT_NODE_PREFIX)]
    detail = f"{len(workers)} worker(s) answered ping" if workers else "no worker answered ping"
    return {"ok": bool(workers), "detail": detail, "workers": workers, "latency_ms": ping.get("latency_ms")}


def _beat_check(records: Check, nodes: list[str] | None, ping: Check, *, threshold: timedelta, fresh: bool) -> Check:
    beats = [name for name in nodes or [] if name.startswith(BEAT_NODE_PREFIX)]
    result: Check = {key: records[key] for key in ("last_seen", "age_seconds", "source") if key in records}
    result["latency_ms"] = records.get("latency_ms")
    if beats:
        result.update(ok=True, detail=f"{', '.join(beats)} answered ping", nodes=beats,
                      latency_ms=ping.get("latency_ms"))
    elif fresh:
        result.update(ok=True, detail=f"last {records['source']} {records['age_seconds']:.0f}s ago")
    elif "age_seconds" in records:
        result.update(ok=False, detail=f"last {records['source']} {records['age_seconds']:.0f}s ago "
                                       f"(older than {threshold.total_seconds():.0f}s) and no beat answered ping")
    else:
        result.update(ok=False, detail=f"{records.get('detail', 'beat unknown')}; no beat answered ping")
    return result


# ---------------------------------------------------------------------------
# Plumbing
# ---------------------------------------------------------------------------
class _CheckThread(threading.Thread):
    """Runs one check; a daemon, so a check stuck in a socket call can neither
    hold the response nor keep the process from exiting."""

    def __init__(self, name: str, func: Callable[[], Check]):
        super().__init__(name=f"health-{name}", daemon=True)
        self.func = func
        self.result: Check | None = None

    def run(self) -> None:
        started = time.perf_counter()
        try:
            result = self.func()
            if not isinstance(result, dict):
                result = {"ok": False, "detail": f"check returned {result!r}"}
        except Exception as exc:  # a failing dependency is a result, not an error
            result = {"ok": False, "detail": _describe(exc)}
        finally:
            # This thread's own database connection; the request's is untouched.
            connections.close_all()
        result.setdefault("latency_ms", _ms(started))
        self.result = result


def _run_all(funcs: dict[str, Callable[[], Check]], *, timeout: float) -> dict[str, Check]:
    threads = {name: _CheckThread(name, func) for name, func in funcs.items()}
    for thread in threads.values():
        thread.start()
    deadline = time.monotonic() + timeout
    results = {}
    for name, thread in threads.items():
        thread.join(max(0.0, deadline - time.monotonic()))
        result = thread.result
        if result is None:
            result = {"ok": False, "detail": f"timed out after {timeout:.1f}s", "latency_ms": round(timeout * 1000, 1)}
        results[name] = result
    return results


def _redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_connect_timeout=SOCKET_TIMEOUT_SECONDS, socket_timeout=SOCKET_TIMEOUT_SECONDS
    )


def _nearest_existing(path: Path) -> Path:
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _describe(exc: Exception) -> str:
    # Exception texts of redis/psycopg/kombu name host and port, never the password;
    # sanitize anyway in case a URL is echoed back.
    text = str(exc) or exc.__class__.__name__
    for url in {settings.CELERY_BROKER_URL, settings.REDIS_URL}:
        if url and url in text:
            text = text.replace(url, maybe_sanitize_url(url))
    return f"{exc.__class__.__name__}: {text}"[:500]


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
