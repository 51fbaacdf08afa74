"""The ``calendars`` section of a jobs-as-code file (scheduling.services.apply):
keyed by name, applied before the jobs that skip them, deleted (``--prune``)
after them. Writes go through scheduling.services.calendars."""
from __future__ import annotations

from scheduling.models import Calendar
from scheduling.services.apply import Change, Context, Section, apply_each, register_section
from scheduling.services.calendars import (
    CALENDAR_FIELDS, DEFAULTS, calendar_create, calendar_days_normal, calendar_delete, calendar_update,
)

SECTION = "calendars"


def _plan(documents: list[tuple[int, dict]], context: Context) -> list[Change]:
    names = [doc["name"] for _, doc in documents]
    existing = {c.name: c for c in Calendar.objects.filter(name__in=names)} if names else {}
    changes = []
    for index, doc in documents:
        wanted = {f: doc.get(f, DEFAULTS[f]) for f in CALENDAR_FIELDS}
        wanted["dates"], wanted["date_ranges"] = calendar_days_normal(wanted["dates"], wanted["date_ranges"])
        calendar = existing.get(doc["name"])
        if calendar is None:
            changes.append(Change(SECTION, "create", doc["name"], document=doc, index=index, values=wanted))
            continue
        diff = {f: [getattr(calendar, f), v] for f, v in wanted.items() if getattr(calendar, f) != v}
        if "ical" in diff:
            diff["ical"] = [f"{len(calendar.ical)} characters", f"{len(wanted['ical'])} characters"]
        if diff:
            changes.append(Change(SECTION, "update", doc["name"], fields=diff, document=doc, index=index,
                                  obj=calendar, values={f: wanted[f] for f in diff}))
    if context.prune and not context.kinds:
        for calendar in Calendar.objects.exclude(name__in=names).order_by("name"):
            changes.append(Change(SECTION, "delete", calendar.name, obj=calendar))
    return changes


def _apply(changes: list[Change], context: Context) -> None:
    by = {"actor": context.actor if getattr(context.actor, "pk", None) else None, "actor_label": context.actor_label}

    def write(change: Change) -> None:
        if change.action == "create":
            calendar_create(name=change.name, **by, **change.values)
        elif change.action == "update":
            calendar_update(calendar=change.obj, data=change.values, **by)
        else:
            calendar_delete(calendar=change.obj, **by)

    apply_each(changes, section=SECTION, write=write)


def _export(kinds: list[str] | None) -> list[dict]:
    out = []
    for calendar in Calendar.objects.order_by("name"):
        doc = {"name": calendar.name}
        doc.update({f: getattr(calendar, f) for f in CALENDAR_FIELDS if getattr(calendar, f) != DEFAULTS[f]})
        out.append(doc)
    return out


register_section(Section(name=SECTION, key="name", order=5, plan=_plan, apply=_apply, export=_export))
