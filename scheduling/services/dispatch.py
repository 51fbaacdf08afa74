"""Scheduled dispatch: what beat's fires become. One fire is one run (or a
recorded skip), however often it is delivered; fires beat missed while it was
down follow the job's catch-up policy."""
from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import NamedTuple, Sequence

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from jobsite.bulk import insert_rows
from jobsite.db import id_batches
from scheduling.beat import job_schedule, periodic_task_sync
from scheduling.calendars import fire_skip_reason, jobs_with_calendars, next_open_run, with_calendar_flag
from scheduling.maintenance_mode import is_in_force, open_pauses, pause_covering
from scheduling.models import Execution, Job
from scheduling.services.fires import catch_up, new_fire
from scheduling.services.limits import send_or_hold
from scheduling.services.pause_all import pauses_end_expired
from scheduling.services.overlap import ONE_BY_ONE_POLICIES, run_with_overlap_policy
from scheduling.services.requests import active_execution, active_state
from scheduling.services.sending import executions_send

logger = logging.getLogger(__name__)

@transaction.atomic
def job_dispatch_scheduled(
    *, job_id: int, scheduled_for: datetime | None = None, missed: int = 0, missed_from: datetime | None = None,
) -> Execution | None:
    """Beat fired ``job_id`` for its due time ``scheduled_for``: queue an
    execution, or record a skip while one is going.

    A fire is identified by (job, ``scheduled_for``): a duplicated or
    redelivered fire, or one from a second beat, returns the Execution the
    first one recorded (the database refuses a second), never a second run or
    a ``skipped`` row. ``missed`` fires before this one (since
    ``missed_from``: beat was not running) are handled by the job's catch-up
    policy (``_catch_up``). Without ``scheduled_for`` (a message from before
    fires carried it) the fire is identified by the time it arrives."""
    job = with_calendar_flag(Job.objects.select_for_update()).filter(pk=job_id).first()
    if job is None or not job.is_schedulable:
        return None  # deleted or paused after beat read its schedule
    if pause_covering(job, _pauses_in_force()) is not None:
        return None  # paused for maintenance: caught up at the end of the pause (services.pause_all)
    now = timezone.now()
    if scheduled_for is not None:
        existing = job.executions.filter(scheduled_for=scheduled_for).first()
        if existing is not None:
            logger.info("job %s: fire for %s already recorded as execution %s; duplicate ignored",
                        job.pk, scheduled_for.isoformat(), existing.pk)
            return existing
    due = scheduled_for or now
    late = (now - due).total_seconds() > settings.JOBS_MISSED_GRACE_SECONDS
    active = active_execution(job) if job.overlap_policy == Job.OverlapPolicy.SKIP else None
    job.last_run_at = now
    # the next run counts from the due time fired (an interval keeps its absolute spacing)
    schedule = job_schedule(job)  # (a due time inside one of the job's calendars is not the next run)
    job.next_run_at = next_open_run(job, schedule.next_run(after=max(due, now), anchor=due), schedule)
    Job.objects.filter(pk=job.pk).update(last_run_at=job.last_run_at, next_run_at=job.next_run_at)
    if missed and missed_from is not None:
        missed, missed_from = _missed_not_recorded(job, missed=missed, missed_from=missed_from, due=due)
    run_now = catch_up(job, due=due, late=late, missed=missed, missed_from=missed_from, now=now,
                        scheduled_for=scheduled_for)
    _disable_fired_one_off(job)
    if not run_now:
        return None
    skip_reason = fire_skip_reason(job, due)  # inside one of the job's calendars: recorded, not run
    if skip_reason is not None:
        return new_fire(job, scheduled_for=scheduled_for, status=Execution.Status.SKIPPED, completed_at=now,
                         output=skip_reason)
    if job.overlap_policy in ONE_BY_ONE_POLICIES:
        return run_with_overlap_policy(
            job, scheduled=True, make_run=lambda **extra: new_fire(job, scheduled_for=scheduled_for, **extra))
    if active is not None:
        return new_fire(
            job, scheduled_for=scheduled_for, status=Execution.Status.SKIPPED, completed_at=now,
            output=f"Skipped: {active_state(active)} (overlap policy 'skip').",
        )
    execution = new_fire(job, scheduled_for=scheduled_for)
    if not getattr(execution, "_duplicate", False):
        send_or_hold(execution, job)
    return execution


def _missed_not_recorded(job: Job, *, missed: int, missed_from: datetime, due: datetime) -> tuple[int, datetime | None]:
    """The fires beat counts as missed before ``due`` (``missed`` from
    ``missed_from``), less those recorded all the same: beat writes its own
    record of a minute's fires once their messages are out, so a beat stopped
    in between (or whose write failed) counts them again. The missed ones are
    those after the last fire recorded."""
    last = (job.executions.filter(scheduled_for__gte=missed_from, scheduled_for__lt=due)
            .order_by("-scheduled_for").values_list("scheduled_for", flat=True).first())
    if last is None:
        return missed, missed_from
    count, first, _ = job_schedule(job).fires_between(last, due - timedelta(microseconds=1), limit=missed)
    return count, first


class ScheduledFire(NamedTuple):
    """One fire of a job's beat entry (what ``scheduling.run_job`` carries)."""

    job_id: int
    scheduled_for: datetime | None
    missed: int = 0
    missed_from: datetime | None = None


def jobs_dispatch_scheduled(*, fires: Sequence[ScheduledFire], sends: list | None = None,
                            fired: list | None = None) -> tuple[int, int]:
    """Beat fired many jobs at once (a minute boundary with hundreds due):
    ``job_dispatch_scheduled`` for every fire, in one transaction, with the
    common case done in bulk. Returns how many executions were queued.

    The common case is a fire on time, for a job that is due, enabled and not
    a one-off, with nothing owed and (overlap policy ``skip``) no run going: a
    few queries for the lot — lock the jobs, look for fires already recorded
    and runs still going, insert the executions, set each job's
    ``last_run_at``/``next_run_at`` — and every message through one producer
    after commit. Every other fire (late, owing missed runs, a one-off, a
    skip, a race with another beat) goes through ``job_dispatch_scheduled``
    itself, unchanged. A fire already recorded is a duplicate and does
    nothing, as there.

    ``sends``: the bulk executions' messages are added to it, as (execution,
    job), for the caller to send with ``executions_send`` once it has
    recorded everything (beat: a burst in several transactions); by default
    they are sent when the transaction commits.

    ``fired``: likewise, what the bulk jobs' ``last_run_at``/``next_run_at``
    become is added to it, for the caller to write with ``jobs_record_fired``
    after its sends (beat: the minute's last message is not queued behind
    these UPDATEs; they are what the API shows of a job, not what makes or
    identifies a run); by default they are written here.

    Returns (fires queued in bulk, fires handled one by one)."""
    if not fires:
        return 0, 0
    now = timezone.now()
    grace = settings.JOBS_MISSED_GRACE_SECONDS
    with transaction.atomic():
        job_ids = {fire.job_id for fire in fires}
        # What a fire needs of its job (the run's message options included), not all of it.
        # Locked (and so read afresh) only where a concurrent run matters: overlap policy
        # skip, whose check below must not race a manual trigger. Locking every row of a
        # big burst costs PostgreSQL dearly (docs/benchmarks.md).
        needed = Job.objects.only("is_enabled", "status", "overlap_policy", "schedule_type", "schedule_expression",
                                  "timezone", "queue", "priority", "timeout_seconds", "kind", "jitter_seconds",
                                  "organization", "max_concurrent_runs", "concurrency_group")
        pauses = _pauses_in_force()  # one query for the burst
        skip = Q(overlap_policy=Job.OverlapPolicy.SKIP)
        jobs = {job.pk: job for job in _in_chunks(needed.exclude(skip), "pk", job_ids)}
        jobs.update((job.pk, job) for job in _in_chunks(needed.filter(skip).select_for_update(), "pk", job_ids))
        if len(jobs) < len(job_ids):  # deleted, or its policy changed between the two reads: once more
            jobs.update((job.pk, job) for job in _in_chunks(needed, "pk", job_ids - jobs.keys()))
        skip_ids = [pk for pk, job in jobs.items() if job.overlap_policy == Job.OverlapPolicy.SKIP]
        due_times = {fire.scheduled_for for fire in fires if fire.scheduled_for is not None}
        recorded = set(_in_chunks(
            Execution.objects.filter(scheduled_for__in=due_times), "job_id", job_ids, "job_id", "scheduled_for",
        )) if due_times else set()
        going = set(_in_chunks(Execution.objects.filter(status__in=Execution.ACTIVE_STATUSES), "job_id",
                               skip_ids, "job_id"))
        with_calendars = jobs_with_calendars(job_ids)  # their fires go one by one (a calendar may skip them)
        bulk: list[tuple[Job, ScheduledFire]] = []
        one_by_one: list[ScheduledFire] = []
        seen: set[int] = set()
        for fire in fires:
            job = jobs.get(fire.job_id)
            if job is None or not job.is_schedulable:
                continue  # deleted or paused after beat read its schedule
            if pauses and pause_covering(job, pauses) is not None:
                continue  # paused for maintenance (services.pause_all)
            if fire.scheduled_for is not None and (job.pk, fire.scheduled_for) in recorded:
                continue  # a duplicate fire: recorded already
            simple = (fire.scheduled_for is not None and not fire.missed and job.pk not in going
                      and job.pk not in with_calendars
                      and job.overlap_policy not in ONE_BY_ONE_POLICIES
                      and not job.max_concurrent_runs and not job.concurrency_group_id
                      and job.pk not in seen and job.schedule_type != Job.ScheduleType.ONCE
                      and (now - fire.scheduled_for).total_seconds() <= grace)
            seen.add(job.pk)
            (bulk.append((job, fire)) if simple else one_by_one.append(fire))
        rows = [{"job_id": job.pk, "celery_task_id": str(uuid.uuid4()), "scheduled_for": fire.scheduled_for}
                for job, fire in bulk]
        inserted = None
        try:
            with transaction.atomic():
                inserted = insert_rows(Execution, rows, common={
                    "status": Execution.Status.QUEUED, "trigger": Execution.Trigger.SCHEDULE, "attempt": 1,
                    "override_kwargs": {}, "created_at": timezone.now(),
                }, returning=("id", "job_id"))
        except IntegrityError:
            # Another beat recorded some of these fires meanwhile: one by one, each finds its own.
            one_by_one.extend(fire for _, fire in bulk)
            bulk, rows = [], []
        pairs = _fires_recorded(bulk, rows, inserted)
        fired.append((now, bulk)) if fired is not None else jobs_record_fired([(now, bulk)])
        sends.extend(pairs) if sends is not None else executions_send(pairs)
        for fire in one_by_one:
            job_dispatch_scheduled(job_id=fire.job_id, scheduled_for=fire.scheduled_for, missed=fire.missed,
                                   missed_from=fire.missed_from)
    return len(pairs), len(one_by_one)


def jobs_record_fired(fired: list[tuple[datetime, list[tuple[Job, ScheduledFire]]]]) -> None:
    """The jobs ``jobs_dispatch_scheduled`` fired in bulk (what it added to
    ``fired``: when, and each job with its fire): their ``last_run_at`` and
    ``next_run_at``, in one UPDATE per next run time."""
    next_runs: dict[tuple, datetime | None] = {}
    updates: dict[tuple[datetime, datetime | None], list[int]] = {}
    for now, bulk in fired:
        for job, fire in bulk:
            key = (job.schedule_type, job.schedule_expression, job.timezone, fire.scheduled_for)
            if key not in next_runs:
                # the next run counts from the due time fired (as job_dispatch_scheduled)
                next_runs[key] = job_schedule(job).next_run(after=max(fire.scheduled_for, now),
                                                            anchor=fire.scheduled_for)
            updates.setdefault((now, next_runs[key]), []).append(job.pk)
    for (last_run_at, next_run_at), pks in updates.items():
        for batch in id_batches(pks):
            Job.objects.filter(pk__any_of=batch).update(last_run_at=last_run_at, next_run_at=next_run_at)


def _pauses_in_force() -> list:
    """The maintenance pauses in force (one query); a pause whose end time has
    passed is ended here first, with its catch-up."""
    pauses = open_pauses()
    now = timezone.now()
    if any(not is_in_force(pause, now) for pause in pauses):

        pauses_end_expired(now=now)
        pauses = [pause for pause in pauses if is_in_force(pause, now)]
    return [pause for pause in pauses if is_in_force(pause, now)]


class RecordedRun(NamedTuple):
    """A run just inserted by a burst, as its message is made from it
    (``sending.execution_task_options`` reads these names of an Execution): a
    thousand of these cost a fraction of a millisecond, the same Executions
    built from their values ~11 ms, in the minute's critical path."""

    pk: int
    job_id: int
    celery_task_id: str
    scheduled_for: datetime


def _fires_recorded(bulk: list[tuple[Job, ScheduledFire]], rows: list[dict],
                    inserted: list[tuple[int, int]] | None) -> list[tuple[RecordedRun, Job]]:
    """(run, job) of the executions just inserted for ``bulk``, in the order
    of ``rows``: from the (id, job id) the insert gave back (a job has one
    fire in ``bulk``), else looked up by their unique (job, due time)."""
    jobs = {job.pk: job for job, _ in bulk}
    if inserted is not None:
        ids = {job_id: pk for pk, job_id in inserted}
        return [(RecordedRun(ids[row["job_id"]], row["job_id"], row["celery_task_id"], row["scheduled_for"]),
                 jobs[row["job_id"]]) for row in rows]
    by_due: dict[datetime, list[int]] = {}
    for row in rows:
        by_due.setdefault(row["scheduled_for"], []).append(row["job_id"])
    found = {}
    for due, job_ids in by_due.items():
        for values in _in_chunks(Execution.objects.filter(scheduled_for=due), "job_id", job_ids,
                                 *RecordedRun._fields):
            run = RecordedRun(*values)
            found[(run.job_id, due)] = run
    return [(found[(row["job_id"], row["scheduled_for"])], jobs[row["job_id"]]) for row in rows]


def _in_chunks(queryset, field: str, ids, *fields):
    """``queryset.filter(<field> in ids)`` (its ``values_list(*fields)`` if
    given): one query on PostgreSQL, one per ``IN_BATCH`` ids elsewhere
    (``jobsite.db.id_batches``)."""
    for batch in id_batches(ids, alias=queryset.db):
        chunk = queryset.filter(**{f"{field}__any_of": batch})
        if len(fields) == 1:
            yield from chunk.values_list(fields[0], flat=True)
        elif fields:
            yield from chunk.values_list(*fields)
        else:
            yield from chunk


def _disable_fired_one_off(job: Job) -> None:
    # A one-off has fired (run, skipped or missed): keep the job for its history,
    # disabled, so that nothing (a resume, `sync-beat --repair`) can fire it a second time.
    if job.schedule_type == Job.ScheduleType.ONCE:
        job.is_enabled = False
        job.next_run_at = None
        Job.objects.filter(pk=job.pk).update(is_enabled=False, next_run_at=None)
        periodic_task_sync(job)
