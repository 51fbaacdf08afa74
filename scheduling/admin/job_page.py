"""The job page's summary, shown before the form: state, next runs,
success rate, a duration chart (p50 and p95 over the last runs) and the
recent runs with Cancel on those still going.

The chart is an SVG drawn on the server (``jobsite.admin.charts.lines``: no
script, no CDN), inlined in the page.
"""
from __future__ import annotations

from django.urls import reverse
from django.utils import timezone
from django.utils.text import Truncator

from jobsite import humanize
from jobsite.admin import charts
from jobsite.admin.widgets import Palette, relative_when
from scheduling import selectors
from scheduling.admin.widgets import badge
from scheduling.models import Execution, Job
from scheduling.statistics import nearest_rank_percentile

#: Runs the duration chart and the recent-runs table show.
CHART_RUNS = 50
RECENT_RUNS = 10


def duration_chart(durations: list[tuple[int, float]]):
    """An inline SVG: each run's duration (oldest left), with the p50 and
    p95 of those runs as flat lines; None with fewer than two runs."""
    if len(durations) < 2:
        return None
    seconds = [value for _, value in durations]
    p50 = nearest_rank_percentile(seconds, 50)
    p95 = nearest_rank_percentile(seconds, 95)
    every = max(1, len(durations) // 6)
    return charts.lines(
        labels=[f"Run {pk}" for pk, _ in durations],
        series=[
            charts.Line("Run duration", Palette.BUSY, seconds),
            charts.Line(f"p50 {humanize.duration(p50)}", Palette.OK, [p50] * len(seconds), dash="6,4", dots=False),
            charts.Line(f"p95 {humanize.duration(p95)}", Palette.LATE, [p95] * len(seconds), dash="2,3", dots=False),
        ],
        tick_labels={i: f"#{pk}" for i, (pk, _) in enumerate(durations) if i % every == 0},
        title=f"Duration of the last {len(durations)} runs, with their p50 and p95",
        value_text=humanize.duration, unit="seconds",
    )


def job_summary(*, job: Job, user, preview: dict | None) -> dict:
    """What the job page shows above its form."""
    stats = selectors.job_statistics(job=job)
    durations = selectors.job_recent_durations(job=job, limit=CHART_RUNS)
    seconds = [value for _, value in durations]
    recent = list(selectors.execution_list(user=user, job=job)[:RECENT_RUNS])
    now = timezone.now()
    rows = []
    for run in recent:
        going = run.status in Execution.ACTIVE_STATUSES
        if run.duration_seconds is not None:
            length = humanize.duration(run.duration_seconds)
        elif run.status == Execution.Status.RUNNING and run.started_at:
            length = f"{humanize.duration(now - run.started_at)} so far"
        else:
            length = "-"
        rows.append({
            "run": run, "badge": badge(run.status, run.get_status_display()), "when": relative_when(run.created_at),
            "duration": length, "url": reverse("admin:scheduling_execution_change", args=[run.pk]),
            "text": Truncator(run.error or run.output or "").chars(90), "going": going,
            "cancel_url": reverse("admin:scheduling_job_cancel_run", args=[job.pk, run.pk]) if going else "",
        })
    return {
        "stats": stats,
        "chart": duration_chart(durations),
        "chart_runs": len(durations),
        "p50": nearest_rank_percentile(seconds, 50) if seconds else None,
        "p95": nearest_rank_percentile(seconds, 95) if seconds else None,
        "recent_runs": rows,
        "recent_limit": RECENT_RUNS,
        "next_runs": (preview or {}).get("next_runs_display") or [],
        "has_active": any(run.status in Execution.ACTIVE_STATUSES for run in recent),
    }
