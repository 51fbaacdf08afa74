"""One-row reads and updates on the run lifecycle's hot path, without the ORM's compiler.

A worker claims and finishes hundreds of runs a second. ``QuerySet.update()``
builds and compiles its SQL on every call, which costs several times what
sending the same statement as is does (docs/benchmarks.md, "bench_throughput"
has the figures). ``update_row``
builds the statement once per (model, columns) and adapts each value with its
field's own ``get_db_prep_value``, so what is stored is exactly what
``update()`` would store (SQLite datetimes, JSON...).

Reads the same: ``PkLookup`` is ``queryset.get(pk=...)`` for a fixed queryset
(an execution with its job: dozens of columns, whose compiling costs many
times the query itself), compiled once and then only executed; the rows become model
instances exactly as the ORM makes them (its converters, ``from_db`` and
select_related populators).

Use these only where a benchmark shows the difference; everywhere else the
ORM reads better.
"""
from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any, Callable, NamedTuple

from django.core.exceptions import EmptyResultSet
from django.db import connections, router
from django.db.models import Field, Lookup, Model, QuerySet
from django.db.models.fields import NOT_PROVIDED
from django.db.models.fields.related import ForeignObject
from django.db.models.query import get_related_populators

#: The largest primary key any of our databases holds (a signed 64-bit integer).
MAX_ID = 2**63 - 1


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
    # row of a burst on each claim, a cost growing with the queue.)
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


@lru_cache(maxsize=64)
def insert_statement(model: type[Model], alias: str, *, returning_pk: bool) -> tuple[str, tuple]:
    """``INSERT`` of every concrete field but the primary key (which comes back
    when ``returning_pk``: callers check ``can_return_columns_from_insert``)."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    meta = model._meta
    fields = tuple(field for field in meta.concrete_fields if not field.primary_key)
    if any(getattr(field, "db_default", NOT_PROVIDED) is not NOT_PROVIDED or getattr(field, "generated", False)
           for field in fields):
        raise ValueError(f"{model.__name__} has a field with a database default or a generated one: insert it "
                         "through the ORM.")
    sql = (f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
           f"VALUES ({', '.join(['%s'] * len(fields))})")
    if returning_pk:
        sql += f" RETURNING {quote(meta.pk.column)}"
    return sql, fields


def create_row(model: type[Model], **values) -> Model:
    """``model.objects.create(**values)`` — the same instance and the same
    stored values (each field's ``pre_save``, so ``auto_now_add`` too, and
    ``get_db_prep_save``) — with the ``INSERT`` built once per model instead of
    compiled on every call (a large share of what a create costs). Sends no
    ``pre_save``/``post_save`` signals: for models nothing listens to."""
    instance = model(**values)
    alias = router.db_for_write(model)
    connection = connections[alias]
    returning = connection.features.can_return_columns_from_insert
    sql, fields = insert_statement(model, alias, returning_pk=returning)
    params = [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if returning:
            pk = cursor.fetchone()[0]
        else:
            pk = connection.ops.last_insert_id(cursor, model._meta.db_table, model._meta.pk.column)
    return _stored(instance, pk, alias)


def _stored(instance: Model, pk, alias: str) -> Model:
    """``instance`` as ``save()`` leaves it once its row is inserted."""
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = alias
    return instance


class InsertedPk(NamedTuple):
    """A value of ``create_rows_if_updated``'s rows: the primary key of the
    ``index``-th row created by the same call; with ``key``, a JSON field's
    value (a dict, given as ``json``) with ``key`` set to that primary key."""

    index: int
    key: str | None = None
    json: dict | None = None


def creates_rows_in_one_statement(alias: str) -> bool:
    """Whether ``create_rows_if_updated`` is one statement on database ``alias``
    (PostgreSQL); elsewhere it is a transaction of one statement per row."""
    return connections[alias].vendor == "postgresql"


def create_rows_if_updated(model: type[Model], *, where: dict[str, Any], values: dict[str, Any],
                           rows: list[tuple[type[Model], dict[str, Any]]]) -> list[Model] | None:
    """``update_row(model, where=..., values=...)`` and, only if that updated its
    row, ``create_row(row_model, **row_values)`` for each of ``rows`` in order,
    atomically. A row's value may be an ``InsertedPk`` of an earlier row.
    Returns the created instances (as ``create_row`` makes them), or None when
    no row was updated: then nothing was created.

    On PostgreSQL one statement (a data-modifying ``WITH``: one round trip
    and, outside a transaction, one commit, where a transaction of the same
    writes takes five round trips); elsewhere a transaction of those writes."""
    if any(reference.index >= number for number, (_, row_values) in enumerate(rows)
           for reference in row_values.values() if isinstance(reference, InsertedPk)):
        raise ValueError("An InsertedPk must name a row listed before the one it is a value of.")
    alias = router.db_for_write(model)
    if not creates_rows_in_one_statement(alias):
        return _create_rows_if_updated_in_a_transaction(model, alias, where=where, values=values, rows=rows)
    connection = connections[alias]
    update_sql, params = _prepared(model, alias, where=where, values=values, increments={})
    ctes = [f"updated AS ({update_sql} RETURNING 1)"]
    instances = []
    for number, (row_model, row_values) in enumerate(rows):
        references = {name: value for name, value in row_values.items() if isinstance(value, InsertedPk)}
        instance = row_model(**{name: (dict(value.json or {}, **{value.key: None}) if value.key else None)
                                if name in references else value for name, value in row_values.items()})
        insert_sql, fields = insert_statement(row_model, alias, returning_pk=True)
        placeholders = []
        for field in fields:
            reference = references.get(field.name, references.get(field.attname))
            if reference is None:
                placeholders.append("%s")
                params.append(field.get_db_prep_save(field.pre_save(instance, True), connection))
            elif reference.key is None:
                placeholders.append(f"created_{reference.index}.pk")
            else:
                placeholders.append(f"jsonb_set(%s, ARRAY[%s], to_jsonb(created_{reference.index}.pk))")
                params += [field.get_db_prep_save(field.pre_save(instance, True), connection), reference.key]
        sources = ["updated", *sorted({f"created_{reference.index}" for reference in references.values()})]
        columns, returning = insert_sql.split(" VALUES ", 1)[0], insert_sql.rsplit(" RETURNING ", 1)[1]
        ctes.append(f"created_{number} AS ({columns} SELECT {', '.join(placeholders)} FROM {', '.join(sources)} "
                    f"RETURNING {returning} AS pk)")
        instances.append((instance, references))
    names = [f"created_{number}" for number in range(len(rows))]
    sql = (f"WITH {', '.join(ctes)} SELECT {', '.join(f'{name}.pk' for name in names)} "
           f"FROM {', '.join(names) or 'updated'}")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        pks = cursor.fetchone()
    if pks is None:
        return None
    created = []
    for (instance, references), pk in zip(instances, pks):
        for name, reference in references.items():
            if reference.key is None:  # the column's own attribute (retry_of_id, not retry_of)
                setattr(instance, instance._meta.get_field(name).attname, pks[reference.index])
            else:
                getattr(instance, name)[reference.key] = pks[reference.index]
        created.append(_stored(instance, pk, alias))
    return created


def _create_rows_if_updated_in_a_transaction(model, alias, *, where, values, rows) -> list[Model] | None:
    from django.db import transaction

    with transaction.atomic(using=alias):
        if not update_row(model, where=where, values=values):
            return None
        created = []
        for row_model, row_values in rows:
            resolved = {}
            for name, value in row_values.items():
                if isinstance(value, InsertedPk):
                    pk = created[value.index].pk
                    if value.key is not None:
                        value = dict(value.json or {}, **{value.key: pk})
                    else:  # a foreign key's column (retry_of_id for retry_of)
                        name, value = row_model._meta.get_field(name).attname, pk
                resolved[name] = value
            created.append(create_row(row_model, **resolved))
        return created


def _updates_return_rows(connection) -> bool:
    """``UPDATE ... RETURNING``: PostgreSQL, and SQLite from 3.35."""
    return connection.vendor == "postgresql" or (
        connection.vendor == "sqlite" and connection.features.can_return_columns_from_insert)


class _Compiled(NamedTuple):
    sql: str  # the SELECT ... WHERE pk = %s
    columns: str  # its select list, for an UPDATE's RETURNING
    compiler: Any
    converters: dict
    model: type[Model]
    init_list: list[str]
    start: int
    end: int
    populators: list


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
        connection = compiled.compiler.connection
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, [queryset.model._meta.pk.get_db_prep_value(pk, connection)])
            row = cursor.fetchone()
        if row is None:
            return None
        return self._instance(alias, row, compiled)

    @staticmethod
    def _instance(alias: str, row, compiled: _Compiled):
        """The model instance of ``row``, as the ORM builds it."""
        if compiled.converters:
            row = next(iter(compiled.compiler.apply_converters([row], compiled.converters)))
        instance = compiled.model.from_db(alias, compiled.init_list, row[compiled.start:compiled.end])
        for populator in compiled.populators:
            populator.populate(row, instance)
        return instance

    def update_then_first(self, pk, *, where: dict[str, Any], values: dict[str, Any]):
        """``update_row(model, where=..., values=...)`` and, only if that updated
        its row, ``first(pk)`` as updated; None when no row was updated. For a
        query of one table (no ``select_related``). One statement where the
        database returns rows from an update (``UPDATE ... RETURNING``:
        PostgreSQL, SQLite >= 3.35; in a transaction, the row stays locked, as
        after ``select_for_update()``)."""
        updated = self._update_returning(pk, where=where, values=values)
        return None if updated is None else updated[0]

    def update_then_first_with(self, pk, *, where: dict[str, Any], values: dict[str, Any], related: str,
                               fields: tuple[str, ...], flush: bool = True):
        """``update_then_first``, also reading ``fields`` of the row its foreign
        key ``related`` points to, as stored (the database's own values, not
        converted: for comparing, e.g. a version). Returns (instance, values of
        ``fields``), or None when no row was updated. The same one statement
        (scalar subqueries in ``RETURNING``): a worker claiming a run reads the
        run, and only the few columns of its job that say whether the job it
        holds is still current (less server CPU per run than a join returning
        the whole job, docs/benchmarks.md, "fourth pass").

        ``flush=False``: on PostgreSQL, in autocommit, this statement's commit
        does not wait for its WAL to reach the disk (``synchronous_commit`` off
        for this one transaction: half the statement's cost here). Visible to
        every session at once, as any commit; only a crash of the database
        server in the next fraction of a second can undo it. For a write whose
        loss in such a crash is harmless and which a durable write of the same
        session flushes soon after (WAL is written in order): a run's claim,
        followed by its finish. A claim undone leaves the run queued, as it was
        before: its message is delivered again, or the stale-queued sweep sends
        it again."""
        return self._update_returning(pk, where=where, values=values, related=related, fields=fields, flush=flush)

    def _update_returning(self, pk, *, where, values, related: str | None = None, fields: tuple[str, ...] = (),
                          flush: bool = True):
        queryset = self._build()
        model = queryset.model
        alias = router.db_for_write(model)
        connection = connections[alias]
        compiled = self._compiled(alias, queryset)
        if compiled.populators:
            raise ValueError("update_then_first needs a query of one table (no select_related).")
        quote = connection.ops.quote_name
        table = quote(model._meta.db_table)
        subqueries = []
        if fields:
            foreign_key = model._meta.get_field(related)
            target = foreign_key.related_model._meta
            subqueries = [f"(SELECT {quote(target.get_field(name).column)} FROM {quote(target.db_table)} "
                          f"WHERE {quote(target.pk.column)} = {table}.{quote(foreign_key.column)})" for name in fields]
        if not _updates_return_rows(connection):  # a round trip more, and one more for fields
            if not update_row(model, where=where, values=values):
                return None
            instance = self.first(pk)
            if instance is None:  # deleted in between
                return None
            if not subqueries:
                return instance, ()
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT {', '.join(subqueries)} FROM {table} WHERE {quote(model._meta.pk.column)} = %s",
                               [model._meta.pk.get_db_prep_value(pk, connection)])
                return instance, tuple(cursor.fetchone())
        sql, params = _prepared(model, alias, where=where, values=values, increments={})
        returning = [compiled.columns, *subqueries]
        unflushed = (not flush and connection.vendor == "postgresql" and connection.get_autocommit()
                     and not connection.in_atomic_block)
        if unflushed:  # read at commit; local to this statement's own transaction
            returning.append("set_config('synchronous_commit', 'off', true)")
        with connection.cursor() as cursor:
            cursor.execute(f"{sql} RETURNING {', '.join(returning)}", params)
            row = cursor.fetchone()
        if row is None:
            return None
        if unflushed:
            row = row[:-1]
        count = len(row) - len(subqueries)
        instance = self._instance(alias, row[:count], compiled)
        for name, value in values.items():
            setattr(instance, name, value)
        return instance, tuple(row[count:])

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
            columns = ", ".join(compiler.compile(column)[0] for column, _, _ in select[: compiler.col_count])
            cache[key] = _Compiled(sql, columns, compiler, converters, klass_info["model"], init_list, start, end,
                                   populators)
        return cache[key]


class AnyOf(Lookup):
    """``field__any_of=[...]``: ``field = ANY(%s)`` with the values as one array
    parameter on PostgreSQL, ``field IN (%s, ...)`` elsewhere.

    ``__in`` with thousands of values is a statement with thousands of
    placeholders, which psycopg splits and adapts one by one on every call (its
    cache takes only short statements): a large share of beat's time for a
    minute with many jobs due. As one array it is one parameter, and needs no chunks
    (``id_batches``). For integer and text columns (ids, keys); values are
    passed as they are."""

    lookup_name = "any_of"
    prepare_rhs = False

    def get_prep_lookup(self):
        return list(self.rhs)

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        if not self.rhs:
            raise EmptyResultSet
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s)", [*lhs_params, self.rhs]
        return f"{lhs} IN ({', '.join(['%s'] * len(self.rhs))})", [*lhs_params, *self.rhs]


Field.register_lookup(AnyOf)
ForeignObject.register_lookup(AnyOf)  # (a relation's lookups do not inherit Field's)

#: Values per ``__any_of`` where each is a placeholder (SQLite: well under its bound-parameter limit).
IN_BATCH = 500


def id_batches(ids, *, alias: str = "default"):
    """``ids`` in lists of as many as one ``__any_of`` takes on ``alias``: all
    of them on PostgreSQL (one array), ``IN_BATCH`` elsewhere."""
    ids = list(ids)
    size = (len(ids) or 1) if connections[alias].vendor == "postgresql" else IN_BATCH
    for start in range(0, len(ids), size):
        yield ids[start:start + size]
