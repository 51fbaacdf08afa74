"""The job page's summary, shown before the form: state, next runs,
success rate, a duration chart (p50 and p95 over the last runs) and the
recent runs with Cancel on those still going.

The chart is an SVG drawn on the server by pygal (``js=[]``: no script, no
CDN), inlined in the page.
"""
from __future__ import annotations

import re

from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from jobsite import humanize
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
    import pygal
    from pygal.style import Style

    seconds = [value for _, value in durations]
    p50 = nearest_rank_percentile(seconds, 50)
    p95 = nearest_rank_percentile(seconds, 95)
    style = Style(
        background="transparent", plot_background="transparent", foreground="#555", foreground_strong="#333",
        foreground_subtle="#ddd", colors=(Palette.BUSY, Palette.OK, Palette.LATE), font_family="inherit",
        label_font_size=11, major_label_font_size=11, legend_font_size=12, tooltip_font_size=12,
    )
    chart = pygal.Line(
        js=[], disable_xml_declaration=True, style=style, width=760, height=230, show_legend=True,
        legend_at_bottom=True, legend_at_bottom_columns=3, dots_size=2.5, stroke_style={"width": 1.5},
        show_x_labels=True, x_label_rotation=0, show_minor_x_labels=False, truncate_label=-1,
        value_formatter=lambda v: f"{v:.3g}", margin=8,  # axis numbers, in seconds explicit_size=False,
        include_x_axis=True, y_title="seconds",
    )
    chart.x_labels = [f"#{pk}" for pk, _ in durations]
    chart.x_labels_major_every = max(1, len(durations) // 6)
    chart.add("Run duration", seconds)
    chart.add(f"p50 {humanize.duration(p50)}", [p50] * len(seconds), show_dots=False, stroke_style={"dasharray": "6,4"})
    chart.add(f"p95 {humanize.duration(p95)}", [p95] * len(seconds), show_dots=False, stroke_style={"dasharray": "2,3"})
    # js=[] loads no script; the inline config pygal still writes would only feed one: dropped.
    svg = re.sub(r"<script\b.*?</script>", "", chart.render(is_unicode=True), flags=re.S)
    return mark_safe(svg)  # noqa: S308  (pygal escapes the labels it writes)


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
