"""Jobs in the admin. Writes go through the services: saving calls
``job_create``/``job_update`` (so the job's beat PeriodicTask changes in the
same transaction), deleting calls ``job_delete``, and the buttons and actions
call ``job_execute``/``job_pause``/``job_resume``/``job_set_enabled``.
``Job.secrets`` is never part of any form or page.

Besides the model pages: buttons on the job page (object tools posting to
the views below), a live schedule preview on the form (``job_form.js`` asking
``schedule_preview_view``), and a list that reloads itself while a run of a
job it shows is queued or running."""
from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import OuterRef, Subquery
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from jobsite.admin.base import ObjectToolsMixin, ReadOnlyAdminMixin, RefreshingListMixin, act_on_each
from jobsite.admin.widgets import admin_change_url, human_duration, when, when_stacked
from jobsite.exceptions import ApplicationError, error_message
from jobsite.tenancy import scope_to_user
from scheduling import selectors, services
from scheduling.admin.forms import JobAdminForm
from scheduling.admin.widgets import RunColumns, SchedulingMedia, badge, status_label
from scheduling.beat import schedule_description, schedule_preview
from scheduling.executors import DEFAULT_KIND
from scheduling.models import DailyJobStatistics, Execution, Job

RECENT_EXECUTIONS = 20
PREVIEW_RUNS = 5


class RecentExecutionsFormSet(BaseInlineFormSet):
    def get_queryset(self):
        # Sliced after the inline's own filtering by job (a sliced queryset cannot be filtered).
        if not hasattr(self, "_recent"):
            self._recent = super().get_queryset()[:RECENT_EXECUTIONS]
        return self._recent


class ExecutionInline(RunColumns, ReadOnlyAdminMixin, admin.TabularInline):
    model = Execution
    formset = RecentExecutionsFormSet
    fk_name = "job"
    extra = 0
    show_change_link = True
    verbose_name_plural = f"Recent executions (last {RECENT_EXECUTIONS})"
    fields = ["status_badge", "trigger", "attempt", "created_time", "started_time", "duration", "worker", "output"]
    readonly_fields = fields
    ordering = ["-created_at", "-id"]


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
class JobAdmin(ObjectToolsMixin, RefreshingListMixin, admin.ModelAdmin):
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

    class Media(SchedulingMedia):
        js = [*SchedulingMedia.js, "scheduling/admin/job_form.js"]

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
    def is_going(self, obj) -> bool:
        return bool(getattr(obj, "running_since", None) or getattr(obj, "queued_since", None))

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
    def tool_urls(self):
        return [
            ("schedule-preview/", self.schedule_preview_view, "scheduling_job_schedule_preview"),
            ("<path:object_id>/run/", self.run_view, "scheduling_job_run"),
            ("<path:object_id>/state/<str:change>/", self.state_view, "scheduling_job_state"),
        ]

    def _job_for_button(self, request, object_id) -> Job:
        job = self.tool_object(request, object_id)
        if not self.has_change_permission(request, job):
            raise PermissionDenied
        return job

    @method_decorator(require_POST)
    def run_view(self, request, object_id):
        job = self._job_for_button(request, object_id)
        force = request.POST.get("force") == "1"
        execution = self.tool_call(request, lambda: services.job_execute(
            job=job, actor=request.user, trigger=Execution.Trigger.MANUAL, force=force,
        ), refused=f"{job.name}: ")
        if execution is None:
            return self.back_to(job)
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

    @method_decorator(require_POST)
    def state_view(self, request, object_id, change):
        if change not in self.STATE_CHANGES:
            raise Http404(f"No such change: {change}.")
        job = self._job_for_button(request, object_id)
        verb, call = self.STATE_CHANGES[change]
        if self.tool_call(request, lambda: call(job, request.user), refused=f"{job.name}: ") is not None:
            self.message_user(request, f"{verb} {job.name}.", messages.SUCCESS)
        return self.back_to(job)

    @method_decorator(require_GET)
    def schedule_preview_view(self, request):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        params = request.GET
        return JsonResponse(schedule_preview_display(
            params.get("schedule_type", ""), params.get("schedule_expression", ""), params.get("timezone", ""),
        ))

    # -- actions (the list) ----------------------------------------------------
    def _each(self, request, queryset, verb: str, call) -> None:
        act_on_each(self, request, queryset, call, done=lambda names: f"{verb}: {', '.join(names)}",
                    label=lambda job: job.name)

    def _run(self, request, queryset, *, force: bool) -> None:
        def run(job):
            execution = services.job_execute(
                job=job, actor=request.user, trigger=Execution.Trigger.MANUAL, force=force,
            )
            return f"{job.name} (execution {execution.pk})"

        self._each(request, queryset, "Queued", run)

    def _change(self, request, queryset, change: str) -> None:
        verb, call = self.STATE_CHANGES[change]
        self._each(request, queryset, verb, lambda job: call(job, request.user).name)

    @admin.action(description="Run now", permissions=["change"])
    def run_now(self, request, queryset):
        self._run(request, queryset, force=False)

    @admin.action(description="Run now, even if paused, disabled or already running", permissions=["change"])
    def run_now_forced(self, request, queryset):
        self._run(request, queryset, force=True)

    @admin.action(description="Pause", permissions=["change"])
    def pause(self, request, queryset):
        self._change(request, queryset, "pause")

    @admin.action(description="Resume", permissions=["change"])
    def resume(self, request, queryset):
        self._change(request, queryset, "resume")

    @admin.action(description="Enable", permissions=["change"])
    def enable(self, request, queryset):
        self._change(request, queryset, "enable")

    @admin.action(description="Disable", permissions=["change"])
    def disable(self, request, queryset):
        self._change(request, queryset, "disable")


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

