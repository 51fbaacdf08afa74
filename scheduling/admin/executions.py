"""Runs and history in the admin, read-only: executions, audit entries and
daily statistics.

The runs list (filters and paginator: ``execution_filters``) finds a job's
runs without listing every job, hides the runs that did nothing, and offers
"re-run failed runs". A run's page (``run_page``) puts what went wrong first,
then its progress, a workflow run's steps, and its log, which a small script
(``scheduling/admin/executions.js``) tails while the run goes on, reloading
the page when the run's status changes. Its buttons (Cancel, Re-run, Re-run
from the failed step) call ``execution_cancel``, ``job_execute`` and the
workflows' ``workflow_run_rerun``."""
from __future__ import annotations

import functools
import json

from django.contrib import admin, messages
from django.contrib.admin.filters import DateFieldListFilter
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.urls import get_script_prefix, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_POST

from jobsite.admin.base import (
    LightRowsMixin, ObjectToolsMixin, ReadOnlyAdmin, RefreshingListMixin, act_on_each, attempt,
)
from jobsite.admin.widgets import human_duration, html_text, json_block, pre_block, progress_bar, relative_when, when
from jobsite.tenancy import scope_to_user
from scheduling import services
from scheduling.admin import run_page
from scheduling.admin.execution_filters import (
    CappedCountPaginator, DidNothingFilter, JobFilter, QueueFilter, WorkflowFilter, search_runs,
)
from scheduling.admin.widgets import RunColumns, SchedulingMedia, badge, status_label
from scheduling.admin.workers import WorkersPageMixin
from scheduling.dashboard.runs import page_progress, with_live_result
from scheduling.models import AuditLog, DailyJobStatistics, Execution

#: How often a running run's page asks for new log lines (the script's default).
LOG_TAIL_SECONDS = 2
#: The longest log slice one poll returns (a page that fell far behind catches up over a few polls).
LOG_TAIL_MAX_CHARS = 256 * 1024


@functools.lru_cache(maxsize=4)
def _job_url_template(script_prefix: str) -> str:
    return reverse("admin:scheduling_job_change", args=[987654321])


def _job_url(script_prefix: str, job_id: int) -> str:
    """A job's admin page: one reverse() per script prefix, not one per row."""
    return _job_url_template(script_prefix).replace("987654321", str(int(job_id)), 1)


def _workflow_kind() -> str:
    from scheduling.workflows.selectors import WORKFLOW_KIND

    return WORKFLOW_KIND


@admin.register(Execution)
class ExecutionAdmin(LightRowsMixin, RunColumns, WorkersPageMixin, ObjectToolsMixin, RefreshingListMixin,
                     ReadOnlyAdmin):
    # Eight one-line columns that fit 1,400 px beside the filters: times relative (exact on
    # hover), the worker and the output cut to their column with the whole text on hover.
    list_display = ["id", "job_column", "status_badge", "trigger_column", "created_when", "duration",
                    "worker_column", "summary"]
    list_display_links = ["id"]
    list_filter = [JobFilter, WorkflowFilter, DidNothingFilter, "status", QueueFilter, ("created_at", DateFieldListFilter)]
    search_fields = ["job__name"]  # what the box offers; the search itself is search_runs
    search_help_text = "A run's id or Celery task id, or part of a job's name or title."
    # Only what an index orders: any other sort of a million runs would sort them all.
    sortable_by = ["created_when"]
    list_select_related = ["job"]
    show_full_result_count = False
    list_per_page = 50
    show_facets = admin.ShowFacets.NEVER  # a count per filter choice would read every run
    paginator = CappedCountPaginator
    actions = ["rerun_failed", "cancel"]
    change_form_template = "admin/scheduling/execution/change_form.html"
    change_list_template = "admin/scheduling/execution/change_list.html"

    class Media(SchedulingMedia):
        css = {"all": [*SchedulingMedia.css["all"], "scheduling/admin/executions.css"]}
        js = [*SchedulingMedia.js, "scheduling/admin/executions.js"]

    def get_queryset(self, request):
        qs = super().get_queryset(request).select_related("job", "triggered_by")
        match = getattr(request, "resolver_match", None)
        if match is not None and match.url_name == "scheduling_execution_changelist":
            # a page of runs never shows their logs, tracebacks or results (up to ~100 kB a run), but
            # a running run's recorded progress (its result while it runs) in the page's own query
            qs = with_live_result(qs.defer("log", "traceback", "result"))
        return scope_to_user(qs, request.user, owner_field="job__owner", org_field="job__organization")

    def get_search_results(self, request, queryset, search_term):
        return search_runs(queryset, search_term), False

    def has_cancel_permission(self, request) -> bool:
        return request.user.has_perm("scheduling.change_execution")

    def has_rerun_permission(self, request) -> bool:
        return request.user.has_perm("scheduling.change_job")

    # -- list columns (status and duration: RunColumns) --------------------------
    # A page renders 50 rows of 8 cells: each cell is built without a template or a reverse() of
    # its own (benchmarks/bench_admin.py measured the page's time in its rows, not its queries).
    def row_label(self, obj) -> str:
        return f"run {obj.pk} of {obj.job.name}"

    @admin.display(description="Job")
    def job_column(self, obj):
        name = html_text(obj.job.name)  # cells as plain text, each value escaped: 50 rows of 8 a page
        return mark_safe(f'<a class="ops-cell ops-cell-job" href="{_job_url(get_script_prefix(), obj.job_id)}" '  # noqa: S308
                         f'title="{name}">{name}</a>')

    @admin.display(description="Trigger")
    def trigger_column(self, obj):
        label = obj.trigger if obj.attempt == 1 else f"{obj.trigger} · try {obj.attempt}"
        after = ""
        if obj.trigger_run_id:  # run after another job: the run that started it (its id is on the row)
            after = f'<div class="ops-sub ops-nowrap">after run {int(obj.trigger_run_id)}</div>'
        return mark_safe(f'<span class="ops-nowrap">{html_text(label)}</span>{after}')  # noqa: S308

    @admin.display(description="Created", ordering="created_at")
    def created_when(self, obj):
        return relative_when(obj.created_at)

    @admin.display(description="Worker")
    def worker_column(self, obj):
        if not obj.worker:
            return "-"
        host = obj.worker.split(" ", 1)[0].removeprefix("celery@")
        return mark_safe(f'<span class="ops-cell ops-cell-worker" title="{html_text(obj.worker)}">'  # noqa: S308
                         f'{html_text(host)}</span>')

    @admin.display(description="Output / error")
    def summary(self, obj):
        progress = getattr(obj, "page_progress", None)  # a running run that recorded its progress
        if progress is not None:
            return format_html('<span class="ops-cell ops-cell-progress">{}{}</span>', progress_bar(
                progress.percent, failed_percent=progress.failed_percent, eta_seconds=progress.eta_seconds),
                format_html('<span class="ops-sub"> {}</span>', progress.detail) if progress.detail else "")
        failed = obj.status in Execution.FAILURE_STATUSES and obj.error
        text = " ".join(((obj.error if failed else obj.output) or "").split())
        if not text:
            return "-"
        tone = " ops-bad-text" if failed else (" ops-quiet-text" if obj.did_nothing else "")
        chip = '<span class="ops-chip">did nothing</span> ' if obj.did_nothing else ""
        return mark_safe(f'<span class="ops-cell ops-cell-summary{tone}" title="{html_text(text[:1000])}">'  # noqa: S308
                         f'{chip}{html_text(text[:200])}</span>')

    # -- page fields ------------------------------------------------------------------
    def get_fieldsets(self, request, obj=None):
        """What went wrong first (when it did), then the run at a glance, a workflow run's
        steps, its log, and the details; the stored result only as collapsed JSON."""
        if obj is None:
            return [(None, {"fields": ["status_badge"]})]
        failed = obj.status in Execution.FAILURE_STATUSES
        is_workflow = obj.job.kind == _workflow_kind()
        fieldsets = []
        if failed:
            # a handled failure (the executor said so) has no traceback to show
            fieldsets.append(("What went wrong", {"fields": ["error_block", *(["traceback_block"] if obj.traceback else [])],
                                                  "classes": ["ops-failure"]}))
        fieldsets.append((None, {"fields": [
            "status_line", "progress_display", "job_link", *(["workflow_links"] if is_workflow else []),
            *(["subjects"] if run_page.run_subjects(obj) else []),
            "run_line", *(["retry_links"] if obj.retry_of_id or obj.retries.exists() else []), "override_kwargs_block",
        ]}))
        if is_workflow:
            fieldsets.append(("Steps", {"fields": ["steps_timeline"]}))
        fieldsets.append(("Log", {"fields": ["log_block"]}))
        outcome = ["output", *(["error_block"] if obj.error and not failed else []), *(["batch_id"] if obj.batch_id else [])]
        fieldsets += [
            ("Outcome", {"fields": outcome}),
            ("Timing", {"fields": ["scheduled_time", "created_time", "started_time", "completed_time", "duration",
                                   "worker", "celery_task_id"]}),
        ]
        if not failed and obj.traceback:
            fieldsets.append(("Traceback", {"fields": ["traceback_block"]}))
        fieldsets.append(("Result as stored (JSON)", {"fields": ["result_block"], "classes": ["collapse"]}))
        return fieldsets

    @admin.display(description="Status")
    def status_line(self, obj):
        """The status, and when and how long, on one line."""
        parts = [self.status_badge(obj)]
        if obj.did_nothing:
            parts.append(format_html('<span class="ops-chip" title="{}">did nothing</span>',
                                     "The run found no work; the runs list hides such runs unless asked."))
        if obj.started_at:
            parts.append(format_html('<span class="ops-sub">started {} · {}</span>', relative_when(obj.started_at),
                                     self.duration(obj)))
        elif obj.is_active:
            parts.append(format_html('<span class="ops-sub">queued {}</span>', relative_when(obj.created_at)))
        return format_html_join(" ", "{}", ((part,) for part in parts))

    @admin.display(description="Run")
    def run_line(self, obj):
        """What started it, which try it is, and who asked."""
        who = obj.triggered_by.get_username() if obj.triggered_by else ("beat" if obj.trigger == "schedule" else "")
        text = f"{obj.get_trigger_display()} · attempt {obj.attempt}" + (f" · by {who}" if who else "")
        return format_html('<span id="ops-run-line">{}{}</span>', text, self._upstream_run(obj))

    @staticmethod
    def _upstream_run(obj):
        """A run another job's run started (run after): which run, linked (SET NULL when it was deleted)."""
        upstream = obj.trigger_run
        if upstream is None:
            return ""
        verb = "skipped after" if obj.status == Execution.Status.SKIPPED else "started after"
        return format_html(' · <span id="ops-trigger-run">{} <a href="{}">run {}</a> of {}</span>', verb,
                           reverse("admin:scheduling_execution_change", args=[upstream.pk]), upstream.pk,
                           upstream.job.name)

    def get_readonly_fields(self, request, obj=None):
        return [name for _, options in self.get_fieldsets(request, obj) for name in options["fields"]]

    @admin.display(description="Completed", ordering="completed_at")
    def completed_time(self, obj):
        return when(obj.completed_at)

    @admin.display(description="Due (scheduled for)")
    def scheduled_time(self, obj):
        return when(obj.scheduled_for)

    @admin.display(description="Progress")
    def progress_display(self, obj):
        progress = run_page.run_progress(obj)
        if progress is None:
            return format_html('<span class="ops-sub" id="ops-progress">{}</span>',
                               "reported by this kind of run only when it ends" if obj.is_active else "-")
        return format_html('<span id="ops-progress">{}<span class="ops-sub"> {}</span></span>',
                           progress.bar(), progress.detail)

    @admin.display(description="Job")
    def job_link(self, obj):
        return format_html('<a href="{}">{}</a> <span class="ops-sub">{}</span>',
                           reverse("admin:scheduling_job_change", args=[obj.job_id]), obj.job.name,
                           obj.job.get_kind_display())

    @admin.display(description="Worked on")
    def subjects(self, obj):
        return run_page.run_subjects(obj)

    @admin.display(description="Workflow")
    def workflow_links(self, obj):
        return run_page.workflow_links(obj)

    @admin.display(description="Steps")
    def steps_timeline(self, obj):
        return run_page.steps_timeline(obj)

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
        params = obj.override_kwargs if isinstance(obj.override_kwargs, dict) else {}
        if not params:
            return "- (the job's own)"
        rows = ((name, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str))
                for name, value in sorted(params.items()))
        return format_html('<table class="ops-params"><tbody>{}</tbody></table>',
                           format_html_join("", "<tr><th>{}</th><td><code>{}</code></td></tr>", rows))

    @admin.display(description="Error")
    def error_block(self, obj):
        if not obj.error:
            return "-"
        step = run_page.failed_step(obj)
        where = format_html('<div class="ops-sub">in step {} \u201c{}\u201d</div>', step.get("index", 0) + 1,
                            step.get("name", "?")) if step else ""
        return format_html('<div class="ops-error" id="ops-error">{}</div>{}', obj.error, where)

    @admin.display(description="Result")
    def result_block(self, obj):
        return json_block(obj.result)

    @admin.display(description="Traceback")
    def traceback_block(self, obj):
        return pre_block(obj.traceback, empty="(none: the run did not raise)")

    @admin.display(description="Log")
    def log_block(self, obj):
        live = obj.is_active
        return format_html(
            '<pre class="ops-pre ops-log{}" id="ops-log" data-tail-url="{}" data-offset="{}" data-status="{}" '
            'data-live="{}" data-seconds="{}">{}</pre>{}', "" if obj.log or live else " ops-log-empty",
            reverse("admin:scheduling_execution_log", args=[obj.pk]), run_page.log_length(obj), obj.status,
            "1" if live else "", LOG_TAIL_SECONDS, obj.log or "",
            format_html('<p class="ops-sub" id="ops-log-note">{}</p>',
                        "Live: new lines appear as the run logs them." if live else
                        ("" if obj.log else "Nothing logged.")),
        )

    # -- pages -------------------------------------------------------------------
    def is_going(self, obj) -> bool:
        return obj.status in Execution.ACTIVE_STATUSES

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        cl = (getattr(response, "context_data", None) or {}).get("cl")
        if cl is not None:
            rows = list(cl.result_list)
            found = page_progress(rows)  # one query for the page, whatever it holds
            for execution in rows:
                execution.page_progress = found.get(execution.pk)
            did_nothing = next((spec for spec in cl.filter_specs if isinstance(spec, DidNothingFilter)), None)
            response.context_data["hiding_did_nothing"] = bool(did_nothing and did_nothing.hidden)
            response.context_data["show_did_nothing_url"] = cl.get_query_string({DidNothingFilter.parameter_name:
                                                                                   DidNothingFilter.SHOW})
            response.context_data["hide_did_nothing_url"] = cl.get_query_string(
                remove=[DidNothingFilter.parameter_name])
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        execution = self.get_object(request, object_id)
        failed_workflow_run = bool(
            execution and execution.job.kind == _workflow_kind() and execution.status in Execution.FAILURE_STATUSES
            and run_page.workflow_steps(execution))
        extra_context = {
            **(extra_context or {}),
            "can_cancel": bool(execution and execution.is_active and self.has_cancel_permission(request)),
            "can_rerun": bool(execution and self.has_rerun_permission(request)),
            "can_rerun_from_step": failed_workflow_run and self.has_rerun_permission(request),
            "failed_step": run_page.failed_step(execution) if failed_workflow_run else None,
            "is_live": bool(execution and execution.is_active),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    # -- buttons and the log tail -----------------------------------------------------
    def tool_urls(self):
        return [
            *self.workers_urls(),
            ("<path:object_id>/cancel/", self.cancel_view, "scheduling_execution_cancel"),
            ("<path:object_id>/rerun/", self.rerun_view, "scheduling_execution_rerun"),
            ("<path:object_id>/rerun-from-step/", self.rerun_from_step_view, "scheduling_execution_rerun_from_step"),
            ("<path:object_id>/log/", self.log_view, "scheduling_execution_log"),
        ]

    @method_decorator(require_GET)
    def log_view(self, request, object_id):
        """``{"text", "offset", "reset", "status", "active", "progress", "duration", "steps"}``: the
        run's log after ``?offset=`` (as stored: secrets already redacted), and what the page shows
        of it (a workflow run's steps too)."""
        execution = self.tool_object(request, object_id)  # 404 unless this user sees the run
        if not self.has_view_permission(request, execution):
            raise PermissionDenied
        raw = request.GET.get("offset", "0")
        if not (raw.isascii() and raw.isdigit() and len(raw) < 16):
            return JsonResponse({"detail": "offset must be a whole number of characters, 0 or more."}, status=400)
        tail = run_page.log_after(execution, int(raw))
        if len(tail["text"]) > LOG_TAIL_MAX_CHARS:  # the rest comes with the next polls
            tail["offset"] -= len(tail["text"]) - LOG_TAIL_MAX_CHARS
            tail["text"] = tail["text"][:LOG_TAIL_MAX_CHARS]
        steps = run_page.steps_timeline(execution) if run_page.workflow_steps(execution) else ""
        return JsonResponse({
            **tail, "status": execution.status, "active": execution.is_active,
            "progress": str(self.progress_display(execution)), "duration": str(self.duration(execution)),
            "steps": str(steps),
        })

    @method_decorator(require_POST)
    def cancel_view(self, request, object_id):
        execution = self.tool_object(request, object_id)
        if not self.has_cancel_permission(request):
            raise PermissionDenied
        cancelled = self.tool_call(request, lambda: services.execution_cancel(
            execution=execution, actor=request.user, reason="cancelled in the admin"))
        if cancelled is not None:
            self.message_user(request, f"Cancelled run {execution.pk} of {execution.job.name}.", messages.SUCCESS)
        return self.back_to(execution)

    def _rerun(self, request, execution, *, force: bool = False) -> Execution:
        """Run the job of ``execution`` again with the same parameters."""
        return services.job_execute(job=execution.job, actor=request.user, trigger=Execution.Trigger.MANUAL,
                                    override_kwargs=execution.override_kwargs or None, force=force)

    @method_decorator(require_POST)
    def rerun_view(self, request, object_id):
        execution = self.tool_object(request, object_id)
        if not self.has_rerun_permission(request):
            raise PermissionDenied
        rerun = self.tool_call(request, lambda: self._rerun(request, execution, force=request.POST.get("force") == "1"),
                               refused="Not re-run: ")
        if rerun is None:
            return self.back_to(execution)
        self.message_user(request, f"Queued run {rerun.pk}: a re-run of run {execution.pk} with the same parameters.",
                          messages.SUCCESS)
        return self.back_to(rerun)

    @method_decorator(require_POST)
    def rerun_from_step_view(self, request, object_id):
        """A failed workflow run again from its failed step, reusing the outputs of the steps before it."""
        from scheduling.workflows.services import workflow_run_rerun

        execution = self.tool_object(request, object_id)
        if not self.has_rerun_permission(request):
            raise PermissionDenied
        rerun = self.tool_call(request, lambda: workflow_run_rerun(execution=execution, actor=request.user),
                               refused="Not re-run: ")
        if rerun is None:
            return self.back_to(execution)
        step = (rerun.override_kwargs or {}).get("resume_from", 0) + 1
        self.message_user(request, f"Queued run {rerun.pk}: run {execution.pk} again from step {step}, reusing the "
                                   f"outputs of the steps before it.", messages.SUCCESS)
        return self.back_to(rerun)

    # -- actions (the list) -------------------------------------------------------
    @admin.action(description="Re-run failed runs (failed, error or timeout; same parameters)", permissions=["rerun"])
    def rerun_failed(self, request, queryset):
        runs = list(queryset.select_related("job").order_by("pk"))
        failed = [run for run in runs if run.status in Execution.FAILURE_STATUSES]
        skipped = [run for run in runs if run.status not in Execution.FAILURE_STATUSES]
        queued, refused = [], []
        for run in failed:
            rerun, problem = attempt(lambda run=run: self._rerun(request, run))
            if problem is None:
                queued.append(f"run {run.pk} → run {rerun.pk}")
            else:
                refused.append(f"run {run.pk} ({run.job.name}): {problem}")
        if queued:
            self.message_user(request, f"Re-ran {len(queued)} failed run(s) with the same parameters: "
                                       f"{', '.join(queued)}.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"Skipped {len(skipped)} run(s) that did not fail: " + ", ".join(
                f"{run.pk} ({run.get_status_display().lower()})" for run in skipped) + ".", messages.WARNING)
        for reason in refused:
            self.message_user(request, f"Not re-run: {reason}", messages.WARNING)

    @admin.action(description="Cancel (revoke the Celery task)", permissions=["cancel"])
    def cancel(self, request, queryset):
        def cancel_one(execution):
            services.execution_cancel(execution=execution, actor=request.user, reason="cancelled in the admin")
            return str(execution.pk)

        act_on_each(self, request, queryset.select_related("job"), cancel_one,
                    done=lambda pks: f"Cancelled execution(s) {', '.join(pks)}.")


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


