"""The admin index as an operations dashboard: the panels of
``scheduling.dashboard`` (runs per hour, active runs, queues, workers and
beat, overdue jobs, the next 24 hours, the latest failures, the audit trail,
the daily statistics' state), each linking to the filtered list behind it,
with the app list below.

Charts are SVG written on the server (``jobsite.admin.charts``: no
JavaScript, no CDN; docs/architecture.md, "The admin's look"). The page is
Django's own index view (``AdminSite.index``) with this context and
template (``AdminSite.index_template``), so its URL, permissions and app
list stay the admin's.
"""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote, urlencode

from django.conf import settings
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from jobsite import humanize
from jobsite.admin.charts import Series, stacked_bars
from jobsite.admin.widgets import progress_bar, relative_when
from scheduling import dashboard
from scheduling.admin.widgets import badge, status_label
from scheduling.admin.workers import INTERNAL_APPS  # beat's tables: on the dashboard, folded away
from scheduling.models import Execution

INDEX_TEMPLATE = "admin/scheduling/dashboard.html"


def _url(name: str, **query) -> str:
    url = reverse(name)
    return f"{url}?{urlencode(query)}" if query else url


def _executions_url(**query) -> str:
    return _url("admin:scheduling_execution_changelist", **query)


# ---------------------------------------------------------------------------
# Charts
# ---------------------------------------------------------------------------
def _stamp(moment) -> str:
    """A time for a list's filter in a link (with its offset: the admin reads it as an aware time)."""
    return moment.isoformat(timespec="seconds")


def runs_chart(per_hour: dict, *, hours: int, title: str) -> str:
    """The last ``hours`` of ``per_hour`` as stacked bars (inline SVG), each
    hour a link to its runs."""
    starts = per_hour["hours"][-hours:]
    zone = timezone.get_current_timezone()  # once: looking it up per hour costs more than drawing it
    local = [start.astimezone(zone) for start in starts]
    if hours <= 24:
        ticks = {i: f"{t:%H}:00" for i, t in enumerate(local) if t.hour % 3 == 0}
    else:
        ticks = {i: f"{t:%a %d}" for i, t in enumerate(local) if t.hour == 12}
    series = [Series(outcome.label, outcome.colour, per_hour["series"][outcome.key][-hours:])
              for outcome in dashboard.OUTCOMES]
    base = reverse("admin:scheduling_execution_changelist")  # once: 168 reverse() calls cost ~15 ms
    return stacked_bars(
        labels=[f"{t:%a %d %b %H:00}–{(t + timedelta(hours=1)):%H:00 %Z}" for t in local], series=series,
        tick_labels=ticks, title=title,
        links=[f"{base}?created_at__gte={quote(_stamp(start))}&created_at__lt={quote(_stamp(start + timedelta(hours=1)))}"
               for start in starts],
    )


# ---------------------------------------------------------------------------
# The page's context
# ---------------------------------------------------------------------------
def _totals(per_hour: dict, hours: int) -> dict:
    sums = {key: sum(values[-hours:]) for key, values in per_hour["series"].items()}
    finished = sums["success"] + sums["failed"]
    return {**sums, "all": sum(sums.values()),
            "success_rate": round(100.0 * sums["success"] / finished, 1) if finished else None}


def _active_rows(runs) -> list[dict]:
    rows = []
    for run in runs:
        execution = run.execution
        if run.percent is not None:
            progress = progress_bar(run.percent, failed_percent=run.failed_percent, eta_seconds=run.eta_seconds)
        else:
            progress = ""
        rows.append({
            "execution": execution,
            "url": reverse("admin:scheduling_execution_change", args=[execution.pk]),
            "job_url": reverse("admin:scheduling_job_change", args=[execution.job_id]),
            "badge": badge(execution.status, execution.get_status_display()),
            "progress": progress,
            "for": humanize.duration(run.running_seconds if run.running_seconds is not None else run.waiting_seconds),
            "since": relative_when(execution.started_at or execution.created_at),
            "worker": execution.worker.split(" ", 1)[0] if execution.worker else "",
        })
    return rows


def _timeline(lanes, now, hours: int = 24) -> dict:
    span = hours * 3600.0
    zone = timezone.get_current_timezone()

    def left(moment) -> float:
        return round(100.0 * max(0.0, min(span, (moment - now).total_seconds())) / span, 3)

    rows = []
    for lane in lanes:
        if lane.more and lane.runs:  # a dense schedule: one band from its first fire on
            start = left(lane.runs[0])
            track = format_html('<span class="ops-tl-band" style="left:{}%;width:{}%" title="more than {} runs"></span>',
                                f"{start:.3f}", f"{100.0 - start:.3f}", len(lane.runs))
        else:  # one mark per fire, written here: a template tag per mark costs more than the page's queries
            # (numbers and times formatted here: nothing in them to escape)
            track = mark_safe("".join(
                f'<span class="ops-tl-mark" style="left:{left(run):.3f}%" title="{run.astimezone(zone):%a %H:%M %Z}"></span>'
                for run in lane.runs))
        rows.append({"job": lane.job, "url": reverse("admin:scheduling_job_change", args=[lane.job.pk]),
                     "track": track, "count": len(lane.runs), "more": lane.more,
                     "next": relative_when(lane.runs[0] if lane.runs else lane.job.next_run_at, now=now)})
    local_now = timezone.localtime(now)
    first = (local_now + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    ticks = []
    for i in range(0, hours, 3):
        tick = first + timedelta(hours=i)
        if tick - now < timedelta(hours=hours):
            ticks.append({"left": left(tick), "label": f"{tick:%H:%M}"})
    return {"rows": rows, "ticks": ticks}


def dashboard_context(request, *, now=None) -> dict:
    """Everything the dashboard shows, for ``request.user``."""
    user = request.user
    now = now or timezone.now()
    if not user.has_perm("scheduling.view_execution"):
        return {"dashboard": None}
    per_hour = dashboard.runs_per_hour(user=user, now=now)
    active, active_total = dashboard.active_runs(user=user, now=now)
    failures = dashboard.latest_failures(user=user)
    overdue, overdue_total = dashboard.overdue_jobs(user=user)
    lanes, upcoming_total = dashboard.upcoming_runs(user=user, now=now)
    cluster = dashboard.cluster_state(now=now)
    request._ops_cluster_state = cluster  # the warning banner reads it too (scheduling.templatetags.ops_console)
    can_rerun = user.has_perm("scheduling.change_job")
    since_24h = _stamp(now - timedelta(hours=24))
    failed_statuses = ",".join(Execution.FAILURE_STATUSES)
    grace = timedelta(seconds=settings.JOBS_OVERDUE_GRACE_SECONDS)
    return {"dashboard": {
        "now": now,
        "chart_24h": runs_chart(per_hour, hours=24, title="Runs per hour, last 24 hours"),
        "chart_7d": runs_chart(per_hour, hours=7 * 24, title="Runs per hour, last 7 days"),
        "totals_24h": _totals(per_hour, 24),
        "totals_7d": _totals(per_hour, 7 * 24),
        "outcomes": dashboard.OUTCOMES,
        "active": _active_rows(active),
        "active_total": active_total,
        "failures": [{
            "execution": execution,
            "url": reverse("admin:scheduling_execution_change", args=[execution.pk]),
            "job_url": reverse("admin:scheduling_job_change", args=[execution.job_id]),
            "rerun_url": reverse("admin:scheduling_execution_rerun", args=[execution.pk]) if can_rerun else "",
            "badge": badge(execution.status, status_label(execution.status)),
            "when": relative_when(execution.completed_at or execution.created_at, now=now),
            "error": " ".join((execution.error or execution.output or "").split())[:160],
        } for execution in failures],
        "overdue": [{"job": job, "url": reverse("admin:scheduling_job_change", args=[job.pk]),
                     "due": relative_when(job.next_run_at, now=now)} for job in overdue],
        "overdue_total": (f"{dashboard.OVERDUE_COUNT_CAP}+" if overdue_total > dashboard.OVERDUE_COUNT_CAP
                          else overdue_total),
        "timeline": _timeline(lanes, now),
        "upcoming_total": upcoming_total,
        "cluster": cluster,
        "queue_rows": [{"queue": queue, "latency": humanize.duration(queue.oldest_seconds, empty="")}
                       for queue in cluster.queues],
        "workers_live": cluster.live_workers,
        "beat_age": humanize.duration(cluster.beat.age_seconds, empty=""),
        "audit": [{"entry": entry, "when": relative_when(entry.created_at, now=now)}
                  for entry in dashboard.audit_trail(user=user)],
        "statistics": dashboard.daily_statistics_state(now=now),
        "links": {
            "active": _executions_url(status__in="queued,running"),
            "failures": _executions_url(status__in=failed_statuses),
            "failures_24h": _executions_url(status__in=failed_statuses, created_at__gte=since_24h),
            "runs_24h": _executions_url(created_at__gte=since_24h),
            "runs_7d": _executions_url(created_at__gte=_stamp(now - timedelta(days=7))),
            "overdue": _url("admin:scheduling_job_changelist", status__exact="active", is_enabled__exact="1",
                            next_run_at__lt=_stamp(now - grace)),
            "upcoming": _url("admin:scheduling_job_changelist", status__exact="active", is_enabled__exact="1",
                             next_run_at__gte=_stamp(now), next_run_at__lt=_stamp(now + timedelta(hours=24))),
            "workers": reverse("admin:scheduling_workers"),
            "audit": reverse("admin:scheduling_auditlog_changelist"),
            "statistics": reverse("admin:scheduling_dailyjobstatistics_changelist"),
            "health": "/health",
        },
    }}


def split_app_list(app_list: list[dict]) -> tuple[list[dict], list[dict]]:
    """(the apps people use, beat's internal tables)."""
    main = [app for app in app_list if app.get("app_label") not in INTERNAL_APPS]
    internal = [app for app in app_list if app.get("app_label") in INTERNAL_APPS]
    return main, internal


# The page is the admin site's own index view: this wraps it (as workers.py
# wraps get_app_list) to add the dashboard's context, and names the template.
def _with_dashboard(index):
    def dashboard_index(request, extra_context=None):
        context = {**dashboard_context(request), **(extra_context or {})}
        response = index(request, extra_context=context)
        data = getattr(response, "context_data", None)
        if data is not None:
            data["main_apps"], data["internal_apps"] = split_app_list(data.get("app_list") or [])
        return response

    dashboard_index.wrapped = True
    return dashboard_index


if not getattr(admin.site.index, "wrapped", False):
    admin.site.index = _with_dashboard(admin.site.index)
    admin.site.index_template = INDEX_TEMPLATE
