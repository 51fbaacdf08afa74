"""Jobs in the admin. Writes go through the services: saving calls
``job_create``/``job_update`` (so the job's beat PeriodicTask changes in the
same transaction), deleting calls ``job_delete``, and the buttons and actions
call ``job_execute``/``job_pause``/``job_resume``/``job_set_enabled``/
``execution_cancel``. ``Job.secrets`` is never shown: a kind's keys are
write-only fields (``kind_fields``).

The list (``job_list``): run-history strips, relative times, pause/resume
and run buttons per row, users' jobs apart from the facades' internal ones,
and a page that reloads itself while a run of a job it shows is going. The
job page (``job_page``): a summary first (state, next runs, success rate,
duration chart, recent runs with Cancel), "Run now with parameters"
(``run_forms``), then the form with its kind's fields and a live schedule
preview (``job_form.js`` asking ``schedule_preview_view``)."""
from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import formats
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_GET, require_POST

from jobsite.admin.base import LightRowsMixin, ObjectToolsMixin, RefreshingListMixin, act_on_each
from jobsite.admin.widgets import admin_change_url, human_duration, relative_when, when
from jobsite.exceptions import ApplicationError, error_message
from jobsite.tenancy import scope_to_user
from scheduling import services
from scheduling.admin.backfill import backfill_view
from scheduling.admin.forms import JobAdminForm
from scheduling.admin.job_list import JobListColumns, JobOriginFilter, JobQueueFilter, job_is_internal, with_activity
from scheduling.admin.job_page import job_summary
from scheduling.admin.kind_fields import SPECS, kind_fields_for
from scheduling.admin.run_after import run_after_context, run_after_view
from scheduling.admin.run_forms import RunWithParametersForm
from scheduling.admin.widgets import SchedulingMedia, badge, status_label
from scheduling.beat import schedule_preview
from scheduling.executors import DEFAULT_KIND
from scheduling.models import DailyJobStatistics, Execution, Job

PREVIEW_RUNS = 5


@admin.register(Job)
class JobAdmin(LightRowsMixin, JobListColumns, ObjectToolsMixin, RefreshingListMixin, admin.ModelAdmin):
    form = JobAdminForm
    exclude = ["secrets"]  # never shown, never editable here
    # Fits 1,400 px with the navigation sidebar folded away on this list and a
    # narrow filter column: relative times on one line, the kind under the name.
    list_display = [
        "name_display", "schedule", "status_badge", "run_history_strip", "now_display", "last_result", "next_run",
        "success_rate_display", "row_actions",
    ]
    list_display_links = ["name_display"]
    list_filter = [JobOriginFilter, "kind", "status", "is_enabled", "schedule_type", "job_type", JobQueueFilter]
    search_fields = ["name", "title", "description", "task_name"]
    list_select_related = ["owner", "organization"]
    list_per_page = 50
    ordering = ["id"]
    actions = ["run_now", "run_now_forced", "pause", "resume", "enable", "disable"]
    readonly_fields = [
        "uuid", "status", "periodic_task_link", "owner",
        "created_time", "updated_time", "last_run_time", "next_run_time", "last_status_badge", "executions_link",
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

    # -- the form: common fieldsets, and the fields of the job's kind ----------
    def _work_fieldsets(self, obj) -> list:
        """The job's work: a kind's own fields where it has them (the add page
        has every kind's, each fieldset marked with its kind for job_form.js)."""
        if obj is None:
            sets = [("Work", {"fields": ["task_name", "task_args", "task_kwargs"],
                              "classes": ["ops-kind", "ops-kind-task", "ops-kind-other"]}),
                    ("Settings", {"fields": ["config"], "classes": ["ops-kind", "ops-kind-other"]})]
            for spec in SPECS.values():
                sets.append((spec.title, {"fields": spec.names(),
                                          "classes": ["ops-kind", "ops-kind-spec", f"ops-kind-{spec.kind}"]}))
            return sets
        spec = kind_fields_for(obj.kind)
        if spec is not None:
            return [(spec.title, {"fields": spec.names()})]
        if obj.kind == DEFAULT_KIND:
            return [("Work", {"fields": ["task_name", "task_args", "task_kwargs"]})]
        return [("Settings", {"fields": ["task_kwargs", "config"]})]

    def get_fieldsets(self, request, obj=None):
        return [
            (None, {"fields": ["name", "title", "description", "kind", "job_type", "uuid"]}),
            ("Schedule", {"fields": ["schedule_type", "schedule_expression", "timezone", "catch_up_policy"]}),
            *self._work_fieldsets(obj),
            ("Execution", {"fields": [
                "queue", "priority", "timeout_seconds", "max_retries", "retry_backoff_seconds", "overlap_policy",
                "jitter_seconds", "max_concurrent_runs", "concurrency_group",
            ]}),
            ("State", {"fields": ["is_enabled", "status", "owner", "organization", "periodic_task_link"]}),
            ("Runs", {"fields": [
                "last_run_time", "last_status_badge", "next_run_time", "executions_link",
                "created_time", "updated_time",
            ], "classes": ["collapse"]}),
        ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        # A kind's fields are the form's own (added as it is made), not the model's.
        model_fields = {field.name for field in Job._meta.get_fields()}
        fields = [f for f in flatten_fieldsets(self.get_fieldsets(request, obj)) if f in model_fields]
        kwargs["fields"] = [f for f in fields if f not in self.get_readonly_fields(request, obj)]
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"user": request.user})

    # -- the list ----------------------------------------------------------------
    def changelist_view(self, request, extra_context=None):
        # The list wants the width: the navigation sidebar folds away here.
        extra_context = {**(extra_context or {}), "is_nav_sidebar_enabled": False}
        response = super().changelist_view(request, extra_context)
        cl = (getattr(response, "context_data", None) or {}).get("cl")
        if cl is not None:
            self.attach_run_history(cl.result_list)
        return response

    @admin.display(description="Last finished")
    def last_run_time(self, obj):
        return when(obj.last_finished_at) if obj and obj.pk else "-"

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

    @admin.display(description="Beat periodic task")
    def periodic_task_link(self, obj):
        if obj is not None and obj.pk and obj.schedule_type == Job.ScheduleType.MANUAL:
            return "manual: no schedule"  # by design: a manual job has no beat entry
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
        return format_html('<a href="{}">All executions of {}</a>', self.executions_url(obj), obj.name)

    @staticmethod
    def executions_url(job) -> str:
        return reverse("admin:scheduling_execution_changelist") + "?" + urlencode({"job__id__exact": job.pk})

    # -- pages -----------------------------------------------------------------
    def is_going(self, obj) -> bool:
        return bool(getattr(obj, "running_since", None) or getattr(obj, "queued_since", None))

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # The form validates with the service's rules, so this only catches what
        # changed in between (a name taken meanwhile, a concurrent edit): the
        # admin's transaction is rolled back and the user is told, never a 500.
        extra_context = {**(extra_context or {}), **self._page_context(request, object_id)}
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except (ValidationError, ApplicationError) as exc:
            self.message_user(request, f"Not saved: {error_message(exc)}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def _page_context(self, request, object_id) -> dict:
        job = self.get_object(request, object_id) if object_id else None
        preview = None
        if job is not None:
            preview = schedule_preview_display(job.schedule_type, job.schedule_expression, job.timezone)
        context = {
            "schedule_preview": preview,
            "schedule_preview_url": reverse("admin:scheduling_job_schedule_preview"),
            "job_object": job,
        }
        if job is not None and request.method == "GET":
            context.update(self._summary_context(request, job, preview))
        return context

    def _summary_context(self, request, job, preview, run_form=None) -> dict:
        summary = job_summary(job=job, user=request.user, preview=preview)
        internal = job_is_internal(job)
        may_change = self.has_change_permission(request, job)
        if run_form is None and may_change and not internal:
            run_form = RunWithParametersForm(job=job, initial={"force": not job.is_schedulable})
        return {
            "summary": summary,
            "job_internal": internal,
            "run_form": run_form,
            "state_badge": badge(job.state, Job.State(job.state).label),
            "last_badge": badge(job.last_status, status_label(job.last_status)) if job.last_status else None,
            "last_when": relative_when(job.last_finished_at),
            "p50_text": human_duration(summary["p50"]),
            "p95_text": human_duration(summary["p95"]),
            "average_text": human_duration(summary["stats"]["average_duration_seconds"]),
            "all_p95_text": human_duration(summary["stats"]["p95_duration_seconds"]),
            "executions_url": self.executions_url(job),
            "may_change": may_change,
            **run_after_context(job=job, user=request.user),
        }

    # -- writes through the services -----------------------------------------
    def save_model(self, request, obj, form, change):
        data = form.job_data(change=change)
        secrets = form.new_secrets()
        if change:
            if data:
                services.job_update(job=obj, actor=request.user, data=data)
            if secrets:
                services.job_set_secrets(job=obj, actor=request.user, secrets={**services.job_secrets(obj), **secrets})
        else:
            created = services.job_create(actor=request.user, kind=form.cleaned_data.get("kind", DEFAULT_KIND),
                                          secrets=secrets or None, **data)
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

    # -- buttons on the job page and the list's rows -----------------------------
    def tool_urls(self):
        return [
            ("schedule-preview/", self.schedule_preview_view, "scheduling_job_schedule_preview"),
            ("<path:object_id>/run/", self.run_view, "scheduling_job_run"),
            ("<path:object_id>/run-with-parameters/", self.run_with_parameters_view,
             "scheduling_job_run_with_parameters"),
            ("<path:object_id>/state/<str:change>/", self.state_view, "scheduling_job_state"),
            ("<path:object_id>/runs/<int:execution_id>/cancel/", self.cancel_run_view, "scheduling_job_cancel_run"),
            ("<path:object_id>/backfill/", lambda request, object_id: backfill_view(self, request, object_id),
             "scheduling_job_backfill"),
            ("<path:object_id>/run-after/", lambda request, object_id: run_after_view(self, request, object_id),
             "scheduling_job_run_after"),
        ]

    def _job_for_button(self, request, object_id) -> Job:
        job = self.tool_object(request, object_id)
        if not self.has_change_permission(request, job):
            raise PermissionDenied
        return job

    def _back(self, request, job) -> HttpResponseRedirect:
        """Back where the button was pressed (the list posts ``next``), else the job's page."""
        target = request.POST.get("next", "")
        if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                      require_https=request.is_secure()):
            return HttpResponseRedirect(target)
        return self.back_to(job)

    def _refuse_internal(self, request, job, what: str) -> bool:
        if job_is_internal(job):
            self.message_user(request, f"{job.name}: an internal job has no {what} here; its runs come from its API.",
                              messages.WARNING)
            return True
        return False

    @method_decorator(require_POST)
    def run_view(self, request, object_id):
        job = self._job_for_button(request, object_id)
        if self._refuse_internal(request, job, "Run now"):
            return self._back(request, job)
        force = request.POST.get("force") == "1"
        execution = self.tool_call(request, lambda: services.job_execute(
            job=job, actor=request.user, trigger=Execution.Trigger.MANUAL, force=force,
        ), refused=f"{job.name}: ")
        if execution is None:
            return self._back(request, job)
        url = reverse("admin:scheduling_execution_change", args=[execution.pk])
        self.message_user(request, format_html('Queued <a href="{}">run {}</a> of {}.', url, execution.pk, job.name),
                          messages.SUCCESS)
        return self._back(request, job) if request.POST.get("next") else HttpResponseRedirect(url)

    def run_with_parameters_view(self, request, object_id):
        """"Run now with parameters": the kind's form, checked by the API's
        service; its refusals are form errors on this page."""
        job = self._job_for_button(request, object_id)
        if self._refuse_internal(request, job, "Run now"):
            return self.back_to(job)
        form = RunWithParametersForm(request.POST or None, job=job, initial={"force": not job.is_schedulable})
        if request.method == "POST" and form.is_valid():
            execution = form.run(actor=request.user)
            if execution is not None:
                url = reverse("admin:scheduling_execution_change", args=[execution.pk])
                message = format_html('Queued <a href="{}">run {}</a> of {} with {}.', url, execution.pk, job.name,
                                      execution.override_kwargs or "its own parameters")
                self.message_user(request, message, messages.SUCCESS)
                return HttpResponseRedirect(url)
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "job_object": job, "run_form": form,
            "title": f"Run {job.name} with parameters", "has_view_permission": True,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/scheduling/job/run_with_parameters.html", context,
                                status=400 if form.errors else 200)

    @method_decorator(require_POST)
    def cancel_run_view(self, request, object_id, execution_id):
        job = self._job_for_button(request, object_id)
        execution = job.executions.filter(pk=execution_id).first()
        if execution is None:
            raise Http404(f"Job {job.name} has no run {execution_id}.")
        if self.tool_call(request, lambda: services.execution_cancel(execution=execution, actor=request.user),
                          refused=f"Run {execution_id}: ") is not None:
            self.message_user(request, f"Cancelled run {execution_id} of {job.name}.", messages.SUCCESS)
        return self._back(request, job)

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
        if change in ("pause", "resume") and self._refuse_internal(request, job, "Pause or Resume"):
            return self._back(request, job)
        verb, call = self.STATE_CHANGES[change]
        if self.tool_call(request, lambda: call(job, request.user), refused=f"{job.name}: ") is not None:
            self.message_user(request, f"{verb} {job.name}.", messages.SUCCESS)
        return self._back(request, job)

    @method_decorator(require_GET)
    def schedule_preview_view(self, request):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        params = request.GET
        return JsonResponse(schedule_preview_display(
            params.get("schedule_type", ""), params.get("schedule_expression", ""), params.get("timezone", ""),
        ))

    # -- actions (the list) ----------------------------------------------------
    def _each(self, request, queryset, verb: str, call, *, users_only: str = "") -> None:
        if users_only:
            internal = [job for job in queryset if job_is_internal(job)]
            for job in internal:
                self.message_user(request, f"{job.name}: an internal job has no {users_only} here; its runs come "
                                           f"from its API.", messages.WARNING)
            queryset = [job for job in queryset if not job_is_internal(job)]
        act_on_each(self, request, queryset, call, done=lambda names: f"{verb}: {', '.join(names)}",
                    label=lambda job: job.name)

    def _run(self, request, queryset, *, force: bool) -> None:
        def run(job):
            execution = services.job_execute(
                job=job, actor=request.user, trigger=Execution.Trigger.MANUAL, force=force,
            )
            return f"{job.name} (execution {execution.pk})"

        self._each(request, queryset, "Queued", run, users_only="Run now")

    def _change(self, request, queryset, change: str) -> None:
        verb, call = self.STATE_CHANGES[change]
        users_only = "Pause or Resume" if change in ("pause", "resume") else ""
        self._each(request, queryset, verb, lambda job: call(job, request.user).name, users_only=users_only)

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

