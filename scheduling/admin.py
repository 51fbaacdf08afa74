"""Admin for jobs and their runs: an operations console.

Writes go through the services, as everywhere else: saving a job calls
``job_create``/``job_update`` (so its beat PeriodicTask changes in the same
transaction), deleting calls ``job_delete``, and the buttons and actions call
``job_execute``/``job_pause``/``job_resume``/``job_set_enabled``/
``execution_cancel``. Executions, audit entries and daily statistics are
history: read-only here. ``Job.secrets`` is never part of any form or page.

Besides the model pages: buttons on the job and execution pages (object
tools posting to the views below), a live schedule preview on the job form
(``job_form.js`` asking ``schedule_preview_view``), lists that reload
themselves while a run they show is queued or running (``autorefresh.js``),
and the Workers and queues page (``scheduling.cluster``).
"""
from __future__ import annotations

import copy
import json
import logging
import zoneinfo
from datetime import datetime, timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.db.models import OuterRef, Subquery
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_POST
from django_celery_beat import admin as beat_admin
from django_celery_beat import models as beat_models

from jobsite.admin import ReadOnlyAdminMixin
from jobsite.exceptions import ApplicationError, error_message, django_validation_error_detail
from jobsite.tenancy import scope_to_user
from scheduling import cluster, selectors, services
from scheduling.beat import schedule_description, schedule_preview
from scheduling.executors import DEFAULT_KIND, schedulable_tasks
from scheduling.models import AuditLog, DailyJobStatistics, Execution, Job

logger = logging.getLogger(__name__)
RECENT_EXECUTIONS = 20
PREVIEW_RUNS = 5

# Colours of the status badges (admin palette: green ok, red bad, amber waiting, blue busy).
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
    Execution.Status.MISSED: "#8d6e63",
}


def badge(value: str, label: str | None = None):
    if not value:
        return "-"
    colour = BADGE_COLOURS.get(value, "#607d8b")
    return format_html(
        '<span class="ops-badge ops-badge-{}" style="background:{};color:#fff;padding:2px 8px;border-radius:10px;'
        'font-size:11px;font-weight:600;white-space:nowrap">{}</span>',
        value, colour, label or value,
    )


def status_label(status: str) -> str:
    try:
        return Execution.Status(status).label
    except ValueError:
        return status


def when(value: datetime | None, *, tz=None) -> str:
    """A time as the admin shows times: seconds and time zone (jobsite/formats)."""
    if value is None:
        return "-"
    return formats.date_format(timezone.localtime(value, tz), "DATETIME_FORMAT")


def when_stacked(value: datetime | None):
    """A time for a narrow list column: the date, and below it the time with
    seconds and zone."""
    if value is None:
        return "-"
    local = timezone.localtime(value)
    return format_html('<span class="ops-nowrap">{}</span><br><span class="ops-nowrap">{}</span>',
                       formats.date_format(local, "DATE_FORMAT"), formats.date_format(local, "H:i:s T"))


def human_duration(seconds: float | timedelta | None) -> str:
    """``1.0 s``, ``2 min 3 s``, ``1 h 5 min``, ``2 d 3 h``."""
    if isinstance(seconds, timedelta):
        seconds = seconds.total_seconds()
    if seconds is None:
        return "-"
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min {secs} s" if secs else f"{minutes} min"


def admin_change_url(obj) -> str | None:
    try:
        return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return None


def pre_block(text: str, *, empty: str = "-"):
    """Multi-line text (a traceback, a log) as an escaped, scrollable block."""
    if not text:
        return empty
    return format_html('<pre class="ops-pre">{}</pre>', text)


def json_block(value):
    if value in (None, {}, []):
        return "-"
    return pre_block(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str))


def refreshing(response, active: bool):
    """Make a list or page reload itself while it shows a queued or running run."""
    if active and hasattr(response, "context_data") and response.context_data is not None:
        response.context_data["auto_refresh_seconds"] = settings.ADMIN_REFRESH_SECONDS
    return response


class OpsMedia:
    css = {"all": ["scheduling/admin/ops.css"]}
    js = ["scheduling/admin/autorefresh.js"]


# ---------------------------------------------------------------------------
# Jobs
# ---------------------------------------------------------------------------
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
    fields = ["status_badge", "trigger", "attempt", "created_time", "started_time", "duration", "worker", "output"]
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

    @admin.display(description="Created")
    def created_time(self, obj):
        return when(obj.created_at)

    @admin.display(description="Started")
    def started_time(self, obj):
        return when(obj.started_at)

    @admin.display(description="Duration")
    def duration(self, obj):
        return human_duration(obj.duration_seconds)


def with_activity(queryset):
    """Annotate each job with its oldest running and oldest queued run: the
    list's "Now" column in the page's one query (correlated subqueries)."""
    def oldest(status: str, field: str):
        runs = Execution.objects.filter(job=OuterRef("pk"), status=status).order_by(field, "pk")
        return Subquery(runs.values(field)[:1])

    return queryset.annotate(
        running_since=oldest(Execution.Status.RUNNING, "started_at"),
        queued_since=oldest(Execution.Status.QUEUED, "created_at"),
    )


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    form = JobAdminForm
    exclude = ["secrets"]  # never shown, never editable here
    # Seven columns that fit 1,400 px beside the nav sidebar and the filters:
    # the kind goes under the name, times are stacked (date over time).
    list_display = [
        "name_display", "schedule", "status_badge", "now_display", "last_result", "next_run", "success_rate_display",
    ]
    list_display_links = ["name_display"]
    list_filter = ["kind", "job_type", "status", "is_enabled", "schedule_type", "queue"]
    search_fields = ["name", "title", "description", "task_name"]
    list_select_related = ["owner", "organization"]
    ordering = ["id"]
    actions = ["run_now", "run_now_forced", "pause", "resume", "enable", "disable"]
    inlines = [ExecutionInline]
    readonly_fields = [
        # catch_up_policy: shown, not edited here (not in Job.EDITABLE_FIELDS, which the services take)
        "uuid", "status", "catch_up_policy", "statistics", "periodic_task_link", "owner",
        "created_time", "updated_time", "last_run_time", "next_run_time", "last_status_badge", "executions_link",
    ]
    fieldsets = [
        (None, {"fields": ["name", "title", "description", "kind", "job_type", "uuid"]}),
        ("Schedule", {"fields": ["schedule_type", "schedule_expression", "timezone", "catch_up_policy"]}),
        ("Work", {"fields": ["task_name", "task_args", "task_kwargs", "config"]}),
        ("Execution", {"fields": [
            "queue", "priority", "timeout_seconds", "max_retries", "retry_backoff_seconds", "overlap_policy",
        ]}),
        ("State", {"fields": ["is_enabled", "status", "owner", "organization", "periodic_task_link"]}),
        ("Runs", {"fields": [
            "last_run_time", "last_status_badge", "next_run_time", "statistics", "executions_link",
            "created_time", "updated_time",
        ]}),
    ]
    change_form_template = "admin/scheduling/job/change_form.html"
    change_list_template = "admin/scheduling/job/change_list.html"

    class Media(OpsMedia):
        js = [*OpsMedia.js, "scheduling/admin/job_form.js"]

    # -- visibility ----------------------------------------------------------
    def get_queryset(self, request):
        return with_activity(scope_to_user(super().get_queryset(request), request.user))

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields.append("kind")  # the executor is fixed at creation (not in Job.EDITABLE_FIELDS)
        return fields

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    # -- columns -------------------------------------------------------------
    @admin.display(description="Job", ordering="name")
    def name_display(self, obj):
        title = obj.title if obj.title and obj.title != obj.name else ""
        return format_html('<span class="ops-name">{}</span>{}<div class="ops-sub">{}</div>', obj.name,
                           format_html('<div class="ops-title">{}</div>', title) if title else "",
                           obj.get_kind_display())

    @admin.display(description="Schedule", ordering="schedule_type")
    def schedule(self, obj):
        words = schedule_description(obj) or f"{obj.schedule_type} {obj.schedule_expression}"
        raw = f"{obj.schedule_type} {obj.schedule_expression} ({obj.timezone})"
        return format_html('<span title="{}">{}</span>', raw, words)

    @admin.display(description="State", ordering="status")
    def status_badge(self, obj):
        return badge(obj.state, Job.State(obj.state).label)

    @admin.display(description="Now")
    def now_display(self, obj):
        running_since = getattr(obj, "running_since", None)
        queued_since = getattr(obj, "queued_since", None)
        now = timezone.now()
        for since, status in ((running_since, Execution.Status.RUNNING), (queued_since, Execution.Status.QUEUED)):
            if since is not None:
                return format_html(
                    '{}<div>since {}</div><div class="ops-sub">for {}</div>',
                    badge(status, Execution.Status(status).label), when_stacked(since), human_duration(now - since),
                )
        return "-"

    @admin.display(description="Last result", ordering="last_run_at")
    def last_result(self, obj):
        if not obj.last_status and obj.last_run_at is None:
            return "-"
        return format_html(
            '{}<div>{}</div>',
            badge(obj.last_status, status_label(obj.last_status)) if obj.last_status else "",
            when_stacked(obj.last_run_at),
        )

    @admin.display(description="Next run", ordering="next_run_at")
    def next_run(self, obj):
        if not obj.is_schedulable or obj.next_run_at is None:
            return "-"
        return when_stacked(obj.next_run_at)

    @admin.display(description="Success rate")
    def success_rate_display(self, obj):
        if not obj.total_runs:
            return "-"
        return format_html('{}%<div class="ops-sub">of {} runs</div>', f"{obj.success_rate:.1f}", obj.total_runs)

    @admin.display(description="Last run")
    def last_run_time(self, obj):
        return when(obj.last_run_at) if obj and obj.pk else "-"

    @admin.display(description="Last status")
    def last_status_badge(self, obj):
        return badge(obj.last_status, status_label(obj.last_status)) if obj and obj.pk else "-"

    @admin.display(description="Next run")
    def next_run_time(self, obj):
        return when(obj.next_run_at) if obj and obj.pk else "-"

    @admin.display(description="Created")
    def created_time(self, obj):
        return when(obj.created_at) if obj and obj.pk else "-"

    @admin.display(description="Updated")
    def updated_time(self, obj):
        return when(obj.updated_at) if obj and obj.pk else "-"

    @admin.display(description="Statistics")
    def statistics(self, obj):
        if obj is None or not obj.pk:
            return "-"
        stats = selectors.job_statistics(job=obj)
        rows = [
            ("Runs", stats["total_runs"]),
            ("Successful", stats["successful_runs"]),
            ("Failed", stats["failed_runs"]),
            ("Cancelled", stats["cancelled_runs"]),
            ("Success rate", f"{stats['success_rate']:.1f}%"),
            ("Average duration", human_duration(stats["average_duration_seconds"])),
            ("p95 duration", human_duration(stats["p95_duration_seconds"])),
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

    # -- pages -----------------------------------------------------------------
    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        cl = getattr(response, "context_data", {}).get("cl") if hasattr(response, "context_data") else None
        active = cl is not None and any(
            getattr(job, "running_since", None) or getattr(job, "queued_since", None) for job in cl.result_list
        )
        return refreshing(response, active)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # The form validates with the service's rules, so this only catches what
        # changed in between (a name taken meanwhile, a concurrent edit): the
        # admin's transaction is rolled back and the user is told, never a 500.
        extra_context = {**(extra_context or {}), **self._preview_context(request, object_id)}
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except (ValidationError, ApplicationError) as exc:
            self.message_user(request, f"Not saved: {error_message(exc)}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def _preview_context(self, request, object_id) -> dict:
        job = self.get_object(request, object_id) if object_id else None
        if job is not None:
            preview = schedule_preview_display(job.schedule_type, job.schedule_expression, job.timezone)
        else:
            preview = None
        return {
            "schedule_preview": preview,
            "schedule_preview_url": reverse("admin:scheduling_job_schedule_preview"),
            "job_object": job,
        }

    # -- writes through the services -----------------------------------------
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

    # -- buttons on the job page (object tools) --------------------------------
    def get_urls(self):
        site = self.admin_site
        return [
            path("schedule-preview/", site.admin_view(self.schedule_preview_view), name="scheduling_job_schedule_preview"),
            path("<path:object_id>/run/", site.admin_view(self.run_view), name="scheduling_job_run"),
            path("<path:object_id>/state/<str:change>/", site.admin_view(self.state_view), name="scheduling_job_state"),
            *super().get_urls(),
        ]

    def _job_for_button(self, request, object_id) -> Job:
        job = self.get_object(request, object_id)
        if job is None:
            raise Http404(f"No job {object_id} visible to you.")
        if not self.has_change_permission(request, job):
            raise PermissionDenied
        return job

    def _back(self, job: Job) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:scheduling_job_change", args=[job.pk]))

    @staticmethod
    def _broker_problem(exc: Exception) -> str:
        return f"failed ({type(exc).__name__}: {' '.join(str(exc).split())}); is the broker up?"

    def run_view(self, request, object_id):
        return require_POST(self._run_view)(request, object_id)

    def _run_view(self, request, object_id):
        job = self._job_for_button(request, object_id)
        force = request.POST.get("force") == "1"
        try:
            execution = services.job_execute(job=job, actor=request.user, trigger=Execution.Trigger.MANUAL, force=force)
        except (ValidationError, ApplicationError) as exc:
            self.message_user(request, f"{job.name}: {error_message(exc)}", messages.WARNING)
            return self._back(job)
        except Exception as exc:  # Celery messages go out on commit: a broker outage surfaces here
            logger.exception("run of job %s from the admin failed", job.pk)
            self.message_user(request, f"{job.name}: {self._broker_problem(exc)}", messages.WARNING)
            return self._back(job)
        url = reverse("admin:scheduling_execution_change", args=[execution.pk])
        self.message_user(request, format_html('Queued <a href="{}">run {}</a> of {}.', url, execution.pk, job.name),
                          messages.SUCCESS)
        return HttpResponseRedirect(url)

    STATE_CHANGES = {
        "pause": ("Paused", lambda job, user: services.job_pause(job=job, actor=user)),
        "resume": ("Resumed", lambda job, user: services.job_resume(job=job, actor=user)),
        "enable": ("Enabled", lambda job, user: services.job_set_enabled(job=job, enabled=True, actor=user)),
        "disable": ("Disabled", lambda job, user: services.job_set_enabled(job=job, enabled=False, actor=user)),
    }

    def state_view(self, request, object_id, change):
        return require_POST(self._state_view)(request, object_id, change)

    def _state_view(self, request, object_id, change):
        if change not in self.STATE_CHANGES:
            raise Http404(f"No such change: {change}.")
        job = self._job_for_button(request, object_id)
        verb, call = self.STATE_CHANGES[change]
        try:
            call(job, request.user)
        except (ValidationError, ApplicationError) as exc:
            self.message_user(request, f"{job.name}: {error_message(exc)}", messages.WARNING)
        else:
            self.message_user(request, f"{verb} {job.name}.", messages.SUCCESS)
        return self._back(job)

    def schedule_preview_view(self, request):
        return require_GET(self._schedule_preview_view)(request)

    def _schedule_preview_view(self, request):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        params = request.GET
        return JsonResponse(schedule_preview_display(
            params.get("schedule_type", ""), params.get("schedule_expression", ""), params.get("timezone", ""),
        ))

    # -- actions (the list) ----------------------------------------------------
    def _each(self, request, queryset, verb: str, call) -> None:
        done, failed = [], []
        for job in queryset:
            try:
                done.append(call(job))
            except (ValidationError, ApplicationError) as exc:
                failed.append(f"{job.name}: {error_message(exc)}")
            except Exception as exc:  # Celery messages go out on commit: a broker outage surfaces here
                logger.exception("admin action on job %s failed", job.pk)
                failed.append(f"{job.name}: {self._broker_problem(exc)}")
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

    @admin.action(description="Enable", permissions=["change"])
    def enable(self, request, queryset):
        self._each(request, queryset, "Enabled",
                   lambda job: services.job_set_enabled(job=job, enabled=True, actor=request.user).name)

    @admin.action(description="Disable", permissions=["change"])
    def disable(self, request, queryset):
        self._each(request, queryset, "Disabled",
                   lambda job: services.job_set_enabled(job=job, enabled=False, actor=request.user).name)


def schedule_preview_display(schedule_type: str, expression: str, timezone_name: str) -> dict:
    """``scheduling.beat.schedule_preview`` with the runs as the admin shows
    times (in the schedule's own zone, with seconds and the zone's name)."""
    preview = schedule_preview(schedule_type, expression, timezone_name, count=PREVIEW_RUNS)
    runs = preview.pop("next_runs", None) or []
    preview["next_runs"] = [run.isoformat() for run in runs]
    preview["next_runs_display"] = [
        f"{formats.date_format(run, 'D')} {formats.date_format(run, 'DATETIME_FORMAT')}" for run in runs
    ]
    if preview.get("valid") and schedule_type == Job.ScheduleType.MANUAL:
        preview["note"] = "Runs only when triggered."
    return preview


# ---------------------------------------------------------------------------
# Executions and history (read-only)
# ---------------------------------------------------------------------------
class ReadOnlyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    class Media(OpsMedia):
        pass


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyAdmin):
    list_display = ["id", "job", "status_badge", "trigger", "attempt", "created_time", "started_time", "duration",
                    "worker", "summary"]
    list_filter = ["status", "trigger", "job__queue"]
    search_fields = ["job__name", "celery_task_id"]
    list_select_related = ["job"]
    actions = ["cancel"]
    date_hierarchy = "created_at"
    fieldsets = [
        (None, {"fields": ["status_badge", "job_link", "trigger", "attempt", "retry_links", "triggered_by",
                           "override_kwargs_block"]}),
        ("Timing", {"fields": ["scheduled_time", "created_time", "started_time", "completed_time", "duration",
                               "worker", "celery_task_id"]}),
        ("Outcome", {"fields": ["output", "error", "result_block", "batch_id"]}),
        ("Traceback", {"fields": ["traceback_block"]}),
        ("Log", {"fields": ["log_block"]}),
    ]
    readonly_fields = [name for _, options in fieldsets for name in options["fields"]]
    change_form_template = "admin/scheduling/execution/change_form.html"
    change_list_template = "admin/scheduling/execution/change_list.html"

    def get_queryset(self, request):
        qs = super().get_queryset(request).select_related("job", "triggered_by", "retry_of")
        return scope_to_user(qs, request.user, owner_field="job__owner", org_field="job__organization")

    def has_cancel_permission(self, request) -> bool:
        return request.user.has_perm("scheduling.change_execution")

    # -- columns and fields ------------------------------------------------------
    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        return badge(obj.status, obj.get_status_display())

    @admin.display(description="Duration", ordering="duration_seconds")
    def duration(self, obj):
        if obj.duration_seconds is None and obj.status == Execution.Status.RUNNING and obj.started_at:
            return format_html('{}<span class="ops-sub"> so far</span>', human_duration(timezone.now() - obj.started_at))
        return human_duration(obj.duration_seconds)

    @admin.display(description="Created", ordering="created_at")
    def created_time(self, obj):
        return when(obj.created_at)

    @admin.display(description="Started", ordering="started_at")
    def started_time(self, obj):
        return when(obj.started_at)

    @admin.display(description="Completed", ordering="completed_at")
    def completed_time(self, obj):
        return when(obj.completed_at)

    @admin.display(description="Due (scheduled for)")
    def scheduled_time(self, obj):
        return when(obj.scheduled_for)

    @admin.display(description="Output / error")
    def summary(self, obj):
        text = obj.error if obj.status in Execution.FAILURE_STATUSES and obj.error else obj.output
        text = " ".join((text or "").split())
        return format_html('<span title="{}">{}</span>', text, text[:80] + ("…" if len(text) > 80 else "")) if text else "-"

    @admin.display(description="Job")
    def job_link(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("admin:scheduling_job_change", args=[obj.job_id]), obj.job.name)

    @admin.display(description="Retries")
    def retry_links(self, obj):
        parts = []
        if obj.retry_of_id:
            url = reverse("admin:scheduling_execution_change", args=[obj.retry_of_id])
            parts.append(format_html('Retries <a href="{}">run {}</a>', url, obj.retry_of_id))
        retries = list(obj.retries.order_by("pk").values_list("pk", "status"))
        for pk, status in retries:
            url = reverse("admin:scheduling_execution_change", args=[pk])
            parts.append(format_html('Retried as <a href="{}">run {}</a> {}', url, pk, badge(status, status_label(status))))
        return format_html_join(mark_safe("<br>"), "{}", ((part,) for part in parts)) if parts else "-"

    @admin.display(description="Parameters of this run")
    def override_kwargs_block(self, obj):
        return json_block(obj.override_kwargs)

    @admin.display(description="Result")
    def result_block(self, obj):
        return json_block(obj.result)

    @admin.display(description="Traceback")
    def traceback_block(self, obj):
        return pre_block(obj.traceback, empty="(none: the run did not raise)")

    @admin.display(description="Log")
    def log_block(self, obj):
        return pre_block(obj.log, empty="(nothing logged)")

    # -- pages -------------------------------------------------------------------
    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "workers_url": reverse("admin:scheduling_workers")}
        response = super().changelist_view(request, extra_context)
        cl = response.context_data.get("cl") if getattr(response, "context_data", None) else None
        active = cl is not None and any(e.status in Execution.ACTIVE_STATUSES for e in cl.result_list)
        return refreshing(response, active)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        execution = self.get_object(request, object_id)
        extra_context = {
            **(extra_context or {}),
            "can_cancel": bool(execution and execution.is_active and self.has_cancel_permission(request)),
            "can_rerun": bool(execution and request.user.has_perm("scheduling.change_job")),
        }
        response = super().change_view(request, object_id, form_url, extra_context)
        return refreshing(response, bool(execution and execution.is_active))

    # -- buttons ---------------------------------------------------------------
    def get_urls(self):
        site = self.admin_site
        return [
            path("workers/", site.admin_view(self.workers_view), name="scheduling_workers"),
            path("<path:object_id>/cancel/", site.admin_view(self.cancel_view), name="scheduling_execution_cancel"),
            path("<path:object_id>/rerun/", site.admin_view(self.rerun_view), name="scheduling_execution_rerun"),
            *super().get_urls(),
        ]

    def _execution_for_button(self, request, object_id) -> Execution:
        execution = self.get_object(request, object_id)
        if execution is None:
            raise Http404(f"No execution {object_id} visible to you.")
        return execution

    def _back(self, execution: Execution) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:scheduling_execution_change", args=[execution.pk]))

    def cancel_view(self, request, object_id):
        return require_POST(self._cancel_view)(request, object_id)

    def _cancel_view(self, request, object_id):
        execution = self._execution_for_button(request, object_id)
        if not self.has_cancel_permission(request):
            raise PermissionDenied
        try:
            services.execution_cancel(execution=execution, actor=request.user, reason="cancelled in the admin")
        except (ValidationError, ApplicationError) as exc:
            self.message_user(request, error_message(exc), messages.WARNING)
        else:
            self.message_user(request, f"Cancelled run {execution.pk} of {execution.job.name}.", messages.SUCCESS)
        return self._back(execution)

    def rerun_view(self, request, object_id):
        return require_POST(self._rerun_view)(request, object_id)

    def _rerun_view(self, request, object_id):
        execution = self._execution_for_button(request, object_id)
        if not request.user.has_perm("scheduling.change_job"):
            raise PermissionDenied
        try:
            rerun = services.job_execute(
                job=execution.job, actor=request.user, trigger=Execution.Trigger.MANUAL,
                override_kwargs=execution.override_kwargs or None, force=request.POST.get("force") == "1",
            )
        except (ValidationError, ApplicationError) as exc:
            self.message_user(request, f"Not re-run: {error_message(exc)}", messages.WARNING)
            return self._back(execution)
        except Exception as exc:
            logger.exception("re-run of execution %s from the admin failed", execution.pk)
            self.message_user(request, f"Not re-run: {JobAdmin._broker_problem(exc)}", messages.WARNING)
            return self._back(execution)
        self.message_user(request, f"Queued run {rerun.pk}: a re-run of run {execution.pk} with the same parameters.",
                          messages.SUCCESS)
        return self._back(rerun)

    def workers_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        snapshot = cluster.cluster_snapshot(user=request.user)
        now = timezone.now()
        consumers: dict[str, list[str]] = {}
        for worker in snapshot.workers:
            for queue in worker.queues:
                consumers.setdefault(queue, []).append(worker.name)
        context = {
            **self.admin_site.each_context(request),
            "title": "Workers and queues",
            "opts": self.opts,
            "snapshot": snapshot,
            "snapshot_timeout": f"{settings.ADMIN_INSPECT_TIMEOUT_SECONDS:g} s",
            "workers": [_worker_rows(worker, now) for worker in snapshot.workers],
            "queue_rows": [{"name": queue.name, "messages": queue.messages, "detail": queue.detail,
                            "consumers": consumers.get(queue.name, [])} for queue in snapshot.queues],
            "auto_refresh_seconds": settings.ADMIN_REFRESH_SECONDS,
            "executions_url": reverse("admin:scheduling_execution_changelist"),
            "media": self.media,
        }
        return TemplateResponse(request, "admin/scheduling/workers.html", context)

    # -- action (the list) -------------------------------------------------------
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


def _worker_rows(worker: cluster.WorkerInfo, now: datetime) -> dict:
    """A worker as the Workers and queues page shows it."""
    def task_row(task: cluster.TaskInfo) -> dict:
        execution = task.execution
        return {
            "task": task,
            "execution": execution,
            "execution_url": reverse("admin:scheduling_execution_change", args=[execution.pk]) if execution else "",
            "status_badge": badge(execution.status, execution.get_status_display()) if execution else "",
            "started": when(task.started_at) if task.started_at else "-",
            "running_for": human_duration(now - task.started_at) if task.started_at else "-",
            "eta": when(task.eta) if task.eta else "",
        }

    return {
        "info": worker,
        "uptime": human_duration(worker.uptime_seconds) if worker.uptime_seconds is not None else "-",
        "active": [task_row(task) for task in worker.active],
        "reserved": [task_row(task) for task in worker.reserved],
    }


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor_label", "action", "object_type", "object_id", "object_repr"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_label", "object_repr", "object_id"]
    date_hierarchy = "created_at"


@admin.register(DailyJobStatistics)
class DailyJobStatisticsAdmin(ReadOnlyAdmin):
    list_display = ["day", "job", "runs", "successes", "failures", "average_duration", "p95_duration", "computed_at"]
    list_filter = ["day"]
    search_fields = ["job__name"]
    list_select_related = ["job"]
    date_hierarchy = "day"

    @admin.display(description="Average duration", ordering="average_duration_seconds")
    def average_duration(self, obj):
        return human_duration(obj.average_duration_seconds)

    @admin.display(description="p95 duration", ordering="p95_duration_seconds")
    def p95_duration(self, obj):
        return human_duration(obj.p95_duration_seconds)


# ---------------------------------------------------------------------------
# The Workers and queues page in the admin's app list (index and sidebar).
# The project uses Django's default admin site; wrapping this one documented
# hook (AdminSite.get_app_list) adds the page under "Scheduling" without
# swapping the site class in INSTALLED_APPS.
# ---------------------------------------------------------------------------
def _with_workers_page(get_app_list):
    def get_app_list_with_workers(request, app_label=None):
        app_list = get_app_list(request, app_label)
        if not request.user.has_perm("scheduling.view_execution"):
            return app_list
        for app in app_list:
            if app.get("app_label") == "scheduling" and not any(m.get("object_name") == "Workers" for m in app["models"]):
                app["models"].append({
                    "name": "Workers and queues", "object_name": "Workers", "perms": {"view": True},
                    "admin_url": reverse("admin:scheduling_workers"), "add_url": None, "view_only": True,
                })
        return app_list

    get_app_list_with_workers.wrapped = True
    return get_app_list_with_workers


if not getattr(admin.site.get_app_list, "wrapped", False):
    admin.site.get_app_list = _with_workers_page(admin.site.get_app_list)


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
