"""Admin for workflows. Writes go through the services (steps validated the
same way as over the API); secret values are write-only: a form may set or
remove them, no page shows one.

- The steps are edited in a structured step editor (``step_editor.js``): one
  card per step with the fields its type declares (``scheduling.steps``),
  checked as you type by ``validate_steps_view`` — the services' own
  validation, answering the API's ``errors`` (``steps[<i>].<field>``). The
  raw JSON stays behind an "Edit as JSON" toggle.
- The list and the page link a workflow to its schedules (jobs of kind
  ``workflow`` bound to it, in the Jobs admin) and to their runs (in the
  Executions admin), through those admins' own querystring filters.
"""
from __future__ import annotations

import json

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import CharField, Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Cast
from django.db.models.fields.json import KeyTextTransform as JSONKeyText
from django.http import JsonResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from jobsite.admin.widgets import OpsMedia, relative_when
from jobsite.crypto import secrets_decrypt
from jobsite.exceptions import ApplicationError, django_validation_error_detail, error_message
from jobsite.tenancy import scope_to_user, user_default_organization
from scheduling.admin.widgets import badge
from scheduling.beat import schedule_description
from scheduling.models import Execution, Job
from scheduling.steps import step_type_specs
from scheduling.workflows import selectors, services
from scheduling.workflows.models import Workflow
from scheduling.workflows.steps import COMMON_STEP_FIELDS

RECENT_RUNS = 10
CORE_TYPES = ("http", "task", "delay")  # offered first, then the facades' types
WORKFLOW_KIND = selectors.WORKFLOW_KIND


# ---------------------------------------------------------------------------
# The form: the step editor and write-only secrets
# ---------------------------------------------------------------------------
class StepEditorWidget(forms.Textarea):
    """The steps as cards (step_editor.js), over the JSON textarea it keeps in
    step; the textarea is what is posted, and the "Edit as JSON" escape hatch."""

    template_name = "admin/workflows/step_editor.html"

    def __init__(self, attrs=None):
        super().__init__({"rows": 14, "cols": 100, "class": "wf-json", "spellcheck": "false", **(attrs or {})})

    def format_value(self, value):
        if isinstance(value, str):
            try:  # stored steps come as compact JSON: indent them for the JSON view
                return json.dumps(json.loads(value), indent=2, ensure_ascii=False)
            except ValueError:
                return value  # what was typed, kept as typed
        return super().format_value(value)

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        context["editor"] = {
            "types": sorted(step_type_specs(), key=lambda t: (t["type"] not in CORE_TYPES, CORE_TYPES.index(t["type"])
                                                             if t["type"] in CORE_TYPES else 0, t["label"])),
            "common": [field.as_dict(templated=False) for field in COMMON_STEP_FIELDS],
            "validate_url": reverse("admin:workflows_workflow_validate_steps"),
        }
        return context

    class Media:
        css = {"all": ["workflows/admin/step_editor.css"]}
        js = ["workflows/admin/step_editor.js"]


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that never gives back what was typed (a form shown again after an error included)."""

    def format_value(self, value):
        return ""


def parse_secret_lines(text: str) -> dict[str, str]:
    """``NAME=value`` lines (blank lines skipped) as a dict; a line without
    ``=`` is a ValidationError naming its number."""
    secrets: dict[str, str] = {}
    for number, line in enumerate((text or "").splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise ValidationError(f"Line {number}: write NAME=value.")
        secrets[name.strip()] = value
    return secrets


class WorkflowForm(forms.ModelForm):
    # Not "required": an empty list gets the services' own message ("A workflow needs at least one step.").
    steps = forms.JSONField(widget=StepEditorWidget, required=False, help_text="The steps run in order; the steps after one read "
                            "its output as ${steps.NAME.output} (NAME: its name).")
    secrets_set = forms.CharField(
        label="Set secrets", required=False, strip=False,
        widget=WriteOnlyTextarea(attrs={"rows": 3, "cols": 60, "autocomplete": "off", "spellcheck": "false",
                                        "placeholder": "API_TOKEN=..."}),
        help_text="One NAME=value a line: adds or replaces those secrets, for ${secrets.NAME} in the steps. "
                  "Stored encrypted; a value is never shown again.",
    )
    secrets_remove = forms.MultipleChoiceField(label="Remove secrets", required=False,
                                               widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = Workflow
        fields = ["id", "name", "description", "steps", "enabled", "owner", "organization", "shared_with_organization"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stored_secrets = (secrets_decrypt(self.instance.secrets)
                               if not self.instance._state.adding and self.instance.secrets else {})
        self.fields["secrets_remove"].choices = [(name, name) for name in sorted(self.stored_secrets)]
        if not self.instance._state.adding:  # the editor checks steps against this workflow's secrets
            self.fields["steps"].widget.attrs["data-workflow"] = self.instance.pk
        if not self.stored_secrets:
            self.fields["secrets_remove"].help_text = "The workflow has no secrets yet."

    def secrets_after(self) -> dict[str, str]:
        """The secrets the workflow will have once saved."""
        kept = {k: v for k, v in self.stored_secrets.items() if k not in set(self.cleaned_data.get("secrets_remove") or ())}
        return {**kept, **(self.cleaned_data.get("new_secrets") or {})}

    def clean(self):
        cleaned = super().clean()
        try:
            new = parse_secret_lines(cleaned.get("secrets_set") or "")
            cleaned["new_secrets"] = services.workflow_secrets_clean(new) if new else {}
        except ValidationError as exc:
            self.add_error("secrets_set", exc.messages)
        if self.errors:
            return cleaned
        instance = self.instance if self.instance._state.adding is False else None
        owner = cleaned.get("owner") or (instance.owner if instance else None) or self.request_user
        try:
            cleaned["steps"] = services.workflow_steps_check(
                steps=cleaned.get("steps"), owner=owner, secret_names=set(self.secrets_after()))
        except ValidationError as exc:
            detail = django_validation_error_detail(exc)
            messages = detail if isinstance(detail, list) else [f"{k}: {' '.join(v)}" for k, v in detail.items()]
            self.add_error("steps", messages)
        if cleaned.get("shared_with_organization"):
            owner = cleaned.get("owner") or self.request_user
            organization = cleaned.get("organization") or (None if instance else user_default_organization(owner))
            if organization is None:
                self.add_error("shared_with_organization", "Choose the organization to share it with.")
        return cleaned


# ---------------------------------------------------------------------------
# Schedules and runs of a workflow (in the Jobs and Executions admins)
# ---------------------------------------------------------------------------
def _bound_to(queryset, field: str):
    """``queryset`` with the workflow id its job's config names, as text (comparable to a Workflow pk)."""
    # Cast: a key transform compared with a string would read that string as JSON.
    return queryset.annotate(_workflow_id=Cast(JSONKeyText("workflow_id", field), output_field=CharField()))


def schedules_url(workflow_id: str) -> str:
    return reverse("admin:scheduling_job_changelist") + "?" + urlencode(
        {"kind__exact": WORKFLOW_KIND, "config__workflow_id": workflow_id})


def runs_url(workflow_id: str) -> str:
    return reverse("admin:scheduling_execution_changelist") + "?" + urlencode({"workflow": workflow_id})


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    form = WorkflowForm
    change_form_template = "admin/workflows/workflow/change_form.html"
    # Seven narrow columns: no sideways scroll at 1,400 px beside the sidebars.
    list_display = ["name_display", "enabled", "ownership", "step_count", "schedules_link", "runs_link", "updated"]
    list_display_links = ["name_display"]
    list_filter = ["enabled", "shared_with_organization"]
    search_fields = ["id", "name", "description"]
    readonly_fields = ["created_at", "updated_at"]

    class Media(OpsMedia):
        pass

    def get_fieldsets(self, request, obj=None):
        return [
            (None, {"fields": ["id", "name", "description", "enabled"]}),
            ("Steps", {"fields": ["steps"]}),
            ("Secrets", {"fields": ["secrets_set", "secrets_remove"],
                         "description": self._secrets_note(obj)}),
            ("Ownership", {"fields": ["owner", "organization", "shared_with_organization"]}),
            ("History", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
        ]

    @staticmethod
    def _secrets_note(obj) -> str:
        if obj is None or not obj.secrets:
            return "Credentials the steps use as ${secrets.NAME}. Values are write-only."
        try:
            names = ", ".join(sorted(secrets_decrypt(obj.secrets)))
        except ApplicationError:
            names = "(unreadable: the encryption key changed)"
        return f"Stored secrets: {names}. Values are write-only: set one again to change it."

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.request_user = request.user
        return form

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "id"] if obj is not None else self.readonly_fields

    def get_queryset(self, request):
        schedules = _bound_to(Job.objects.filter(kind=WORKFLOW_KIND), "config").filter(_workflow_id=OuterRef("pk"))
        runs = _bound_to(Execution.objects.filter(job__kind=WORKFLOW_KIND), "job__config").filter(
            _workflow_id=OuterRef("pk"))
        count = lambda qs: Subquery(  # noqa: E731
            qs.order_by().values("_workflow_id").annotate(n=Count("pk")).values("n")[:1], output_field=IntegerField())
        queryset = super().get_queryset(request).select_related("owner", "organization").annotate(
            _schedules=count(schedules), _runs=count(runs))
        return scope_to_user(queryset, request.user)

    # -- columns -------------------------------------------------------------
    @admin.display(description="Workflow", ordering="name")
    def name_display(self, obj: Workflow):
        return format_html('<strong>{}</strong><br><span class="ops-sub">{}</span>', obj.name, obj.pk)

    @admin.display(description="Owner", ordering="owner__username")
    def ownership(self, obj: Workflow):
        owner = obj.owner.get_username() if obj.owner else "-"
        if obj.organization is None:
            return owner
        shared = obj.shared_with_organization
        return format_html('{}<br><span class="ops-sub" title="Shared with organization: {}">{} {}</span>', owner,
                           "yes, its members may use it" if shared else "no, its members only see it",
                           "shared with" if shared else "seen by", obj.organization.name)

    @admin.display(description="Steps")
    def step_count(self, obj: Workflow) -> int:
        return len(obj.steps or [])

    @admin.display(description="Updated", ordering="updated_at")
    def updated(self, obj: Workflow):
        return relative_when(obj.updated_at)

    @admin.display(description="Schedules", ordering="_schedules")
    def schedules_link(self, obj: Workflow):
        count = obj._schedules or 0
        if not count:
            return "0"
        return format_html('<a href="{}" title="Its schedules in the Jobs list">{}</a>', schedules_url(obj.pk), count)

    @admin.display(description="Runs", ordering="_runs")
    def runs_link(self, obj: Workflow):
        count = obj._runs or 0
        if not count:
            return "0"
        return format_html('<a href="{}" title="Its runs in the Executions list">{}</a>', runs_url(obj.pk), count)

    # -- the page: schedules and runs first ------------------------------------
    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        obj = self.get_object(request, object_id)
        if obj is not None:
            extra_context["workflow_links"] = self._links(request, obj)
        return super().change_view(request, object_id, form_url, extra_context)

    def _links(self, request, workflow: Workflow) -> dict:
        jobs = list(_bound_to(scope_to_user(Job.objects.filter(kind=WORKFLOW_KIND), request.user), "config")
                    .filter(_workflow_id=workflow.pk).select_related("owner").order_by("name"))
        job_ids = [job.pk for job in jobs]
        runs = (Execution.objects.filter(job_id__in=job_ids).select_related("job").order_by("-created_at", "-pk")
                if job_ids else Execution.objects.none())
        total_runs = runs.count() if job_ids else 0
        return {
            "schedules": [{
                "job": job, "url": reverse("admin:scheduling_job_change", args=[job.pk]),
                "label": (job.config or {}).get("job_id") or job.title or job.name,
                "schedule": schedule_description(job) or job.schedule_expression,
                "state": badge(job.state, job.get_status_display() if job.state == job.status else "Disabled"),
                "next_run": relative_when(job.next_run_at if job.is_schedulable else None),
                "input": (job.task_kwargs or {}).get("input", ""),
            } for job in jobs],
            "runs": [{
                "execution": run, "url": reverse("admin:scheduling_execution_change", args=[run.pk]),
                "status": badge(run.status, run.get_status_display()),
                "created": relative_when(run.created_at),
                "duration": run.duration_seconds,
                "job_label": (run.job.config or {}).get("job_id") or run.job.name,
            } for run in runs[:RECENT_RUNS]],
            "total_runs": total_runs,
            "schedules_url": schedules_url(workflow.pk),
            "runs_url": runs_url(workflow.pk),
        }

    # -- the step editor's check -----------------------------------------------
    def get_urls(self):
        own = [path("validate-steps/", self.admin_site.admin_view(self.validate_steps_view),
                    name="workflows_workflow_validate_steps")]
        return [*own, *super().get_urls()]

    @method_decorator(require_POST)
    def validate_steps_view(self, request):
        """Check steps as the API would save them: ``{"valid", "errors", "steps"}``
        with the API's ``errors`` (``steps[<i>].<field>`` → messages).

        Body: ``{"steps": [...], "workflow": id (when editing one), "owner":
        user id (the form's), "secret_names": [names being set],
        "removed_secrets": [names]}`` — names only, never a value."""
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            raise PermissionDenied
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return JsonResponse({"detail": "The body must be JSON."}, status=400)
        if not isinstance(body, dict):
            return JsonResponse({"detail": "The body must be a JSON object."}, status=400)
        workflow = None
        if body.get("workflow"):
            workflow = self.get_queryset(request).filter(pk=str(body["workflow"])).first()
            if workflow is None:
                return JsonResponse({"detail": f"No workflow {body['workflow']} visible to you."}, status=404)
            if not self.has_change_permission(request, workflow):
                raise PermissionDenied
        owner = self._owner_for_check(request, body.get("owner"), workflow)
        names = set(secrets_decrypt(workflow.secrets)) if workflow is not None and workflow.secrets else set()
        names -= {str(name) for name in body.get("removed_secrets") or () if isinstance(name, str)}
        names |= {str(name) for name in body.get("secret_names") or () if isinstance(name, str)}
        try:
            steps = services.workflow_steps_check(steps=body.get("steps"), owner=owner, secret_names=names)
        except ValidationError as exc:
            detail = django_validation_error_detail(exc)
            return JsonResponse({"valid": False, "errors": detail if isinstance(detail, dict) else {"steps": detail}})
        return JsonResponse({"valid": True, "errors": {}, "steps": steps})

    @staticmethod
    def _owner_for_check(request, owner_id, workflow):
        """Whose rights the steps are checked against: the owner chosen on the
        form (as the form's save would), else the workflow's, else the editor."""
        if owner_id not in (None, "") and str(owner_id).isdigit() and request.user.is_superuser:
            # Only an operator's check may speak for another user's rights (as only they assign owners).
            chosen = get_user_model().objects.filter(pk=int(owner_id)).first()
            if chosen is not None:
                return chosen
        return (workflow.owner if workflow is not None else None) or request.user

    # -- saving through the services ---------------------------------------------
    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        secrets_changed = bool(data.get("new_secrets") or data.get("secrets_remove"))
        if change:
            current = Workflow.objects.get(pk=obj.pk)
            if data.get("owner") != current.owner or data.get("organization") != current.organization:
                # Ownership is an operator's decision, made here only; first, so
                # that sharing is checked against the organization it will have.
                services.workflow_transfer(workflow=current, owner=data.get("owner"),
                                           organization=data.get("organization"), actor=request.user)
            changes = {key: data[key] for key in ("name", "description", "steps", "enabled", "shared_with_organization")}
            if secrets_changed:
                changes["secrets"] = form.secrets_after()
            services.workflow_update(workflow=current, actor=request.user, data=changes)
        else:
            created = services.workflow_create(
                actor=request.user, owner=data.get("owner") or request.user, id=data["id"], name=data["name"],
                description=data.get("description") or "", steps=data["steps"], enabled=data["enabled"],
                organization=data.get("organization"), secrets=form.secrets_after(),
                shared_with_organization=bool(data.get("shared_with_organization")),
            )
            obj.pk = created.pk

    def delete_model(self, request, obj):
        try:
            services.workflow_delete(workflow=obj, actor=request.user)
        except ApplicationError as exc:  # in use by schedules: say so instead of a 500
            self.message_user(request, error_message(exc), level="error")

    def delete_queryset(self, request, queryset):
        for workflow in queryset:
            self.delete_model(request, workflow)
