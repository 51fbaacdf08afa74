"""The cluster as an operator sees it: live workers, what they run, and how
many messages wait in each queue (the admin's Workers and queues page).

Reads only. Workers answer Celery's remote-control ``inspect`` broadcasts;
queue depths come from the broker. Every call has a short deadline, and a
broker that is down is reported in the snapshot, never raised: the page that
shows it must load precisely when something is wrong.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

import redis
from django.conf import settings
from django.utils import timezone
from kombu.utils.url import maybe_sanitize_url

from jobsite.redaction import redact_text
from scheduling import selectors
from scheduling.models import Execution
from scheduling.services.sending import RUN_EXECUTION_TASK

logger = logging.getLogger(__name__)

SOCKET_TIMEOUT_SECONDS = 1.5


@dataclass
class TaskInfo:
    """One task a worker runs (active) or holds (reserved: prefetched or waiting for its ETA)."""

    task_id: str
    name: str
    args: list
    started_at: datetime | None = None
    eta: datetime | None = None
    worker_pid: int | None = None
    execution: Execution | None = None  # when the task runs an Execution this user may see


@dataclass
class WorkerInfo:
    name: str
    pool: str = ""
    concurrency: int | None = None
    pids: list[int] = field(default_factory=list)
    uptime_seconds: int | None = None
    tasks_done: int = 0
    prefetch_count: int | None = None
    queues: list[str] = field(default_factory=list)
    active: list[TaskInfo] = field(default_factory=list)
    reserved: list[TaskInfo] = field(default_factory=list)


@dataclass
class QueueDepth:
    name: str
    messages: int | None  # None: could not be read
    detail: str = ""


@dataclass
class ClusterSnapshot:
    taken_at: datetime
    broker: str  # the broker URL, password masked
    broker_ok: bool
    broker_error: str = ""
    workers: list[WorkerInfo] = field(default_factory=list)
    workers_error: str = ""
    queues: list[QueueDepth] = field(default_factory=list)
    unacked: int | None = None  # delivered to a worker and not yet acknowledged (Redis only)
    duration_ms: float = 0.0

    @property
    def busy(self) -> int:
        return sum(len(worker.active) for worker in self.workers)

    @property
    def waiting(self) -> int:
        return sum(queue.messages or 0 for queue in self.queues)


def cluster_snapshot(*, user, timeout: float | None = None) -> ClusterSnapshot:
    """Workers (with the executions they run, as far as ``user`` may see them)
    and queue depths. Takes about ``timeout`` seconds (the inspect broadcast
    waits that long for workers to answer), a little more with many workers."""
    started = time.monotonic()
    timeout = settings.ADMIN_INSPECT_TIMEOUT_SECONDS if timeout is None else timeout
    snapshot = ClusterSnapshot(taken_at=timezone.now(), broker=maybe_sanitize_url(settings.CELERY_BROKER_URL), broker_ok=True)
    try:
        snapshot.queues, snapshot.unacked = queue_depths()
    except Exception as exc:  # down, refused, timed out, wrong password: say so, never raise
        snapshot.broker_ok = False
        snapshot.broker_error = _describe(exc)
    if snapshot.broker_ok:
        try:
            snapshot.workers = live_workers(timeout=timeout)
        except Exception as exc:
            snapshot.workers_error = _describe(exc)
        _attach_executions(snapshot.workers, user=user)
    snapshot.duration_ms = round((time.monotonic() - started) * 1000, 1)
    return snapshot


# ---------------------------------------------------------------------------
# Queue depths
# ---------------------------------------------------------------------------
def redis_queue_keys(queue: str, transport_options: dict | None = None) -> list[str]:
    """The Redis lists that hold ``queue``'s messages. kombu's Redis transport
    emulates priorities with one list per priority step: the plain name for
    step 0 and ``<name><sep><step>`` for the others (kombu.transport.redis:
    ``Channel._q_for_pri``), each under the optional global key prefix."""
    from kombu.transport.redis import Channel

    options = transport_options or {}
    steps = options.get("priority_steps", Channel.priority_steps)
    sep = options.get("sep", Channel.sep)
    prefix = options.get("global_keyprefix", "")
    keys = []
    for step in steps:
        key = f"{queue}{sep}{step}" if step else queue
        if prefix + key not in keys:
            keys.append(prefix + key)
    return keys


def queue_depths() -> tuple[list[QueueDepth], int | None]:
    """Messages waiting in each of settings.JOBS_QUEUES, and (Redis) how many
    are delivered but unacknowledged. Raises when the broker cannot be reached."""
    url = settings.CELERY_BROKER_URL
    if url.startswith(("redis://", "rediss://", "unix://")):
        return _redis_queue_depths(url)
    return _kombu_queue_depths(), None


def _redis_queue_depths(url: str) -> tuple[list[QueueDepth], int | None]:
    from kombu.transport.redis import Channel

    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS or {}
    client = redis.Redis.from_url(url, socket_connect_timeout=SOCKET_TIMEOUT_SECONDS, socket_timeout=SOCKET_TIMEOUT_SECONDS)
    try:
        with client.pipeline(transaction=False) as pipe:
            per_queue = []
            for queue in settings.JOBS_QUEUES:
                keys = redis_queue_keys(queue, options)
                per_queue.append((queue, len(keys)))
                for key in keys:
                    pipe.llen(key)
            pipe.hlen(options.get("global_keyprefix", "") + options.get("unacked_key", Channel.unacked_key))
            sizes = pipe.execute()
    finally:
        client.close()
    depths, position = [], 0
    for queue, count in per_queue:
        depths.append(QueueDepth(name=queue, messages=sum(sizes[position:position + count])))
        position += count
    return depths, sizes[-1]


def _kombu_queue_depths() -> list[QueueDepth]:
    """Any other kombu transport (RabbitMQ): a passive declare reports the count."""
    from amqp.exceptions import NotFound
    from kombu.exceptions import ChannelError

    from jobsite.celery import app

    depths = []
    with app.connection_for_read(connect_timeout=SOCKET_TIMEOUT_SECONDS) as connection:
        connection.ensure_connection(max_retries=1, timeout=SOCKET_TIMEOUT_SECONDS)
        for queue in settings.JOBS_QUEUES:
            try:
                with connection.channel() as channel:
                    _, messages, _ = channel.queue_declare(queue=queue, passive=True)
                depths.append(QueueDepth(name=queue, messages=messages))
            except (ChannelError, NotFound):
                depths.append(QueueDepth(name=queue, messages=0, detail="not declared yet"))
    return depths


# ---------------------------------------------------------------------------
# Workers
# ---------------------------------------------------------------------------
def live_workers(*, timeout: float) -> list[WorkerInfo]:
    """Every worker answering ``inspect stats`` within ``timeout``, with its
    active and reserved tasks and the queues it consumes.

    The first broadcast waits the whole ``timeout`` (nobody knows how many
    workers there are); the others stop as soon as each of those answered.
    """
    app = _control_app()
    stats = app.control.inspect(timeout=timeout).stats() or {}
    workers = {name: _worker_from_stats(name, data) for name, data in stats.items()
               if not name.startswith("celerybeat@")}  # beat answers remote control too
    if not workers:
        return []
    inspect = app.control.inspect(destination=list(workers), timeout=timeout, limit=len(workers))
    for name, tasks in (inspect.active() or {}).items():
        if name in workers:
            workers[name].active = [_task(task) for task in tasks]
    for name, tasks in (inspect.reserved() or {}).items():
        if name in workers:
            workers[name].reserved = [_task(task) for task in tasks]
    for name, tasks in (inspect.scheduled() or {}).items():  # retries waiting out their backoff (ETA)
        if name in workers:
            workers[name].reserved += [_task(entry.get("request", {}), eta=entry.get("eta")) for entry in tasks]
    for name, queues in (inspect.active_queues() or {}).items():
        if name in workers:
            workers[name].queues = sorted(queue.get("name", "?") for queue in queues)
    return sorted(workers.values(), key=lambda worker: worker.name)


_control_apps: dict[str, Any] = {}


def _control_app():
    """A Celery app of its own for these reads, on the broker that
    settings.CELERY_BROKER_URL names now (one per URL, kept).

    Not the project's app: Celery reads its settings live but creates its
    connection pool once, so a read made while the setting differs (tests do
    that) would leave the project's app talking to that other broker; and
    inspect broadcasts with a connection of one's own still publish through
    the app's pool. Its configuration is the project's (the same Django
    settings), only the broker is pinned."""
    from celery import Celery

    url = settings.CELERY_BROKER_URL
    if url not in _control_apps:
        app = Celery("jobsite-cluster", set_as_current=False)
        app.config_from_object("django.conf:settings", namespace="CELERY")
        app.conf.broker_url = url
        app.conf.broker_connection_timeout = SOCKET_TIMEOUT_SECONDS
        _control_apps[url] = app
    return _control_apps[url]


def _worker_from_stats(name: str, stats: dict) -> WorkerInfo:
    pool = stats.get("pool") or {}
    implementation = str(pool.get("implementation", ""))
    return WorkerInfo(
        name=name,
        # "celery.concurrency.prefork:TaskPool" → "prefork"
        pool=implementation.split(":", 1)[0].rsplit(".", 1)[-1] or "?",
        concurrency=pool.get("max-concurrency"),
        pids=list(pool.get("processes") or []),
        uptime_seconds=stats.get("uptime"),
        tasks_done=sum((stats.get("total") or {}).values()),
        prefetch_count=stats.get("prefetch_count"),
    )


def _when(value) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)):  # time_start: epoch seconds
        return datetime.fromtimestamp(value, tz=dt_timezone.utc)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt_timezone.utc)


def _task(data: dict, *, eta=None) -> TaskInfo:
    args = data.get("args")
    return TaskInfo(
        task_id=str(data.get("id", "")),
        name=str(data.get("name") or data.get("type") or "?"),
        args=list(args) if isinstance(args, (list, tuple)) else [],
        started_at=_when(data.get("time_start")),
        eta=_when(eta),
        worker_pid=data.get("worker_pid"),
    )


def _attach_executions(workers: list[WorkerInfo], *, user) -> None:
    """One query for every task of every worker: task id → the Execution it runs."""
    tasks = [task for worker in workers for task in (*worker.active, *worker.reserved)]
    ids = {task.task_id for task in tasks if task.task_id}
    if not ids:
        return
    executions = {e.celery_task_id: e for e in selectors.execution_list(user=user).filter(celery_task_id__in=ids)}
    for task in tasks:
        task.execution = executions.get(task.task_id)


def running_for(task: TaskInfo, now: datetime | None = None) -> timedelta | None:
    if task.started_at is None:
        return None
    return (now or timezone.now()) - task.started_at


def _describe(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or "no detail"
    return f"{type(exc).__name__}: {redact_text(text)}"[:300]


def as_dict(snapshot: ClusterSnapshot) -> dict[str, Any]:
    """JSON-safe form (for tests and a future API)."""
    return {
        "taken_at": snapshot.taken_at.isoformat(),
        "broker": snapshot.broker, "broker_ok": snapshot.broker_ok, "broker_error": snapshot.broker_error,
        "workers_error": snapshot.workers_error, "unacked": snapshot.unacked,
        "queues": {queue.name: queue.messages for queue in snapshot.queues},
        "workers": {
            worker.name: {
                "pool": worker.pool, "concurrency": worker.concurrency, "queues": worker.queues,
                "active": [task.task_id for task in worker.active],
                "reserved": [task.task_id for task in worker.reserved],
            } for worker in snapshot.workers
        },
    }
