"""The job form: choices for the task, queue and time zone, the fields of
the job's kind where a kind keeps its settings in config or secrets
(``kind_fields``: a workflow schedule's workflow and input, a vision cron
job's external API), and validation by the services' own rules
(``job_validate``), so a bad schedule, task or queue is a form error on the
right field instead of a failed save."""
from __future__ import annotations

import copy
import zoneinfo

from django import forms
from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from jobsite.exceptions import django_validation_error_detail
from scheduling import services
from scheduling.admin.kind_fields import SPECS, kind_fields_for
from scheduling.executors import DEFAULT_KIND, schedulable_tasks
from scheduling.models import Job


class ServiceCheckedChoiceField(forms.ChoiceField):
    """A select whose value the service validates (job_validate): its
    messages name the rule ("Unknown queue 'x'. Known: ..."), and a stored
    value that is no longer offered stays editable instead of blocking the
    whole form."""

    def valid_value(self, value):
        return True


def task_choices(current: str = "") -> list[tuple[str, str]]:
    choices = [("", "---------")]
    tasks = schedulable_tasks()
    choices += [(name, f"{name} — {task.description}" if task.description else name) for name, task in tasks.items()]
    if current and current not in tasks:
        choices.append((current, f"{current} (not a schedulable task)"))
    return choices


def queue_choices(current: str = "") -> list[tuple[str, str]]:
    choices = [(name, name) for name in settings.JOBS_QUEUES]
    if current and current not in settings.JOBS_QUEUES:
        choices.append((current, f"{current} (not in JOBS_QUEUES)"))
    return choices


def timezone_choices(current: str = "") -> list[tuple[str, str]]:
    names = sorted(zoneinfo.available_timezones() - {"UTC"})
    choices = [("UTC", "UTC")] + [(name, name) for name in names]
    if current and current != "UTC" and current not in names:
        choices.append((current, f"{current} (unknown)"))
    return choices


class JobAdminForm(forms.ModelForm):
    """Validates with the service's own rules, so a bad schedule, task or queue
    is a form error on the right field instead of a failed save.

    ``user`` (set by the admin) is who edits: the workflows offered are those
    they may use."""

    user = None

    task_name = ServiceCheckedChoiceField(required=False, help_text=Job._meta.get_field("task_name").help_text)
    queue = ServiceCheckedChoiceField(help_text=Job._meta.get_field("queue").help_text)
    timezone = ServiceCheckedChoiceField(help_text=Job._meta.get_field("timezone").help_text, initial="UTC")

    class Meta:
        model = Job
        exclude = ["secrets"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        instance = self.instance
        if "task_name" in self.fields:
            self.fields["task_name"].choices = task_choices(instance.task_name if instance.pk else "")
        self.fields["queue"].choices = queue_choices(instance.queue if instance.pk else "")
        self.fields["timezone"].choices = timezone_choices(instance.timezone if instance.pk else "")
        if "schedule_expression" in self.fields:
            self.fields["schedule_expression"].widget.attrs["autocomplete"] = "off"
        # A job's kind is fixed: its page has that kind's fields; the add page
        # has every kind's (job_form.js shows those of the kind chosen).
        specs = [kind_fields_for(instance.kind)] if instance.pk else list(SPECS.values())
        self.kind_specs = {spec.kind: spec for spec in specs if spec is not None}
        for spec in self.kind_specs.values():
            self.fields.update(spec.fields(job=instance if instance.pk else None, user=self.user))
            if instance.pk:
                self.initial.update(spec.initial(instance))
        self._stored = {field: copy.deepcopy(getattr(instance, field)) for field in Job.EDITABLE_FIELDS}
        # A setting with a model default may be left out of a POST (a script's, an older page's):
        # the job's own value stands (on a new job, the model default), as Django's
        # construct_instance keeps it for a field the data omits. Sent empty, it is still required.
        self.defaulted_fields = set()
        if self.is_bound:
            for name, field in self.fields.items():
                model_field = self._model_field(name)
                if (name not in self.declared_fields and model_field is not None and model_field.has_default()
                        and not isinstance(field, forms.BooleanField)
                        and field.widget.value_omitted_from_data(self.data, self.files, self.add_prefix(name))):
                    field.required = False
                    self.defaulted_fields.add(name)

    @staticmethod
    def _model_field(name: str):
        try:
            return Job._meta.get_field(name)
        except Exception:  # a kind's own field (kind_fields), not a column
            return None

    @property
    def kind(self) -> str:
        if self.instance.pk:
            return self.instance.kind
        return (getattr(self, "cleaned_data", None) or {}).get("kind") or self.data.get("kind") or DEFAULT_KIND

    @property
    def kind_spec(self):
        return self.kind_specs.get(self.kind)

    def clean(self):
        cleaned = super().clean()
        for name in self.defaulted_fields:  # left out of the POST: the job's own value
            cleaned[name] = copy.deepcopy(getattr(self.instance, name))
        for field, empty in (("task_args", list), ("task_kwargs", dict), ("config", dict)):
            if field in cleaned and cleaned[field] is None:  # an emptied JSON box means "none"
                cleaned[field] = empty()
        spec = self.kind_spec
        if spec is not None and not self.errors:
            spec.apply(self, cleaned)
        if self.errors:
            return cleaned  # field errors first; the service rules would only repeat them
        candidate = copy.copy(self.instance)
        for field, value in cleaned.items():
            if field in Job.EDITABLE_FIELDS or field == "kind":
                setattr(candidate, field, value)
        if "schedule_expression" in cleaned:
            candidate.schedule_expression = str(cleaned["schedule_expression"]).strip()
        if candidate.owner_id is None and not self.instance.pk and getattr(self.user, "is_authenticated", False):
            candidate.owner = self.user  # job_create makes the creator the owner
        try:
            # the services' validator is the one rule book for API, CLI and admin
            services.job_validate(candidate)
        except ValidationError as exc:
            for field, messages_ in django_validation_error_detail(exc).items():
                field = self.field_for_error(field)
                if field in self.fields:
                    self.add_error(field, messages_)
                else:
                    self.add_error(None, [f"{field}: {m}" if field != NON_FIELD_ERRORS else m for m in messages_])
        return cleaned

    #: where the services' errors on a kind's stored columns show on its fields
    ERROR_FIELDS = {"workflow": {"config": "workflow", "task_kwargs": "workflow_input"}}

    def field_for_error(self, field: str) -> str:
        return self.ERROR_FIELDS.get(self.kind, {}).get(field, field)

    def job_data(self, *, change: bool) -> dict:
        """What the services are to save: every editable field on create; on
        change, those that changed (a kind's fields change config, task_kwargs ...)."""
        cleaned = self.cleaned_data
        data = {field: value for field, value in cleaned.items() if field in Job.EDITABLE_FIELDS}
        if not change:
            return data
        return {field: value for field, value in data.items()
                if field in self.changed_data or value != self._stored.get(field)}

    def new_secrets(self) -> dict[str, str]:
        """Credentials typed in (write-only fields): to store with the job."""
        spec = self.kind_spec
        return spec.secrets(self.cleaned_data) if spec is not None else {}
