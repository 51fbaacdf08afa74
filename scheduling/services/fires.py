"""One fire of a scheduled job as a row: the run (or the existing one, when the
fire was already recorded), and the catch-up policy applied to fires beat
missed. Shared by beat's dispatch (scheduling.services.dispatch) and the end
of a maintenance pause (scheduling.services.pause_all)."""
from __future__ import annotations

import logging
from datetime import datetime
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import IntegrityError, transaction

from scheduling.beat import job_schedule
from scheduling.calendars import fire_skip_reason
from scheduling.models import Execution, Job
from scheduling.services.limits import send_or_hold
from scheduling.services.sending import new_execution

logger = logging.getLogger("scheduling.services.dispatch")


def new_fire(job: Job, *, scheduled_for: datetime | None, **extra) -> Execution:
    """One Execution for one fire; the existing one if (job, scheduled_for) is
    already recorded (a race the row lock did not serialize: the constraint
    ``exec_one_run_per_fire`` refuses the second)."""
    try:
        with transaction.atomic():
            return new_execution(job, trigger=Execution.Trigger.SCHEDULE, scheduled_for=scheduled_for, **extra)
    except IntegrityError:
        if scheduled_for is None:
            raise
        existing = job.executions.get(scheduled_for=scheduled_for)
        existing._duplicate = True
        return existing


def _missed_fire_times(job: Job, first: datetime | None, due: datetime, *, limit: int) -> list[datetime]:
    """Up to ``limit`` due times from ``first`` (a missed fire) until before ``due``."""
    if not first or limit <= 0:
        return []
    schedule = job_schedule(job)
    if schedule.interval:
        times = [first + schedule.interval * i for i in range(limit)]
    else:
        times = [first, *schedule.next_runs(limit - 1, after=first)] if limit > 1 else [first]
    return [when for when in times if when < due]


def catch_up(job: Job, *, due: datetime, late: bool, missed: int, missed_from: datetime | None, now: datetime,
              scheduled_for: datetime | None = None,
              why: str = "beat was not running (or had not fired this job)") -> bool:
    """Apply the job's catch-up policy to fires beat missed (``missed`` before
    ``due``; ``due`` itself too when it comes ``late``). Records one
    ``missed`` row saying how many and why; with policy ``all`` queues one
    run per missed fire (at most ``JOBS_CATCH_UP_MAX``). Returns whether the
    fire for ``due`` runs now."""
    policy = job.catch_up_policy
    if not missed and not late:
        return True
    missed_times = _missed_fire_times(job, missed_from, due, limit=min(missed, settings.JOBS_CATCH_UP_MAX))
    total = missed + (1 if late and policy == Job.CatchUpPolicy.SKIP else 0)
    first = missed_from or due
    span = f"between {first.astimezone(dt_timezone.utc):%Y-%m-%d %H:%M:%S} and {due.astimezone(dt_timezone.utc):%Y-%m-%d %H:%M:%S} UTC"
    caught_up = 0
    if policy == Job.CatchUpPolicy.ALL and missed_times:
        for when in missed_times[: settings.JOBS_CATCH_UP_MAX]:
            skip_reason = fire_skip_reason(job, when)
            if skip_reason is not None:  # inside one of the job's calendars
                new_fire(job, scheduled_for=when, status=Execution.Status.SKIPPED, completed_at=now, output=skip_reason)
                continue
            execution = new_fire(job, scheduled_for=when)
            if not getattr(execution, "_duplicate", False):
                send_or_hold(execution, job)
                caught_up += 1
    if policy == Job.CatchUpPolicy.SKIP:
        action = "none of them was run (catch-up policy 'skip')"
    elif policy == Job.CatchUpPolicy.ONCE:
        action = "ran once now instead (catch-up policy 'once')"
    else:
        action = (f"ran {caught_up} of them now (catch-up policy 'all', at most {settings.JOBS_CATCH_UP_MAX})"
                  if caught_up < missed else "ran each of them now (catch-up policy 'all')")
    if total:
        # Not run at all (policy skip, fire late): the missed row stands for this
        # fire, so a duplicate of it finds the row and records nothing more.
        owns_fire = late and policy == Job.CatchUpPolicy.SKIP
        new_fire(
            job, scheduled_for=scheduled_for if owns_fire else None, status=Execution.Status.MISSED, completed_at=now,
            output=f"Missed {total} scheduled run{'s' if total != 1 else ''} {span}: {why}; {action}.",
            result={"missed": total, "from": first.isoformat(), "until": due.isoformat(), "policy": policy,
                    "caught_up": caught_up},
        )
    logger.warning("job %s missed %s fire(s) %s; policy %s", job.pk, total, span, policy)
    return policy != Job.CatchUpPolicy.SKIP or not late
