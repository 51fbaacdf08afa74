"""Jobs as code: plan and apply a manifest, and export one.

A manifest holds sections of documents keyed by name: ``concurrency_groups``,
``calendars`` and ``jobs`` (this core's, ``apply_groups``, ``apply_calendars``
and ``apply_jobs``, registered by scheduling/manifest_sections.py) and whatever other apps register
(``workflows``, from ``scheduling/workflows/manifest_sections.py``, found by
``autodiscover_modules("manifest_sections")`` so the core imports no facade).
``scheduling.manifest`` reads the file (size cap, no YAML aliases, the API's
serializers per document) and hands the validated documents here.

``manifest_apply`` works out the plan (create; update with a field-by-field
diff; delete with ``prune``), then applies it in one transaction: sections in
their order (groups, calendars and workflows before the jobs that use them),
deletes in reverse. Every section's changes are audited with the actor and
"(apply)" (``apply_label``).
Every document is validated by the services the API uses, and any error —
in any document — rolls everything back. A dry run is the same apply rolled
back, so it reports exactly the errors a real one would. Applying the same
file twice changes nothing the second time.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.module_loading import autodiscover_modules

from jobsite.exceptions import ApplicationError, django_validation_error_detail

#: The audit trail's label for changes made by an apply: "<who> (apply)".
APPLY_LABEL = "apply"


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------
@dataclass
class DocumentError:
    """One problem in one document: where (section, index, name) and which field."""

    section: str
    index: int | None
    name: str
    field: str
    message: str
    file: str = ""

    def __str__(self) -> str:
        where = f"{self.file}: " if self.file else ""
        if self.section:
            where += f"{self.section}[{self.index}]" if self.index is not None else self.section
            where += f" ({self.name})" if self.name else ""
            where += ": "
        return f"{where}{self.field + ': ' if self.field else ''}{self.message}"

    def as_dict(self) -> dict:
        return {"file": self.file, "section": self.section, "index": self.index, "name": self.name,
                "field": self.field, "message": self.message}


class ManifestError(ApplicationError):
    """The manifest cannot be applied; nothing was written. A 400 listing every problem."""

    def __init__(self, errors: list[DocumentError], *, file: str = ""):
        for error in errors:
            error.file = error.file or file
        self.errors = errors
        lines = [str(error) for error in errors[:50]]
        if len(errors) > 50:
            lines.append(f"... and {len(errors) - 50} more")
        count = f"{len(errors)} problem{'s' if len(errors) != 1 else ''}"
        super().__init__(f"The file cannot be applied ({count}; nothing was changed):\n" + "\n".join(lines),
                         status=400, extra={"errors": [error.as_dict() for error in errors]})


def errors_from(exc: Exception, *, section: str, index: int | None, name: str, prefix: str = "") -> list[DocumentError]:
    """A service's ValidationError / ApplicationError as DocumentErrors."""
    if isinstance(exc, ValidationError):
        detail = django_validation_error_detail(exc)
        if isinstance(detail, dict):
            return [DocumentError(section, index, name, prefix + key if key != "__all__" else prefix.rstrip("."), message)
                    for key, messages in detail.items() for message in messages]
        return [DocumentError(section, index, name, prefix.rstrip("."), message) for message in detail]
    if isinstance(exc, ApplicationError):
        return [DocumentError(section, index, name, prefix.rstrip("."), exc.message)]
    raise exc


def apply_each(changes: list[Change], *, section: str, write: Callable[[Change], Any]) -> None:
    """``write(change)`` for each change, in order, gathering every service
    refusal as a DocumentError of ``section``: one ManifestError naming them
    all (the apply's transaction then writes nothing)."""
    errors: list[DocumentError] = []
    for change in changes:
        try:
            write(change)
        except Exception as exc:  # noqa: BLE001 - errors_from re-raises what is not a service error
            errors.extend(errors_from(exc, section=section, index=change.index, name=change.name))
    if errors:
        raise ManifestError(errors)


# ---------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------
@dataclass
class Change:
    section: str
    action: str  # create | update | delete
    name: str
    fields: dict[str, list] = field(default_factory=dict)  # file field → [before, after]; secrets by name only
    document: dict | None = None  # the validated document (create, update)
    index: int | None = None
    obj: Any = None  # the stored object (update, delete)
    values: dict = field(default_factory=dict)  # what the section's apply writes

    def as_dict(self) -> dict:
        return {"section": self.section, "action": self.action, "name": self.name, "fields": self.fields}


@dataclass
class Plan:
    changes: list[Change]
    dry_run: bool = False
    applied: bool = False

    @property
    def summary(self) -> dict[str, int]:
        counts = {"create": 0, "update": 0, "delete": 0}
        for change in self.changes:
            counts[change.action] += 1
        return counts

    @property
    def is_empty(self) -> bool:
        return not self.changes

    def as_dict(self) -> dict:
        return {"dry_run": self.dry_run, "applied": self.applied, "summary": self.summary,
                "changes": [change.as_dict() for change in self.changes]}

    def lines(self) -> list[str]:
        """The plan as people read it: + create, ~ update (one line a field), - delete."""
        out = []
        for change in self.changes:
            singular = change.section.rstrip("s")
            if change.action == "create":
                out.append(f"+ create {singular} {change.name}")
            elif change.action == "delete":
                out.append(f"- delete {singular} {change.name}")
            else:
                out.append(f"~ update {singular} {change.name}")
                for key, (before, after) in change.fields.items():
                    out.append(f"    {key}: {_show(before)} -> {_show(after)}")
        summary = self.summary
        out.append(f"Plan: {summary['create']} to create, {summary['update']} to update, {summary['delete']} to delete."
                   if self.changes else "No changes: everything matches the file.")
        return out


def _show(value) -> str:
    import json

    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 120 else text[:117] + "..."


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------
@dataclass
class Context:
    actor: Any
    actor_label: str
    prune: bool
    kinds: list[str] | None
    env: Mapping[str, str]


@dataclass
class Section:
    """One kind of document. ``plan(documents, context) -> [Change]`` (documents
    are ``(index, validated dict)``), ``apply(changes, context)`` writes them,
    ``export(kinds) -> [dict]`` writes the documents back in the file's format.
    ``serializer`` validates one document (DRF, the API's own where one exists;
    the jobs section's is the face's, scheduling.manifest)."""

    name: str
    key: str
    order: int
    plan: Callable[[list[tuple[int, dict]], Context], list[Change]]
    apply: Callable[[list[Change], Context], None]
    export: Callable[[list[str] | None], list[dict]]
    serializer: Any = None


_SECTIONS: dict[str, Section] = {}
_discovered = False


def register_section(section: Section) -> Section:
    _SECTIONS[section.name] = section
    return section


def sections() -> list[Section]:
    """The registered sections in apply order (discovered on first use)."""
    global _discovered
    if not _discovered:
        _discovered = True
        autodiscover_modules("manifest_sections")  # the core's (scheduling/manifest_sections.py) and every app's
    return sorted(_SECTIONS.values(), key=lambda s: s.order)


def apply_label(actor, actor_label: str = "") -> str:
    who = actor_label or (getattr(actor, "username", "") if getattr(actor, "is_authenticated", False) else "") or "system"
    return f"{who} ({APPLY_LABEL})"


def secret_refs_resolve(refs: Mapping[str, Any] | None, *, stored: Mapping[str, str], env: Mapping[str, str],
                        section: str, index: int, name: str) -> tuple[dict[str, str] | None, list[DocumentError]]:
    """``secrets: {NAME: {from_env: VAR}}`` → values. An unset variable keeps
    the stored value of NAME; with none stored it is an error. ``None`` (no
    ``secrets`` in the document): keep what is stored."""
    if refs is None:
        return None, []
    values, errors = {}, []
    for key, ref in refs.items():
        var = ref.get("from_env") if isinstance(ref, Mapping) else None
        if var and var in env:
            values[key] = env[var]
        elif key in stored:
            values[key] = stored[key]
        else:
            errors.append(DocumentError(section, index, name, f"secrets.{key}",
                                        f"The environment variable {var} is not set and nothing is stored for "
                                        f"{key}: set {var} where the file is applied."))
    return values, errors


def secrets_diff(stored: Mapping[str, str], wanted: Mapping[str, str] | None) -> list | None:
    """The plan's ``secrets`` entry: [names before, names after], or
    ["changed", "changed"] for new values under the same names; never a value."""
    if wanted is None or dict(stored) == dict(wanted):
        return None
    if set(stored) != set(wanted):
        return [sorted(stored), sorted(wanted)]
    return ["changed", "changed"]


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------
class _DryRun(Exception):
    pass


def manifest_apply(
    *, documents: Mapping[str, list[tuple[int, dict]]], actor=None, actor_label: str = "", prune: bool = False,
    dry_run: bool = False, kinds: list[str] | None = None, env: Mapping[str, str] | None = None,
    on_plan: Callable[[Plan], None] | None = None, file: str = "",
) -> Plan:
    """Plan ``documents`` (section → [(index, validated document)]) against the
    database and apply the plan in one transaction; with ``dry_run`` roll it
    back (every check still runs). ``prune`` deletes what the file does not
    list (jobs of ``kinds`` only, when given; internal jobs never).
    ``on_plan`` sees the plan before anything is written. Raises ManifestError
    (nothing written, its errors naming ``file``) on any problem."""
    context = Context(actor=actor, actor_label=apply_label(actor, actor_label), prune=prune, kinds=kinds,
                      env=os.environ if env is None else env)
    plan = Plan(changes=[], dry_run=dry_run)
    try:
        with transaction.atomic():
            errors: list[DocumentError] = []
            per_section = []
            for section in sections():
                try:
                    changes = section.plan(list(documents.get(section.name, [])), context)
                except ManifestError as exc:
                    errors.extend(exc.errors)
                    continue
                per_section.append((section, changes))
            if errors:
                raise ManifestError(errors)
            ordered = [c for _, changes in per_section for c in changes if c.action != "delete"]
            ordered += [c for _, changes in reversed(per_section) for c in changes if c.action == "delete"]
            plan.changes = ordered
            if on_plan is not None:
                on_plan(plan)
            # deletes first, in reverse section order (jobs before the workflows they run)
            for section, changes in reversed(per_section):
                deletes = [c for c in changes if c.action == "delete"]
                if deletes:
                    section.apply(deletes, context)
            for section, changes in per_section:
                writes = [c for c in changes if c.action != "delete"]
                if writes:
                    section.apply(writes, context)
            if dry_run:
                raise _DryRun
    except _DryRun:
        return plan
    except ManifestError as exc:
        raise ManifestError(exc.errors, file=file) from None
    plan.applied = True
    return plan


def manifest_export(*, kinds: list[str] | None = None) -> dict[str, list[dict]]:
    """Every section's documents, in the file's format (``scheduling.manifest.dump`` writes them).
    With ``kinds``, only jobs of those kinds (and no other section)."""
    data: dict[str, list[dict]] = {}
    for section in sections():
        if kinds and section.name != "jobs":
            continue
        data[section.name] = section.export(kinds)
    return data
