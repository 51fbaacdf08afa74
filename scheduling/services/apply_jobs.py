"""The ``jobs`` section of a manifest: plan, apply (in bulk) and export.

A job document is the API's create body (``JobCreateSerializer``'s fields,
under the same names, run control included: ``overlap_policy``,
``jitter_seconds``, ``max_concurrent_runs``, ``concurrency_group`` by name)
plus ``paused``, ``organization`` (by name), ``secrets`` (references, never
values), ``calendars`` (by name) and ``run_after`` (upstream jobs by name,
each with its condition). It is the whole desired state: a field the document
leaves out takes the value a create would give it, except ``organization``
and ``secrets``, which an update keeps when left out.

Creates go through ``jobs_build`` (``job_create``'s checks, ``job_validate``
included, for every document) and ``jobs_insert`` (Jobs, beat PeriodicTasks
and audit rows in a few statements, one beat change notice); edits of many
jobs through ``jobs_update_bulk`` (``job_update``'s checks, audit and beat
sync, in bulk). Pauses, resumes, secrets, calendars of existing jobs, run-after
links and deletes go through their per-job services (``job_pause``,
``job_resume``, ``job_set_secrets``, ``job_set_calendars``,
``job_set_run_after`` — which refuses cycles —, ``job_delete``).
"""
from __future__ import annotations

import inspect
import re

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from jobsite.crypto import secrets_decrypt
from jobsite.models import Organization
from jobsite.tenancy import user_default_organization
from scheduling.beat import job_next_runs, job_schedule
from scheduling.kinds import internal_kinds, is_internal_kind
from scheduling.models import Calendar, ConcurrencyGroup, Job, JobDependency
from scheduling.services import jobs_bulk
from scheduling.services.apply import (
    Change, Context, DocumentError, ManifestError, Section, errors_from, register_section, secret_refs_resolve,
    secrets_diff,
)
from scheduling.services.calendars import job_set_calendars
from scheduling.services.dependencies import job_set_run_after
from scheduling.services.jobs import (
    job_create, job_delete, job_pause, job_resume, job_set_secrets, jobs_build, jobs_update_bulk,
)

SECTION = "jobs"
BATCH = jobs_bulk.BATCH

#: Service (model) field → the file's (the API's) name.
FILE_NAMES = {"queue": "task_queue", "priority": "task_priority", "timeout_seconds": "timeout"}
#: The fields a document sets, in the order export writes them (model names).
FIELDS = (
    "name", "title", "description", "kind", "job_type", "schedule_type", "schedule_expression", "timezone",
    "task_name", "task_args", "task_kwargs", "config", "queue", "priority", "timeout_seconds", "max_retries",
    "retry_backoff_seconds", "overlap_policy", "catch_up_policy", "jitter_seconds", "max_concurrent_runs",
    "concurrency_group", "is_enabled",
)
#: What a create gives a field the document leaves out: job_create's own defaults.
DEFAULTS = {
    name: param.default for name, param in inspect.signature(job_create).parameters.items()
    if name in FIELDS and param.default is not inspect.Parameter.empty
}
DEFAULTS.update(task_args=[], task_kwargs={}, config={})
_UPDATE_ERROR = re.compile(r"^updates\[(\d+)\]\.(.*)$")


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
    values = {f: getattr(job, f) for f in FIELDS if f != "concurrency_group"}
    values["concurrency_group"] = job.concurrency_group.name if job.concurrency_group_id else None
    values["status"] = job.status
    values["organization"] = job.organization_id
    return values


def _links_shown(links) -> list[str]:
    """Run-after links as the plan and the audit show them: "upstream (condition)"."""
    return [f"{name} ({condition})" for name, condition in sorted(links)]


# ---------------------------------------------------------------------------
# Plan
# ---------------------------------------------------------------------------
def _plan(documents: list[tuple[int, dict]], context: Context) -> list[Change]:
    names = [doc["name"] for _, doc in documents]
    existing = {job.name: job for job in Job.objects.filter(name__in=names).select_related("concurrency_group")
                } if names else {}
    # The stored jobs' calendars and run-after links as names, a query each (prefetching them as objects
    # cost more than the rest of the plan of a 10,000-job file).
    stored_calendars: dict[int, list[str]] = {}
    stored_links: dict[int, list[tuple[str, str]]] = {}
    if existing:
        for job_id, calendar in Calendar.jobs.through.objects.filter(job__name__in=names).values_list(
                "job_id", "calendar__name"):
            stored_calendars.setdefault(job_id, []).append(calendar)
        for job_id, upstream, condition in JobDependency.objects.filter(downstream__name__in=names).values_list(
                "downstream_id", "upstream__name", "condition"):
            stored_links.setdefault(job_id, []).append((upstream, condition))
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
        calendars = sorted(doc.get("calendars", []))
        run_after = sorted((item["job"], item["condition"]) for item in doc.get("run_after", []))
        if job is None:
            if is_internal_kind(wanted["kind"]):
                errors.append(DocumentError(SECTION, index, name, "kind",
                                            f"Jobs of kind '{wanted['kind']}' are internal: their app creates them."))
            changes.append(Change(SECTION, "create", name, document=doc, index=index,
                                  values={**wanted, "secrets": secrets or {}, "calendars": calendars,
                                          "run_after": run_after}))
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
        skips = sorted(stored_calendars.get(job.pk, []))
        if calendars != skips:
            diff["calendars"] = [skips, calendars]
        links = sorted(stored_links.get(job.pk, []))
        if run_after != links:
            diff["run_after"] = [_links_shown(links), _links_shown(run_after)]
        if diff:
            changes.append(Change(SECTION, "update", name, fields=diff, document=doc, index=index, obj=job,
                                  values={**wanted, "secrets": secrets, "calendars": calendars,
                                          "run_after": run_after}))
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
def _by(context: Context) -> dict:
    return {"actor": context.actor if getattr(context.actor, "pk", None) else None, "actor_label": context.actor_label}


def _apply(changes: list[Change], context: Context) -> None:
    errors: list[DocumentError] = []
    for change in changes:
        if change.action == "delete":
            job_delete(job=change.obj, **_by(context))
    writes = [c for c in changes if c.action != "delete"]
    if not writes:
        return
    group_names = {c.values["concurrency_group"] for c in writes if c.values.get("concurrency_group")}
    groups = {g.name: g for g in ConcurrencyGroup.objects.filter(name__in=group_names)} if group_names else {}
    for change in writes:
        group = change.values.get("concurrency_group")
        if group and group not in groups:
            errors.append(DocumentError(SECTION, change.index, change.name, "concurrency_group",
                                        f"No concurrency group named '{group}' (list it under concurrency_groups: "
                                        f"or create it first)."))
    if errors:
        raise ManifestError(errors)
    creates = [c for c in writes if c.action == "create"]
    updates = [c for c in writes if c.action == "update"]
    if creates:
        errors.extend(_create_bulk(creates, context, groups))
    if updates and not errors:
        errors.extend(_update_bulk(updates, context, groups))
    if not errors:
        errors.extend(_run_after_set(writes, context))
    if errors:
        raise ManifestError(errors)


def _job_values(change: Change, groups: dict) -> dict:
    values = {f: change.values[f] for f in FIELDS}
    values["concurrency_group"] = groups.get(values["concurrency_group"]) if values["concurrency_group"] else None
    return values


def _create_bulk(changes: list[Change], context: Context, groups: dict) -> list[DocumentError]:
    """Validate every new job as job_create does (``jobs_build``), then insert
    them, their beat entries and their audit rows in a few statements."""
    organizations = {o.pk: o for o in Organization.objects.filter(
        pk__in={c.values["organization"] for c in changes if c.values["organization"]})}
    calendars = {c.name: c for c in Calendar.objects.filter(
        name__in={name for c in changes for name in c.values["calendars"]})}
    errors = []
    for change in changes:
        missing = sorted(set(change.values["calendars"]) - set(calendars))
        if missing:
            errors.append(DocumentError(SECTION, change.index, change.name, "calendars",
                                        f"No calendar named {', '.join(repr(n) for n in missing)}."))
    actor = context.actor if getattr(context.actor, "is_authenticated", False) else None
    specs = [{**_job_values(c, groups), "status": c.values["status"], "secrets": c.values["secrets"], "owner": actor,
              "organization": organizations.get(c.values["organization"])} for c in changes]
    jobs, problems = jobs_build(specs, actor=actor)
    for index, exc in sorted(problems.items()):
        change = changes[index]
        errors.extend(errors_from(exc, section=SECTION, index=change.index, name=change.name))
    if errors:
        return errors
    try:
        with transaction.atomic():
            jobs_bulk.jobs_insert(jobs, **_by(context))
    except IntegrityError:  # a job of one of these names was created since the plan was made
        taken = set(Job.objects.filter(name__in=[job.name for job in jobs]).values_list("name", flat=True))
        return [DocumentError(SECTION, c.index, c.name, "name", "A job of this name was created meanwhile; apply "
                              "the file again.") for c in changes if c.name in taken] or [
            DocumentError(SECTION, None, "", "", "The jobs could not be created; apply the file again.")]
    for job, change in zip(jobs, changes):
        change.obj = job
    _calendars_link(jobs, changes, calendars)
    return []


def _calendars_link(jobs: list[Job], changes: list[Change], calendars: dict) -> None:
    """New jobs' calendars: the links in one insert, and ``next_run_at`` moved past them (as job_set_calendars)."""
    listed = [(job, [calendars[name] for name in change.values["calendars"]])
              for job, change in zip(jobs, changes) if change.values["calendars"]]
    if not listed:
        return
    Calendar.jobs.through.objects.bulk_create(
        [Calendar.jobs.through(calendar_id=calendar.pk, job_id=job.pk) for job, skips in listed for calendar in skips],
        batch_size=BATCH)
    for job, skips in listed:
        job._skip_calendars = skips
        runs = job_next_runs(job, 1)
        job.next_run_at = runs[0] if runs else None
    Job.objects.bulk_update([job for job, _ in listed], ["next_run_at"], batch_size=BATCH)


def _update_bulk(changes: list[Change], context: Context, groups: dict) -> list[DocumentError]:
    """Field edits of every changed job in one ``jobs_update_bulk``; then, per
    job, what has a service of its own (secrets, calendars, pause/resume)."""
    by = _by(context)
    edits = []
    for change in changes:
        values = _job_values(change, groups)
        if "organization" in change.values:
            values["organization"] = Organization.objects.filter(pk=change.values["organization"]).first()
        changed = {f for f in (*FIELDS, "organization") if file_name(f) in change.fields}
        data = {f: v for f, v in values.items() if f in changed and f in Job.EDITABLE_FIELDS}
        if data:
            edits.append((change, data))
    errors: list[DocumentError] = []
    if edits:
        try:
            updated = jobs_update_bulk(updates=[(change.obj, data) for change, data in edits], **by)
        except ValidationError as exc:
            for key, messages in exc.message_dict.items():
                match = _UPDATE_ERROR.match(key)
                change = edits[int(match.group(1))][0] if match else None
                errors.extend(DocumentError(SECTION, change.index if change else None, change.name if change else "",
                                            match.group(2) if match else key, message) for message in messages)
            return errors
        for (change, _), job in zip(edits, updated):
            change.obj = job
    for change in changes:
        job, values = change.obj, change.values
        try:
            if values["secrets"] is not None and "secrets" in change.fields:
                job = job_set_secrets(job=job, secrets=values["secrets"], **by)
            if "calendars" in change.fields:
                job = job_set_calendars(job=job, names=values["calendars"], **by)
            if "status" in change.fields:
                job = (job_pause if values["status"] == Job.Status.PAUSED else job_resume)(job=job, **by)
        except ValidationError as exc:
            errors.extend(errors_from(exc, section=SECTION, index=change.index, name=change.name))
        change.obj = job
    return errors


def _run_after_set(changes: list[Change], context: Context) -> list[DocumentError]:
    """The run-after links that change, through ``job_set_run_after`` (which
    refuses a cycle, naming it), once every job of the file exists."""
    todo = [c for c in changes if (c.action == "create" and c.values["run_after"]) or "run_after" in c.fields]
    if not todo:
        return []
    names = {name for c in todo for name, _ in c.values["run_after"]}
    upstream_jobs = {job.name: job for job in Job.objects.filter(name__in=names)}
    errors = []
    for change in todo:
        missing = [(i, name) for i, (name, _) in enumerate(change.values["run_after"]) if name not in upstream_jobs]
        if missing:
            errors.extend(DocumentError(SECTION, change.index, change.name, f"run_after[{i}].job",
                                        f"No job named '{name}'.") for i, name in missing)
            continue
        try:
            job_set_run_after(job=change.obj, upstreams=[(upstream_jobs[name], condition)
                                                         for name, condition in change.values["run_after"]],
                              **_by(context))
        except ValidationError as exc:
            errors.extend(errors_from(exc, section=SECTION, index=change.index, name=change.name))
    return errors


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------
def _export(kinds: list[str] | None) -> list[dict]:
    jobs = (Job.objects.exclude(kind__in=internal_kinds()).select_related("organization", "concurrency_group")
            .prefetch_related("calendars", "upstream_links__upstream").order_by("name"))
    if kinds:
        jobs = jobs.filter(kind__in=kinds)
    out = []
    now = timezone.now()
    for job in jobs:
        if job.schedule_type == Job.ScheduleType.ONCE and not _once_ahead(job, now):
            continue  # a one-off whose time has passed cannot be created again (the API refuses it too)
        doc = {}
        for f in FIELDS:
            value = getattr(job, f) if f != "concurrency_group" else (
                job.concurrency_group.name if job.concurrency_group_id else None)
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
        links = sorted((link.upstream.name, link.condition) for link in job.upstream_links.all())
        if links:
            doc["run_after"] = [{"job": name, "condition": condition} for name, condition in links]
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
