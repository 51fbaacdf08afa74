"""Many rows of one model inserted at once (beat's burst of fires), storing
what the ORM stores; the one-row writes and reads of the hot path are in
``jobsite.db``."""
from __future__ import annotations

from typing import Any

from django.db import connections, router
from django.db.models import Model

from jobsite.db import insert_statement


def insert_rows(model: type[Model], rows: list[dict[str, Any]], *, common: dict[str, Any] | None = None,
                returning: tuple[str, ...] = ()) -> list[tuple] | None:
    """``INSERT`` many rows of ``model``: each row's own values by field name,
    then ``common`` (the same for every row), then each other field's
    default. What is stored is what the ORM stores (each value through its
    field's ``get_db_prep_save``; shared values adapted once) — without
    ``bulk_create``'s per-row compiling, which cost beat most of a second for
    10,000 fires. Sends no signals, as ``bulk_create`` does not.

    On PostgreSQL one statement for the lot (``INSERT ... SELECT FROM
    unnest(<one array a column>)``: one plan, where an ``executemany`` runs
    one insert per row — 1,000 fires beside 100,000 jobs, docs/benchmarks.md),
    which gives back the ``returning`` columns of the rows inserted (in no
    set order); elsewhere one ``executemany``, and None: look the rows up by
    a unique key."""
    if not rows:
        return [] if returning else None
    alias = router.db_for_write(model)
    connection = connections[alias]
    sql, fields = insert_statement(model, alias, returning_pk=False)
    common = common or {}
    own = set().union(*(row.keys() for row in rows))
    shared = {}  # field name -> its value, adapted once
    for field in fields:
        if field.name in own or field.attname in own:
            continue
        if field.name in common or field.attname in common:
            value = common[field.name] if field.name in common else common[field.attname]
        else:
            value = field.get_default()
            if field.has_default() and callable(field.default) and field.get_default() != value:
                continue  # a default that differs on every call (uuid4): one per row
        shared[field.name] = field.get_db_prep_save(value, connection)

    def own_values(field) -> list:  # the field's value in each row, as stored
        name, attname, prep = field.name, field.attname, field.get_db_prep_save
        return [prep(row[name] if name in row else row[attname] if attname in row else field.get_default(),
                     connection) for row in rows]

    if connection.vendor == "postgresql" and len(shared) < len(fields):
        columns = {field.name: own_values(field) for field in fields if field.name not in shared}
        sql, params = _insert_from_arrays(model, connection, fields, shared, columns, returning)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if returning else None
    columns = {field.name: ([shared[field.name]] * len(rows) if field.name in shared else own_values(field))
               for field in fields}
    with connection.cursor() as cursor:
        cursor.executemany(sql, list(zip(*(columns[field.name] for field in fields))))
    return None


def _insert_from_arrays(model, connection, fields, shared: dict, columns: dict[str, list],
                        returning: tuple[str, ...]):
    """PostgreSQL: one ``INSERT ... SELECT`` from one array per column that is
    not ``shared`` (``columns``: field name -> its value in each row; the
    shared ones are one parameter each), every value cast to its column's
    type."""
    quote = connection.ops.quote_name
    meta = model._meta
    selected, arrays, params = [], [], []
    for number, field in enumerate(fields):
        db_type = field.db_type(connection)
        if field.name in shared:
            selected.append(f"%s::{db_type}")
            params.append(shared[field.name])
        else:
            selected.append(f"u.c{number}")
            arrays.append((f"%s::{db_type}[]", f"c{number}"))
    params = params + [columns[field.name] for field in fields if field.name not in shared]
    columns = ", ".join(quote(field.column) for field in fields)
    sql = (f"INSERT INTO {quote(meta.db_table)} ({columns}) SELECT {', '.join(selected)} "
           f"FROM unnest({', '.join(cast for cast, _ in arrays)}) AS u({', '.join(name for _, name in arrays)})")
    if returning:
        sql += " RETURNING " + ", ".join(quote(meta.get_field(name).column) for name in returning)
    return sql, params
