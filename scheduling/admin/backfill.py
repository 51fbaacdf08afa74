"""A job's "Backfill" page: run the job once for each due time of a past
range. The form (start, end, dry run) is checked by the service
(``services.backfill_preview``: end after start, not in the future, at most
JOBS_BACKFILL_MAX due times); its refusals are form errors. A dry run shows
the plan (each due time, and the run it already has or the calendar it falls
in); otherwise ``services.job_backfill`` starts the group of runs."""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from jobsite.admin.widgets import when
from jobsite.exceptions import ApplicationError, django_validation_error_detail, error_message
from scheduling import selectors, services
from scheduling.models import Backfill, Execution


class BackfillForm(forms.Form):
    start = forms.DateTimeField(help_text="First due time included, in the job's time zone (YYYY-MM-DD HH:MM).")
    end = forms.DateTimeField(help_text="End of the range (excluded), not in the future.")
    dry_run = forms.BooleanField(required=False, initial=True,
                                 help_text="Only show the plan: which due times would run, and which already ran.")

    def __init__(self, *args, job, **kwargs):
        super().__init__(*args, **kwargs)
        self.job = job
        self.preview = None

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        # read in the job's zone, as the API and the CLI read them (a naive time is the job's)
        start, end = (timezone.make_naive(cleaned[f], timezone.get_current_timezone()) for f in ("start", "end"))
        cleaned["start"], cleaned["end"] = start, end
        try:
            self.preview = services.backfill_preview(job=self.job, start=start, end=end)
        except ValidationError as exc:
            for field, problems in django_validation_error_detail(exc).items():
                self.add_error(field if field in self.fields else None, problems)
        except ApplicationError as exc:
            self.add_error(None, error_message(exc))
        return cleaned


def plan_rows(preview) -> list[dict]:
    rows = []
    for due, ran in preview.due:
        calendar = (preview.skipped or {}).get(due)
        if ran is not None:
            what = f"already ran: run {ran.pk} ({ran.status})"
        elif calendar:
            what = f"skipped: inside calendar '{calendar}'"
        else:
            what = "to run"
        rows.append({"when": when(due, tz=due.tzinfo), "what": what, "run": ran})
    return rows


def backfill_view(model_admin, request, object_id):
    job = model_admin.tool_object(request, object_id)
    if not model_admin.has_change_permission(request, job):
        raise PermissionDenied
    if request.method == "POST" and "cancel" in request.POST:
        return _cancel(model_admin, request, job)
    form = BackfillForm(request.POST or None, job=job, initial={"dry_run": True})
    if request.method == "POST" and form.is_valid() and not form.cleaned_data["dry_run"]:
        try:
            backfill = services.job_backfill(job=job, start=form.cleaned_data["start"], end=form.cleaned_data["end"],
                                             actor=request.user, trigger=Execution.Trigger.MANUAL)
        except (ValidationError, ApplicationError) as exc:
            form.add_error(None, error_message(exc))
        else:
            count = len(backfill.due_times)
            model_admin.message_user(request, f"Backfill {backfill.pk} of {job.name} started: {count} run"
                                              f"{'s' if count != 1 else ''}, one at a time, oldest first.",
                                     messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:scheduling_job_change", args=[job.pk]))
    preview = form.preview if form.is_bound and not form.errors else None
    context = {
        **model_admin.admin_site.each_context(request), "opts": model_admin.opts, "job_object": job,
        "form": form, "title": f"Backfill {job.name}", "has_view_permission": True,
        "preview": preview, "rows": plan_rows(preview) if preview is not None else [],
        "zone": job.timezone,
        "running": [services.backfill_progress(b) for b in
                    job.backfills.filter(status=Backfill.Status.RUNNING).order_by("created_at")],
    }
    return TemplateResponse(request, "admin/scheduling/job/backfill.html", context,
                            status=400 if form.errors else 200)


def _cancel(model_admin, request, job):
    """Cancel one of the job's running backfills: the run going now (or the
    retry waiting) is cancelled, the due times not yet queued never run."""
    backfill = job.backfills.filter(pk=selectors.as_id(request.POST["cancel"])).first()
    if backfill is None:
        model_admin.message_user(request, "No such backfill of this job.", messages.ERROR)
    else:
        try:
            backfill = services.backfill_cancel(backfill=backfill, actor=request.user)
        except ApplicationError as exc:
            model_admin.message_user(request, error_message(exc), messages.WARNING)
        else:
            not_run = len(backfill.due_times) - backfill.queued
            model_admin.message_user(request, f"Backfill {backfill.pk} cancelled: {not_run} due time"
                                              f"{'s' if not_run != 1 else ''} will not run.", messages.SUCCESS)
    return HttpResponseRedirect(request.path)
