"""Pause-all (maintenance mode): pause the whole site, one organization or
one queue, and resume it. While a pause is on nothing it covers fires
(``dispatch``) and run requests are refused unless forced (``requests``).
At its end — a resume, or its ``until`` passing — each job it covered is
treated as after a beat outage: the fires that fell in the pause are recorded
as one ``missed`` row and the job's catch-up policy decides what runs now
(skip: none; once: one run, for the latest of them; all: each, at most
``JOBS_CATCH_UP_MAX``)."""
from __future__ import annotations

import logging
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from scheduling import audit
from scheduling.beat import job_schedule
from scheduling.maintenance_mode import covers, forget_cached_pauses, is_in_force, open_pauses, pause_in_words
from scheduling.models import Job, MaintenancePause
from scheduling.services.fires import catch_up, new_fire
from scheduling.services.limits import send_or_hold

logger = logging.getLogger(__name__)


@transaction.atomic
def maintenance_pause(*, scope: str = MaintenancePause.Scope.SITE, organization=None, queue: str = "",
                      until: datetime | None = None, reason: str = "", actor=None,
                      actor_label: str = "") -> MaintenancePause:
    """Pause everything in ``scope`` (site, organization or queue) until
    ``until`` (None: until resumed). Audited."""
    now = timezone.now()
    errors: dict[str, list[str]] = {}
    if scope not in MaintenancePause.Scope.values:
        errors["scope"] = [f"Use one of: {', '.join(MaintenancePause.Scope.values)}."]
    if scope == MaintenancePause.Scope.ORGANIZATION and organization is None:
        errors["organization_id"] = ["Give the organization to pause."]
    if scope == MaintenancePause.Scope.QUEUE and not queue:
        errors["queue"] = ["Give the queue to pause."]
    if scope != MaintenancePause.Scope.ORGANIZATION and organization is not None:
        errors["organization_id"] = ["Only a pause of scope organization names one."]
    if scope != MaintenancePause.Scope.QUEUE and queue:
        errors["queue"] = ["Only a pause of scope queue names one."]
    if until is not None and until <= now:
        errors["until"] = ["The end of a pause must be in the future."]
    if len(reason) > 255:
        errors["reason"] = ["At most 255 characters."]
    if errors:
        raise ValidationError(errors)
    label = actor_label or (getattr(actor, "username", "") if getattr(actor, "is_authenticated", False) else "")
    pause = MaintenancePause.objects.create(scope=scope, organization=organization, queue=queue, until=until,
                                            reason=reason, started_at=now, created_by=label or "system")
    audit.record(actor=actor, actor_label=actor_label, action="pause", obj=pause, changes={
        "scope": scope, "organization": str(organization.pk) if organization else None, "queue": queue,
        "until": until.isoformat() if until else None, "reason": reason})
    forget_cached_pauses()
    transaction.on_commit(forget_cached_pauses)
    logger.warning("maintenance: %s", pause_in_words(pause))
    return pause


def maintenance_resume(*, pauses: list[MaintenancePause] | None = None, actor=None,
                       actor_label: str = "") -> list[MaintenancePause]:
    """End ``pauses`` (default: every pause not ended yet) and catch up each
    job they covered that no other pause still covers. Audited. Returns the
    pauses ended (none: nothing was paused)."""
    now = timezone.now()
    with transaction.atomic():
        wanted = None if pauses is None else [pause.pk for pause in pauses]
        ending = MaintenancePause.objects.select_for_update(of=("self",)).filter(ended_at__isnull=True)
        if wanted is not None:
            ending = ending.filter(pk__in=wanted)
        ending = list(ending.select_related("organization"))
        if not ending:
            return []
        MaintenancePause.objects.filter(pk__in=[pause.pk for pause in ending]).update(ended_at=now)
        for pause in ending:
            pause.ended_at = now
            audit.record(actor=actor, actor_label=actor_label, action="resume", obj=pause,
                         changes={"paused_from": pause.started_at.isoformat(), "until": now.isoformat()})
        still = [pause for pause in open_pauses() if is_in_force(pause, now)]
        transaction.on_commit(forget_cached_pauses)
    caught_up = 0
    for job_id in _jobs_covered(ending):
        with transaction.atomic():
            job = Job.objects.select_for_update().filter(pk=job_id).first()
            if job is None or not job.is_schedulable:
                continue
            if any(covers(pause, organization_id=job.organization_id, queue=job.queue) for pause in still):
                continue  # still paused by another: caught up when that one ends
            start = max(pause.started_at for pause in ending
                        if covers(pause, organization_id=job.organization_id, queue=job.queue))
            caught_up += _catch_up_paused(job, start=max(start, job.created_at),
                                          end=min(now, *(p.until or now for p in ending)), now=now)
    logger.warning("maintenance: %d pause(s) ended; %d job(s) had fires in them", len(ending), caught_up)
    return ending


def pauses_end_expired(*, now: datetime | None = None) -> int:
    """End the pauses whose ``until`` has passed (with their catch-up)."""
    now = now or timezone.now()
    expired = [pause for pause in open_pauses() if not is_in_force(pause, now)]
    return len(maintenance_resume(pauses=expired, actor_label="system")) if expired else 0


def _jobs_covered(pauses: list[MaintenancePause]) -> list[int]:
    jobs = Job.objects.filter(is_enabled=True, status=Job.Status.ACTIVE).exclude(
        schedule_type__in=[Job.ScheduleType.MANUAL, Job.ScheduleType.ONCE])
    if not any(pause.scope == MaintenancePause.Scope.SITE for pause in pauses):
        from django.db.models import Q

        scope = Q(pk__in=[])
        for pause in pauses:
            scope |= (Q(organization_id=pause.organization_id) if pause.scope == MaintenancePause.Scope.ORGANIZATION
                      else Q(queue=pause.queue))
        jobs = jobs.filter(scope)
    return list(jobs.order_by("pk").values_list("pk", flat=True))


def _catch_up_paused(job: Job, *, start: datetime, end: datetime, now: datetime) -> int:
    """The fires of ``job`` in (``start``, ``end``]: recorded and caught up
    per its catch-up policy, as after a beat outage. 1 if there were any."""
    count, first, last = job_schedule(job).fires_between(start, end)
    if not count:
        return 0
    why = f"jobs were paused for maintenance from {start:%Y-%m-%d %H:%M:%S} UTC"
    if job.catch_up_policy == Job.CatchUpPolicy.ONCE:
        # the latest fire runs now, under its own due time; the others are recorded missed
        if count > 1:
            catch_up(job, due=last, late=False, missed=count - 1, missed_from=first, now=now, why=why)
        execution = new_fire(job, scheduled_for=last)
        if not getattr(execution, "_duplicate", False) and execution.status == "queued":
            send_or_hold(execution, job)
    else:
        # skip: one missed row for them all; all: each run now (up to the cap) and the row
        catch_up(job, due=now, late=False, missed=count, missed_from=first, now=now, why=why)
    return 1
