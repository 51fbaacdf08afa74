"""Worker heartbeats: how a run whose worker was killed is found.

Each worker's main process writes ``hostname -> Redis server time`` into one
Redis hash every ``JOBS_WORKER_HEARTBEAT_SECONDS``, from a daemon thread
started when the worker is ready. ``services.executions_reap_lost`` marks a
``running`` execution lost when its worker's last heartbeat is older than
``JOBS_WORKER_HEARTBEAT_TIMEOUT_SECONDS`` — a worker killed with SIGKILL, or
one that came back under another hostname and so never reaps its old runs
itself. The same judgment tells a redelivered message of a run that still
goes on (its worker beats: the copy is dropped) from one whose worker died
(``services.execution_claim``).

Times come from the Redis server's clock (``TIME``), on both sides, so clock
skew between hosts does not matter. A worker with no entry at all (Redis lost
its data, or a worker from before heartbeats) is not judged by heartbeat: its
runs fall back to the hard-time-limit rule, so a broker restart never makes
live runs look lost.
"""
from __future__ import annotations

import logging
import threading

from django.conf import settings

logger = logging.getLogger(__name__)

HEARTBEATS_KEY = "jobsite:worker-heartbeats"
# hostname -> the queues it consumes, comma-separated (written with each heartbeat):
# what the dashboard and the admin's warning banner read to tell a queue nobody
# consumes, without a remote-control broadcast (which waits for answers).
QUEUES_KEY = "jobsite:worker-queues"
# Entries of workers gone for this long are dropped by the sweep.
FORGET_AFTER_SECONDS = 7 * 24 * 3600

_BEAT_SCRIPT = """
local now = redis.call('TIME')
redis.call('HSET', KEYS[1], ARGV[1], now[1])
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
return now[1]
"""

_thread: threading.Thread | None = None
_stop = threading.Event()


def _client():
    from scheduling.broker import broker_client

    return broker_client()


def beat_once(hostname: str, *, queues: list[str] | tuple[str, ...] = (), client=None) -> int:
    """Record that ``hostname`` is alive now (and, when given, the queues it
    consumes); returns the Redis time written."""
    client = client or _client()
    return int(client.eval(_BEAT_SCRIPT, 2, HEARTBEATS_KEY, QUEUES_KEY, hostname, ",".join(queues)))


def forget(hostname: str, *, client=None) -> None:
    """A worker that shut down cleanly has nothing running: drop its entry."""
    client = client or _client()
    with client.pipeline(transaction=False) as pipe:
        pipe.hdel(HEARTBEATS_KEY, hostname)
        pipe.hdel(QUEUES_KEY, hostname)
        pipe.execute()


def consumed_queues() -> list[str]:
    """The queues this worker process consumes (``celery worker -Q``), as the
    Celery app knows them once the worker is ready; empty outside a worker."""
    from celery import current_app

    try:
        return sorted(current_app.amqp.queues.consume_from or {})
    except Exception:  # no worker configuration here: nothing to say
        return []


def start(hostname: str) -> None:
    """Start the heartbeat thread of this worker process (idempotent)."""
    global _thread
    if _thread is not None and _thread.is_alive():
        return
    _stop.clear()
    interval = settings.JOBS_WORKER_HEARTBEAT_SECONDS
    queues = consumed_queues()

    def run() -> None:
        client = None
        while not _stop.is_set():
            try:
                client = client or _client()
                beat_once(hostname, queues=queues, client=client)
            except Exception as exc:  # broker down: try again next time; never stop the worker
                logger.warning("worker heartbeat of %s not written: %s", hostname, exc)
                client = None
            _stop.wait(interval)

    _thread = threading.Thread(target=run, name="jobsite-heartbeat", daemon=True)
    _thread.start()


def stop(hostname: str) -> None:
    _stop.set()
    try:
        forget(hostname)
    except Exception:
        logger.warning("worker heartbeat of %s not removed", hostname)


def age_of(hostname: str, *, client=None) -> int | None:
    """Seconds since ``hostname``'s last heartbeat; None when it has no entry."""
    client = client or _client()
    with client.pipeline(transaction=False) as pipe:
        pipe.time()
        pipe.hget(HEARTBEATS_KEY, hostname)
        (seconds, _), stamp = pipe.execute()
    try:
        return int(seconds) - int(stamp) if stamp is not None else None
    except ValueError:
        return None


def is_stale(age: int | None) -> bool:
    """Whether a worker whose heartbeat is ``age`` seconds old is taken for
    dead (no entry: not judged, so False)."""
    return age is not None and age > settings.JOBS_WORKER_HEARTBEAT_TIMEOUT_SECONDS


def ages(*, client=None) -> tuple[dict[str, int], int]:
    """(hostname -> seconds since its last heartbeat, Redis time now)."""
    client = client or _client()
    seconds, _ = client.time()
    entries = client.hgetall(HEARTBEATS_KEY)
    result = {}
    for hostname, stamp in entries.items():
        hostname = hostname.decode() if isinstance(hostname, bytes) else hostname
        try:
            result[hostname] = int(seconds) - int(stamp)
        except ValueError:
            continue
    stale = [name for name, age in result.items() if age > FORGET_AFTER_SECONDS]
    if stale:
        client.hdel(HEARTBEATS_KEY, *stale)
        client.hdel(QUEUES_KEY, *stale)
    return result, int(seconds)

