"""document_cleanup: old temporary files under JOBS_TEMP_DIR and finished
executions past their retention."""
from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from scheduling.executors import RunResult, schedulable
from scheduling.maintenance.common import QUEUE, bool_option, delete_in_batches, int_option
from scheduling.models import Execution

CLEANUP_LEVELS = ("standard", "deep")
# Deeper than this under JOBS_TEMP_DIR is not ours to walk (and keeps recursion bounded).
MAX_TEMP_DEPTH = 64


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
    dry_run = bool_option("dry_run", dry_run)
    days = int_option("retention_days", settings.JOBS_EXECUTION_RETENTION_DAYS if retention_days is None
                       else retention_days, minimum=1)
    hours = int_option("temp_retention_hours", settings.JOBS_TEMP_RETENTION_HOURS if temp_retention_hours is None
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
    executions_deleted = expired.count() if dry_run else delete_in_batches(expired)

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


def _human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover
