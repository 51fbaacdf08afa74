""""Run now with parameters": one form a job kind, checked by that kind's
executor through the same service the API calls (``services.job_execute``,
whose ``validate_params`` gives the API's 400), so the admin shows the API's
own messages as form errors, never a 500.

The fields follow the kind: a schedulable task's parameters (from its
signature, typed by their defaults), a workflow's input and the step to
start from, and for any other kind that takes parameters a JSON object.
"""
from __future__ import annotations

import inspect
import json

from django import forms
from django.core.exceptions import ValidationError

from jobsite.admin.base import broker_problem
from jobsite.exceptions import ApplicationError, django_validation_error_detail
from scheduling import services
from scheduling.executors import Executor, executor_for, schedulable_task
from scheduling.models import Execution, Job

PRETTY = {"indent": 2, "ensure_ascii": False, "sort_keys": True}


class JSONObjectField(forms.JSONField):
    """A JSON object (``{...}``), pretty-printed; blank means none."""

    widget = forms.Textarea(attrs={"rows": 4, "class": "ops-json", "spellcheck": "false"})

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("encoder", None)
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if value in (None, "", {}):
            return ""
        if isinstance(value, str):
            return value
        return json.dumps(value, **PRETTY)

    def clean(self, value):
        value = super().clean(value)
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise ValidationError("Must be a JSON object, such as {\"name\": \"value\"}.")
        return value


def _parameter_field(parameter: inspect.Parameter, current) -> forms.Field:
    """A form field for one task parameter, typed by its default value."""
    default = None if parameter.default is inspect.Parameter.empty else parameter.default
    sample = current if current is not None else default
    help_text = ("Required." if parameter.default is inspect.Parameter.empty
                 else f"Default: {json.dumps(default, ensure_ascii=False)}.")
    if isinstance(sample, bool):
        return forms.TypedChoiceField(choices=[("", "(the job's value)"), ("true", "true"), ("false", "false")],
                                      coerce=lambda v: v == "true", empty_value=None, required=False,
                                      initial="" if current is None else str(current).lower(), help_text=help_text)
    if isinstance(sample, int):
        return forms.IntegerField(required=False, initial=current, help_text=help_text)
    if isinstance(sample, float):
        return forms.FloatField(required=False, initial=current, help_text=help_text)
    if isinstance(sample, (dict, list)):
        return forms.JSONField(required=False, initial=current, help_text=help_text + " JSON.",
                               widget=forms.Textarea(attrs={"rows": 3, "class": "ops-json"}))
    return forms.CharField(required=False, initial=current, help_text=help_text, strip=False)


def takes_parameters(executor: Executor) -> bool:
    """Whether a kind's runs take parameters at all (it checks them)."""
    return type(executor).validate_params is not Executor.validate_params


class RunWithParametersForm(forms.Form):
    """The parameters of one run of ``job``; ``override_kwargs()`` is what
    the API's ``POST /api/v1/jobs/{id}/execute`` would take."""

    MORE = "more_parameters"

    force = forms.BooleanField(required=False, label="Force",
                               help_text="Run even if the job is paused, disabled or already running.")

    def __init__(self, *args, job: Job, **kwargs):
        super().__init__(*args, **kwargs)
        self.job = job
        self._kind_fields: list[str] = []
        if job.kind == "task":
            self._task_fields(job)
        elif job.kind == "workflow":
            self._workflow_fields(job)
        elif takes_parameters(executor_for(job.kind)):
            self._add(self.MORE, JSONObjectField(label="Parameters", help_text=(
                "A JSON object merged over the job's own parameters for this run.")))
        self.order_fields([*self._kind_fields, "force"])

    @property
    def has_parameters(self) -> bool:
        return bool(self._kind_fields)

    def _add(self, name: str, field: forms.Field) -> None:
        self.fields[name] = field
        self._kind_fields.append(name)

    def _task_fields(self, job: Job) -> None:
        task = schedulable_task(job.task_name)
        if task is None:
            return
        kwargs = job.task_kwargs or {}
        signature = inspect.signature(task.func).parameters.values()
        for parameter in signature:
            if parameter.name == "execution" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD,
                                                                    parameter.POSITIONAL_ONLY):
                continue
            self._add(f"param_{parameter.name}", _parameter_field(parameter, kwargs.get(parameter.name)))
            self.fields[f"param_{parameter.name}"].label = parameter.name
        if any(p.kind == p.VAR_KEYWORD for p in signature):
            named = {name.removeprefix("param_") for name in self._kind_fields}
            extra = {key: value for key, value in kwargs.items() if key not in named}
            self._add(self.MORE, JSONObjectField(label="More parameters", initial=extra, help_text=(
                f"Task '{task.name}' takes any other named parameter: a JSON object of them.")))

    def _workflow_fields(self, job: Job) -> None:
        current = (job.task_kwargs or {}).get("input", "")
        self._add("input", forms.CharField(
            required=False, strip=False, initial=current, label="Input",
            widget=forms.Textarea(attrs={"rows": 4, "class": "ops-json", "spellcheck": "false"}),
            help_text="The workflow's input for this run (the schedule's own input is filled in)."))
        from scheduling.workflows.models import Workflow

        workflow = Workflow.objects.filter(pk=(job.config or {}).get("workflow_id")).only("steps").first()
        names = [f"{i} {step.get('name', '?')}" for i, step in enumerate(workflow.steps if workflow else [])
                 if isinstance(step, dict)]
        self._add("resume_from", forms.IntegerField(
            required=False, min_value=0, initial=0, label="Start at step",
            help_text="0 runs every step; n starts at step n" + (f" ({', '.join(names)})." if names else ".")))

    def override_kwargs(self) -> dict:
        """The run's ``override_kwargs``: what was filled in (a blank field
        keeps the job's own value)."""
        data = self.cleaned_data
        override: dict = {}
        for name in self._kind_fields:
            value = data.get(name)
            if name == self.MORE:
                override.update(value or {})
            elif name.startswith("param_"):
                if value not in (None, ""):
                    override[name.removeprefix("param_")] = value
            elif name == "input":
                override["input"] = value or ""
            elif name == "resume_from" and value:
                override["resume_from"] = value
        return override

    def run(self, *, actor) -> Execution | None:
        """Ask for the run through the API's service; its refusals become form
        errors (the API's own messages). None when refused."""
        try:
            return services.job_execute(job=self.job, actor=actor, trigger=Execution.Trigger.MANUAL,
                                        force=self.cleaned_data.get("force", False),
                                        override_kwargs=self.override_kwargs())
        except ValidationError as exc:
            detail = django_validation_error_detail(exc)
            messages = detail.get("override_kwargs") if isinstance(detail, dict) else detail
            if isinstance(detail, dict) and messages is None:
                messages = [f"{field}: {message}" for field, items in detail.items() for message in items]
            self.add_error(None, messages)
        except ApplicationError as exc:
            self.add_error(None, exc.message)
        except Exception as exc:  # the message goes out on commit: a broker outage surfaces here
            self.add_error(None, f"The run was not queued: {broker_problem(exc)}")
        return None
