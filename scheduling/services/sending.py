"""Queueing runs: an Execution row created ``queued`` under a pre-assigned
Celery task id, and its ``run_execution`` message, sent by task name after
the row commits (so a worker never looks for a row that is not there yet).
Also the revoke a cancel sends."""
from __future__ import annotations

import contextlib
import functools
import logging
import uuid
from typing import Any

from celery.utils.nodenames import anon_nodename
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobsite.db import create_row, id_batches
from jobsite.exceptions import ApplicationError
from scheduling.beat import celery_priority
from scheduling.errors import ErrorCode
from scheduling.executors import executor_for
from scheduling.models import Execution, Job
from scheduling.services.jitter import start_at

logger = logging.getLogger(__name__)

#: The Celery task that runs one execution (``scheduling.tasks``): sent by this
#: name, so the services never import the tasks that call them.
RUN_EXECUTION_TASK = "scheduling.run_execution"

#: Messages published per Redis round trip when many are sent at once (beat's burst).
SEND_BATCH = 5000


def new_execution(job: Job, *, trigger: str, actor=None, override_kwargs=None, attempt=1, retry_of=None,
                  status=Execution.Status.QUEUED, **extra) -> Execution:
    return create_row(Execution, **execution_values(
        job, trigger=trigger, actor=actor, override_kwargs=override_kwargs, attempt=attempt, retry_of=retry_of,
        status=status, **extra,
    ))


def execution_values(job: Job, *, trigger: str, actor=None, override_kwargs=None, attempt=1, retry_of=None,
                     status=Execution.Status.QUEUED, **extra) -> dict[str, Any]:
    """The field values of a new execution of ``job``."""
    return dict(
        job=job,
        celery_task_id=str(uuid.uuid4()) if status == Execution.Status.QUEUED else None,
        status=status,
        trigger=trigger,
        attempt=attempt,
        retry_of=retry_of,
        triggered_by=actor if getattr(actor, "is_authenticated", False) else None,
        override_kwargs=override_kwargs or {},
        **extra,
    )


def send_execution(execution: Execution, job: Job, *, countdown: float | None = None) -> None:
    """Send the execution's Celery task (after commit) under its pre-assigned
    task id; a broker that can't be reached answers 503 (the execution is
    then ``error``, "Not queued")."""
    _send_executions([(execution, job)], countdown=countdown, raise_unreachable=True)


def executions_send(pairs: list[tuple[Execution, Job]]) -> None:
    """Send the messages of executions already recorded (committed): what
    ``jobs_dispatch_scheduled(sends=...)`` collected (each run there a
    ``dispatch.RecordedRun``: what a message reads of an Execution)."""
    _send_executions(pairs)


def run_execution_task():
    """The ``run_execution`` task, found by name in the Celery app
    (``SchedulingConfig.ready`` imports the module that registers it)."""
    from celery import current_app

    return current_app.tasks[RUN_EXECUTION_TASK]


def _send_executions(pairs: list[tuple[Execution, Job]], *, countdown: float | None = None,
                     raise_unreachable: bool = False) -> None:
    """Send each (execution, job)'s Celery task after commit, through one
    producer (one broker connection for the lot: beat sends a minute's burst
    this way), in pipelined batches of ``SEND_BATCH`` (``_publish_batch``).
    Whatever could not be sent is marked ``error`` ("Not queued"), so no run
    stays ``queued`` with nothing to start it."""
    from celery import current_app

    messages, queues = [], set()
    for execution, job in pairs:
        options = execution_task_options(execution, job)
        if countdown:
            options["countdown"] = countdown
        # What Celery would work out for each message, at a good part of a send's
        # cost: how its arguments read in logs and Flower, and — once a message of
        # the lot has declared its queue — no second declaration (kombu re-binds
        # the queue to check its cache on every publish).
        options["argsrepr"], options["kwargsrepr"] = repr(options["args"]), "{}"
        messages.append(options)
    if not messages:
        return
    if any("eta" in options for options in messages):
        # Jittered runs (a burst of them): the earliest start first. A worker takes in messages
        # with an eta one by one (each raises its prefetch by one), so those it must start
        # first must not wait behind the later ones (docs/benchmarks.md, "bench_jitter").
        messages.sort(key=lambda options: options["eta"].timestamp() if "eta" in options else 0.0)
    for options in messages:
        if options["queue"] in queues:
            options["declare"] = []
        queues.add(options["queue"])

    def enqueue() -> None:
        sent = 0  # messages known to be in the broker
        try:
            with current_app.producer_or_acquire() as producer:
                publish = _Publisher(current_app, producer).publish
                for start in range(0, len(messages), SEND_BATCH):
                    batch = messages[start:start + SEND_BATCH]
                    with _publish_batch(producer, len(batch)):
                        for options in batch:
                            publish(options)
                    sent += len(batch)
        except Exception as exc:  # broker down: never leave a "queued" run that nothing will start
            # (a batch that failed may have been delivered in part: its runs are marked error all
            # the same, and a worker given one of them does not start it, as it is not queued)
            unsent = [options["args"][0] for options in messages[sent:]]
            logger.exception("could not queue %d execution(s) (%s)", len(unsent), _ids_in_words(unsent))
            for batch in id_batches(unsent):
                Execution.objects.filter(pk__any_of=batch, status=Execution.Status.QUEUED).update(
                    status=Execution.Status.ERROR, completed_at=timezone.now(),
                    output="Not queued: broker unreachable",
                    error=f"The task broker could not be reached: {type(exc).__name__}",
                )
            if raise_unreachable:
                raise ApplicationError(
                    f"Execution {_ids_in_words(unsent)} could not be queued: the task broker is unreachable.",
                    status=503, code=ErrorCode.BROKER_UNAVAILABLE,
                ) from None

    transaction.on_commit(enqueue)


class _Publisher:
    """``run_execution.apply_async(producer=producer, **options)`` for the
    many messages of one send (a minute's burst): Celery's ``send_task`` works
    out per message what is the same for all of them — four settings read
    through Django's, the task's options, the route of the queue, the caller's
    parent task — at ~130 µs a message, more than the publish
    (``benchmarks/diag_send.py``). Here they are worked out once, and each
    message is made and published by Celery's own ``create_task_message`` and
    ``send_task_message`` (its publish signals, sent events and retry policy
    as before). A message with an ``eta`` or a ``countdown`` goes through
    ``apply_async`` itself (RabbitMQ's delayed delivery is decided there), and
    so does every message with ``task_always_eager`` (run in this process, as a
    project's tests may ask). No result is subscribed to: the sender never
    waits for one."""

    def __init__(self, app, producer):
        self.task = run_execution_task()
        self.eager = app.conf.task_always_eager
        self.producer = producer
        self.create_message = app.amqp.create_task_message
        self.send_message = app.amqp.send_task_message
        self.route = functools.partial(app.amqp.router.route, name=RUN_EXECUTION_TASK, task_type=self.task)
        self.defaults = {key: value for key, value in self.task._get_exec_options().items() if value is not None}
        self.reply_to = app.thread_oid
        self.sent_event = app.conf.task_send_sent_event
        self.origin = anon_nodename()
        parent = app.current_worker_task  # a run sent from a task (another job's follower): its child
        self.parent_id = parent.request.id if parent else None
        self.root_id = (parent.request.root_id or parent.request.id) if parent else None
        self.routes: dict[str, dict] = {}

    def publish(self, options: dict[str, Any]) -> None:
        if self.eager or "eta" in options or "countdown" in options:
            self.task.apply_async(producer=self.producer, **options)
            return
        options = dict(self.defaults, **options)
        task_id, args, queue = options.pop("task_id"), options.pop("args"), options.pop("queue")
        message = self.create_message(
            task_id, RUN_EXECUTION_TASK, args, None,
            time_limit=options.pop("time_limit", None), soft_time_limit=options.pop("soft_time_limit", None),
            reply_to=self.reply_to, create_sent_event=self.sent_event, root_id=self.root_id,
            parent_id=self.parent_id, ignore_result=options.pop("ignore_result", False),
            argsrepr=options.pop("argsrepr"), kwargsrepr=options.pop("kwargsrepr"), origin=self.origin,
        )
        route = self.routes.get(queue)
        if route is None:
            route = self.routes[queue] = self.route({"queue": queue}, args=args, kwargs=None)
        self.send_message(self.producer, RUN_EXECUTION_TASK, message, **{**route, **options})


def _publish_batch(producer, count: int):
    """kombu's ``Producer.batch()`` (one pipelined round trip for the lot, on
    transports that support it: Redis) for more than one message; else nothing."""
    if count < 2 or not getattr(producer, "supports_batch_publish", False):
        return contextlib.nullcontext()
    return producer.batch(max_size=count * 16)  # never flushed part-way: a message is one to a few commands


def _ids_in_words(ids: list[int]) -> str:
    return ", ".join(map(str, ids[:5])) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


def execution_task_options(execution: Execution, job: Job) -> dict[str, Any]:
    """The run_execution message of ``execution``: its own task id, queue,
    priority and time limits (sent, and re-sent by the stale-queued sweep);
    a scheduled run of a job with a start jitter carries its start time as
    ``eta`` (``scheduling.services.jitter``)."""
    options = {
        "args": [execution.pk],
        "task_id": execution.celery_task_id,
        "queue": job.queue,
        "priority": celery_priority(job.priority),
        "soft_time_limit": job.timeout_seconds,
        # The hard limit gives a run that ignores the soft limit time to clean up.
        "time_limit": job.timeout_seconds + settings.JOBS_HARD_TIMEOUT_GRACE_SECONDS,
        "ignore_result": not _keeps_celery_result(job.kind),
    }
    if job.jitter_seconds and execution.scheduled_for is not None:
        options["eta"] = start_at(job.pk, execution.scheduled_for, job.jitter_seconds)
    return options


def _keeps_celery_result(kind: str) -> bool:
    try:
        return executor_for(kind).keeps_celery_result
    except LookupError:  # no executor: the run records that error; nothing to keep
        return False


def revoke_task(task_id: str) -> None:
    """Revoke ``task_id`` on every worker and terminate it if it is running."""
    from celery import current_app

    try:
        current_app.control.revoke(task_id, terminate=True, signal="SIGTERM")
    except Exception:  # the cancel is recorded; a broker outage must not undo it
        logger.exception("revoke of task %s failed", task_id)
