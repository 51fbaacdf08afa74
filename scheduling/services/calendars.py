"""Calendars: create, change, delete, and which jobs skip them (scheduling.calendars says what is inside)."""
from __future__ import annotations

from datetime import date
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from jobsite.exceptions import Conflict
from jobsite.tenancy import user_default_organization
from scheduling import audit
from scheduling.beat.preview import job_next_runs
from scheduling.calendars import FLAG, calendar_check
from scheduling.models import Calendar, Job

#: What calendar_update may change (and export writes, with the name).
CALENDAR_FIELDS = ("description", "timezone", "dates", "date_ranges", "weekly_windows", "holidays_country",
                   "holidays_subdivision", "ical")
DEFAULTS = {"description": "", "timezone": "UTC", "dates": [], "date_ranges": [], "weekly_windows": [],
            "holidays_country": "", "holidays_subdivision": "", "ical": ""}


def _snapshot(calendar: Calendar) -> dict[str, Any]:
    values = {f: getattr(calendar, f) for f in ("name", *CALENDAR_FIELDS)}
    values["ical"] = f"{len(calendar.ical)} characters" if calendar.ical else ""
    return values


def _validate(calendar: Calendar) -> None:
    errors = {}
    if not isinstance(calendar.name, str) or not calendar.name.strip() or len(calendar.name) > 200:
        errors["name"] = ["Give a name of 1-200 characters."]
    try:
        calendar_check(**{f: getattr(calendar, f) for f in CALENDAR_FIELDS if f != "description"})
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    calendar.dates, calendar.date_ranges = calendar_days_normal(calendar.dates, calendar.date_ranges)


def calendar_days_normal(dates: list, date_ranges: list) -> tuple[list, list]:
    """Dates and ranges as stored: YYYY-MM-DD whatever ISO form was given (20261224 too; the
    checks compare them as text), the dates sorted and once each. Values that are not dates
    are left as they are (the checks name them)."""
    try:
        dates = sorted({date.fromisoformat(str(d)).isoformat() for d in dates})
    except (ValueError, TypeError):
        pass
    try:
        date_ranges = [{"start": date.fromisoformat(str(r["start"])).isoformat(),
                        "end": date.fromisoformat(str(r["end"])).isoformat()} for r in date_ranges]
    except (ValueError, TypeError, KeyError):
        pass
    return dates, date_ranges


def _save(calendar: Calendar) -> None:
    try:
        with transaction.atomic():
            calendar.save()
    except IntegrityError:
        raise Conflict(f"A calendar named '{calendar.name}' already exists.") from None


@transaction.atomic
def calendar_create(*, name: str, actor=None, actor_label: str = "", organization=None, **values) -> Calendar:
    unknown = sorted(set(values) - set(CALENDAR_FIELDS))
    if unknown:
        raise ValidationError({field: ["Unknown field."] for field in unknown})
    owner = actor if getattr(actor, "is_authenticated", False) else None
    calendar = Calendar(name=name, owner=owner, organization=organization or user_default_organization(owner),
                        **{**DEFAULTS, **values})
    _validate(calendar)
    _save(calendar)
    audit.record(actor=actor, actor_label=actor_label, action="create", obj=calendar, changes=_snapshot(calendar))
    return calendar


@transaction.atomic
def calendar_update(*, calendar: Calendar, data: dict[str, Any], actor=None, actor_label: str = "") -> Calendar:
    unknown = sorted(set(data) - {"name", *CALENDAR_FIELDS})
    if unknown:
        raise ValidationError({field: ["This field cannot be changed."] for field in unknown})
    calendar = Calendar.objects.select_for_update().get(pk=calendar.pk)
    before = _snapshot(calendar)
    for field, value in data.items():
        setattr(calendar, field, value)
    _validate(calendar)
    _save(calendar)
    changes = audit.diff(before, _snapshot(calendar))
    if changes:
        audit.record(actor=actor, actor_label=actor_label, action="update", obj=calendar, changes=changes)
        _refresh_next_runs(list(calendar.jobs.all()))
    return calendar


@transaction.atomic
def calendar_delete(*, calendar: Calendar, actor=None, actor_label: str = "") -> None:
    audit.record(actor=actor, actor_label=actor_label, action="delete", obj=calendar, changes=_snapshot(calendar))
    jobs = list(calendar.jobs.all())
    calendar.delete()
    _refresh_next_runs(jobs)


@transaction.atomic
def job_set_calendars(*, job: Job, names: list[str], actor=None, actor_label: str = "") -> Job:
    """The calendars whose days and hours ``job`` skips, by name (replaces the list)."""
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValidationError({"calendars": ["Must be a list of calendar names."]})
    calendars = list(Calendar.objects.filter(name__in=names))
    missing = sorted(set(names) - {c.name for c in calendars})
    if missing:
        raise ValidationError({"calendars": [f"No calendar named {', '.join(repr(n) for n in missing)}."]})
    before = sorted(job.calendars.values_list("name", flat=True))
    if before != sorted(names):
        job.calendars.set(calendars)
        job._skip_calendars = None
        _refresh_next_runs([job])
        audit.record(actor=actor, actor_label=actor_label, action="update", obj=job,
                     changes={"calendars": [before, sorted(names)]})
    return job


def _refresh_next_runs(jobs: list[Job]) -> None:
    """``next_run_at`` of ``jobs`` as beat will now fire them: their calendars
    changed, so a stored next run may fall inside one (or no longer need to
    be moved past one)."""
    for job in jobs:
        job._skip_calendars = None
        job.__dict__.pop(FLAG, None)
        runs = job_next_runs(job, 1)
        job.next_run_at = runs[0] if runs else None
        Job.objects.filter(pk=job.pk).update(next_run_at=job.next_run_at)
