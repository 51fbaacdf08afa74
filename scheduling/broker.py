"""The Redis broker as the scheduling core sees it: a work-around that keeps a
worker alive across a broker restart, and a look into the broker's queues for
the stale-queued sweep (``services.executions_resend_stale_queued``).

Kombu's Redis transport keeps, per queue, a list of waiting messages (one list
per priority step) and, for messages delivered to a worker and not yet acked,
the ``unacked`` hash (delivery tag -> message) with the delivery time in the
``unacked_index`` sorted set. A message in neither is no longer on its way.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

from django.conf import settings

from jobsite.versions import TESTED, check_tested

logger = logging.getLogger(__name__)
# What this module patches, checked once at start (one warning outside the tested versions).
check_tested("kombu", TESTED["kombu"],
             "kombu's Connection.collect and the Redis transport's Channel._create_client, and reads "
             "its unacked/priority key layout (scheduling/broker.py)")
check_tested("celery", TESTED["celery"],
             "the worker's reconnect after a broker restart, which patch_kombu_collect works around "
             "(scheduling/broker.py)")

# kombu.transport.redis defaults (the transport options can rename them; we don't).
UNACKED_KEY = "unacked"
UNACKED_INDEX_KEY = "unacked_index"
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)


# ---------------------------------------------------------------------------
# Worker survives a broker restart
# ---------------------------------------------------------------------------
def patch_kombu_collect() -> None:
    """Keep a worker alive when Redis restarts.

    celery 5.7.0's ``Consumer.on_connection_error_after_connected`` first calls
    ``connection.collect()`` — which closes the transport and sets
    ``transport.client = None`` but leaves ``Connection._default_channel``
    set when closing that channel was cut short by the dead socket — and then
    ``connection.close()``. That second close closes the same channel again;
    its QoS now restores the unacked messages, which needs a new Redis pool,
    built from ``transport.client.hostname``: ``AttributeError: 'NoneType'
    object has no attribute 'hostname'`` (kombu/transport/redis.py
    ``_connparams``), which is not a connection error, so the worker stops with
    "Unrecoverable error". Reproduced with celery 5.7.0 + kombu 5.7.0 in
    tests/faults/test_broker.py; same failure shape as celery/kombu#970 and #582.

    After ``collect()`` the old channel belongs to a transport that is gone:
    forget it, as ``Connection.revive`` and ``_connection_factory`` do. The
    message the worker held stays in Redis' ``unacked`` hash (restoring it
    needed the broker that had just gone away); the stale-queued sweep sends
    its execution again, and removes that entry so it is not delivered a second
    time when the visibility timeout expires.
    """
    from kombu.connection import Connection

    if getattr(Connection.collect, "jobsite_patched", False):
        return
    original = Connection.collect

    def collect(self, socket_timeout=None):
        try:
            return original(self, socket_timeout=socket_timeout)
        finally:
            self._default_channel = None

    collect.jobsite_patched = True
    collect.__wrapped__ = original
    Connection.collect = collect


def patch_kombu_redis_client_reuse() -> None:
    """One ``redis.Redis`` client per channel and connection pool, not one per
    command.

    kombu 5.7's Redis transport builds a new ``redis.Redis`` for every
    publish, ack and event (``Channel.conn_or_acquire`` → ``_create_client``);
    redis-py 6+ fills ~170 response callbacks into each new client, about a
    third of the CPU that publishing a task costs (beat sending a minute's
    burst, a worker acking and sending its events; docs/benchmarks.md,
    "bench_burst"). The client holds no connection of its own — each command
    borrows one from the channel's pool, as before — so one per pool is
    equivalent; a new pool (after a reconnect) gets a new client.
    """
    from kombu.transport.redis import Channel

    if getattr(Channel._create_client, "jobsite_patched", False):
        return
    original = Channel._create_client

    def _create_client(self, asynchronous=False):
        if asynchronous:
            return original(self, asynchronous=True)
        pool = self.pool
        client = self.__dict__.get("_jobsite_sync_client")
        if client is None or client.connection_pool is not pool:
            client = original(self, asynchronous=False)
            self.__dict__["_jobsite_sync_client"] = client
        return client

    _create_client.jobsite_patched = True
    _create_client.__wrapped__ = original
    Channel._create_client = _create_client


# ---------------------------------------------------------------------------
# Which executions' messages are still on their way
# ---------------------------------------------------------------------------
@dataclass
class BrokerView:
    """Task ids the broker will still deliver, and stale unacked entries."""

    waiting: set[str] = field(default_factory=set)  # in a queue's list
    held: set[str] = field(default_factory=set)  # delivered lately, or holding until a future eta
    stale: dict[str, list[str]] = field(default_factory=dict)  # task id -> unacked delivery tags

    def on_its_way(self, task_id: str) -> bool:
        return task_id in self.waiting or task_id in self.held


def broker_client():
    import redis

    return redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=2, socket_timeout=5)


def _task_id_and_eta(raw: bytes | str) -> tuple[str | None, float | None]:
    try:
        message = json.loads(raw)
    except (TypeError, ValueError):
        return None, None
    if isinstance(message, list):  # unacked entries are [message, exchange, routing_key]
        message = message[0] if message else {}
    headers = message.get("headers") or {}
    task_id = headers.get("id") or (message.get("properties") or {}).get("correlation_id")
    eta = headers.get("eta")
    eta_ts = None
    if eta:
        from datetime import datetime

        try:
            eta_ts = datetime.fromisoformat(eta).timestamp()
        except ValueError:
            eta_ts = None
    return task_id, eta_ts


def broker_view(*, fresh_seconds: float, client=None, now: float | None = None) -> BrokerView:
    """Read the queues and the unacked set. An unacked message counts as on
    its way when it was delivered less than ``fresh_seconds`` ago or waits
    for an eta still ahead (a retry's countdown); older ones were delivered
    to a worker that has lost them (a broker restart cut the worker off)."""
    client = client or broker_client()
    now = time.time() if now is None else now
    view = BrokerView()
    for queue in settings.JOBS_QUEUES:
        for step in PRIORITY_STEPS:
            key = queue if not step else f"{queue}{PRIORITY_SEPARATOR}{step}"
            for raw in client.lrange(key, 0, -1):
                task_id, _ = _task_id_and_eta(raw)
                if task_id:
                    view.waiting.add(task_id)
    delivered_at = {tag.decode() if isinstance(tag, bytes) else tag: score
                    for tag, score in client.zrange(UNACKED_INDEX_KEY, 0, -1, withscores=True)}
    for tag, raw in client.hgetall(UNACKED_KEY).items():
        tag = tag.decode() if isinstance(tag, bytes) else tag
        task_id, eta = _task_id_and_eta(raw)
        if not task_id:
            continue
        if (eta is not None and eta > now) or now - delivered_at.get(tag, now) < fresh_seconds:
            view.held.add(task_id)
        else:
            view.stale.setdefault(task_id, []).append(tag)
    return view


def forget_unacked(tags: list[str], *, client=None) -> None:
    """Drop unacked entries whose execution is being sent again, so the
    visibility timeout does not deliver them a second time (what kombu's own
    ack does: ``QoS._remove_from_indices``)."""
    if not tags:
        return
    client = client or broker_client()
    with client.pipeline() as pipe:
        pipe.hdel(UNACKED_KEY, *tags)
        pipe.zrem(UNACKED_INDEX_KEY, *tags)
        pipe.execute()
