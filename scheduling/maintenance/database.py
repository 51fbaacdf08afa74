"""database_maintenance: optimise the database and prune the audit log."""
from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from scheduling.executors import RunResult, schedulable
from scheduling.maintenance.common import QUEUE, bool_option, delete_in_batches, int_option
from scheduling.models import AuditLog


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
    vacuum = bool_option("vacuum", vacuum)
    audit_days = int_option("audit_retention_days", audit_retention_days, minimum=1)
    notes: list[str] = []

    audit_cutoff = timezone.now() - timedelta(days=audit_days)
    audit_deleted = delete_in_batches(AuditLog.objects.filter(created_at__lt=audit_cutoff))
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
