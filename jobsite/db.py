"""One-row updates on the run lifecycle's hot path, without the ORM's compiler.

A worker claims and finishes hundreds of runs a second. ``QuerySet.update()``
builds and compiles its SQL on every call: 0.5 ms for the claim and 1.5 ms for
the job counters on the 2-core benchmark machine, against 0.08 ms for the same
statement sent as is (docs/benchmarks.md, "bench_throughput"). ``update_row``
builds the statement once per (model, columns) and adapts each value with its
field's own ``get_db_prep_value``, so what is stored is exactly what
``update()`` would store (SQLite datetimes, JSON...). Use it only where a
benchmark shows the difference; everywhere else the ORM reads better.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.db import connections, router
from django.db.models import Model


@lru_cache(maxsize=64)
def _statement(model: type[Model], alias: str, sets: tuple[str, ...], increments: tuple[str, ...],
               where: tuple[str, ...]) -> str:
    quote = connections[alias].ops.quote_name
    meta = model._meta
    column = lambda name: quote(meta.get_field(name).column)  # noqa: E731
    assignments = [f"{column(name)} = %s" for name in sets]
    assignments += [f"{column(name)} = {column(name)} + %s" for name in increments]
    conditions = [f"{column(name)} = %s" for name in where]
    return f"UPDATE {quote(meta.db_table)} SET {', '.join(assignments)} WHERE {' AND '.join(conditions)}"


def update_row(model: type[Model], *, where: dict[str, Any], values: dict[str, Any] | None = None,
               increments: dict[str, int | float] | None = None) -> int:
    """``UPDATE model SET values..., increments (col = col + n)... WHERE where``
    (all equality, e.g. ``{"pk": 1, "status": "queued"}``); returns the row count,
    like ``QuerySet.update()``. Sends no signals, as ``update()`` does not."""
    values, increments = values or {}, increments or {}
    alias = router.db_for_write(model)
    connection = connections[alias]
    meta = model._meta
    where = {(meta.pk.name if name == "pk" else name): value for name, value in where.items()}
    sql = _statement(model, alias, tuple(values), tuple(increments), tuple(where))
    params = [meta.get_field(name).get_db_prep_value(value, connection, prepared=False)
              for name, value in (*values.items(), *increments.items(), *where.items())]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
