"""The cluster at a glance, from Redis alone: each queue's depth and latency
(the age of its oldest message), the workers (their heartbeats and the queues
they consume), beat (its heartbeat and who holds the beat lock), and the
warnings every admin page shows.

One pipelined round trip to the broker (and one to ``REDIS_URL`` when beat's
heartbeat lives on another server), short socket deadlines, and a broker
that is down is reported, never raised: these pages must load precisely when
something is wrong.
"""
from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from datetime import timezone as dt_timezone

import redis
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from kombu.utils.url import maybe_sanitize_url

from jobsite import humanize
from jobsite.redaction import redact_text
from jobsite.services_health import BEAT_DOWN_AFTER_SECONDS, BEAT_HEARTBEAT_KEY
from scheduling import heartbeat
from scheduling.cluster import redis_queue_keys
from scheduling.models import Execution

logger = logging.getLogger(__name__)

SOCKET_TIMEOUT_SECONDS = 0.75
BEAT_LOCK_KEY = "jobsite:beat-lock"  # scheduling.beat.lock.LOCK_KEY (not imported: it loads the scheduler)


@dataclass
class QueueState:
    name: str
    depth: int | None = None  # messages waiting; None: unknown
    oldest_seconds: float | None = None  # how long the oldest waiting message has waited (runs' messages)
    consumers: list[str] = field(default_factory=list)  # live workers consuming it
    oldest_task_ids: list[str] = field(default_factory=list)  # of the oldest message of each priority list

    @property
    def unconsumed(self) -> bool:
        return bool(self.depth) and not self.consumers


@dataclass
class WorkerState:
    name: str
    age_seconds: int
    queues: list[str]
    alive: bool


@dataclass
class BeatState:
    heartbeat_at: datetime | None = None
    age_seconds: float | None = None
    holder: str = ""  # "host:pid:tag" of the beat holding the lock
    down_after_seconds: float = BEAT_DOWN_AFTER_SECONDS

    @property
    def down(self) -> bool:
        return self.age_seconds is None or self.age_seconds > self.down_after_seconds


@dataclass
class ClusterState:
    broker: str
    broker_ok: bool = True
    broker_error: str = ""
    queues: list[QueueState] = field(default_factory=list)
    workers: list[WorkerState] = field(default_factory=list)
    beat: BeatState = field(default_factory=BeatState)

    @property
    def live_workers(self) -> list[WorkerState]:
        return [worker for worker in self.workers if worker.alive]


@functools.lru_cache(maxsize=8)
def _client(url: str) -> redis.Redis:
    """One client (and connection pool) a URL per process: the banner reads the
    cluster on every admin page, and a new connection each time cost ~3 ms.
    redis-py's pool is thread-safe and starts afresh in a forked child."""
    return redis.Redis.from_url(url, socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
                                socket_timeout=SOCKET_TIMEOUT_SECONDS)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _task_id(raw) -> str | None:
    try:
        message = json.loads(raw)
    except (TypeError, ValueError):
        return None
    if not isinstance(message, dict):
        return None
    return (message.get("headers") or {}).get("id") or (message.get("properties") or {}).get("correlation_id")


def _is_redis(url: str) -> bool:
    return url.startswith(("redis://", "rediss://", "unix://"))


def cluster_state(*, now: datetime | None = None, latency: bool = True) -> ClusterState:
    """Queues, workers and beat. ``latency`` also reads the oldest waiting
    message of each queue and looks its run up (one query by the unique
    ``celery_task_id``): kombu's messages carry no send time, their run's
    creation is when it was sent."""
    now = now or timezone.now()
    url = settings.CELERY_BROKER_URL
    state = ClusterState(broker=maybe_sanitize_url(url))
    if not _is_redis(url):
        return _other_broker(state)
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS or {}
    same_server = settings.REDIS_URL == url
    client = _client(url)
    try:
        with client.pipeline(transaction=False) as pipe:
            pipe.time()
            pipe.hgetall(heartbeat.HEARTBEATS_KEY)
            pipe.hgetall(heartbeat.QUEUES_KEY)
            pipe.get(BEAT_LOCK_KEY)
            if same_server:
                pipe.get(BEAT_HEARTBEAT_KEY)
            layout = []
            for queue in settings.JOBS_QUEUES:
                keys = redis_queue_keys(queue, options)
                layout.append((queue, len(keys)))
                for key in keys:
                    pipe.llen(key)
                    pipe.lindex(key, -1)  # kombu LPUSHes and BRPOPs: the oldest message is at the tail
            replies = pipe.execute()
        beat_raw = replies[4] if same_server else _beat_heartbeat_elsewhere()
    except Exception as exc:  # down, refused, timed out, wrong password: say so, never raise
        client.connection_pool.disconnect()  # the next page connects afresh
        state.broker_ok = False
        state.broker_error = f"{type(exc).__name__}: {redact_text(' '.join(str(exc).split()))}"[:300]
        state.queues = [QueueState(name=queue) for queue in settings.JOBS_QUEUES]
        state.beat = BeatState()
        return state

    (seconds, micros), stamps, consumed, holder = replies[0], replies[1], replies[2], replies[3]
    redis_now = int(seconds) + int(micros) / 1e6
    position = 5 if same_server else 4
    queue_names = {}
    for name, stamp in stamps.items():
        try:
            age = int(redis_now) - int(stamp)
        except ValueError:
            continue
        if age > heartbeat.FORGET_AFTER_SECONDS:
            continue
        worker = _text(name)
        queue_names[worker] = [q for q in _text(consumed.get(name, b"")).split(",") if q]
        state.workers.append(WorkerState(name=worker, age_seconds=age, queues=queue_names[worker],
                                         alive=not heartbeat.is_stale(age)))
    state.workers.sort(key=lambda worker: (not worker.alive, worker.name))
    for queue, count in layout:
        depth, tails = 0, []
        for _ in range(count):
            depth += int(replies[position] or 0)
            if replies[position + 1] is not None:
                tails.append(_task_id(replies[position + 1]))
            position += 2
        consumers = [worker.name for worker in state.workers
                     if worker.alive and (not worker.queues or queue in worker.queues)]  # queues unknown: any
        state.queues.append(QueueState(name=queue, depth=depth, consumers=consumers,
                                       oldest_task_ids=[task_id for task_id in tails if task_id]))
    if latency:
        queue_latency(state.queues, now=now)
    state.beat = _beat_state(beat_raw, _text(holder), redis_now)
    return state


def _beat_heartbeat_elsewhere():
    return _client(settings.REDIS_URL).get(BEAT_HEARTBEAT_KEY)


def _beat_state(raw, holder: str, redis_now: float) -> BeatState:
    beat = BeatState(holder=holder)
    try:
        stamp = float(raw) if raw is not None else None
    except ValueError:
        stamp = None
    if stamp is not None:
        # beat writes its own clock; compared with this host's (beat and web share an NTP-kept clock)
        beat.heartbeat_at = datetime.fromtimestamp(stamp, tz=dt_timezone.utc)
        beat.age_seconds = max(0.0, timezone.now().timestamp() - stamp)
    return beat


def queue_latency(queues: list[QueueState], *, now: datetime | None = None) -> None:
    """Set each queue's ``oldest_seconds``: how long its oldest waiting
    message has waited, from its run's creation (one query by the unique
    ``celery_task_id``; none when no message waits)."""
    now = now or timezone.now()
    ids = {task_id for queue in queues for task_id in queue.oldest_task_ids}
    if not ids:
        return
    created = dict(Execution.objects.filter(celery_task_id__in=ids).values_list("celery_task_id", "created_at"))
    for queue in queues:
        times = [created[task_id] for task_id in queue.oldest_task_ids if task_id in created]
        if times:
            queue.oldest_seconds = max(0.0, (now - min(times)).total_seconds())


def _other_broker(state: ClusterState) -> ClusterState:
    """RabbitMQ and other transports: depths by a passive declare; workers
    and beat are not kept there (no Redis heartbeats)."""
    from scheduling.cluster import queue_depths

    try:
        depths, _ = queue_depths()
        state.queues = [QueueState(name=depth.name, depth=depth.messages) for depth in depths]
    except Exception as exc:
        state.broker_ok = False
        state.broker_error = f"{type(exc).__name__}: {redact_text(str(exc))}"[:300]
    return state


# ---------------------------------------------------------------------------
# Warnings (the banner on every admin page)
# ---------------------------------------------------------------------------
@dataclass
class OperatorWarning:
    text: str
    link: str = ""
    link_text: str = ""


def operator_warnings(state: ClusterState | None = None) -> list[OperatorWarning]:
    """What an operator must know on any page: the broker cannot be reached;
    runs wait in a queue no live worker consumes; beat's heartbeat is older
    than ``BEAT_DOWN_AFTER_SECONDS`` (scheduled runs are not fired); and
    first, each maintenance pause in force (``maintenance_warnings``). A
    database query only to say how long runs have waited in a queue nobody
    consumes; ``state`` (already read by the page) is reused."""
    if state is None:
        state = cluster_state(latency=False)
        queue_latency([queue for queue in state.queues if queue.unconsumed])
    try:
        workers_url = reverse("admin:scheduling_workers")
    except Exception:
        workers_url = ""
    warnings = maintenance_warnings()
    if not state.broker_ok:
        return warnings + [OperatorWarning(f"The broker ({state.broker}) cannot be reached: no run can be queued or "
                                           f"started. {state.broker_error}", workers_url, "Workers and queues")]
    for queue in state.queues:
        if queue.unconsumed:
            waiting = f"{queue.depth} message{'s' if queue.depth != 1 else ''} waiting"
            if queue.oldest_seconds is not None:
                waiting += f", the oldest for {humanize.duration(queue.oldest_seconds)}"
            warnings.append(OperatorWarning(f"No worker consumes the queue '{queue.name}' ({waiting}): "
                                    f"start one with celery -A jobsite worker -Q {queue.name}.",
                                    workers_url, "Workers and queues"))
    beat = state.beat
    if beat.age_seconds is None:
        warnings.append(OperatorWarning("Beat has never ticked here: scheduled jobs do not run until it is started "
                                "(celery -A jobsite beat)."))
    elif beat.down:
        warnings.append(OperatorWarning(f"Beat's last heartbeat was {humanize.duration(beat.age_seconds)} ago "
                                f"(it beats every few seconds): scheduled jobs are not being fired.",
                                "/health", "Health"))
    return warnings


def maintenance_warnings() -> list[OperatorWarning]:
    """One line per maintenance pause in force (one query on a table of a few rows)."""
    from scheduling.maintenance_mode import active_pauses, pause_in_words

    try:
        pauses_url = reverse("admin:scheduling_maintenancepause_changelist")
    except Exception:
        pauses_url = ""
    return [OperatorWarning(f"Maintenance: {pause_in_words(pause)}. Nothing in it fires; resume with "
                            f"./manage jobs resume-all or POST /api/v1/maintenance/resume.",
                            pauses_url, "Maintenance pauses")
            for pause in active_pauses()]
