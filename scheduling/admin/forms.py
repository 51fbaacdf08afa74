"""The job form: choices for the task, queue and time zone, and validation by
the services' own rules (``job_validate``), so a bad schedule, task or queue is
a form error on the right field instead of a failed save."""
from __future__ import annotations

import copy
import zoneinfo

from django import forms
from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from jobsite.exceptions import django_validation_error_detail
from scheduling import services
from scheduling.executors import schedulable_tasks
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
    is a form error on the right field instead of a failed save."""

    task_name = ServiceCheckedChoiceField(required=False, help_text=Job._meta.get_field("task_name").help_text)
    queue = ServiceCheckedChoiceField(help_text=Job._meta.get_field("queue").help_text)
    timezone = ServiceCheckedChoiceField(help_text=Job._meta.get_field("timezone").help_text, initial="UTC")

    class Meta:
        model = Job
        exclude = ["secrets"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        instance = self.instance
        self.fields["task_name"].choices = task_choices(instance.task_name if instance.pk else "")
        self.fields["queue"].choices = queue_choices(instance.queue if instance.pk else "")
        self.fields["timezone"].choices = timezone_choices(instance.timezone if instance.pk else "")
        if "schedule_expression" in self.fields:
            self.fields["schedule_expression"].widget.attrs["autocomplete"] = "off"

    def clean(self):
        cleaned = super().clean()
        for field, empty in (("task_args", list), ("task_kwargs", dict), ("config", dict)):
            if field in cleaned and cleaned[field] is None:  # an emptied JSON box means "none"
                cleaned[field] = empty()
        if self.errors:
            return cleaned  # field errors first; the service rules would only repeat them
        candidate = copy.copy(self.instance)
        for field, value in cleaned.items():
            setattr(candidate, field, value)
        if "schedule_expression" in cleaned:
            candidate.schedule_expression = str(cleaned["schedule_expression"]).strip()
        try:
            # the services' validator is the one rule book for API, CLI and admin
            services.job_validate(candidate)
        except ValidationError as exc:
            for field, messages_ in django_validation_error_detail(exc).items():
                if field in self.fields:
                    self.add_error(field, messages_)
                else:
                    self.add_error(None, [f"{field}: {m}" if field != NON_FIELD_ERRORS else m for m in messages_])
        return cleaned

