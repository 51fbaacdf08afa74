"""The jobs list's columns and filter: what the operator reads at a glance.

Each row shows the job, its schedule in words, its state, a strip of its
last runs (one coloured square a run, newest on the right, each a link to
the run: Airflow's grid), what it is doing now, its last outcome with that
outcome's own time, its next run and success rate, and buttons to pause or
resume and run it now. Times are relative with the exact time on hover
(``jobsite.admin.widgets.relative_when``).

The strips of a whole page come from one query (``history.run_history_rows``:
plain tuples, no model instances), attached to the page's rows by
``JobListColumns.attach_run_history``.
"""
from __future__ import annotations

import functools
from html import escape

from django.contrib import admin
from django.db.models import OuterRef, Subquery
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from jobsite import humanize
from jobsite.admin.widgets import html_text, relative_when, time_formatter, when
from scheduling.admin.execution_filters import DeclaredQueuesFilter
from scheduling.admin.history import StripRun, run_history_rows
from scheduling.admin.widgets import BADGE_COLOURS, badge, status_label
from scheduling.beat import schedule_description
from scheduling.kinds import internal_kinds, is_internal_kind
from scheduling.models import Execution, Job

#: Runs in a job's history strip.
RUN_HISTORY_LENGTH = 20


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


@functools.lru_cache(maxsize=2048)
def describe(schedule_type: str, expression: str, timezone_name: str) -> str | None:
    """A schedule in words (``schedule_description``): it depends on these three
    only, and many jobs share a schedule (parsing and phrasing cost ~0.4 ms)."""
    return schedule_description(Job(schedule_type=schedule_type, schedule_expression=expression,
                                    timezone=timezone_name))


@functools.lru_cache(maxsize=64)
def kind_label(kind: str) -> str:
    """``Job.get_kind_display()`` for ``kind``, looked up once: the field's
    choices come from the executor registry and are rebuilt on every call."""
    return str(dict(Job._meta.get_field("kind").flatchoices).get(kind, kind))


class JobQueueFilter(DeclaredQueuesFilter):
    """Jobs by queue, the choices from JOBS_QUEUES: no DISTINCT over every job a page
    (the parameter Django's own field filter used, so links to it still work)."""

    parameter_name = "queue__exact"

    def queryset(self, request, queryset):
        return queryset.filter(queue=self.value()) if self.value() else queryset


def job_is_internal(job: Job) -> bool:
    """A facade's internal manual job (``scheduling.kinds``): no Pause, no Run now here."""
    return is_internal_kind(job.kind)


class JobOriginFilter(admin.SimpleListFilter):
    """Users' jobs by default; the facades' internal jobs (bulk uploads,
    vision batches) on demand, or everything."""

    title = "jobs"
    parameter_name = "origin"
    USERS, INTERNAL, ALL = "users", "internal", "all"

    def lookups(self, request, model_admin):
        return [(self.USERS, "Users' jobs"), (self.INTERNAL, "Internal jobs"), (self.ALL, "All jobs")]

    def value(self):
        return super().value() or self.USERS

    def queryset(self, request, queryset):
        value = self.value()
        if value == self.INTERNAL:
            return queryset.filter(kind__in=internal_kinds())
        if value == self.ALL:
            return queryset
        return queryset.exclude(kind__in=internal_kinds())

    def choices(self, changelist):
        # No "All" of Django's own: the default (no parameter) is users' jobs.
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string(
                    {self.parameter_name: lookup} if lookup != self.USERS else {}, [self.parameter_name]),
                "display": title,
            }


def _square_parts(status: str) -> tuple[str, str, str]:
    """What a square of ``status`` starts with, its colour's style and its label, escaped."""
    colour = BADGE_COLOURS.get(status, "#607d8b")
    return (f'<a class="ops-run ops-run-{escape(status)}" href="', f' style="background:{escape(colour)}"></a>',
            escape(status_label(status)))


#: Each status's parts, built once: not an enum lookup and three escapes per square.
_SQUARES = {status: _square_parts(status) for status in Execution.Status.values}


def run_square(run: StripRun, *, url_of, exact=when, now=None) -> str:
    """One run of a history strip (``history.StripRun``): a square in its
    status's colour, a link to the run, its status and time on hover.
    ``url_of(pk)``: the run's page (the admin's prefix and the id); ``exact``:
    ``when``, or a page's ``time_formatter()``; ``now``: the page's clock, read once."""
    pk, status, at, seconds = run
    opening, style, label = _SQUARES.get(status) or _square_parts(status)
    # the rest needs no escaping: ids, times and durations formatted here
    # (plain string building: format_html for 1,000 squares costs the page ~50 ms)
    tip = f"Run {int(pk)} · {label} · {humanize.relative(at, now)} ({exact(at)})"
    if seconds is not None:
        tip += f" · {humanize.duration(seconds)}"
    return f'{opening}{url_of(pk)}" title="{tip}" aria-label="{tip}"{style}'


def execution_url_maker():
    """``pk -> the run's admin page``, reversed once for a whole page of squares."""
    prefix, suffix = reverse("admin:scheduling_execution_change", args=["0"]).rsplit("/0/", 1)
    return lambda pk: f"{prefix}/{pk}/{suffix}"


@functools.lru_cache(maxsize=32)
def _url_around_pk(name: str, *rest: str) -> tuple[str, str]:
    prefix, suffix = reverse(name, args=["0", *rest]).split("/0/", 1)
    return prefix, suffix


def job_url(name: str, pk: int, *rest: str) -> str:
    """``reverse(name, args=[pk, *rest])`` with one reverse per URL name (a row's buttons)."""
    prefix, suffix = _url_around_pk(name, *rest)
    return f"{prefix}/{int(pk)}/{suffix}"


class JobListColumns:
    """The columns of the jobs list (mixed into ``JobAdmin``)."""

    def attach_run_history(self, jobs) -> None:
        """Give each job of a page its ``run_history`` (newest first), one query for the page."""
        jobs = list(jobs)
        history = run_history_rows(job_ids=[job.pk for job in jobs], limit=RUN_HISTORY_LENGTH)
        exact = time_formatter()  # the zone and format looked up once for the page's squares
        now = timezone.now()
        for job in jobs:
            job.run_history = history.get(job.pk, [])
            job.time_formatter = exact
            job.page_now = now

    @admin.display(description="Job", ordering="name")
    def name_display(self, obj):
        # the cells of 50 rows as plain text, each value escaped (format_html's work without its overhead)
        title = obj.title if obj.title and obj.title != obj.name else ""
        internal = ' <span class="ops-chip">internal</span>' if job_is_internal(obj) else ""
        title = f'<div class="ops-title">{html_text(title)}</div>' if title else ""
        return mark_safe(f'<span class="ops-name">{html_text(obj.name)}</span>{internal}{title}'  # noqa: S308
                         f'<div class="ops-sub ops-kind">{html_text(kind_label(obj.kind))}</div>')

    @admin.display(description="Schedule", ordering="schedule_type")
    def schedule(self, obj):
        if obj.schedule_type == Job.ScheduleType.MANUAL:
            return mark_safe('<span class="ops-sub ops-nowrap">manual: no schedule</span>')
        words = describe(obj.schedule_type, obj.schedule_expression, obj.timezone) or (
            f"{obj.schedule_type} {obj.schedule_expression}")
        raw = f"{obj.schedule_type} {obj.schedule_expression} ({obj.timezone})"
        return mark_safe(f'<span title="{html_text(raw)}">{html_text(words)}</span>')  # noqa: S308

    @admin.display(description="State", ordering="status")
    def status_badge(self, obj):
        return badge(obj.state, Job.State(obj.state).label)

    @admin.display(description=f"Last {RUN_HISTORY_LENGTH} runs")
    def run_history_strip(self, obj):
        runs = getattr(obj, "run_history", None)
        if runs is None:  # not a list page (a single object): read it alone
            runs = run_history_rows(job_ids=[obj.pk], limit=RUN_HISTORY_LENGTH)[obj.pk]
        if not runs:
            return mark_safe('<span class="ops-sub">no runs yet</span>')
        url_of = self._execution_url = getattr(self, "_execution_url", None) or execution_url_maker()
        exact = getattr(obj, "time_formatter", None) or when
        now = getattr(obj, "page_now", None) or timezone.now()
        squares = mark_safe("".join(run_square(run, url_of=url_of, exact=exact, now=now)  # noqa: S308 (escaped)
                                    for run in reversed(runs)))
        # empty slots first: every strip is as long, so the columns of squares line up (a grid)
        empty = mark_safe('<span class="ops-run ops-run-empty"></span>' * (RUN_HISTORY_LENGTH - len(runs)))
        return mark_safe(f'<div class="ops-strip" role="list">{empty}{squares}</div>')  # noqa: S308 (both safe)

    @admin.display(description="Now")
    def now_display(self, obj):
        now = timezone.now()
        for since, status in ((getattr(obj, "running_since", None), Execution.Status.RUNNING),
                              (getattr(obj, "queued_since", None), Execution.Status.QUEUED)):
            if since is not None:
                return format_html('{}<div class="ops-sub ops-nowrap" title="since {}">for {}</div>',
                                   badge(status, Execution.Status(status).label), when(since),
                                   humanize.duration(now - since))
        return mark_safe('<span class="ops-sub">idle</span>')

    @admin.display(description="Last result", ordering="last_finished_at")
    def last_result(self, obj):
        """The last outcome and the time of that same run (``Job.last_finished_at``),
        never the start of a run still going."""
        if not obj.last_status:
            return mark_safe('<span class="ops-sub">no result yet</span>')
        return mark_safe(f'{badge(obj.last_status, status_label(obj.last_status))}'  # noqa: S308 (both safe)
                         f'<div class="ops-sub">{relative_when(obj.last_finished_at)}</div>')

    @admin.display(description="Next run", ordering="next_run_at")
    def next_run(self, obj):
        if obj.schedule_type == Job.ScheduleType.MANUAL:
            return mark_safe('<span class="ops-sub">on request</span>')
        if not obj.is_schedulable or obj.next_run_at is None:
            return format_html('<span class="ops-sub">{}</span>', "not scheduled" if obj.is_schedulable else obj.state)
        return relative_when(obj.next_run_at)

    @admin.display(description="Success", ordering="successful_runs")
    def success_rate_display(self, obj):
        if not obj.total_runs:
            return "-"
        rate = obj.success_rate
        tone = "ops-ok" if rate >= 95 else ("ops-bad" if rate < 80 else "")
        return mark_safe(f'<span class="{tone}">{f"{rate:.1f}".removesuffix(".0")}%</span>'  # noqa: S308 (numbers)
                         f'<div class="ops-sub ops-nowrap">of {obj.total_runs:,} runs</div>')

    @admin.display(description="")
    def row_actions(self, obj):
        """Pause or resume, and run now: buttons posting to the job's own
        button views through the page's row form (outside the list's form)."""
        if job_is_internal(obj):
            return format_html('<span class="ops-sub ops-nowrap" title="{}">runs from its API</span>',
                               "An internal job: each upload or batch sent to its API is one run of it.")
        buttons = []
        if obj.is_enabled:
            change = "resume" if obj.status == Job.Status.PAUSED else "pause"
            buttons.append((job_url("admin:scheduling_job_state", obj.pk, change),
                            f"ops-row-btn ops-row-{change}", change.capitalize(), f"{change.capitalize()} {obj.name}"))
        else:
            buttons.append((job_url("admin:scheduling_job_state", obj.pk, "enable"),
                            "ops-row-btn ops-row-enable", "Enable", f"Enable {obj.name}"))
        if obj.is_schedulable:
            buttons.append((job_url("admin:scheduling_job_run", obj.pk), "ops-row-btn ops-row-run", "Run",
                            f"Run {obj.name} now"))
        return mark_safe('<div class="ops-row-actions">{}</div>'.format("".join(  # noqa: S308 (escaped)
            f'<button type="submit" form="ops-row-post" formaction="{html_text(url)}" class="{css}" '
            f'title="{html_text(tip)}">{label}</button>' for url, css, label, tip in buttons)))
