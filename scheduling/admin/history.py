"""The jobs list's run-history strips, read for a whole page at once.

A strip square needs four things of a run: its id (the link), its status
(the colour), its time (started, else created) and its duration. This
returns exactly those as plain tuples, one query for the page: making 1,000
``Execution`` model instances for a page of 50 strips was a fifth of the
list's time (docs/benchmarks.md, section 7).

Each job's runs are read from the ``exec_job_created`` index (job,
-created_at): at most ``limit`` index entries a job, however many runs it
has. PostgreSQL does this with a LATERAL join per job; elsewhere a window
function ranks the runs (SQLite: the embedded default, small).
"""
from __future__ import annotations

from datetime import datetime
from typing import TypeAlias

from django.db import connection
from django.db.models import F, Window
from django.db.models.functions import Coalesce, RowNumber

from scheduling.models import Execution

#: ``(run id, status, started or created at, duration in seconds or None)``, newest first.
StripRun: TypeAlias = tuple[int, str, datetime, float | None]


def run_history_rows(*, job_ids, limit: int) -> dict[int, list[StripRun]]:
    """The last ``limit`` runs of each of ``job_ids`` (newest first) as
    ``StripRun`` tuples, by job id; a job without runs maps to ``[]``.
    One query whatever the number of jobs. The jobs are the caller's, so
    already scoped to the user: a run is visible where its job is."""
    ids = sorted({int(pk) for pk in job_ids})
    history: dict[int, list[StripRun]] = {pk: [] for pk in ids}
    if not ids or limit < 1:
        return history
    if connection.vendor == "postgresql":
        rows = _lateral_rows(ids, limit)
    else:
        rank = Window(RowNumber(), partition_by=[F("job_id")], order_by=[F("created_at").desc(), F("id").desc()])
        rows = (Execution.objects.filter(job_id__in=ids).annotate(rank=rank, at=Coalesce("started_at", "created_at"))
                .filter(rank__lte=limit).order_by("job_id", "-created_at", "-id")
                .values_list("job_id", "id", "status", "at", "duration_seconds"))
    for job_id, *run in rows:
        history[job_id].append(tuple(run))
    return history


def _lateral_rows(ids: list[int], limit: int) -> list[tuple]:
    quote = connection.ops.quote_name
    table = quote(Execution._meta.db_table)
    column = {name: quote(Execution._meta.get_field(name).column)
              for name in ("job", "id", "status", "started_at", "created_at", "duration_seconds")}
    inner = ", ".join(f"x.{name}" for name in column.values())
    sql = (
        f"SELECT e.{column['job']}, e.{column['id']}, e.{column['status']}, "
        f"COALESCE(e.{column['started_at']}, e.{column['created_at']}), e.{column['duration_seconds']} "
        f"FROM unnest(%s::bigint[]) AS j(id) CROSS JOIN LATERAL "
        f"(SELECT {inner} FROM {table} x WHERE x.{column['job']} = j.id "
        f"ORDER BY x.{column['created_at']} DESC, x.{column['id']} DESC LIMIT %s) e "
        f"ORDER BY e.{column['job']}, e.{column['created_at']} DESC, e.{column['id']} DESC"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [ids, limit])
        return cursor.fetchall()
