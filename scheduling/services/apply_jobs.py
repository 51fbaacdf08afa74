"""The ``jobs`` section of a manifest: plan, apply (in bulk) and export.

A job document is the API's create body (``JobCreateSerializer``'s fields,
under the same names) plus ``paused``, ``organization`` (by name) and
``secrets`` (references, never values). It is the whole desired state: a
field the document leaves out takes the value a create would give it, except
``organization`` and ``secrets``, which an update keeps when left out.

Creates go in bulk — ``job_validate`` (the services' own checks) for every
document, then one ``bulk_create`` each of Jobs, beat PeriodicTasks and audit
rows, and one ``PeriodicTasks.update_changed()`` so beat reloads once —
which is what makes applying 10,000 jobs fast (docs/benchmarks.md). Updates,
pauses, resumes and deletes go through the per-job services
(``job_update``, ``job_pause``, ``job_resume``, ``job_set_secrets``, ``job_delete``).
"""
from __future__ import annotations

import inspect
import json
import re

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import CharField, OuterRef, Q, Subquery, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, PeriodicTasks

from jobsite.crypto import secrets_decrypt, secrets_encrypt
from jobsite.models import Organization
from jobsite.redaction import secrets_check
from jobsite.tenancy import user_default_organization
from scheduling import audit
from scheduling.beat import DISPATCH_TASK, PERIODIC_TASK_PREFIX, celery_priority, job_schedule, periodic_task_name
from scheduling.beat.sync import _expires_seconds, crontab_expression
from scheduling.kinds import internal_kinds, is_internal_kind
from scheduling.models import AuditLog, Calendar, Job
from scheduling.services.apply import (
    Change, Context, DocumentError, ManifestError, Section, errors_from, register_section, secret_refs_resolve,
    secrets_diff,
)
from scheduling.services.calendars import job_set_calendars
from scheduling.services.jobs import job_create, job_delete, job_pause, job_resume, job_set_secrets, job_update, job_validate

SECTION = "jobs"
BATCH = 1000

#: Service (model) field → the file's (the API's) name.
FILE_NAMES = {"queue": "task_queue", "priority": "task_priority", "timeout_seconds": "timeout"}
#: The fields a document sets, in the order export writes them (model names).
FIELDS = (
    "name", "title", "description", "kind", "job_type", "schedule_type", "schedule_expression", "timezone",
    "task_name", "task_args", "task_kwargs", "config", "queue", "priority", "timeout_seconds", "max_retries",
    "retry_backoff_seconds", "overlap_policy", "catch_up_policy", "is_enabled",
)
#: What a create gives a field the document leaves out: job_create's own defaults.
DEFAULTS = {
    name: param.default for name, param in inspect.signature(job_create).parameters.items()
    if name in FIELDS and param.default is not inspect.Parameter.empty
}
DEFAULTS.update(task_args=[], task_kwargs={}, config={})


def file_name(field: str) -> str:
    return FILE_NAMES.get(field, field)


def secret_env_name(job_name: str, key: str) -> str:
    """The environment variable export names for a job's secret: JOB_NAME_KEY in capitals."""
    return re.sub(r"[^A-Z0-9]+", "_", f"{job_name}_{key}".upper()).strip("_")


def _desired(doc: dict) -> dict:
    values = {**DEFAULTS, **{k: v for k, v in doc.items() if k in FIELDS}}
    values["title"] = values.get("title") or values["name"]
    values["schedule_expression"] = str(values.get("schedule_expression") or "").strip()
    values["timezone"] = values.get("timezone") or "UTC"
    values["status"] = Job.Status.PAUSED if doc.get("paused") else Job.Status.ACTIVE
    return values


def _current(job: Job) -> dict:
    values = {f: getattr(job, f) for f in FIELDS}
    values["status"] = job.status
    values["organization"] = job.organization_id
    return values


# ---------------------------------------------------------------------------
# Plan
# ---------------------------------------------------------------------------
def _plan(documents: list[tuple[int, dict]], context: Context) -> list[Change]:
    names = [doc["name"] for _, doc in documents]
    existing = {job.name: job for job in Job.objects.filter(name__in=names).prefetch_related("calendars")} if names else {}
    default_org = user_default_organization(context.actor)
    changes, errors = [], []
    for index, doc in documents:
        name = doc["name"]
        job = existing.get(name)
        wanted = _desired(doc)
        if "organization" in doc:
            wanted["organization"] = doc["organization"].pk if doc["organization"] else None
        elif job is None:
            wanted["organization"] = default_org.pk if default_org else None
        stored = secrets_decrypt(job.secrets) if job is not None and "secrets" in doc else {}
        secrets, problems = secret_refs_resolve(doc.get("secrets"), stored=stored, env=context.env,
                                                section=SECTION, index=index, name=name)
        errors.extend(problems)
        if job is None:
            if is_internal_kind(wanted["kind"]):
                errors.append(DocumentError(SECTION, index, name, "kind",
                                            f"Jobs of kind '{wanted['kind']}' are internal: their app creates them."))
            changes.append(Change(SECTION, "create", name, document=doc, index=index,
                                  values={**wanted, "secrets": secrets or {}, "calendars": sorted(doc.get("calendars", []))}))
            continue
        if is_internal_kind(job.kind):
            errors.append(DocumentError(SECTION, index, name, "name",
                                        f"'{name}' is an internal job of kind '{job.kind}'; choose another name."))
            continue
        if wanted["kind"] != job.kind:
            errors.append(DocumentError(SECTION, index, name, "kind",
                                        f"The kind of a job cannot be changed (it is '{job.kind}'); "
                                        f"give the new job another name."))
            continue
        current = _current(job)
        if "organization" not in wanted:
            current.pop("organization")
        diff = {file_name(k): [current[k], v] for k, v in wanted.items() if k in current and current[k] != v}
        secrets_change = secrets_diff(secrets_decrypt(job.secrets) if secrets is not None else {}, secrets)
        if secrets_change:
            diff["secrets"] = secrets_change
        calendars = sorted(doc.get("calendars", []))
        stored_calendars = sorted(c.name for c in job.calendars.all())
        if calendars != stored_calendars:
            diff["calendars"] = [stored_calendars, calendars]
        if diff:
            changes.append(Change(SECTION, "update", name, fields=diff, document=doc, index=index, obj=job,
                                  values={**wanted, "secrets": secrets, "calendars": calendars}))
    if context.prune:
        keep = Job.objects.filter(Q(name__in=names) | Q(kind__in=internal_kinds()))
        if context.kinds:
            stale = Job.objects.filter(kind__in=context.kinds)
        else:
            stale = Job.objects.all()
        for job in stale.exclude(pk__in=keep.values("pk")).order_by("name"):
            changes.append(Change(SECTION, "delete", job.name, obj=job))
    if errors:
        raise ManifestError(errors)
    return changes


# ---------------------------------------------------------------------------
# Apply
# ---------------------------------------------------------------------------
def _apply(changes: list[Change], context: Context) -> None:
    creates = [c for c in changes if c.action == "create"]
    errors: list[DocumentError] = []
    if creates:
        errors.extend(_create_bulk(creates, context))
    for change in changes:
        try:
            if change.action == "update":
                _update(change, context)
            elif change.action == "delete":
                job_delete(job=change.obj, actor=context.actor, actor_label=context.actor_label)
        except (ValidationError, ManifestError) as exc:
            errors.extend(errors_from(exc, section=SECTION, index=change.index, name=change.name))
    if errors:
        raise ManifestError(errors)


def _by(context: Context) -> dict:
    return {"actor": context.actor if getattr(context.actor, "pk", None) else None, "actor_label": context.actor_label}


def _update(change: Change, context: Context) -> None:
    job, values = change.obj, change.values
    data = {f: values[f] for f in (*FIELDS, "organization") if f in values and f != "kind"}
    if "organization" in data:
        data["organization"] = Organization.objects.filter(pk=data["organization"]).first()
    edits = {f: v for f, v in data.items() if f in Job.EDITABLE_FIELDS}
    job = job_update(job=job, data=edits, **_by(context))
    if values["secrets"] is not None and "secrets" in change.fields:
        job_set_secrets(job=job, secrets=values["secrets"], **_by(context))
    if "calendars" in change.fields:
        job_set_calendars(job=job, names=values["calendars"], **_by(context))
    if values["status"] != job.status:
        (job_pause if values["status"] == Job.Status.PAUSED else job_resume)(job=job, **_by(context))


def _create_bulk(changes: list[Change], context: Context) -> list[DocumentError]:
    """Validate every new job as job_create does, then insert them, their beat
    entries and their audit rows in a few statements."""
    actor = context.actor if getattr(context.actor, "is_authenticated", False) else None
    organizations = {o.pk: o for o in Organization.objects.filter(
        pk__in={c.values["organization"] for c in changes if c.values["organization"]})}
    calendars = {c.name: c for c in Calendar.objects.filter(
        name__in={name for c in changes for name in c.values["calendars"]})}
    jobs, errors = [], []
    for change in changes:
        values = change.values
        missing = sorted(set(values["calendars"]) - set(calendars))
        if missing:
            errors.append(DocumentError(SECTION, change.index, change.name, "calendars",
                                        f"No calendar named {', '.join(repr(n) for n in missing)}."))
            continue
        job = Job(**{f: values[f] for f in FIELDS}, status=values["status"], owner=actor,
                  organization=organizations.get(values["organization"]))
        try:
            secrets_check(values["secrets"])
            job.secrets = secrets_encrypt(values["secrets"])
            job_validate(job)
        except ValidationError as exc:
            errors.extend(errors_from(exc, section=SECTION, index=change.index, name=change.name))
            continue
        jobs.append(job)
    if errors:
        return errors
    now = timezone.now()
    schedules: dict[tuple, tuple] = {}  # many jobs share a schedule: parsed and computed once each
    for job in jobs:
        key = (job.schedule_type, job.schedule_expression, job.timezone, job.is_schedulable)
        if key not in schedules:
            # job_next_runs, with an interval anchored where its new PeriodicTask is (now)
            schedule = job_schedule(job)
            runs = schedule.next_runs(1, anchor=now if schedule.interval else None) if job.is_schedulable else []
            schedules[key] = (schedule, runs[0] if runs else None)
        job._apply_schedule, job.next_run_at = schedules[key]
    try:
        with transaction.atomic():
            Job.objects.bulk_create(jobs, batch_size=BATCH)
    except IntegrityError:  # a job of one of these names was created since the plan was made
        taken = set(Job.objects.filter(name__in=[job.name for job in jobs]).values_list("name", flat=True))
        return [DocumentError(SECTION, c.index, c.name, "name", "A job of this name was created meanwhile; apply "
                              "the file again.") for c in changes if c.name in taken] or [
            DocumentError(SECTION, None, "", "", "The jobs could not be created; apply the file again.")]
    _periodic_tasks_create(jobs, now=now)
    Calendar.jobs.through.objects.bulk_create(
        [Calendar.jobs.through(calendar_id=calendars[name].pk, job_id=job.pk)
         for job, change in zip(jobs, changes) for name in change.values["calendars"]], batch_size=BATCH)
    by = _by(context)
    AuditLog.objects.bulk_create(
        [AuditLog(**audit.entry(**by, action="create", obj=job, changes=audit.job_snapshot(job))) for job in jobs],
        batch_size=BATCH,
    )
    return []


def _schedule_rows(schedules) -> dict[tuple, dict]:
    """_beat_schedule_fields for many schedules: the Crontab/Interval/Clocked
    rows that exist read in a few queries, the missing ones bulk-created."""
    out: dict[tuple, dict] = {}
    crons = {(s.cron, s.timezone_name) for s in schedules if s.cron}
    intervals = {int(s.interval.total_seconds()) for s in schedules if s.interval}
    clocks = {s.clocked for s in schedules if s.clocked}
    if crons:
        rows = {}
        for zone in {tz for _, tz in crons}:
            hours = {cron.split()[1] for cron, tz in crons if tz == zone}
            for row in CrontabSchedule.objects.filter(timezone=zone, hour__in=hours).order_by("pk"):
                rows.setdefault((crontab_expression(row), str(row.timezone)), row)
        missing = [CrontabSchedule(minute=m, hour=h, day_of_month=dom, month_of_year=moy, day_of_week=dow, timezone=tz)
                   for cron, tz in sorted(crons - set(rows)) for m, h, dom, moy, dow in [cron.split()]]
        CrontabSchedule.objects.bulk_create(missing, batch_size=BATCH)
        rows.update({(crontab_expression(row), str(row.timezone)): row for row in missing})
        for key, row in rows.items():
            out[("cron", *key)] = {"crontab": row, "interval": None, "clocked": None, "one_off": False}
    if intervals:
        rows = {}
        for row in IntervalSchedule.objects.filter(every__in=intervals, period=IntervalSchedule.SECONDS).order_by("pk"):
            rows.setdefault(row.every, row)
        missing = [IntervalSchedule(every=every, period=IntervalSchedule.SECONDS) for every in sorted(intervals - set(rows))]
        IntervalSchedule.objects.bulk_create(missing)
        rows.update({row.every: row for row in missing})
        for every, row in rows.items():
            out[("interval", every)] = {"crontab": None, "interval": row, "clocked": None, "one_off": False}
    for clocked in clocks:  # one-offs: few
        row, _ = ClockedSchedule.objects.get_or_create(clocked_time=clocked)
        out[("clocked", clocked)] = {"crontab": None, "interval": None, "clocked": row, "one_off": True}
    return out


def _schedule_key(schedule) -> tuple:
    if schedule.cron:
        return ("cron", schedule.cron, schedule.timezone_name)
    if schedule.interval:
        return ("interval", int(schedule.interval.total_seconds()))
    return ("clocked", schedule.clocked)


def _periodic_tasks_create(jobs: list[Job], *, now) -> None:
    """periodic_task_sync for many new jobs: the same PeriodicTask values, a
    bulk insert, one UPDATE linking them, one change notice for beat."""
    scheduled = [(job, job._apply_schedule) for job in jobs]
    scheduled = [(job, schedule) for job, schedule in scheduled if not schedule.is_manual]
    rows = _schedule_rows([schedule for _, schedule in scheduled])
    tasks = []
    for job, schedule in scheduled:
        task = PeriodicTask(
            **rows[_schedule_key(schedule)], name=periodic_task_name(job), task=DISPATCH_TASK,
            args=json.dumps([job.pk]), kwargs="{}", queue=job.queue, priority=celery_priority(job.priority),
            expire_seconds=_expires_seconds(schedule), enabled=job.is_schedulable,
            description=f"jobsite job {job.name}",
        )
        if schedule.interval and task.enabled:
            task.last_run_at = now  # as periodic_task_sync anchors a fresh interval
        tasks.append(task)
    PeriodicTask.objects.bulk_create(tasks, batch_size=BATCH)
    for (job, _), task in zip(scheduled, tasks):
        job.periodic_task = task
    ids = [job.pk for job, _ in scheduled]
    link = PeriodicTask.objects.filter(name=Concat(Value(PERIODIC_TASK_PREFIX), Cast(OuterRef("pk"), CharField())))
    for start in range(0, len(ids), BATCH):
        Job.objects.filter(pk__in=ids[start:start + BATCH]).update(periodic_task=Subquery(link.values("pk")[:1]))
    PeriodicTasks.update_changed()


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------
def _export(kinds: list[str] | None) -> list[dict]:
    jobs = (Job.objects.exclude(kind__in=internal_kinds()).select_related("organization")
            .prefetch_related("calendars").order_by("name"))
    if kinds:
        jobs = jobs.filter(kind__in=kinds)
    out = []
    now = timezone.now()
    for job in jobs:
        if job.schedule_type == Job.ScheduleType.ONCE and not _once_ahead(job, now):
            continue  # a one-off whose time has passed cannot be created again (the API refuses it too)
        doc = {}
        for f in FIELDS:
            value = getattr(job, f)
            if f == "title" and value == job.name:
                continue
            if f != "name" and f in DEFAULTS and value == DEFAULTS[f] and f != "kind":
                continue
            doc[file_name(f)] = value
        if job.status == Job.Status.PAUSED:
            doc["paused"] = True
        doc["organization"] = job.organization.name if job.organization_id else None
        names = sorted(secrets_decrypt(job.secrets))
        if names:
            doc["secrets"] = {key: {"from_env": secret_env_name(job.name, key)} for key in names}
        calendars = sorted(c.name for c in job.calendars.all())
        if calendars:
            doc["calendars"] = calendars
        out.append(doc)
    return out


def _once_ahead(job: Job, now) -> bool:
    try:
        return job_schedule(job).clocked > now
    except ValidationError:
        return False


def export_left_out(kinds: list[str] | None = None) -> list[str]:
    """Jobs export leaves out: one-offs whose time has passed (the file could not create them again)."""
    now = timezone.now()
    jobs = Job.objects.filter(schedule_type=Job.ScheduleType.ONCE).exclude(kind__in=internal_kinds()).order_by("name")
    if kinds:
        jobs = jobs.filter(kind__in=kinds)
    return [job.name for job in jobs if not _once_ahead(job, now)]


register_section(Section(name=SECTION, key="name", order=20, plan=_plan, apply=_apply, export=_export))
