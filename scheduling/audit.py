"""The audit log: who changed which job or execution, when, and what changed."""
from __future__ import annotations

from typing import Any

from jobsite.db import create_row
from scheduling.models import AuditLog, Job


def job_snapshot(job) -> dict[str, Any]:
    """Every field a person can change, plus kind and status (secrets are
    recorded by key only, by job_set_secrets)."""
    fields = ("kind", *Job.EDITABLE_FIELDS, "status")
    # attname: a related object is recorded by its primary key, without a query
    return {field: getattr(job, Job._meta.get_field(field).attname) for field in fields}


def diff(before: dict, after: dict) -> dict[str, list]:
    return {key: [before.get(key), value] for key, value in after.items() if before.get(key) != value}


def record(*, actor=None, actor_label: str = "", action: str, obj, changes: dict | None = None) -> AuditLog:
    # AuditLog.objects.create without compiling the INSERT each time
    return create_row(AuditLog, **entry(actor=actor, actor_label=actor_label, action=action, obj=obj, changes=changes))


def entry(*, actor=None, actor_label: str = "", action: str, obj, changes: dict | None = None) -> dict[str, Any]:
    """The field values of the AuditLog row ``record`` writes."""
    label = actor_label or (getattr(actor, "username", "") if getattr(actor, "is_authenticated", False) else "") or "system"
    return {
        "actor": actor if getattr(actor, "is_authenticated", False) else None,
        "actor_label": label[:150],
        "action": action,
        "object_type": obj._meta.model_name,
        "object_id": str(obj.pk),
        "object_repr": str(obj)[:255],
        "changes": _json_safe(changes or {}),
    }


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
