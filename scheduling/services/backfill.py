"""Backfill: run a job once for each due time of its schedule in a past range.

``job_backfill`` lists the due times of ``[start, end)`` in the job's time
zone, oldest first. A due time that already has a run is not run again: the
unique ``(job, scheduled_for)`` of executions decides, as it does for beat's
fires. The rest become one ``Backfill`` group whose runs go one at a time —
each Execution carries ``scheduled_for`` = its due time, and the next is
queued when the previous finishes (``execution_finished``, whatever the
outcome). One at a time counts retries: a run that failed with retries left
is followed by its retry, and the next due time waits for the retry's end.
A run of a job with a concurrency limit (or group) takes a slot like any
run (``send_or_hold``). Cancelling the group cancels the run going now (or
the retry waiting for its backoff or a slot) and queues no more.
A dry run only lists the due times and which of them already ran.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from jobsite.exceptions import ApplicationError, Conflict
from scheduling import audit
from scheduling.beat import job_schedule
from scheduling.calendars import job_calendars, job_skip_calendar
from scheduling.models import Backfill, Execution, Job
from scheduling.schedules import cron_fires
from scheduling.services.lifecycle import execution_cancel
from scheduling.services.limits import send_or_hold
from scheduling.services.sending import new_execution
from scheduling.signals import execution_finished

DEFAULT_MAX = 1000
MIN_YEAR, MAX_YEAR = 1970, 2199


def backfill_max() -> int:
    """At most this many due times per request (JOBS_BACKFILL_MAX)."""
    return int(getattr(settings, "JOBS_BACKFILL_MAX", DEFAULT_MAX))


def _aware(moment: datetime, job: Job) -> datetime:
    """A naive moment is read in the job's time zone."""
    if timezone.is_naive(moment):
        return timezone.make_aware(moment, job_schedule(job).tz)
    return moment


def backfill_due_times(*, job: Job, start: datetime, end: datetime, limit: int | None = None) -> list[datetime]:
    """The due times of the job's schedule in ``[start, end)``, oldest first,
    in its time zone. More than ``limit`` (default JOBS_BACKFILL_MAX): a 400."""
    limit = backfill_max() if limit is None else limit
    for field, moment in (("start", start), ("end", end)):
        if not MIN_YEAR <= moment.year <= MAX_YEAR:  # before any zone arithmetic, which would overflow
            raise ValidationError({field: [f"Give a time from {MIN_YEAR} to {MAX_YEAR}."]})
    start, end = _aware(start, job), _aware(end, job)
    if start >= end:
        raise ValidationError({"end": ["The end must be after the start."]})
    if end > timezone.now() + timedelta(seconds=1):
        raise ValidationError({"end": ["A backfill runs past due times: the end may not be in the future."]})
    schedule = job_schedule(job)
    times: list[datetime] = []
    if schedule.cron:
        # cron_fires yields the fires strictly after its moment: start itself counts too
        for due in cron_fires(schedule.cron, schedule.tz, (start - timedelta(microseconds=1)).astimezone(schedule.tz)):
            if due >= end or len(times) > limit:
                break
            times.append(due)
    elif schedule.interval:
        # an interval's due times count from the start of the range
        due = start.astimezone(schedule.tz)
        while due < end and len(times) <= limit:
            times.append(due)
            due += schedule.interval
    elif schedule.clocked and start <= schedule.clocked < end:
        times.append(schedule.clocked.astimezone(schedule.tz))
    elif schedule.is_manual:
        raise ValidationError({"job": [f"Job '{job.name}' has no schedule (manual): it has no due times to backfill."]})
    if len(times) > limit:
        raise ApplicationError(
            f"The range holds more than {limit} due times of job '{job.name}' (JOBS_BACKFILL_MAX); "
            f"backfill a shorter range, one part at a time.", status=400,
        )
    return times


@dataclass
class BackfillPreview:
    """What a backfill of ``[start, end)`` would do: every due time, and the
    run each one already has (None: it would be run)."""

    job: Job
    start: datetime
    end: datetime
    due: list[tuple[datetime, Execution | None]]
    skipped: dict[datetime, str] = None  # due time → the calendar it falls in (not run)

    @property
    def to_run(self) -> list[datetime]:
        return [when for when, ran in self.due if ran is None and when not in (self.skipped or {})]

    def as_dict(self) -> dict:
        return {
            "job_id": self.job.pk, "start": self.start, "end": self.end, "total": len(self.due),
            "to_run": len(self.to_run), "already_ran": sum(1 for _, ran in self.due if ran is not None),
            "skipped_by_calendar": len(self.skipped or {}),
            "due_times": [{"scheduled_for": when, "already_ran": ran is not None,
                           "execution_id": ran.pk if ran is not None else None,
                           "status": ran.status if ran is not None else None,
                           "calendar": (self.skipped or {}).get(when)} for when, ran in self.due],
        }


def backfill_preview(*, job: Job, start: datetime, end: datetime) -> BackfillPreview:
    """The dry run: the due times and which of them already ran."""
    times = backfill_due_times(job=job, start=start, end=end)
    existing = {e.scheduled_for: e for e in job.executions.filter(scheduled_for__in=times).only(
        "pk", "status", "scheduled_for", "job_id")} if times else {}
    skipped = {}
    if job_calendars(job):  # the job's calendars: a due time inside one is not run (as beat's fire skips it)
        for when in times:
            calendar = job_skip_calendar(job, when) if when not in existing else None
            if calendar is not None:
                skipped[when] = calendar.name
    return BackfillPreview(job=job, start=_aware(start, job), end=_aware(end, job),
                           due=[(when, existing.get(when)) for when in times], skipped=skipped)


@transaction.atomic
def job_backfill(*, job: Job, start: datetime, end: datetime, actor=None, actor_label: str = "",
                 trigger: str = Execution.Trigger.API) -> Backfill:
    """Start a backfill: one group of runs, queued one at a time, oldest first."""
    if trigger not in BACKFILL_TRIGGERS:
        raise ValueError(f"a backfill is started by a request ({', '.join(sorted(BACKFILL_TRIGGERS))}), not {trigger!r}")
    job = Job.objects.select_for_update().get(pk=job.pk)
    preview = backfill_preview(job=job, start=start, end=end)
    backfill = Backfill.objects.create(
        job=job, start=preview.start, end=preview.end, due_times=[when.isoformat() for when in preview.to_run],
        already_ran=[when.isoformat() for when, ran in preview.due if ran is not None or when in preview.skipped],
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    backfill._trigger = trigger
    audit.record(actor=actor, actor_label=actor_label, action="execute", obj=job, changes={
        "backfill": backfill.pk, "start": preview.start.isoformat(), "end": preview.end.isoformat(),
        "to_run": len(preview.to_run), "already_ran": len(preview.due) - len(preview.to_run)})
    _queue_next(backfill, actor=actor)
    return backfill


def _queue_next(backfill: Backfill, *, actor=None) -> None:
    """Queue the next due time of a running backfill that still has no run, or
    mark the backfill done. The caller holds the backfill's row (or created it)."""
    job = backfill.job
    trigger = getattr(backfill, "_trigger", None) or Execution.Trigger.API
    while backfill.queued < len(backfill.due_times):
        due = datetime.fromisoformat(backfill.due_times[backfill.queued])
        backfill.queued += 1
        try:
            with transaction.atomic():
                execution = new_execution(job, trigger=trigger, actor=actor or backfill.created_by, scheduled_for=due)
        except IntegrityError:  # beat or another backfill ran it meanwhile: (job, scheduled_for) decides
            continue
        send_or_hold(execution, job)
        backfill.current_execution = execution
        backfill.save(update_fields=["queued", "current_execution"])
        return
    backfill.status = Backfill.Status.DONE
    backfill.current_execution = None
    backfill.finished_at = timezone.now()
    backfill.save(update_fields=["queued", "current_execution", "status", "finished_at"])


@transaction.atomic
def backfill_cancel(*, backfill: Backfill, actor=None, actor_label: str = "") -> Backfill:
    """Stop a backfill: cancel its run going now; the rest are never queued."""
    backfill = Backfill.objects.select_for_update(of=("self",)).select_related("job", "current_execution").get(pk=backfill.pk)
    if backfill.status != Backfill.Status.RUNNING:
        raise Conflict(f"Backfill {backfill.pk} is already {backfill.status}.")
    backfill.status = Backfill.Status.CANCELLED
    backfill.finished_at = timezone.now()
    backfill.save(update_fields=["status", "finished_at"])
    # The run going now, and its retry if it failed just now (its end may not have
    # reached _on_execution_finished yet, which would have made the retry current).
    for run in _with_retries(backfill.current_execution):
        if run.status in Execution.ACTIVE_STATUSES:
            execution_cancel(execution=run, actor=actor, actor_label=actor_label,
                             reason=f"backfill {backfill.pk} cancelled")
    audit.record(actor=actor, actor_label=actor_label, action="cancel", obj=backfill.job,
                 changes={"backfill": backfill.pk, "not_run": len(backfill.due_times) - backfill.queued})
    return backfill


def backfill_progress(backfill: Backfill) -> dict:
    """How far a backfill is: its due times by what became of their runs."""
    times = [datetime.fromisoformat(t) for t in backfill.due_times]
    runs = list(backfill.job.executions.filter(scheduled_for__in=times).order_by("scheduled_for").values(
        "id", "scheduled_for", "status")) if times else []
    finished = sum(1 for run in runs if run["status"] in Execution.FINISHED_STATUSES)
    return {
        "id": backfill.pk, "job_id": backfill.job_id, "status": backfill.status, "start": backfill.start,
        "end": backfill.end, "total": len(times), "queued": backfill.queued, "finished": finished,
        "not_run": len(times) - backfill.queued if backfill.status == Backfill.Status.CANCELLED else 0,
        "already_ran": len(backfill.already_ran), "current_execution_id": backfill.current_execution_id,
        "runs": runs, "created_at": backfill.created_at, "finished_at": backfill.finished_at,
    }


def _with_retries(execution: Execution | None):
    """``execution``, then its retry, the retry's retry, and so on."""
    while execution is not None:
        yield execution
        execution = Execution.objects.filter(retry_of=execution).order_by("pk").first()


def _on_execution_finished(sender, *, execution_id: int, trigger: str | None = None,
                           scheduled_for: datetime | None = None, **kwargs) -> None:
    """A run of a backfill ended (any outcome): its retry is the backfill's
    run now if it has one (made with its failure), else queue the next due time.

    Every finished run comes here. A run that cannot be a backfill's (by its
    trigger and due time) costs nothing; any other one plain read first, so a
    run of no backfill costs no transaction (on SQLite each transaction takes
    the write lock, and the locked read below with its joins was most of a
    no-op run's time in the worker: docs/benchmarks.md)."""
    if not _may_be_a_backfills_run(trigger, scheduled_for) or not _is_a_running_backfills_run(execution_id):
        return
    with transaction.atomic():
        backfill = (Backfill.objects.select_for_update(of=("self",)).select_related("job", "created_by")
                    .filter(current_execution_id=execution_id, status=Backfill.Status.RUNNING).first())
        if backfill is None:
            return
        retry = Execution.objects.filter(retry_of_id=execution_id).order_by("pk").first()
        if retry is not None and retry.status in Execution.ACTIVE_STATUSES:
            backfill.current_execution = retry
            backfill.save(update_fields=["current_execution"])
            return
        # the trigger the backfill's runs were made with (its first run's, not a retry's)
        run = Execution.objects.filter(pk=execution_id).only("trigger", "retry_of_id").first()
        while run is not None and run.trigger == Execution.Trigger.RETRY and run.retry_of_id:
            run = Execution.objects.filter(pk=run.retry_of_id).only("trigger", "retry_of_id").first()
        backfill._trigger = run.trigger if run is not None else None
        _queue_next(backfill)


#: What started a backfill's runs: the request that started the backfill.
BACKFILL_TRIGGERS = frozenset((Execution.Trigger.API, Execution.Trigger.CLI, Execution.Trigger.MANUAL))


def _may_be_a_backfills_run(trigger: str | None, scheduled_for: datetime | None) -> bool:
    """Could a run with this trigger and due time be a backfill's? A backfill
    queues each run for its due time with the trigger of the request that
    started it (``_queue_next``), and its retries are retries; beat's runs,
    other jobs' followers and manual runs without a due time never are (the
    worker's common case: no read). Unknown (None): maybe."""
    if trigger is None or trigger == Execution.Trigger.RETRY:
        return True
    return trigger in BACKFILL_TRIGGERS and scheduled_for is not None


def _is_a_running_backfills_run(execution_id: int) -> bool:
    """Is this the run a running backfill waits for? (Asked only of runs that
    may be a backfill's: ``_may_be_a_backfills_run``.)"""
    return Backfill.objects.filter(current_execution_id=execution_id, status=Backfill.Status.RUNNING).exists()


execution_finished.connect(_on_execution_finished, sender=Execution, dispatch_uid="scheduling.backfill.next")
