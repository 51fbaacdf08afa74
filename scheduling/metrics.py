"""``GET /metrics``: Prometheus metrics computed from the database (and the
broker) at scrape time.

A custom collector, not process-local counters: every gunicorn worker answers
the same numbers, with no multiprocess directory to share. Each scrape costs a
fixed number of aggregate queries (GROUP BY job / status, conditional counts
per bucket), never one per execution, and a passive queue declaration per
broker queue.

Protected by ``METRICS_TOKEN``: ``Authorization: Bearer <token>``. Without
the setting the endpoint does not exist (404); a missing or wrong token is a
401.

Counts and histograms cover the executions still stored (the retention sweep,
JOBS_EXECUTION_RETENTION_DAYS, deletes old ones: Prometheus reads the drop as
a counter reset). ``jobsite_job_runs_total`` comes from the jobs' own counters
and only ever grows.
"""
from __future__ import annotations

import hmac
import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from jobsite.tenancy import SYSTEM
from scheduling import selectors
from scheduling.models import Execution, Job

logger = logging.getLogger(__name__)

DURATION_BUCKETS = (0.1, 0.5, 1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 21600)
LATENESS_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600)
BROKER_TIMEOUT_SECONDS = 2.0


def _bucket_counts(queryset, value_q, buckets, group_by: tuple[str, ...]):
    """Rows of ``group_by`` values with a cumulative count per bucket (``b0``,
    ``b1``...) and the total: one aggregate query."""
    annotations = {f"b{i}": Count("id", filter=value_q(bound)) for i, bound in enumerate(buckets)}
    return queryset.values(*group_by).annotate(count=Count("id"), **annotations).order_by(*group_by)


def _histogram(family: HistogramMetricFamily, labels: list[str], row: dict, buckets, total_sum: float) -> None:
    points = [(str(float(bound)), row[f"b{i}"]) for i, bound in enumerate(buckets)]
    points.append(("+Inf", row["count"]))
    family.add_metric(labels, points, total_sum)


def queue_depths(queues) -> dict[str, int] | None:
    """Messages waiting per broker queue (priority sub-queues included); None
    when the broker cannot be reached within BROKER_TIMEOUT_SECONDS."""
    from celery import current_app

    options = {**(current_app.conf.broker_transport_options or {}),
               "socket_connect_timeout": BROKER_TIMEOUT_SECONDS, "socket_timeout": BROKER_TIMEOUT_SECONDS}
    depths: dict[str, int] = {}
    try:
        with current_app.connection_for_read(transport_options=options, connect_timeout=BROKER_TIMEOUT_SECONDS) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=BROKER_TIMEOUT_SECONDS)
            for queue in queues:
                channel = conn.channel()
                try:
                    _, count, _ = channel.queue_declare(queue=queue, passive=True)
                except Exception:  # never declared (no worker yet, nothing sent): nothing waits
                    count = 0
                finally:
                    channel.close()
                depths[queue] = int(count or 0)
    except Exception as exc:
        logger.warning("metrics: broker unreachable for queue depths: %s", exc)
        return None
    return depths


class JobsCollector:
    """Everything ``/metrics`` shows, read when Prometheus scrapes."""

    def collect(self):
        jobs = {job["pk"]: job for job in Job.objects.values(
            "pk", "name", "kind", "total_runs", "successful_runs", "failed_runs", "is_enabled", "status")}

        def job_labels(job_id) -> list[str]:
            job = jobs.get(job_id)
            return [job["name"], job["kind"]] if job else [str(job_id), ""]

        # Runs: monotonic per-job counters kept by the dispatcher.
        runs = CounterMetricFamily("jobsite_job_runs", "Finished runs per job, by outcome (from the job's counters).",
                                   labels=["job", "kind", "outcome"])
        for job in jobs.values():
            cancelled = max(job["total_runs"] - job["successful_runs"] - job["failed_runs"], 0)
            for outcome, value in (("success", job["successful_runs"]), ("failure", job["failed_runs"]),
                                   ("cancelled", cancelled)):
                runs.add_metric([job["name"], job["kind"], outcome], value)
        yield runs

        # Stored executions by status (incl. queued and running right now).
        executions = GaugeMetricFamily("jobsite_executions", "Stored executions per job, kind and status.",
                                       labels=["job", "kind", "status"])
        for row in Execution.objects.values("job_id", "status").annotate(n=Count("id")).order_by("job_id", "status"):
            executions.add_metric([*job_labels(row["job_id"]), row["status"]], row["n"])
        yield executions

        active = GaugeMetricFamily("jobsite_executions_active", "Executions queued or running now, by status.",
                                   labels=["status"])
        counts = Execution.objects.aggregate(**{s: Count("id", filter=Q(status=s)) for s in Execution.ACTIVE_STATUSES})
        for status in Execution.ACTIVE_STATUSES:
            active.add_metric([status], counts[status])
        yield active

        # Durations of finished runs, per job.
        durations = HistogramMetricFamily("jobsite_execution_duration_seconds",
                                          "Run durations of finished executions (stored history).",
                                          labels=["job", "kind"])
        finished = Execution.objects.filter(status__in=Execution.COUNTED_STATUSES, duration_seconds__isnull=False)
        rows = _bucket_counts(finished, lambda b: Q(duration_seconds__lte=b), DURATION_BUCKETS, ("job_id",))
        sums = dict(finished.values("job_id").annotate(s=Sum("duration_seconds")).values_list("job_id", "s"))
        for row in rows:
            _histogram(durations, job_labels(row["job_id"]), row, DURATION_BUCKETS, float(sums.get(row["job_id"]) or 0))
        yield durations

        # Lateness of scheduled runs: started_at - due time (scheduled_for, else created_at).
        lateness = HistogramMetricFamily("jobsite_execution_lateness_seconds",
                                         "How late scheduled runs started: started_at minus their due time.",
                                         labels=["job", "kind"])
        due = Coalesce("scheduled_for", "created_at")
        scheduled = Execution.objects.filter(trigger=Execution.Trigger.SCHEDULE, started_at__isnull=False)
        rows = _bucket_counts(scheduled, lambda b: Q(started_at__lte=due + timedelta(seconds=b)), LATENESS_BUCKETS,
                              ("job_id",))
        late = ExpressionWrapper(F("started_at") - due, output_field=DurationField())
        sums = dict(scheduled.values("job_id").annotate(s=Sum(late)).values_list("job_id", "s"))
        for row in rows:
            total = sums.get(row["job_id"])
            total_seconds = total.total_seconds() if isinstance(total, timedelta) else float(total or 0) / 1e6
            _histogram(lateness, job_labels(row["job_id"]), row, LATENESS_BUCKETS, max(total_seconds, 0.0))
        yield lateness

        # Jobs.
        state = GaugeMetricFamily("jobsite_jobs", "Jobs by state.", labels=["state"])
        state_counts = {s: 0 for s in Job.State.values}
        for job in jobs.values():
            state_counts[Job.State.DISABLED if not job["is_enabled"] else job["status"]] += 1
        for name, value in state_counts.items():
            state.add_metric([name], value)
        yield state

        overdue_jobs = list(selectors.job_overdue_list(user=SYSTEM).values_list("name", "kind"))
        overdue = GaugeMetricFamily("jobsite_jobs_overdue", "Enabled jobs whose expected run has not started.")
        overdue.add_metric([], len(overdue_jobs))
        yield overdue
        overdue_job = GaugeMetricFamily("jobsite_job_overdue", "1 for each overdue job.", labels=["job", "kind"])
        for name, kind in overdue_jobs:
            overdue_job.add_metric([name, kind], 1)
        yield overdue_job

        # Broker.
        depths = queue_depths(settings.JOBS_QUEUES)
        broker_up = GaugeMetricFamily("jobsite_broker_up", "1 when the broker answered this scrape.")
        broker_up.add_metric([], 0 if depths is None else 1)
        yield broker_up
        depth = GaugeMetricFamily("jobsite_queue_depth", "Messages waiting in each broker queue.", labels=["queue"])
        for queue, value in (depths or {}).items():
            depth.add_metric([queue], value)
        yield depth


def _authorized(request: HttpRequest) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), settings.METRICS_TOKEN.encode())


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not settings.METRICS_TOKEN:
        raise Http404("Metrics are off: set METRICS_TOKEN.")
    if not _authorized(request):
        response = HttpResponse("A valid bearer token (METRICS_TOKEN) is required.\n", status=401,
                                content_type="text/plain; charset=utf-8")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobsCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
