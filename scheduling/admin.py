"""Admin for jobs and their runs.

Writes go through the services, as everywhere else: saving a job calls
``job_create``/``job_update`` (so its beat PeriodicTask changes in the same
transaction), deleting calls ``job_delete``, and the actions call
``job_execute``/``job_pause``/``job_resume``/``execution_cancel``. Executions,
audit entries and daily statistics are history: read-only here.
``Job.secrets`` is never part of any form or page.
"""
from __future__ import annotations

import copy
import logging

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseRedirect
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django_celery_beat import admin as beat_admin
from django_celery_beat import models as beat_models

from jobsite.admin import ReadOnlyAdminMixin
from jobsite.exceptions import ApplicationError, error_message, django_validation_error_detail
from jobsite.tenancy import scope_to_user
from scheduling import selectors, services
from scheduling.executors import DEFAULT_KIND
from scheduling.models import AuditLog, DailyJobStatistics, Execution, Job

logger = logging.getLogger(__name__)
RECENT_EXECUTIONS = 20

# Colours of the status badges (admin palette: green ok, red bad, amber waiting).
BADGE_COLOURS = {
    Job.State.ACTIVE: "#2e7d32",
    Job.State.PAUSED: "#9e9e9e",
    Job.State.DISABLED: "#616161",
    Execution.Status.QUEUED: "#f9a825",
    Execution.Status.RUNNING: "#1565c0",
    Execution.Status.SUCCESS: "#2e7d32",
    Execution.Status.FAILED: "#c62828",
    Execution.Status.TIMEOUT: "#ef6c00",
    Execution.Status.ERROR: "#ad1457",
    Execution.Status.CANCELLED: "#616161",
    Execution.Status.SKIPPED: "#9e9e9e",
}


def badge(value: str, label: str | None = None):
    if not value:
        return "-"
    colour = BADGE_COLOURS.get(value, "#607d8b")
    return format_html(
        '<span style="background:{};color:#fff;padding:2px 8px;border-radius:10px;'
        'font-size:11px;font-weight:600;white-space:nowrap">{}</span>',
        colour, label or value,
    )


def admin_change_url(obj) -> str | None:
    try:
        return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return None


# ---------------------------------------------------------------------------
# Jobs
# ---------------------------------------------------------------------------
class JobAdminForm(forms.ModelForm):
    """Validates with the service's own rules, so a bad schedule, task or queue
    is a form error on the right field instead of a failed save."""

    class Meta:
        model = Job
        exclude = ["secrets"]

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
            # services' validator is the one rule book for API, CLI and admin (see report: job_validate).
            services.job_validate(candidate)
        except ValidationError as exc:
            for field, messages_ in django_validation_error_detail(exc).items():
                if field in self.fields:
                    self.add_error(field, messages_)
                else:
                    self.add_error(None, [f"{field}: {m}" if field != NON_FIELD_ERRORS else m for m in messages_])
        return cleaned


class RecentExecutionsFormSet(BaseInlineFormSet):
    def get_queryset(self):
        # Sliced after the inline's own filtering by job (a sliced queryset cannot be filtered).
        if not hasattr(self, "_recent"):
            self._recent = super().get_queryset()[:RECENT_EXECUTIONS]
        return self._recent


class ExecutionInline(admin.TabularInline):
    model = Execution
    formset = RecentExecutionsFormSet
    fk_name = "job"
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = f"Recent executions (last {RECENT_EXECUTIONS})"
    fields = ["status_badge", "trigger", "attempt", "created_at", "started_at", "duration", "worker", "output"]
    readonly_fields = fields
    ordering = ["-created_at", "-id"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Status")
    def status_badge(self, obj):
        return badge(obj.status, obj.get_status_display())

    @admin.display(description="Duration")
    def duration(self, obj):
        return f"{obj.duration_seconds:.1f}s" if obj.duration_seconds is not None else "-"


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    form = JobAdminForm
    exclude = ["secrets"]  # never shown, never editable here
    list_display = [
        "name", "kind", "job_type", "schedule", "status_badge", "is_enabled", "last_status_badge",
        "last_run_at", "next_run_at", "success_rate_display",
    ]
    list_filter = ["kind", "job_type", "status", "is_enabled", "schedule_type"]
    search_fields = ["name", "title", "description", "task_name"]
    list_select_related = ["owner", "organization"]
    ordering = ["id"]
    actions = ["run_now", "run_now_forced", "pause", "resume"]
    inlines = [ExecutionInline]
    readonly_fields = [
        "uuid", "status", "schedule_description", "statistics", "periodic_task_link", "owner",
        "created_at", "updated_at", "last_run_at", "next_run_at", "last_status", "executions_link",
    ]
    fieldsets = [
        (None, {"fields": ["name", "title", "description", "kind", "job_type", "uuid"]}),
        ("Schedule", {"fields": ["schedule_type", "schedule_expression", "timezone", "schedule_description"]}),
        ("Work", {"fields": ["task_name", "task_args", "task_kwargs", "config"]}),
        ("Execution", {"fields": [
            "queue", "priority", "timeout_seconds", "max_retries", "retry_backoff_seconds", "overlap_policy",
        ]}),
        ("State", {"fields": ["is_enabled", "status", "owner", "organization", "periodic_task_link"]}),
        ("Runs", {"fields": [
            "last_run_at", "last_status", "next_run_at", "statistics", "executions_link", "created_at", "updated_at",
        ]}),
    ]

    # -- visibility ----------------------------------------------------------
    def get_queryset(self, request):
        return scope_to_user(super().get_queryset(request), request.user)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields.append("kind")  # the executor is fixed at creation (not in Job.EDITABLE_FIELDS)
        return fields

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    # -- columns -------------------------------------------------------------
    @admin.display(description="Schedule", ordering="schedule_type")
    def schedule(self, obj):
        return f"{obj.schedule_type} {obj.schedule_expression} ({obj.timezone})"

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        return badge(obj.state, Job.State(obj.state).label)

    @admin.display(description="Last status", ordering="last_status")
    def last_status_badge(self, obj):
        return badge(obj.last_status)

    @admin.display(description="Success rate")
    def success_rate_display(self, obj):
        return f"{obj.success_rate:.1f}% of {obj.total_runs}" if obj.total_runs else "-"

    @admin.display(description="Schedule, in words")
    def schedule_description(self, obj):
        if obj is None or not obj.pk:
            return "-"
        from scheduling.beat import schedule_description

        return schedule_description(obj) or "(cannot describe this schedule)"

    @admin.display(description="Statistics")
    def statistics(self, obj):
        if obj is None or not obj.pk:
            return "-"
        stats = selectors.job_statistics(job=obj)

        def seconds(value):
            return "-" if value is None else f"{value:.1f}s"

        rows = [
            ("Runs", stats["total_runs"]),
            ("Successful", stats["successful_runs"]),
            ("Failed", stats["failed_runs"]),
            ("Cancelled", stats["cancelled_runs"]),
            ("Success rate", f"{stats['success_rate']:.1f}%"),
            ("Average duration", seconds(stats["average_duration_seconds"])),
            ("p95 duration", seconds(stats["p95_duration_seconds"])),
        ]
        return format_html(
            "<table>{}</table>",
            format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows),
        )

    @admin.display(description="Beat periodic task")
    def periodic_task_link(self, obj):
        if obj is None or not obj.periodic_task_id:
            return "-"
        task = obj.periodic_task
        state = "enabled" if task.enabled else "disabled"
        url = admin_change_url(task)
        if url:
            return format_html('<a href="{}">{}</a> ({})', url, task.name, state)
        return f"{task.name} ({state})"

    @admin.display(description="All executions")
    def executions_link(self, obj):
        if obj is None or not obj.pk:
            return "-"
        url = reverse("admin:scheduling_execution_changelist") + "?" + urlencode({"job__id__exact": obj.pk})
        return format_html('<a href="{}">All executions of {}</a>', url, obj.name)

    # -- writes through the services -----------------------------------------
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # The form validates with the service's rules, so this only catches what
        # changed in between (a name taken meanwhile, a concurrent edit): the
        # admin's transaction is rolled back and the user is told, never a 500.
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except (ValidationError, ApplicationError) as exc:
            self.message_user(request, f"Not saved: {error_message(exc)}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def save_model(self, request, obj, form, change):
        data = {field: form.cleaned_data[field] for field in form.cleaned_data if field in Job.EDITABLE_FIELDS}
        if change:
            changed = {field: value for field, value in data.items() if field in form.changed_data}
            if changed:
                services.job_update(job=obj, actor=request.user, data=changed)
        else:
            created = services.job_create(actor=request.user, kind=form.cleaned_data.get("kind", DEFAULT_KIND), **data)
            obj.pk = created.pk
            obj._state.adding = False
        obj.refresh_from_db()

    def get_deleted_objects(self, objs, request):
        # A job's executions and daily statistics are its history and go with it
        # (job_delete removes them); their read-only admins must not veto that.
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        history = {str(Execution._meta.verbose_name), str(DailyJobStatistics._meta.verbose_name)}
        return deleted, counts, {p for p in perms_needed if str(p) not in history}, protected

    def delete_model(self, request, obj):
        services.job_delete(job=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for job in queryset:
            services.job_delete(job=job, actor=request.user)

    # -- actions ---------------------------------------------------------------
    def _each(self, request, queryset, verb: str, call) -> None:
        done, failed = [], []
        for job in queryset:
            try:
                done.append(call(job))
            except (ValidationError, ApplicationError) as exc:
                failed.append(f"{job.name}: {error_message(exc)}")
            except Exception as exc:  # Celery messages go out on commit: a broker outage surfaces here
                logger.exception("admin action on job %s failed", job.pk)
                failed.append(f"{job.name}: failed ({type(exc).__name__}: {' '.join(str(exc).split())}); is the broker up?")
        if done:
            self.message_user(request, f"{verb}: {', '.join(done)}", messages.SUCCESS)
        for failure in failed:
            self.message_user(request, failure, messages.WARNING)

    def _run(self, request, queryset, *, force: bool) -> None:
        def run(job):
            execution = services.job_execute(
                job=job, actor=request.user, trigger=Execution.Trigger.MANUAL, force=force,
            )
            return f"{job.name} (execution {execution.pk})"

        self._each(request, queryset, "Queued", run)

    @admin.action(description="Run now", permissions=["change"])
    def run_now(self, request, queryset):
        self._run(request, queryset, force=False)

    @admin.action(description="Run now, even if paused, disabled or already running", permissions=["change"])
    def run_now_forced(self, request, queryset):
        self._run(request, queryset, force=True)

    @admin.action(description="Pause", permissions=["change"])
    def pause(self, request, queryset):
        self._each(request, queryset, "Paused", lambda job: services.job_pause(job=job, actor=request.user).name)

    @admin.action(description="Resume", permissions=["change"])
    def resume(self, request, queryset):
        self._each(request, queryset, "Resumed", lambda job: services.job_resume(job=job, actor=request.user).name)


# ---------------------------------------------------------------------------
# Executions and history (read-only)
# ---------------------------------------------------------------------------
class ReadOnlyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    pass


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyAdmin):
    list_display = ["id", "job", "status_badge", "trigger", "attempt", "started_at", "duration", "worker"]
    list_filter = ["status", "trigger"]
    search_fields = ["job__name", "celery_task_id"]
    list_select_related = ["job"]
    actions = ["cancel"]
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        return scope_to_user(qs, request.user, owner_field="job__owner", org_field="job__organization")

    def has_cancel_permission(self, request) -> bool:
        return request.user.has_perm("scheduling.change_execution")

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        return badge(obj.status, obj.get_status_display())

    @admin.display(description="Duration", ordering="duration_seconds")
    def duration(self, obj):
        return f"{obj.duration_seconds:.1f}s" if obj.duration_seconds is not None else "-"

    @admin.action(description="Cancel (revoke the Celery task)", permissions=["cancel"])
    def cancel(self, request, queryset):
        cancelled, refused = [], []
        for execution in queryset.select_related("job"):
            try:
                services.execution_cancel(execution=execution, actor=request.user, reason="cancelled in the admin")
                cancelled.append(str(execution.pk))
            except (ValidationError, ApplicationError) as exc:
                refused.append(error_message(exc))
        if cancelled:
            self.message_user(request, f"Cancelled execution(s) {', '.join(cancelled)}.", messages.SUCCESS)
        for reason in refused:
            self.message_user(request, reason, messages.WARNING)


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor_label", "action", "object_type", "object_id", "object_repr"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_label", "object_repr", "object_id"]
    date_hierarchy = "created_at"


@admin.register(DailyJobStatistics)
class DailyJobStatisticsAdmin(ReadOnlyAdmin):
    list_display = ["day", "job", "runs", "successes", "failures", "average_duration_seconds", "p95_duration_seconds", "computed_at"]
    list_filter = ["day"]
    search_fields = ["job__name"]
    list_select_related = ["job"]
    date_hierarchy = "day"



# ---------------------------------------------------------------------------
# django-celery-beat's models: shown, never edited here. Every PeriodicTask of
# a job is written by scheduling.beat in the job's own transaction; editing
# one by hand would make the schedule drift from its job, and its admin would
# let a superuser schedule any registered Celery task past the allow-list.
# ---------------------------------------------------------------------------
class ReadOnlyPeriodicTaskAdmin(ReadOnlyAdminMixin, beat_admin.PeriodicTaskAdmin):
    list_display = ["name", "job_link", "enabled", "scheduler", "last_run_at", "total_run_count"]
    actions = None

    @admin.display(description="Job")
    def job_link(self, obj):
        job = Job.objects.filter(periodic_task=obj).only("pk", "name").first()
        if job is None:
            return "-"
        return format_html('<a href="{}">{}</a>', reverse("admin:scheduling_job_change", args=[job.pk]), job.name)


def _read_only(model_admin: type[admin.ModelAdmin]) -> type[admin.ModelAdmin]:
    return type(f"ReadOnly{model_admin.__name__}", (ReadOnlyAdminMixin, model_admin), {"inlines": []})


for _model, _model_admin in [
    (beat_models.PeriodicTask, ReadOnlyPeriodicTaskAdmin),
    (beat_models.CrontabSchedule, _read_only(beat_admin.CrontabScheduleAdmin)),
    (beat_models.IntervalSchedule, _read_only(beat_admin.IntervalScheduleAdmin)),
    (beat_models.ClockedSchedule, _read_only(beat_admin.ClockedScheduleAdmin)),
    (beat_models.SolarSchedule, _read_only(beat_admin.SolarScheduleAdmin)),
]:
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _model_admin)
