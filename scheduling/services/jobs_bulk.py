"""The writes behind ``jobs_create_bulk`` and ``jobs_update_bulk``
(scheduling.services.jobs, which validate every job as ``job_create`` and
``job_update`` do): many Jobs, their beat PeriodicTasks and their audit rows
in a few statements, and one change notice so beat reloads once.

A create takes the new rows' ids from the tables' sequences first, so every
row is written once, already linked (a Job to its PeriodicTask, the
PeriodicTask's args to its Job), with no UPDATE afterwards. On PostgreSQL the
rows go in with COPY: Django's bulk insert there passes each column as an
array that psycopg quotes value by value in Python, which cost more than
everything else an apply does (docs/benchmarks.md, "Jobs as code"). Each
value is still prepared by its model field (``pre_save``, ``get_db_prep_save``),
as ``Model.save`` would. Elsewhere (SQLite) ``bulk_create``.

An update writes the edited columns with one ``bulk_update``, re-syncs the
beat entries whose values changed the way ``periodic_task_sync`` does, and
announces the change once (a bulk write of PeriodicTasks fires no signal:
django-celery-beat would not notice it otherwise).
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime

from django.db import connections, router, transaction
from django.db.models import Model
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, PeriodicTasks

from scheduling import audit
from scheduling.beat import DISPATCH_TASK, celery_priority, job_next_runs, job_schedule, periodic_task_name
from scheduling.beat.sync import _expires_seconds, crontab_expression
from scheduling.models import AuditLog, Job

BATCH = 1000


# ---------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------
def _connection(model: type[Model]):
    return connections[router.db_for_write(model)]


def ids_take(model: type[Model], count: int) -> list[int]:
    """``count`` new primary keys of ``model``'s table, for rows inserted with
    them. Called inside the writing transaction: on SQLite that transaction
    holds the database's write lock (immediate transactions), so no other
    writer takes the same ids; on PostgreSQL they come from the sequence."""
    if count <= 0:
        return []
    connection = _connection(model)
    table, column = model._meta.db_table, model._meta.pk.column
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                           [table, column, count])
            return sorted(row[0] for row in cursor.fetchall())
        quote = connection.ops.quote_name
        cursor.execute(f"SELECT MAX({quote(column)}) FROM {quote(table)}")
        top = cursor.fetchone()[0] or 0
        if connection.vendor == "sqlite":  # AUTOINCREMENT: never reuse the id of a deleted row
            cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
            row = cursor.fetchone()
            top = max(top, row[0] if row else 0)
    return list(range(top + 1, top + 1 + count))


def rows_insert(model: type[Model], objs: list[Model]) -> None:
    """Insert ``objs`` (primary keys set) as ``bulk_create`` would: COPY on PostgreSQL."""
    if not objs:
        return
    connection = _connection(model)
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objs, batch_size=BATCH)
        return
    fields = [f for f in model._meta.local_concrete_fields if not getattr(f, "generated", False)]
    quote = connection.ops.quote_name
    sql = f"COPY {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) FROM STDIN"
    columns = [(f, f.attname, _SAME_IN_DATABASE.get(f.get_internal_type(), ()) if not _auto_time(f) else ())
               for f in fields]

    def prepared(obj):
        # A value whose database form is itself (a str in a text column, an int in an integer one...) is
        # passed as is; any other goes through its field, as Model.save prepares it.
        for field, attname, same in columns:
            value = getattr(obj, attname)
            yield value if value is None or type(value) in same else field.get_db_prep_save(
                field.pre_save(obj, True), connection)

    with connection.cursor() as cursor, cursor.copy(sql) as copy:
        for obj in objs:
            copy.write_row(list(prepared(obj)))
    for obj in objs:
        obj._state.adding, obj._state.db = False, connection.alias


def _auto_time(field) -> bool:
    return bool(getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False))


#: Internal field type → the Python types whose value is already what the column stores.
_INTEGER = (int,)
_SAME_IN_DATABASE = {
    "CharField": (str,), "TextField": (str,), "SlugField": (str,), "EmailField": (str,),
    "IntegerField": _INTEGER, "BigIntegerField": _INTEGER, "SmallIntegerField": _INTEGER,
    "PositiveIntegerField": _INTEGER, "PositiveSmallIntegerField": _INTEGER, "PositiveBigIntegerField": _INTEGER,
    "AutoField": _INTEGER, "BigAutoField": _INTEGER, "SmallAutoField": _INTEGER,
    "BooleanField": (bool,), "FloatField": (float,), "UUIDField": (uuid.UUID,),
    "ForeignKey": (int, uuid.UUID), "OneToOneField": (int, uuid.UUID),  # the attname's value: the target's key
}


# ---------------------------------------------------------------------------
# Beat's rows
# ---------------------------------------------------------------------------
def _schedule_key(schedule) -> tuple:
    if schedule.cron:
        return ("cron", schedule.cron, schedule.timezone_name)
    if schedule.interval:
        return ("interval", int(schedule.interval.total_seconds()))
    return ("clocked", schedule.clocked)


def schedule_rows(schedules) -> dict[tuple, dict]:
    """``_beat_schedule_fields`` for many schedules: the Crontab/Interval/Clocked
    rows that exist read in a few queries, the missing ones bulk-created."""
    out: dict[tuple, dict] = {}
    crons = {(s.cron, s.timezone_name) for s in schedules if s.cron}
    intervals = {int(s.interval.total_seconds()) for s in schedules if s.interval}
    clocks = {s.clocked for s in schedules if s.clocked}
    if crons:
        rows = {}
        for zone in {tz for _, tz in crons}:
            hours = {cron.split()[1] for cron, tz in crons if tz == zone}
            for row in CrontabSchedule.objects.filter(timezone=zone, hour__in=hours).order_by("pk"):
                rows.setdefault((crontab_expression(row), str(row.timezone)), row)
        missing = [CrontabSchedule(minute=m, hour=h, day_of_month=dom, month_of_year=moy, day_of_week=dow, timezone=tz)
                   for cron, tz in sorted(crons - set(rows)) for m, h, dom, moy, dow in [cron.split()]]
        CrontabSchedule.objects.bulk_create(missing, batch_size=BATCH)
        rows.update({(crontab_expression(row), str(row.timezone)): row for row in missing})
        for key, row in rows.items():
            out[("cron", *key)] = {"crontab": row, "interval": None, "clocked": None, "one_off": False}
    if intervals:
        rows = {}
        for row in IntervalSchedule.objects.filter(every__in=intervals, period=IntervalSchedule.SECONDS).order_by("pk"):
            rows.setdefault(row.every, row)
        missing = [IntervalSchedule(every=every, period=IntervalSchedule.SECONDS) for every in sorted(intervals - set(rows))]
        IntervalSchedule.objects.bulk_create(missing)
        rows.update({row.every: row for row in missing})
        for every, row in rows.items():
            out[("interval", every)] = {"crontab": None, "interval": row, "clocked": None, "one_off": False}
    for clocked in clocks:  # one-offs: few
        row, _ = ClockedSchedule.objects.get_or_create(clocked_time=clocked)
        out[("clocked", clocked)] = {"crontab": None, "interval": None, "clocked": row, "one_off": True}
    return out


def _task_values(job: Job, schedule, rows: dict) -> dict:
    """What periodic_task_sync writes into the job's PeriodicTask (PeriodicTask.save's clean-ups applied)."""
    return {**rows[_schedule_key(schedule)], "name": periodic_task_name(job), "task": DISPATCH_TASK,
            "args": json.dumps([job.pk]), "kwargs": "{}", "queue": job.queue or None,
            "priority": celery_priority(job.priority), "expire_seconds": _expires_seconds(schedule),
            "enabled": job.is_schedulable, "description": f"jobsite job {job.name}"}


# ---------------------------------------------------------------------------
# Create
# ---------------------------------------------------------------------------
def jobs_insert(jobs: list[Job], *, actor=None, actor_label: str = "") -> None:
    """Insert validated new ``jobs`` (no pk yet), each with its PeriodicTask
    (none for manual jobs) and ``next_run_at`` as ``job_create`` computes
    them, and a ``create`` audit row each. Call inside a transaction."""
    if not transaction.get_connection(router.db_for_write(Job)).in_atomic_block:
        raise RuntimeError("jobs_insert takes new ids from the tables: call it inside transaction.atomic().")
    now = timezone.now()
    parsed: dict[tuple, tuple] = {}  # many jobs share a schedule: parsed and computed once each
    for job in jobs:
        key = (job.schedule_type, job.schedule_expression, job.timezone, job.is_schedulable)
        if key not in parsed:
            schedule = job_schedule(job)
            # job_next_runs of a job without calendars, an interval anchored where its new PeriodicTask is (now)
            runs = schedule.next_runs(1, anchor=now if schedule.interval else None) if job.is_schedulable else []
            parsed[key] = (schedule, runs[0] if runs else None)
        job._bulk_schedule, job.next_run_at = parsed[key]
    for job, pk in zip(jobs, ids_take(Job, len(jobs))):
        job.pk = pk
    scheduled = [job for job in jobs if not job._bulk_schedule.is_manual]
    rows = schedule_rows([job._bulk_schedule for job in scheduled])
    tasks = []
    for job, pk in zip(scheduled, ids_take(PeriodicTask, len(scheduled))):
        task = PeriodicTask(pk=pk, **_task_values(job, job._bulk_schedule, rows), date_changed=now)
        if job._bulk_schedule.interval and task.enabled:
            task.last_run_at = now  # as periodic_task_sync anchors a fresh interval
        job.periodic_task = task
        tasks.append(task)
    for job in jobs:
        job.created_at = job.updated_at = now
    rows_insert(PeriodicTask, tasks)
    rows_insert(Job, jobs)
    entries = [AuditLog(**audit.entry(actor=actor, actor_label=actor_label, action="create", obj=job,
                                      changes=audit.job_snapshot(job))) for job in jobs]
    for entry, pk in zip(entries, ids_take(AuditLog, len(entries))):
        entry.pk, entry.created_at = pk, now
    rows_insert(AuditLog, entries)
    if tasks:
        PeriodicTasks.update_changed()


# ---------------------------------------------------------------------------
# Update
# ---------------------------------------------------------------------------
def periodic_tasks_sync(jobs: list[Job], *, now: datetime) -> None:
    """``periodic_task_sync`` then ``next_run_at`` for many jobs (their
    ``periodic_task`` and ``calendars`` read with them): the tasks that change
    written with one ``bulk_update``, the new ones with one insert, the
    manual jobs' deleted, and one change notice for beat. Leaves each job's
    ``periodic_task`` and ``next_run_at`` set (the caller saves them)."""
    schedules = {job.pk: job_schedule(job) for job in jobs}
    rows = schedule_rows([s for s in schedules.values() if not s.is_manual])
    orphans = {job.pk for job in jobs if job.periodic_task_id is None and not schedules[job.pk].is_manual}
    adopt = {t.name: t for t in PeriodicTask.objects.filter(name__in=[f"job:{pk}" for pk in orphans])} if orphans else {}
    changed, created, deleted, columns = [], [], [], {"date_changed"}
    for job in jobs:
        schedule = schedules[job.pk]
        if schedule.is_manual:
            if job.periodic_task_id:
                deleted.append(job.periodic_task_id)
            job.periodic_task = None
            continue
        values = _task_values(job, schedule, rows)
        task = job.periodic_task or adopt.get(values["name"])
        new = task is None
        task = task or PeriodicTask(**values)
        dirty = set()
        for key, value in values.items():
            if getattr(task, key) != value:
                setattr(task, key, value)
                dirty.add(key)
        if not task.enabled and task.last_run_at is not None:
            task.last_run_at = None
            dirty.add("last_run_at")
        if schedule.interval and task.enabled and task.last_run_at is None:
            task.last_run_at = now
            dirty.add("last_run_at")
        if dirty or new:
            task.date_changed = now
            columns |= dirty
            (created if new else changed).append(task)
        job.periodic_task = task
    if deleted:
        PeriodicTask.objects.filter(pk__in=deleted).delete()
    if created:
        for task, pk in zip(created, ids_take(PeriodicTask, len(created))):
            task.pk = pk
        rows_insert(PeriodicTask, created)
    if changed:
        PeriodicTask.objects.bulk_update(changed, sorted(columns), batch_size=BATCH)
    if changed or created or deleted:
        PeriodicTasks.update_changed()
    for job in jobs:
        runs = job_next_runs(job, 1)
        job.next_run_at = runs[0] if runs else None
