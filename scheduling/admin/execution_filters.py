"""The runs list's filters and paginator, built to stay fast at a million runs:
no filter reads the executions to offer its choices (no DISTINCT over the
table, no dropdown of every job), and the page count is counted up to a cap.

- ``JobFilter``: one job by id (``?job__id__exact=``, what other pages link
  to), several (``?job__id__in=1,2``: a workflow's schedules), or by name
  typed in a small form (``?job=``), suggested as you type by the admin's own
  autocomplete of jobs (tenancy-scoped like the job list);
- ``WorkflowFilter``: the runs of one workflow (``?workflow=``), through its schedules;
- ``DidNothingFilter``: runs that did nothing (``Execution.did_nothing``,
  e.g. a poll that found no work) are hidden unless asked;
- ``QueueFilter``: the configured queues (``JOBS_QUEUES``), not the queues
  found in the table;
- ``CappedCountPaginator``: counts at most ``CAP`` + 1 matching runs;
- ``search_runs``: the search box, each kind of term an indexed lookup.

No filter by trigger: no index serves it, and a trigger no run has would read them all.
"""
from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.utils.functional import cached_property

from jobsite.tenancy import scope_to_user
from scheduling.models import Job

#: Jobs a typed name may match (a partial name matching more is narrowed by typing more).
NAME_MATCHES = 20
#: Up to this many jobs, a filter by jobs sends their ids; past it, the jobs' query itself.
JOB_IDS_INLINE = 500


def runs_of_jobs(runs: QuerySet, jobs: QuerySet) -> QuerySet:
    """``runs`` of the ``jobs``. The jobs are read first: no job means no run without
    reading any, and a few jobs' runs come from the (job, created) index. Many jobs are
    matched by their query (their runs are then found early in the list's order)."""
    ids = list(jobs.order_by().values_list("pk", flat=True)[:JOB_IDS_INLINE + 1])
    if not ids:
        return runs.none()
    if len(ids) > JOB_IDS_INLINE:
        return runs.filter(job_id__in=jobs.order_by().values("pk"))
    return runs.filter(job_id__in=ids)


def search_runs(runs: QuerySet, term: str) -> QuerySet:
    """The runs list's search: a run by id or uuid, or by its Celery task id, or the runs
    of the jobs whose name or title holds ``term``: each an indexed lookup (an OR across
    the run and its job would read every run)."""
    term = term.strip()
    if not term:
        return runs
    if term.isascii() and term.isdigit() and len(term) < 19:
        return runs.filter(pk=int(term))
    try:
        as_uuid = uuid.UUID(term)
    except ValueError:
        pass
    else:
        return runs.filter(Q(celery_task_id=term) | Q(celery_task_id=str(as_uuid)) | Q(uuid=as_uuid))
    if len(term) > 200:
        return runs.none()
    return runs_of_jobs(runs, Job.objects.filter(Q(name__icontains=term) | Q(title__icontains=term)))


class JobFilter(admin.ListFilter):
    title = "job"
    template = "admin/scheduling/execution/job_filter.html"
    BY_ID, BY_IDS, BY_NAME = "job__id__exact", "job__id__in", "job"

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        for name in self.expected_parameters():
            if name in params:
                self.used_parameters[name] = params.pop(name)[-1].strip()
        self.typed = self.used_parameters.get(self.BY_NAME, "")
        self.jobs = self._matching_jobs(request) if any(self.used_parameters.values()) else None
        # the other parameters of the page, kept by the name form
        self.kept = [(key, value) for key, values in request.GET.lists()
                     if key not in (*self.expected_parameters(), "p") for value in values]

    def _matching_jobs(self, request) -> list[tuple[int, str]]:
        """The visible jobs the filter means: by id(s), by exact name, else by part of the name."""
        visible = scope_to_user(Job.objects.all(), request.user).order_by("name")
        ids = self.used_parameters.get(self.BY_ID) or self.used_parameters.get(self.BY_IDS)
        if ids:
            ids = [part.strip() for part in ids.split(",")]
            if not all(part.isascii() and part.isdigit() and len(part) < 19 for part in ids):
                return []
            return list(visible.filter(pk__in=[int(part) for part in ids[:NAME_MATCHES]]).values_list("pk", "name"))
        name = self.used_parameters.get(self.BY_NAME, "")
        exact = list(visible.filter(name=name).values_list("pk", "name"))
        return exact or list(visible.filter(name__icontains=name).values_list("pk", "name")[:NAME_MATCHES])

    @property
    def no_match(self) -> bool:
        return self.jobs == []

    def has_output(self) -> bool:
        return True

    def expected_parameters(self) -> list[str]:
        return [self.BY_ID, self.BY_IDS, self.BY_NAME]

    def queryset(self, request, queryset):
        if self.jobs is None:
            return queryset
        return queryset.filter(job_id__in=[pk for pk, _ in self.jobs])

    def choices(self, changelist):
        yield {"selected": self.jobs is None, "display": "All jobs",
               "query_string": changelist.get_query_string(remove=self.expected_parameters())}
        for pk, name in self.jobs or ():
            yield {"selected": len(self.jobs) == 1, "display": name,
                   "query_string": changelist.get_query_string({self.BY_ID: pk}, [self.BY_IDS, self.BY_NAME])}


class WorkflowFilter(admin.SimpleListFilter):
    """The runs of one workflow (``?workflow=<workflow id>``: what the workflow's page links
    to), through the schedules that run it. Shown only while it is in use."""

    title = "workflow"
    parameter_name = "workflow"

    def lookups(self, request, model_admin):
        return [(self.value(), self.value())] if self.value() else []

    def choices(self, changelist):
        yield {"selected": False, "display": "All workflows",
               "query_string": changelist.get_query_string(remove=[self.parameter_name])}
        yield {"selected": True, "display": self.value(), "query_string": changelist.get_query_string()}

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        from scheduling.workflows.selectors import WORKFLOW_KIND

        return runs_of_jobs(queryset, Job.objects.filter(kind=WORKFLOW_KIND, config__workflow_id=self.value()))


class DidNothingFilter(admin.SimpleListFilter):
    """Runs that did nothing are hidden by default: the every-minute vision poll
    alone writes 1,440 a day, which would bury every run that did something."""

    title = "runs that did nothing"
    parameter_name = "did_nothing"
    SHOW, ONLY = "show", "only"

    def lookups(self, request, model_admin):
        return [(self.SHOW, "Shown"), (self.ONLY, "Only these")]

    def choices(self, changelist):
        yield {"selected": self.value() is None, "display": "Hidden",
               "query_string": changelist.get_query_string(remove=[self.parameter_name])}
        for value, label in self.lookup_choices:
            yield {"selected": self.value() == value, "display": label,
                   "query_string": changelist.get_query_string({self.parameter_name: value})}

    def queryset(self, request, queryset):
        if self.value() == self.SHOW:
            return queryset
        return queryset.filter(did_nothing=self.value() == self.ONLY)

    @property
    def hidden(self) -> bool:
        return self.value() is None


class DeclaredQueuesFilter(admin.SimpleListFilter):
    """A filter by the queues the project declares (JOBS_QUEUES): no query for its choices."""

    title = "queue"

    def lookups(self, request, model_admin):
        return [(name, name) for name in settings.JOBS_QUEUES]


class QueueFilter(DeclaredQueuesFilter):
    parameter_name = "queue"

    def queryset(self, request, queryset):
        return runs_of_jobs(queryset, Job.objects.filter(queue=self.value())) if self.value() else queryset


class CappedCountPaginator(Paginator):
    """Counts at most ``CAP`` + 1 rows: a filtered count over a million runs
    would cost more than the page itself (counting the first 1,001 of a status
    that one run in fifty has reads ~50,000 rows; 10,001 would read ten times
    that). Past the cap the list says "more than 1000 runs" and offers the
    first ten pages: beyond them, a filter finds a run sooner than paging."""

    CAP = 1_000

    @cached_property
    def counted(self) -> int:
        # Unordered: any 1,001 matching rows count the same, and the list's order would make the
        # database walk the runs by time (measured: 35 ms unordered, 900 ms ordered, for a
        # member's failures among a million runs).
        return self.object_list.order_by()[:self.CAP + 1].count()

    @cached_property
    def count(self) -> int:
        return min(self.counted, self.CAP)

    @property
    def is_capped(self) -> bool:
        return self.counted > self.CAP
