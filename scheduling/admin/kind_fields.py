"""The job form's fields of one kind, where a kind keeps its settings in
``Job.config`` / ``task_kwargs`` / the job's secrets: real fields instead of
raw JSON boxes.

- ``workflow`` (workflow schedules): the workflow as a select of those the
  user may use, and the input as a text box (JSON pretty-printed);
- ``vision_analysis`` (vision cron jobs): the external API's settings as
  fields, read from the kind's own config serializer (the one the API
  validates with, so its messages land on the field at fault), and its keys
  write-only: never shown back, blank keeps the stored one.

Each spec turns its fields into the job's ``config``/``task_kwargs`` (and
secrets) and back; the services validate the result (``job_validate``) as
for any other job.
"""
from __future__ import annotations

import json
from typing import Any

from django import forms
from rest_framework import serializers

from scheduling.executors import executor_for
from scheduling.models import Job

PRETTY = {"indent": 2, "ensure_ascii": False}


class KindFields:
    """One kind's fields on the job form."""

    kind: str = ""
    title: str = ""
    #: The Job columns these fields stand for (left out of the form for this kind).
    replaces: tuple[str, ...] = ()

    def fields(self, *, job: Job | None, user) -> dict[str, forms.Field]:
        raise NotImplementedError

    def names(self) -> list[str]:
        """The names of ``fields`` (for the admin's fieldsets), without making them."""
        raise NotImplementedError

    def initial(self, job: Job) -> dict[str, Any]:
        return {}

    def apply(self, form, cleaned: dict) -> None:
        """Write the kind's fields into ``cleaned`` (config, task_kwargs ...),
        adding errors to ``form`` where a value is refused."""

    def secrets(self, cleaned: dict) -> dict[str, str]:
        """Credentials to store (only those typed in: blank keeps the stored one)."""
        return {}


def pretty_input(text: str) -> str:
    """A workflow input shown pretty when it is JSON (else as it is)."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return text or ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, **PRETTY)
    return text


class WorkflowFields(KindFields):
    kind = "workflow"
    title = "Workflow"
    replaces = ("task_name", "task_args", "task_kwargs", "config")

    def fields(self, *, job, user):
        from scheduling.workflows.selectors import workflow_list, workflow_usable_by

        usable = [w for w in workflow_list(user=user) if workflow_usable_by(w, user)]
        choices = [("", "---------")] + [(w.pk, f"{w.name} ({w.pk})" if w.name != w.pk else w.pk) for w in usable]
        current = (job.config or {}).get("workflow_id") if job is not None else None
        if current and current not in {w.pk for w in usable}:
            choices.append((current, f"{current} (not one you may use)"))
        return {
            "workflow": forms.ChoiceField(
                required=False, choices=choices, label="Workflow",
                help_text="The workflow this schedule runs: yours, or one shared with your organization."),
            "workflow_input": forms.CharField(
                required=False, strip=False, label="Input",
                widget=forms.Textarea(attrs={"rows": 6, "class": "ops-json", "spellcheck": "false"}),
                help_text="Given to the workflow's steps as {{input}}; JSON is shown pretty."),
        }

    def names(self):
        return ["workflow", "workflow_input"]

    def initial(self, job):
        return {"workflow": (job.config or {}).get("workflow_id", ""),
                "workflow_input": pretty_input((job.task_kwargs or {}).get("input", ""))}

    def apply(self, form, cleaned):
        from scheduling.workflows.selectors import user_seed_id

        workflow_id = cleaned.get("workflow")
        if not workflow_id:
            form.add_error("workflow", "Choose the workflow this schedule runs.")
            return
        job = form.instance
        config = dict(job.config or {}) if job.pk else {}
        config["workflow_id"] = workflow_id
        config.setdefault("job_id", cleaned.get("name") or job.name)
        owner = job.owner if job.pk and job.owner_id else form.user
        config.setdefault("user_id", user_seed_id(owner) if owner is not None else "")
        cleaned["config"] = config
        cleaned["task_kwargs"] = {"input": cleaned.get("workflow_input") or ""}
        cleaned["task_name"], cleaned["task_args"] = "", []


def _form_field(field: serializers.Field) -> forms.Field:
    """A form field for one field of a kind's config serializer."""
    common = {"required": False, "label": field.label or field.field_name.replace("_", " ").capitalize(),
              "help_text": field.help_text or ""}
    if isinstance(field, serializers.URLField):
        return forms.URLField(max_length=field.max_length, assume_scheme="https", **common)
    if isinstance(field, serializers.IntegerField):
        return forms.IntegerField(min_value=field.min_value, max_value=field.max_value, **common)
    if isinstance(field, serializers.BooleanField):
        return forms.BooleanField(**common)
    return forms.CharField(max_length=getattr(field, "max_length", None), **common)


class VisionFields(KindFields):
    kind = "vision_analysis"
    title = "External API"
    replaces = ("task_name", "task_args", "task_kwargs", "config")
    PREFIX = "cfg_"
    LABELS = {
        "external_api_get_url": ("Analyses URL (GET)", "Where the unprocessed analyses are fetched from."),
        "external_api_post_url": ("Results URL (POST)", "Where each analysis's report is posted."),
        "backend_api_url": ("Batch backend URL", "The batch API the analyses are run through."),
        "organization_id": ("Organization id", "The organization's id in the document API."),
        "analyzer": ("Analyzer", "How each image is analysed."),
        "analysis_timeout_seconds": ("Analysis timeout (seconds)", "How long one analysis may take."),
        "page_size": ("Page size", "Analyses fetched per request."),
    }
    #: secret name → (label, required when the job has none yet)
    SECRETS = {"external_api_key": ("External API key", True), "backend_api_key": ("Backend API key", False)}

    def _serializer(self):
        return executor_for(self.kind).config_serializer()

    def fields(self, *, job, user):
        from vision_pipeline import analyzers

        fields: dict[str, forms.Field] = {}
        for name, field in self._serializer().fields.items():
            form_field = _form_field(field)
            if name == "analyzer":
                form_field = forms.ChoiceField(choices=[(n, n) for n in analyzers.names()], required=False,
                                               label="Analyzer", initial=analyzers.DEFAULT,
                                               help_text="How each image is analysed.")
            label, help_text = self.LABELS.get(name, (form_field.label, form_field.help_text))
            form_field.label, form_field.help_text = label, help_text
            if isinstance(form_field, forms.URLField):
                form_field.widget.attrs["class"] = "vTextField ops-wide"
            if field.required:
                form_field.required = job is not None  # the add page has every kind's fields: checked in apply
            elif field.default is not serializers.empty:
                form_field.help_text = (form_field.help_text + f" Default: {field.default}.").strip()
            fields[self.PREFIX + name] = form_field
        stored = set()
        if job is not None and job.pk:
            from scheduling.services import job_secrets

            stored = {name for name, value in job_secrets(job).items() if value}
        for name, (label, required) in self.SECRETS.items():
            hint = ("Stored; blank keeps it. Type a new one to replace it." if name in stored
                    else ("Required." if required else "Optional."))
            fields["secret_" + name] = forms.CharField(
                required=False, label=label, strip=True, help_text=f"Write-only: never shown. {hint}",
                widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}))
        return fields

    def names(self):
        return [self.PREFIX + name for name in self._serializer().fields] + ["secret_" + name for name in self.SECRETS]

    def initial(self, job):
        return {self.PREFIX + name: value for name, value in (job.config or {}).items()}

    def apply(self, form, cleaned):
        data = {name: cleaned.get(self.PREFIX + name) for name in self._serializer().fields}
        data = {name: value for name, value in data.items() if value not in (None, "")}
        serializer = executor_for(self.kind).config_serializer(data=data)
        if not serializer.is_valid():
            for name, messages in serializer.errors.items():
                field = self.PREFIX + name if self.PREFIX + name in form.fields else None
                form.add_error(field, [str(m) for m in messages] if field else
                               [f"{name}: {m}" for m in messages])
            return
        cleaned["config"] = {name: value for name, value in serializer.validated_data.items()}
        cleaned["task_name"], cleaned["task_args"], cleaned["task_kwargs"] = "", [], {}
        if not form.instance.pk:
            for name, (label, required) in self.SECRETS.items():
                if required and not cleaned.get("secret_" + name):
                    form.add_error("secret_" + name, f"{label} is required.")

    def secrets(self, cleaned):
        return {name: cleaned["secret_" + name] for name in self.SECRETS if cleaned.get("secret_" + name)}


SPECS: dict[str, KindFields] = {spec.kind: spec for spec in (WorkflowFields(), VisionFields())}


def kind_fields_for(kind: str) -> KindFields | None:
    return SPECS.get(kind)
