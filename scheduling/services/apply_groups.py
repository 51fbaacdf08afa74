"""The ``concurrency_groups`` section of a jobs-as-code file
(scheduling.services.apply): keyed by name, applied before the jobs that name
them (``concurrency_group:``). Writes go through ``concurrency_group_set``
(scheduling.services.limits), audited like every other change. A group is
never deleted by ``--prune``: runs of jobs outside the file may still count
against it, and the services offer no delete."""
from __future__ import annotations

from scheduling.code_serializers import ManifestConcurrencyGroupSerializer
from scheduling.models import ConcurrencyGroup
from scheduling.services.apply import Change, Context, Section, apply_each, register_section
from scheduling.services.limits import concurrency_group_set

SECTION = "concurrency_groups"
FIELDS = ("max_runs", "description")


def _plan(documents: list[tuple[int, dict]], context: Context) -> list[Change]:
    names = [doc["name"] for _, doc in documents]
    existing = {g.name: g for g in ConcurrencyGroup.objects.filter(name__in=names)} if names else {}
    changes = []
    for index, doc in documents:
        # description left out: kept (concurrency_group_set keeps one it is given empty)
        wanted = {"max_runs": doc["max_runs"], **({"description": doc["description"]} if "description" in doc else {})}
        group = existing.get(doc["name"])
        if group is None:
            changes.append(Change(SECTION, "create", doc["name"], document=doc, index=index, values=wanted))
            continue
        diff = {f: [getattr(group, f), v] for f, v in wanted.items() if getattr(group, f) != v}
        if diff:
            changes.append(Change(SECTION, "update", doc["name"], fields=diff, document=doc, index=index, obj=group,
                                  values=wanted))
    return changes


def _apply(changes: list[Change], context: Context) -> None:
    by = {"actor": context.actor if getattr(context.actor, "pk", None) else None, "actor_label": context.actor_label}
    # a delete is never planned (see the module's docstring)
    apply_each([c for c in changes if c.action != "delete"], section=SECTION,
               write=lambda change: concurrency_group_set(name=change.name, **change.values, **by))


def _export(kinds: list[str] | None) -> list[dict]:
    out = []
    for group in ConcurrencyGroup.objects.order_by("name"):
        doc = {"name": group.name, "max_runs": group.max_runs}
        if group.description:
            doc["description"] = group.description
        out.append(doc)
    return out


register_section(Section(name=SECTION, key="name", order=3, plan=_plan, apply=_apply, export=_export,
                         serializer=ManifestConcurrencyGroupSerializer))
