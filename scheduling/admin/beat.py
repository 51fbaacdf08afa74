"""django-celery-beat's models in the admin: shown, never edited here. Every
PeriodicTask of a job is written by ``scheduling.beat`` in the job's own
transaction; editing one by hand would make the schedule drift from its job,
and its admin would let a superuser schedule any registered Celery task past
the allow-list."""
from __future__ import annotations

from django.contrib import admin
from django.db.models import F
from django.urls import reverse
from django.utils.html import format_html
from django_celery_beat import admin as beat_admin
from django_celery_beat import models as beat_models

from jobsite.admin.base import ReadOnlyAdminMixin


class ReadOnlyPeriodicTaskAdmin(ReadOnlyAdminMixin, beat_admin.PeriodicTaskAdmin):
    list_display = ["name", "job_link", "enabled", "scheduler", "last_run_at", "total_run_count"]
    actions = None
    list_per_page = 50  # beat's bookkeeping, rarely paged: half Django's 100 rows to render

    def get_queryset(self, request):
        # the job of each entry in the same query (a join), not one query per row
        return super().get_queryset(request).annotate(job_pk=F("job__pk"), job_name=F("job__name"))

    @admin.display(description="Job")
    def job_link(self, obj):
        if getattr(obj, "job_pk", None) is None:  # one of beat's own entries (the sweeps), not a job's
            return "-"
        return format_html('<a href="{}">{}</a>', reverse("admin:scheduling_job_change", args=[obj.job_pk]), obj.job_name)


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
