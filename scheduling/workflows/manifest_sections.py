"""The ``workflows`` section of a jobs-as-code file (scheduling.services.apply).

Found by ``autodiscover_modules("manifest_sections")``, so the core never
imports this package. A document is the body of ``POST /api/workflows/``
(keyed by ``id``) with ``secrets`` as references (``{NAME: {from_env: VAR}}``),
never values. Workflows are applied before jobs, so a job in the same file
may run a workflow the file creates; they are deleted (``--prune``) after
the jobs that use them. Writes go through the workflow services.
"""
from __future__ import annotations

from jobsite.crypto import secrets_decrypt
from scheduling.code_serializers import SecretRefsField
from scheduling.serializers import StrictInputSerializer
from scheduling.services.apply import (
    Change, Context, DocumentError, ManifestError, Section, apply_each, errors_from, register_section,
    secret_refs_resolve, secrets_diff,
)
from scheduling.services.apply_jobs import secret_env_name
from scheduling.workflows import services
from scheduling.workflows.models import Workflow
from scheduling.workflows.serializers import WorkflowCreateSerializer

SECTION = "workflows"
FIELDS = ("name", "description", "steps", "enabled", "shared_with_organization")
DEFAULTS = {"description": "", "enabled": True, "shared_with_organization": False}


class ManifestWorkflowSerializer(StrictInputSerializer, WorkflowCreateSerializer):
    """A workflow document: the create body, secrets by reference."""

    read_only_keys = frozenset({"owner", "organization_id", "created_at", "updated_at"})
    secrets = SecretRefsField(required=False)


def _plan(documents: list[tuple[int, dict]], context: Context) -> list[Change]:
    ids = [doc["id"] for _, doc in documents]
    existing = Workflow.objects.in_bulk(ids) if ids else {}
    changes, errors = [], []
    for index, doc in documents:
        key = doc["id"]
        workflow = existing.get(key)
        wanted = {f: doc.get(f, DEFAULTS.get(f)) for f in FIELDS}
        stored = secrets_decrypt(workflow.secrets) if workflow is not None else {}
        secrets, problems = secret_refs_resolve(doc.get("secrets"), stored=stored, env=context.env,
                                                section=SECTION, index=index, name=key)
        errors.extend(problems)
        if workflow is None:
            changes.append(Change(SECTION, "create", key, document=doc, index=index,
                                  values={**wanted, "secrets": secrets or {}}))
            continue
        try:  # compared as stored: the services normalise steps
            wanted["steps"] = services.workflow_steps_check(steps=wanted["steps"], owner=context.actor,
                                                            workflow=workflow, secret_names=set(secrets or stored))
        except Exception as exc:  # noqa: BLE001 - errors_from re-raises what is not a service error
            errors.extend(errors_from(exc, section=SECTION, index=index, name=key))
            continue
        diff = {f: [getattr(workflow, f), v] for f, v in wanted.items() if getattr(workflow, f) != v}
        secrets_change = secrets_diff(stored, secrets)
        if secrets_change:
            diff["secrets"] = secrets_change
        if diff:
            changes.append(Change(SECTION, "update", key, fields=diff, document=doc, index=index, obj=workflow,
                                  values={**{f: wanted[f] for f in diff if f in wanted},
                                          **({"secrets": secrets} if "secrets" in diff else {})}))
    if context.prune and not context.kinds:
        for workflow in Workflow.objects.exclude(pk__in=ids).order_by("id"):
            changes.append(Change(SECTION, "delete", workflow.pk, obj=workflow))
    if errors:
        raise ManifestError(errors)
    return changes


def _apply(changes: list[Change], context: Context) -> None:
    by = {"actor": context.actor if getattr(context.actor, "pk", None) else None, "actor_label": context.actor_label}

    def write(change: Change) -> None:
        if change.action == "create":
            services.workflow_create(id=change.name, **by, **change.values)
        elif change.action == "update":
            services.workflow_update(workflow=change.obj, data=change.values, **by)
        else:
            services.workflow_delete(workflow=change.obj, **by)

    apply_each(changes, section=SECTION, write=write)


def _export(kinds: list[str] | None) -> list[dict]:
    out = []
    for workflow in Workflow.objects.order_by("id"):
        doc = {"id": workflow.pk, "name": workflow.name}
        for f in FIELDS[1:]:
            value = getattr(workflow, f)
            if f not in DEFAULTS or value != DEFAULTS[f]:
                doc[f] = value
        names = sorted(secrets_decrypt(workflow.secrets))
        if names:
            doc["secrets"] = {key: {"from_env": secret_env_name(f"workflow_{workflow.pk}", key)} for key in names}
        out.append(doc)
    return out


register_section(Section(name=SECTION, key="id", order=10, plan=_plan, apply=_apply, export=_export,
                         serializer=ManifestWorkflowSerializer))
