"""Admin for workflows. Writes go through the services (steps validated the
same way as over the API); ``secrets`` is never part of a form or page.
The schedules themselves are jobs of kind ``workflow`` in the Jobs admin."""
from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from jobsite.exceptions import ApplicationError, django_validation_error_detail, error_message
from jobsite.tenancy import scope_to_user, user_default_organization
from scheduling.workflows import selectors, services
from scheduling.workflows.models import Workflow


class WorkflowForm(forms.ModelForm):
    class Meta:
        model = Workflow
        fields = ["id", "name", "description", "steps", "enabled", "owner", "organization", "shared_with_organization"]

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        instance = self.instance if self.instance._state.adding is False else None
        data = {key: cleaned.get(key) for key in ("name", "description", "steps", "enabled")}
        try:
            # Validate without saving (the save goes through the service in save_model).
            from jobsite.crypto import secrets_decrypt
            from scheduling.workflows.steps import validate_steps

            owner = cleaned.get("owner") or (instance.owner if instance else None) or self.request_user
            secret_names = set(secrets_decrypt(instance.secrets)) if instance else set()
            cleaned["steps"] = validate_steps(data["steps"], owner=owner, secret_names=secret_names)
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


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    form = WorkflowForm
    list_display = ["id", "name", "enabled", "owner", "organization", "shared_with_organization", "step_count",
                    "schedules", "updated_at"]
    list_filter = ["enabled", "shared_with_organization"]
    search_fields = ["id", "name", "description"]
    readonly_fields = ["created_at", "updated_at"]

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.request_user = request.user
        return form

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "id"] if obj is not None else self.readonly_fields

    def get_queryset(self, request):
        return scope_to_user(super().get_queryset(request).select_related("owner", "organization"), request.user)

    @admin.display(description="steps")
    def step_count(self, obj: Workflow) -> int:
        return len(obj.steps or [])

    @admin.display(description="scheduled jobs")
    def schedules(self, obj: Workflow) -> int:
        return selectors.workflow_schedule_count(workflow=obj)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            current = Workflow.objects.get(pk=obj.pk)
            if data.get("owner") != current.owner or data.get("organization") != current.organization:
                # Ownership is an operator's decision, made here only; first, so
                # that sharing is checked against the organization it will have.
                services.workflow_transfer(workflow=current, owner=data.get("owner"),
                                           organization=data.get("organization"), actor=request.user)
            services.workflow_update(workflow=current, actor=request.user, data={
                key: data[key] for key in ("name", "description", "steps", "enabled", "shared_with_organization")
            })
        else:
            created = services.workflow_create(
                actor=request.user, owner=data.get("owner") or request.user, id=data["id"], name=data["name"],
                description=data.get("description") or "", steps=data["steps"], enabled=data["enabled"],
                organization=data.get("organization"),
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
