"""Run after other jobs, on the job page: the jobs this job runs after (each
with its condition), the jobs that run after it, and a form that sets the
first list through the API's own service (``job_set_run_after``), so its
refusals (an unknown condition, a job listed twice, a cycle, named job by
job) are this form's errors, worded as the API words them.

A row names its job by name or id, as ``PUT /api/v1/jobs/{id}/run-after``
does (a ``<datalist>`` offers the names this user sees); a blank row is no
job. Saving replaces the whole list; an empty list: the job runs after none.
"""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import mark_safe

from jobsite.exceptions import ApplicationError, django_validation_error_detail, error_message
from jobsite.tenancy import scope_to_user
from scheduling import selectors
from scheduling.models import Job, JobDependency
from scheduling.services.dependencies import job_set_run_after

#: Blank rows under the job's current upstream jobs (more: save, and the page offers more).
EXTRA_ROWS = 2
DATALIST_ID = "ops-run-after-jobs"


class RunAfterRowForm(forms.Form):
    job = forms.CharField(required=False, max_length=255, label="Job",
                          widget=forms.TextInput(attrs={"list": DATALIST_ID, "class": "ops-run-after-job",
                                                        "autocomplete": "off", "placeholder": "a job's name or id"}),
                          help_text="The upstream job: its name or id.")
    condition = forms.ChoiceField(choices=JobDependency.Condition.choices, initial=JobDependency.Condition.SUCCESS,
                                  label="Condition")


class BaseRunAfterFormSet(forms.BaseFormSet):
    def __init__(self, *args, job: Job, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.job, self.user = job, user
        self.upstreams: list[tuple[Job, str]] = []

    def clean(self):
        """Each named job, as the API finds it (visible to the user, by id or name)."""
        if any(self.errors):
            return
        self.upstreams = []
        for i, form in enumerate(self.forms):
            name = (form.cleaned_data.get("job") or "").strip()
            if not name:
                continue
            try:
                upstream = selectors.job_get(user=self.user, job_id=name)
            except ApplicationError:
                form.add_error("job", f"run_after[{i}].job: no job '{name}'.")
                continue
            self.upstreams.append((upstream, form.cleaned_data["condition"]))

    def save(self, *, actor) -> list[JobDependency]:
        """Set the list through the service; its refusals become the formset's errors (and nothing changes)."""
        try:
            return job_set_run_after(job=self.job, upstreams=self.upstreams, actor=actor)
        except ValidationError as exc:
            detail = django_validation_error_detail(exc)
            problems = detail.get("run_after") if isinstance(detail, dict) else None
            self._non_form_errors = self.error_class(
                problems if isinstance(problems, list) else [error_message(exc)], error_class="nonform")
            raise


RunAfterFormSet = forms.formset_factory(RunAfterRowForm, formset=BaseRunAfterFormSet, extra=EXTRA_ROWS,
                                        max_num=100, validate_max=True)


def run_after_formset(*, job: Job, user, data=None) -> BaseRunAfterFormSet:
    initial = [{"job": link.upstream.name, "condition": link.condition} for link in upstream_links(job)]
    return RunAfterFormSet(data, job=job, user=user, initial=initial, prefix="run_after")


def upstream_links(job: Job) -> list[JobDependency]:
    return list(job.upstream_links.select_related("upstream").order_by("upstream__name"))


def job_names_datalist(user) -> str:
    """The ``<datalist>`` of the names of the jobs ``user`` sees (one string: a
    select per row would render every job's option through a template)."""
    names = scope_to_user(Job.objects.all(), user).order_by("name").values_list("name", flat=True)
    options = "".join(f'<option value="{escape(name)}">' for name in names)
    return mark_safe(f'<datalist id="{DATALIST_ID}">{options}</datalist>')  # noqa: S308 (escaped)


def run_after_context(*, job: Job, user, formset: BaseRunAfterFormSet | None = None) -> dict:
    """What the job page's "Runs after" panel shows."""
    def link_row(other: Job, condition_label: str) -> dict:
        return {"name": other.name, "url": reverse("admin:scheduling_job_change", args=[other.pk]),
                "condition": condition_label}

    visible = set(scope_to_user(Job.objects.all(), user).values_list("pk", flat=True)) if not user.is_superuser else None
    downstream = [link_row(link.downstream, link.get_condition_display())
                  for link in job.downstream_links.select_related("downstream").order_by("downstream__name")
                  if visible is None or link.downstream_id in visible]
    return {
        "run_after_links": [link_row(link.upstream, link.get_condition_display()) for link in upstream_links(job)],
        "run_after_dependants": downstream,
        "run_after_formset": formset or run_after_formset(job=job, user=user),
        "run_after_datalist": job_names_datalist(user),
    }


def run_after_view(model_admin, request, object_id):
    """GET: the editor alone; POST: save through the service, back to the job page,
    or this page again with the service's refusals (400)."""
    job = model_admin.tool_object(request, object_id)
    if not model_admin.has_change_permission(request, job):
        raise PermissionDenied
    formset = run_after_formset(job=job, user=request.user, data=request.POST if request.method == "POST" else None)
    if request.method == "POST" and formset.is_valid():
        try:
            links = formset.save(actor=request.user)
        except ValidationError:
            pass
        else:
            names = ", ".join(f"{link.upstream.name} ({link.condition_label()})" for link in links)
            model_admin.message_user(request, f"{job.name} now runs after {names}." if names
                                     else f"{job.name} now runs after no other job.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:scheduling_job_change", args=[job.pk]))
    context = {
        **model_admin.admin_site.each_context(request), "opts": model_admin.opts, "job_object": job,
        "title": f"Run {job.name} after other jobs", "has_view_permission": True,
        **run_after_context(job=job, user=request.user, formset=formset),
    }
    return TemplateResponse(request, "admin/scheduling/job/run_after.html", context,
                            status=400 if request.method == "POST" else 200)
