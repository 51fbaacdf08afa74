"""One-row reads and updates on the run lifecycle's hot path, without the ORM's compiler.

A worker claims and finishes hundreds of runs a second. ``QuerySet.update()``
builds and compiles its SQL on every call: 0.5 ms for the claim and 1.5 ms for
the job counters on the 2-core benchmark machine, against 0.08 ms for the same
statement sent as is (docs/benchmarks.md, "bench_throughput"). ``update_row``
builds the statement once per (model, columns) and adapts each value with its
field's own ``get_db_prep_value``, so what is stored is exactly what
``update()`` would store (SQLite datetimes, JSON...).

Reads the same: ``PkLookup`` is ``queryset.get(pk=...)`` for a fixed queryset
(the claim's execution with its job: 58 columns, 1.1 ms of compiling for a
0.1 ms query), compiled once and then only executed; the rows become model
instances exactly as the ORM makes them (its converters, ``from_db`` and
select_related populators).

Use these only where a benchmark shows the difference; everywhere else the
ORM reads better.
"""
from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any, Callable

from django.db import connections, router
from django.db.models import Model, QuerySet
from django.db.models.fields import NOT_PROVIDED
from django.db.models.query import get_related_populators


@lru_cache(maxsize=64)
def _statement(model: type[Model], alias: str, sets: tuple[str, ...], increments: tuple[str, ...],
               where: tuple[str, ...]) -> str:
    quote = connections[alias].ops.quote_name
    meta = model._meta
    column = lambda name: quote(meta.get_field(name).column)  # noqa: E731
    assignments = [f"{column(name)} = %s" for name in sets]
    assignments += [f"{column(name)} = {column(name)} + %s" for name in increments]
    by_pk = meta.pk.name in where
    # A row named by its primary key is found through the primary key; the other
    # conditions only check that row, written so that no other index can serve
    # them. (With "running" and "queued" rare in its statistics, PostgreSQL took
    # the status index for "id = %s AND status = 'queued'" and walked every queued
    # row of a burst on each claim: 0.5-1 ms a claim, growing with the queue.)
    conditions = [f"{column(name)} = %s" if not by_pk or name == meta.pk.name else f"({column(name)} = %s) IS TRUE"
                  for name in where]
    return f"UPDATE {quote(meta.db_table)} SET {', '.join(assignments)} WHERE {' AND '.join(conditions)}"


def update_row(model: type[Model], *, where: dict[str, Any], values: dict[str, Any] | None = None,
               increments: dict[str, int | float] | None = None) -> int:
    """``UPDATE model SET values..., increments (col = col + n)... WHERE where``
    (all equality, e.g. ``{"pk": 1, "status": "queued"}``); returns the row count,
    like ``QuerySet.update()``. Sends no signals, as ``update()`` does not."""
    alias = router.db_for_write(model)
    sql, params = _prepared(model, alias, where=where, values=values or {}, increments=increments or {})
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def update_row_then(model: type[Model], *, where: dict[str, Any], values: dict[str, Any],
                    then_model: type[Model], then_where: dict[str, Any], then_values: dict[str, Any] | None = None,
                    then_increments: dict[str, int | float] | None = None) -> int:
    """``update_row(model, ...)`` and, only if that updated its row,
    ``update_row(then_model, ...)`` — atomically. On PostgreSQL one statement
    (a data-modifying WITH: one round trip and one commit, where a transaction
    takes four); elsewhere both in a transaction. Returns 1 if both rows were
    updated, else 0 (``then_where`` must name one row that exists)."""
    from django.db import transaction

    alias = router.db_for_write(model)
    connection = connections[alias]
    if connection.vendor != "postgresql":
        with transaction.atomic(using=alias):
            if not update_row(model, where=where, values=values):
                return 0
            return update_row(then_model, where=then_where, values=then_values, increments=then_increments)
    then_values, then_increments = then_values or {}, then_increments or {}
    first_sql, first_params = _prepared(model, alias, where=where, values=values, increments={})
    then_sql, then_params = _prepared(then_model, alias, where=then_where, values=then_values,
                                      increments=then_increments)
    sql = f"WITH updated AS ({first_sql} RETURNING 1) {then_sql} AND EXISTS (SELECT 1 FROM updated)"
    with connection.cursor() as cursor:
        cursor.execute(sql, first_params + then_params)
        return cursor.rowcount


def _prepared(model, alias, *, where, values, increments) -> tuple[str, list]:
    connection = connections[alias]
    meta = model._meta
    where = {(meta.pk.name if name == "pk" else name): value for name, value in where.items()}
    sql = _statement(model, alias, tuple(values), tuple(increments), tuple(where))
    params = [meta.get_field(name).get_db_prep_value(value, connection, prepared=False)
              for name, value in (*values.items(), *increments.items(), *where.items())]
    return sql, params


def insert_rows(model: type[Model], rows: list[dict[str, Any]], *, common: dict[str, Any] | None = None) -> None:
    """``INSERT`` many rows of ``model`` in one ``executemany``: each row's own
    values by field name, then ``common`` (the same for every row), then each
    other field's default. What is stored is what the ORM stores (each value
    through its field's ``get_db_prep_save``; shared values adapted once) —
    without ``bulk_create``'s per-row compiling, which cost beat most of a
    second for 10,000 fires. No primary keys come back: look the rows up by a
    unique key. Sends no signals, as ``bulk_create`` does not."""
    if not rows:
        return
    alias = router.db_for_write(model)
    connection = connections[alias]
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    sql = (f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
           f"VALUES ({', '.join(['%s'] * len(fields))})")
    common = common or {}
    own = set().union(*(row.keys() for row in rows))
    shared = {}  # field name -> its value, adapted once
    for field in fields:
        if field.name in own or field.attname in own:
            continue
        if field.name in common or field.attname in common:
            value = common[field.name] if field.name in common else common[field.attname]
        elif callable(field.default):
            continue  # one per row (uuid4)
        else:
            value = field.get_default()
        shared[field.name] = field.get_db_prep_save(value, connection)
    params = []
    for row in rows:
        values = []
        for field in fields:
            if field.name in shared:
                values.append(shared[field.name])
                continue
            if field.name in row:
                value = row[field.name]
            elif field.attname in row:
                value = row[field.attname]
            else:
                value = field.get_default()
            values.append(field.get_db_prep_save(value, connection))
        params.append(values)
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


@lru_cache(maxsize=64)
def _insert_statement(model: type[Model], alias: str) -> tuple[str, tuple, bool]:
    connection = connections[alias]
    quote = connection.ops.quote_name
    meta = model._meta
    fields = tuple(field for field in meta.concrete_fields if not field.primary_key)
    if any(getattr(field, "db_default", NOT_PROVIDED) is not NOT_PROVIDED or getattr(field, "generated", False)
           for field in fields):
        raise ValueError(f"create_row does not handle {model.__name__}: a field has a database default or is generated.")
    returning = connection.features.can_return_columns_from_insert
    sql = (f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
           f"VALUES ({', '.join(['%s'] * len(fields))})")
    if returning:
        sql += f" RETURNING {quote(meta.pk.column)}"
    return sql, fields, returning


def create_row(model: type[Model], **values) -> Model:
    """``model.objects.create(**values)`` — the same instance and the same
    stored values (each field's ``pre_save``, so ``auto_now_add`` too, and
    ``get_db_prep_save``) — with the ``INSERT`` built once per model instead of
    compiled on every call (0.2 ms of the 0.5 ms a create costs). Sends no
    ``pre_save``/``post_save`` signals: for models nothing listens to."""
    instance = model(**values)
    alias = router.db_for_write(model)
    connection = connections[alias]
    sql, fields, returning = _insert_statement(model, alias)
    params = [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if returning:
            pk = cursor.fetchone()[0]
        else:
            pk = connection.ops.last_insert_id(cursor, model._meta.db_table, model._meta.pk.column)
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = alias
    return instance


def _updates_return_rows(connection) -> bool:
    """``UPDATE ... RETURNING``: PostgreSQL, and SQLite from 3.35."""
    return connection.vendor == "postgresql" or (
        connection.vendor == "sqlite" and connection.features.can_return_columns_from_insert)


class UpdateReturning:
    """``update_row(model, where=..., values=...)`` that also reads the row it
    updated, as an instance of ``model`` (None when no row matched) — one
    statement (``UPDATE ... RETURNING``) where a ``select_for_update()`` read
    and an ``UPDATE`` took two: the update locks the row for the rest of the
    transaction just as the read did. The instance is what the ORM would
    have read (its converters, ``from_db``), with ``values`` applied. Other
    databases: the update, then the read."""

    def __init__(self, model: type[Model]):
        self.model = model
        self._local = threading.local()

    def __call__(self, *, where: dict[str, Any], values: dict[str, Any]) -> Model | None:
        alias = router.db_for_write(self.model)
        connection = connections[alias]
        if not _updates_return_rows(connection):
            if not update_row(self.model, where=where, values=values):
                return None
            return self.model._default_manager.using(alias).filter(**where).first()
        sql, params = _prepared(self.model, alias, where=where, values=values, increments={})
        compiler, converters, columns, attnames = self._compiled(alias, connection)
        with connection.cursor() as cursor:
            cursor.execute(f"{sql} RETURNING {columns}", params)
            row = cursor.fetchone()
        if row is None:
            return None
        if converters:
            row = next(iter(compiler.apply_converters([row], converters)))
        return self.model.from_db(alias, attnames, row)

    def _compiled(self, alias: str, connection):
        cache = self._local.__dict__.setdefault("compiled", {})
        key = (alias, id(connection))
        if key not in cache:
            from django.db.models.sql import Query

            meta = self.model._meta
            fields = meta.concrete_fields
            compiler = Query(self.model).get_compiler(using=alias)
            converters = compiler.get_converters([field.get_col(meta.db_table) for field in fields])
            quote = connection.ops.quote_name
            columns = ", ".join(quote(field.column) for field in fields)
            cache[key] = (compiler, converters, columns, [field.attname for field in fields])
        return cache[key]


class PkLookup:
    """``build().get(pk=pk)``, with the query compiled once per database
    connection (so per thread): ``build`` must return the same query every
    time, e.g. ``lambda: Execution.objects.select_related("job")`` (a
    ``select_for_update()`` one must be used inside a transaction, as always).
    """

    def __init__(self, build: Callable[[], QuerySet]):
        self._build = build
        self._local = threading.local()

    def get(self, pk):
        """The instance, or the model's ``DoesNotExist``."""
        instance = self.first(pk)
        if instance is None:
            raise self._build().model.DoesNotExist(f"No {self._build().model.__name__} with pk {pk!r}.")
        return instance

    def first(self, pk):
        """The instance, or None."""
        queryset = self._build()
        alias = queryset.db
        compiled = self._compiled(alias, queryset)
        sql, compiler = compiled[:2]
        with compiler.connection.cursor() as cursor:
            cursor.execute(sql, [queryset.model._meta.pk.get_db_prep_value(pk, compiler.connection)])
            row = cursor.fetchone()
        if row is None:
            return None
        return self._instance(alias, row, compiled)

    @staticmethod
    def _instance(alias: str, row, compiled):
        """The model instance of ``row``, as the ORM builds it (``compiled``: ``_compiled()``)."""
        _, compiler, converters, model, init_list, start, end, populators = compiled
        if converters:
            row = next(iter(compiler.apply_converters([row], converters)))
        instance = model.from_db(alias, init_list, row[start:end])
        for populator in populators:
            populator.populate(row, instance)
        return instance

    def update_then_first(self, pk, *, where: dict[str, Any], values: dict[str, Any]):
        """``update_row(model, where=..., values=...)`` and, only if that updated
        its row, ``first(pk)`` with ``values`` set on the instance; None when no
        row was updated. On PostgreSQL one statement (a data-modifying WITH: the
        read sees the row as it was before the update, hence ``values`` are set
        here); elsewhere two."""
        queryset = self._build()
        model = queryset.model
        alias = queryset.db
        connection = connections[alias]
        if connection.vendor != "postgresql":
            if not update_row(model, where=where, values=values):
                return None
            return self.first(pk)
        update_sql, update_params = _prepared(model, alias, where=where, values=values, increments={})
        compiled = self._compiled(alias, queryset)
        sql = f"WITH updated AS ({update_sql} RETURNING 1) {compiled[0]} AND EXISTS (SELECT 1 FROM updated)"
        with connection.cursor() as cursor:
            cursor.execute(sql, update_params + [model._meta.pk.get_db_prep_value(pk, connection)])
            row = cursor.fetchone()
        if row is None:
            return None
        instance = self._instance(alias, row, compiled)
        for name, value in values.items():
            setattr(instance, name, value)
        return instance

    def _compiled(self, alias: str, queryset: QuerySet):
        cache = self._local.__dict__.setdefault("compiled", {})
        connection = connections[alias]
        key = (alias, id(connection))
        if key not in cache:
            # As QuerySet.get() and ModelIterable do it (django/db/models/query.py), once.
            query = queryset.filter(pk=0).query
            query.clear_ordering(force=True)
            compiler = query.get_compiler(using=alias)
            sql, params = compiler.as_sql()
            if len(params) != 1:
                raise ValueError(f"PkLookup needs a query whose only parameter is the pk; got {len(params)}.")
            select, klass_info = compiler.select, compiler.klass_info
            converters = compiler.get_converters([column for column, _, _ in select[: compiler.col_count]])
            fields = klass_info["select_fields"]
            start, end = fields[0], fields[-1] + 1
            init_list = [column.target.attname for column, _, _ in select[start:end]]
            populators = get_related_populators(klass_info, select, alias)
            cache[key] = (sql, compiler, converters, klass_info["model"], init_list, start, end, populators)
        return cache[key]
