"""Built-in schedulable maintenance tasks (the seed-003 default jobs).

Each task is ``f(*, execution, **options) -> RunResult``, registered with
``@schedulable`` so a ``task`` job can name it; the ``task`` executor runs it
inside the execution's own Celery task, with the job's ``task_kwargs`` and the
run's ``override_kwargs`` as keyword arguments. Options are explicit keyword
parameters, so a misspelt one fails the run with a clear ``TypeError`` instead
of being ignored.

A monitoring task that finds something down returns ``RunResult(ok=False)``
(a handled failure, recorded as ``failed`` with the summary as error); a task
that cannot do its work raises.
"""
from __future__ import annotations

import logging
import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from scheduling.executors import RunResult, schedulable
from scheduling.models import AuditLog, DailyJobStatistics, Execution, Job
from scheduling.selectors import FAILURE_STATUSES, FINISHED_FOR_STATS

logger = logging.getLogger(__name__)

QUEUE = "maintenance"
CLEANUP_LEVELS = ("standard", "deep")
DELETE_BATCH_SIZE = 1000
# Deeper than this under JOBS_TEMP_DIR is not ours to walk (and keeps recursion bounded).
MAX_TEMP_DEPTH = 64
MCP_TIMEOUT_SECONDS = 5.0
MCP_MAX_PARALLEL = 8


# ---------------------------------------------------------------------------
# Option parsing: override_kwargs arrive as JSON from the API and the CLI
# ---------------------------------------------------------------------------
def _int_option(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().lstrip("-").isdigit():
        raise ValueError(f"{name} must be a whole number, got {value!r}.")
    number = int(value)
    if number < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {number}.")
    return number


def _bool_option(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"{name} must be true or false, got {value!r}.")


def _delete_in_batches(queryset: QuerySet) -> int:
    """Delete ``queryset`` a batch at a time, so one run never holds a huge
    delete (and its cascade collection) in memory or in one transaction."""
    model = queryset.model
    deleted = 0
    while True:
        pks = list(queryset.order_by("pk").values_list("pk", flat=True)[:DELETE_BATCH_SIZE])
        if not pks:
            return deleted
        with transaction.atomic():
            _, per_model = model.objects.filter(pk__in=pks).delete()
        deleted += per_model.get(model._meta.label, 0)


def _human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


# ---------------------------------------------------------------------------
# system_health_check
# ---------------------------------------------------------------------------
@schedulable(
    "scheduling.system_health_check",
    description="Check the database, broker, Celery workers, beat and free disk; fails when any is down.",
    queue=QUEUE,
)
def system_health_check(*, execution=None, include_workers: bool = True) -> RunResult:
    """The same checks as GET /health (jobsite.services_health.health_report).

    ``include_workers=False`` leaves the broadcast worker ping out. Anything
    down makes the run a handled failure whose output names what is down.
    """
    from jobsite.services_health import health_report

    report = health_report(include_workers=_bool_option("include_workers", include_workers))
    checks = report["checks"]
    down = {name: check for name, check in checks.items() if not check.get("ok")}
    if down:
        problems = "; ".join(f"{name} down ({check.get('detail', 'no detail')})" for name, check in down.items())
        logger.warning("system health check: %s", problems)
        return RunResult(ok=False, output=f"Unhealthy: {problems}"[:1000], result=report)
    return RunResult(output=f"Healthy: {', '.join(checks)} ok in {report['duration_ms']:.0f} ms", result=report)


# ---------------------------------------------------------------------------
# document_cleanup
# ---------------------------------------------------------------------------
@dataclass
class SweepStats:
    files_deleted: int = 0
    bytes_freed: int = 0
    dirs_removed: int = 0
    errors: list[str] = field(default_factory=list)


def temp_dir_sweep(root: Path, *, older_than: float, remove_empty_dirs: bool, dry_run: bool) -> SweepStats:
    """Delete entries under ``root`` whose mtime is before ``older_than`` (epoch
    seconds); with ``remove_empty_dirs`` also directories left empty that were
    themselves untouched since then.

    Symbolic links are never followed: a link is an entry like a file (the link
    is removed, never its target), and every directory is opened relative to
    its parent with O_NOFOLLOW, so swapping a directory for a link mid-sweep
    cannot lead the sweep out of ``root``.
    """
    stats = SweepStats()
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _sweep_directory(root_fd, str(root), 0, older_than, remove_empty_dirs, dry_run, stats)
    finally:
        os.close(root_fd)
    return stats


def _sweep_directory(dir_fd: int, shown: str, depth: int, older_than: float, remove_empty_dirs: bool,
                     dry_run: bool, stats: SweepStats) -> bool:
    """Sweep one directory; True when nothing is (or, in a dry run, would be) left in it."""
    remaining = 0
    with os.scandir(dir_fd) as scan:
        entries = list(scan)
    for entry in entries:
        path = f"{shown}/{entry.name}"
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # removed by someone else meanwhile
        try:
            if stat.S_ISDIR(info.st_mode):
                if depth >= MAX_TEMP_DEPTH:
                    stats.errors.append(f"{path}: deeper than {MAX_TEMP_DEPTH} levels, not swept")
                    remaining += 1
                    continue
                child_fd = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
                try:
                    child = os.fstat(child_fd)
                    if (child.st_dev, child.st_ino) != (info.st_dev, info.st_ino):
                        remaining += 1  # replaced since it was listed: leave it for the next run
                        continue
                    empty = _sweep_directory(child_fd, path, depth + 1, older_than, remove_empty_dirs, dry_run, stats)
                finally:
                    os.close(child_fd)
                # The mtime read before sweeping it: deleting its files just refreshed the real one.
                if empty and remove_empty_dirs and info.st_mtime < older_than:
                    if not dry_run:
                        os.rmdir(entry.name, dir_fd=dir_fd)
                    stats.dirs_removed += 1
                else:
                    remaining += 1
            elif info.st_mtime < older_than:
                if not dry_run:
                    os.unlink(entry.name, dir_fd=dir_fd)
                stats.files_deleted += 1
                stats.bytes_freed += info.st_size if stat.S_ISREG(info.st_mode) else 0
            else:
                remaining += 1
        except FileNotFoundError:
            continue
        except OSError as exc:  # e.g. a directory that gained a file meanwhile, or no permission
            stats.errors.append(f"{path}: {exc.strerror or exc}")
            remaining += 1
    return remaining == 0


@schedulable(
    "scheduling.document_cleanup",
    description="Delete old temporary files under JOBS_TEMP_DIR and finished executions past their retention.",
    queue=QUEUE,
)
def document_cleanup(
    *,
    execution=None,
    retention_days: int | None = None,
    temp_retention_hours: int | None = None,
    dry_run: bool = False,
    cleanup_level: str = "standard",
) -> RunResult:
    """Remove temporary files older than JOBS_TEMP_RETENTION_HOURS (or
    ``temp_retention_hours``) under JOBS_TEMP_DIR, and finished executions
    older than JOBS_EXECUTION_RETENTION_DAYS (or ``retention_days``).

    ``cleanup_level="deep"`` (seed 003) also removes directories left empty
    and skipped (overlap) executions of any age. ``dry_run`` only counts.
    Job totals (total_runs, ...) and daily statistics are kept.
    """
    if cleanup_level not in CLEANUP_LEVELS:
        raise ValueError(f"cleanup_level must be one of {', '.join(CLEANUP_LEVELS)}, got {cleanup_level!r}.")
    deep = cleanup_level == "deep"
    dry_run = _bool_option("dry_run", dry_run)
    days = _int_option("retention_days", settings.JOBS_EXECUTION_RETENTION_DAYS if retention_days is None
                       else retention_days, minimum=1)
    hours = _int_option("temp_retention_hours", settings.JOBS_TEMP_RETENTION_HOURS if temp_retention_hours is None
                        else temp_retention_hours, minimum=1)

    temp_dir = Path(settings.JOBS_TEMP_DIR)
    temp_dir.mkdir(parents=True, exist_ok=True)
    sweep = temp_dir_sweep(temp_dir, older_than=time.time() - hours * 3600, remove_empty_dirs=deep, dry_run=dry_run)

    cutoff = timezone.now() - timedelta(days=days)
    old = Q(status__in=Execution.FINISHED_STATUSES) & (
        Q(completed_at__lt=cutoff) | Q(completed_at=None, created_at__lt=cutoff)
    )
    if deep:
        old |= Q(status=Execution.Status.SKIPPED)
    expired = Execution.objects.filter(old)
    if execution is not None:
        expired = expired.exclude(pk=execution.pk)
    skipped_count = expired.filter(status=Execution.Status.SKIPPED).count()
    executions_deleted = expired.count() if dry_run else _delete_in_batches(expired)

    verb = "Would delete" if dry_run else "Deleted"
    output = (
        f"{verb} {sweep.files_deleted} temp file(s) ({_human_bytes(sweep.bytes_freed)})"
        + (f", {sweep.dirs_removed} empty dir(s)" if deep else "")
        + f" and {executions_deleted} execution(s) (finished over {days} day(s) ago"
        + (", or skipped" if deep else "") + ")"
        + (f"; {len(sweep.errors)} error(s)" if sweep.errors else "")
    )
    return RunResult(
        output=output,
        result={
            "dry_run": dry_run,
            "cleanup_level": cleanup_level,
            "temp_dir": str(temp_dir),
            "temp_retention_hours": hours,
            "files_deleted": sweep.files_deleted,
            "bytes_freed": sweep.bytes_freed,
            "dirs_removed": sweep.dirs_removed,
            "errors": sweep.errors[:100],
            "execution_retention_days": days,
            "executions_deleted": executions_deleted,
            "skipped_executions_deleted": skipped_count,
        },
    )


# ---------------------------------------------------------------------------
# analytics_aggregation
# ---------------------------------------------------------------------------
def nearest_rank_percentile(values: list[float], percent: int) -> float | None:
    """The ``percent``-th percentile by nearest rank: the smallest value with at
    least ``percent``% of the values at or below it (rank ⌈p·n/100⌉, 1-based)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-percent * len(ordered) // 100))  # integer ceil: no float error at exact multiples
    return ordered[rank - 1]


def _day_statistics(rows: list[tuple[str, float | None]]) -> dict[str, Any]:
    durations = [duration for _, duration in rows if duration is not None]
    p95 = nearest_rank_percentile(durations, 95)
    return {
        "runs": len(rows),
        "successes": sum(1 for status, _ in rows if status == Execution.Status.SUCCESS),
        "failures": sum(1 for status, _ in rows if status in FAILURE_STATUSES),
        "average_duration_seconds": round(sum(durations) / len(durations), 3) if durations else None,
        "p95_duration_seconds": round(p95, 3) if p95 is not None else None,
    }


def daily_statistics_compute(*, day: date) -> dict[str, Any]:
    """Recompute DailyJobStatistics for ``day`` (in settings.TIME_ZONE): one row
    per job that ran that day and one overall row (job=None).

    Runs are executions created that day and finished (as counted by the
    statistics selectors: cancelled counts as a run, skipped does not).
    """
    tz = timezone.get_default_timezone()
    start = timezone.make_aware(datetime.combine(day, dt_time.min), tz)
    end = timezone.make_aware(datetime.combine(day + timedelta(days=1), dt_time.min), tz)
    per_job: dict[int, list[tuple[str, float | None]]] = {}
    rows = Execution.objects.filter(created_at__gte=start, created_at__lt=end, status__in=FINISHED_FOR_STATS)
    for job_id, status, duration in rows.values_list("job_id", "status", "duration_seconds").iterator():
        per_job.setdefault(job_id, []).append((status, duration))

    with transaction.atomic():
        for job_id, job_rows in per_job.items():
            DailyJobStatistics.objects.update_or_create(day=day, job_id=job_id, defaults=_day_statistics(job_rows))
        overall = _day_statistics([row for job_rows in per_job.values() for row in job_rows])
        # update_or_create with job=None looks the row up with IS NULL.
        DailyJobStatistics.objects.update_or_create(day=day, job=None, defaults=overall)
    return {"day": day.isoformat(), "jobs": len(per_job), **overall}


@schedulable(
    "scheduling.analytics_aggregation",
    description="Per-day execution statistics (runs, successes, failures, avg/p95 duration) per job and overall.",
    queue=QUEUE,
)
def analytics_aggregation(*, execution=None, day: str | None = None) -> RunResult:
    """Compute DailyJobStatistics for ``day`` (ISO date), by default for
    yesterday and today. Days whose executions may already have been pruned
    (older than JOBS_EXECUTION_RETENTION_DAYS) are refused rather than
    overwritten with partial counts."""
    today = timezone.localdate()
    if day is None:
        days = [today - timedelta(days=1), today]
    else:
        try:
            days = [date.fromisoformat(str(day))]
        except ValueError:
            raise ValueError(f"day must be an ISO date such as {today.isoformat()}, got {day!r}.") from None
    oldest = today - timedelta(days=settings.JOBS_EXECUTION_RETENTION_DAYS)
    if days[0] < oldest:
        raise ValueError(
            f"{days[0].isoformat()} is before the execution retention window (since {oldest.isoformat()}); "
            "its executions may be pruned, so its statistics are kept as they are."
        )
    computed = [daily_statistics_compute(day=d) for d in days]
    summary = "; ".join(
        f"{item['day']}: {item['runs']} run(s) over {item['jobs']} job(s), {item['failures']} failed"
        for item in computed
    )
    return RunResult(output=f"Aggregated {summary}", result={"days": computed})


# ---------------------------------------------------------------------------
# database_maintenance
# ---------------------------------------------------------------------------
def _sqlite_maintenance(*, vacuum: bool, notes: list[str]) -> dict[str, Any]:
    with connection.cursor() as cursor:
        def size() -> int:
            cursor.execute("PRAGMA page_count")
            pages = cursor.fetchone()[0]
            cursor.execute("PRAGMA page_size")
            return pages * cursor.fetchone()[0]

        before = size()
        ran = []
        cursor.execute("PRAGMA optimize")
        ran.append("PRAGMA optimize")
        cursor.execute("ANALYZE")
        ran.append("ANALYZE")
        checkpoint = None
        # VACUUM and a checkpoint both need to run outside any transaction, which
        # is how the worker runs this task (Django autocommit); a caller inside
        # atomic() gets the rest.
        if connection.in_atomic_block:
            if vacuum:
                notes.append("VACUUM skipped: SQLite cannot VACUUM inside a transaction")
            notes.append("WAL checkpoint skipped: inside a transaction")
        else:
            if vacuum:
                cursor.execute("VACUUM")
                ran.append("VACUUM")
            # After VACUUM: it writes the whole database through the WAL.
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            busy, wal_pages, checkpointed = cursor.fetchone()
            ran.append("PRAGMA wal_checkpoint(TRUNCATE)")
            checkpoint = {"busy": bool(busy), "wal_pages": wal_pages, "checkpointed_pages": checkpointed}
            if busy:
                notes.append("WAL checkpoint incomplete: another connection was reading or writing")
        after = size()
    return {"statements": ran, "size_bytes_before": before, "size_bytes_after": after, "wal_checkpoint": checkpoint}


def _postgresql_maintenance(*, vacuum: bool, notes: list[str]) -> dict[str, Any]:
    tables = sorted(connection.introspection.django_table_names(only_existing=True))
    # VACUUM refuses to run inside a transaction block; Django's connection is in
    # autocommit outside atomic(), which is how the worker runs this task.
    can_vacuum = vacuum and not connection.in_atomic_block and connection.get_autocommit()
    if vacuum and not can_vacuum:
        notes.append("VACUUM skipped: inside a transaction; ran ANALYZE only")
    command = "VACUUM (ANALYZE)" if can_vacuum else "ANALYZE"
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"{command} {connection.ops.quote_name(table)}")
    return {"statements": [f"{command} <table>"], "tables": tables}


@schedulable(
    "scheduling.database_maintenance",
    description="Optimise the database (ANALYZE, SQLite checkpoint, optional VACUUM) and prune the audit log.",
    queue=QUEUE,
)
def database_maintenance(*, execution=None, vacuum: bool = False, audit_retention_days: int = 365) -> RunResult:
    """SQLite: ``PRAGMA optimize``, ``ANALYZE``, ``PRAGMA wal_checkpoint(TRUNCATE)``
    and, with ``vacuum``, ``VACUUM``. PostgreSQL: ``ANALYZE`` (``VACUUM
    (ANALYZE)`` with ``vacuum``) of every Django table. Audit entries older than
    ``audit_retention_days`` are deleted first, so the optimisation sees it."""
    vacuum = _bool_option("vacuum", vacuum)
    audit_days = _int_option("audit_retention_days", audit_retention_days, minimum=1)
    notes: list[str] = []

    audit_cutoff = timezone.now() - timedelta(days=audit_days)
    audit_deleted = _delete_in_batches(AuditLog.objects.filter(created_at__lt=audit_cutoff))
    # Celery results live in the result backend (Redis), which expires them
    # after CELERY_RESULT_EXPIRES; only django_celery_results would keep them here.
    notes.append("celery results: not stored in the database (expired by the result backend)")

    vendor = connection.vendor
    started = time.perf_counter()
    if vendor == "sqlite":
        details = _sqlite_maintenance(vacuum=vacuum, notes=notes)
    elif vendor == "postgresql":
        details = _postgresql_maintenance(vacuum=vacuum, notes=notes)
    else:
        details = {"statements": []}
        notes.append(f"no optimisation implemented for the {vendor} backend")
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)

    output = (
        f"{vendor}: {', '.join(details['statements']) or 'nothing run'} in {elapsed_ms:.0f} ms; "
        f"{audit_deleted} audit entr{'y' if audit_deleted == 1 else 'ies'} older than {audit_days} day(s) deleted"
    )
    return RunResult(
        output=output,
        result={"vendor": vendor, **details, "duration_ms": elapsed_ms, "audit_retention_days": audit_days,
                "audit_entries_deleted": audit_deleted, "notes": notes},
    )


# ---------------------------------------------------------------------------
# mcp_server_health_check
# ---------------------------------------------------------------------------
def _display_url(url: str) -> str:
    """The URL without user info, query or fragment: MCP URLs often carry keys there."""
    parts = urlsplit(url)
    host_and_port = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host_and_port, parts.path, "", ""))


def _refuse_private_target(url: str) -> None:
    """Refuse URLs naming private/loopback/link-local hosts unless settings allow
    them (DESIGN §4, outbound HTTP). Only for URLs given as run options: those
    in settings.MCP_SERVER_URLS are the operator's and may well be internal."""
    import ipaddress
    import socket

    host = urlsplit(url).hostname or ""
    if host.lower() in {h.lower() for h in settings.OUTBOUND_HTTP_DENY_HOSTS}:
        raise ValueError(f"{_display_url(url)}: host is denied by OUTBOUND_HTTP_DENY_HOSTS.")
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        return  # unresolvable: the request itself reports the server as down
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if ip.is_loopback and not settings.OUTBOUND_HTTP_ALLOW_LOOPBACK:
            raise ValueError(f"{_display_url(url)}: loopback targets are not allowed (OUTBOUND_HTTP_ALLOW_LOOPBACK).")
        if (ip.is_private or ip.is_link_local or ip.is_reserved or ip.is_multicast or ip.is_unspecified) \
                and not ip.is_loopback and not settings.OUTBOUND_HTTP_ALLOW_PRIVATE:
            raise ValueError(f"{_display_url(url)}: private targets are not allowed (OUTBOUND_HTTP_ALLOW_PRIVATE).")


def mcp_server_probe(url: str, *, timeout: float = MCP_TIMEOUT_SECONDS) -> dict[str, Any]:
    """GET ``url`` and time it to the response headers. Any HTTP answer below
    500 means the server is up: an MCP endpoint may well answer a bare GET with
    400/405/406, which still proves it is listening. The body is never read
    (an SSE endpoint would stream forever)."""
    shown = _display_url(url)
    started = time.perf_counter()
    try:
        with requests.get(
            url, timeout=timeout, stream=True, allow_redirects=False,
            headers={"Accept": "application/json, text/event-stream", "User-Agent": "jobsite-mcp-health-check"},
        ) as response:
            latency = round((time.perf_counter() - started) * 1000, 1)
            up = response.status_code < 500
            return {"url": shown, "ok": up, "status_code": response.status_code, "latency_ms": latency,
                    "error": "" if up else f"HTTP {response.status_code} {response.reason or ''}".strip()}
    except requests.RequestException as exc:
        latency = round((time.perf_counter() - started) * 1000, 1)
        reason = type(exc).__name__
        if isinstance(exc, requests.Timeout):
            reason = f"timed out after {timeout:g}s"
        elif isinstance(exc, requests.ConnectionError):
            reason = "connection failed"
        return {"url": shown, "ok": False, "status_code": None, "latency_ms": latency, "error": reason}


@schedulable(
    "scheduling.mcp_server_health_check",
    description="GET every MCP server in MCP_SERVER_URLS; fails when any does not answer.",
    queue=QUEUE,
)
def mcp_server_health_check(*, execution=None, urls: list[str] | None = None,
                            timeout: float = MCP_TIMEOUT_SECONDS) -> RunResult:
    """Probe each MCP server URL (settings.MCP_SERVER_URLS, or ``urls``) in
    parallel; record status code and latency. Any server down fails the run."""
    if urls is None:
        targets = list(settings.MCP_SERVER_URLS)
    else:
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise ValueError("urls must be a list of http(s) URLs.")
        targets = urls
    for url in targets:
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise ValueError(f"{_display_url(url)!r} is not an http(s) URL.")
        if urls is not None:
            _refuse_private_target(url)
    try:
        timeout = float(timeout)
    except (TypeError, ValueError):
        raise ValueError(f"timeout must be a number of seconds, got {timeout!r}.") from None
    if not 0 < timeout <= 60:
        raise ValueError("timeout must be between 0 and 60 seconds.")
    if not targets:
        return RunResult(output="No MCP servers configured (MCP_SERVER_URLS is empty)", result={"servers": []})

    with ThreadPoolExecutor(max_workers=min(MCP_MAX_PARALLEL, len(targets))) as pool:
        servers = list(pool.map(lambda url: mcp_server_probe(url, timeout=timeout), targets))
    down = [server for server in servers if not server["ok"]]
    result = {"servers": servers, "up": len(servers) - len(down), "down": len(down)}
    if down:
        problems = "; ".join(f"{server['url']} ({server['error']})" for server in down)
        logger.warning("MCP server health check: %s", problems)
        return RunResult(ok=False, output=f"{len(down)} of {len(servers)} MCP server(s) down: {problems}"[:1000],
                         result=result)
    slowest = max(server["latency_ms"] for server in servers)
    return RunResult(output=f"All {len(servers)} MCP server(s) up (slowest {slowest:.0f} ms)", result=result)


# ---------------------------------------------------------------------------
# user_activity_digest
# ---------------------------------------------------------------------------
@schedulable(
    "scheduling.user_activity_digest",
    description="Per user: jobs created and executions triggered in the last `days` days (default 7).",
    queue=QUEUE,
)
def user_activity_digest(*, execution=None, days: int = 7) -> RunResult:
    """Count, per user, the jobs they own that were created and the executions
    they triggered (manual, API, CLI) in the last ``days`` days."""
    days = _int_option("days", days, minimum=1)
    since = timezone.now() - timedelta(days=days)
    created = dict(
        Job.objects.filter(created_at__gte=since).exclude(owner=None)
        .order_by().values("owner").annotate(n=Count("id")).values_list("owner", "n")
    )
    triggered = dict(
        Execution.objects.filter(created_at__gte=since).exclude(triggered_by=None)
        .order_by().values("triggered_by").annotate(n=Count("id")).values_list("triggered_by", "n")
    )
    user_ids = set(created) | set(triggered)
    names = dict(get_user_model().objects.filter(pk__in=user_ids).values_list("pk", "username"))
    users = sorted(
        (
            {"user_id": pk, "username": names.get(pk, ""), "jobs_created": created.get(pk, 0),
             "executions_triggered": triggered.get(pk, 0)}
            for pk in user_ids
        ),
        key=lambda row: (-(row["jobs_created"] + row["executions_triggered"]), row["username"]),
    )
    totals = {"jobs_created": sum(created.values()), "executions_triggered": sum(triggered.values())}
    output = (
        f"{len(users)} active user(s) in the last {days} day(s): "
        f"{totals['jobs_created']} job(s) created, {totals['executions_triggered']} execution(s) triggered"
    )
    return RunResult(output=output, result={"days": days, "since": since.isoformat(), "users": users, "totals": totals})
