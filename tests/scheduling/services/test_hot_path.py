"""The run lifecycle's hot path: jobsite/db.py's compiled reads
and chained updates, and the worker's per-task connection handling. Against
the test database (SQLite, or PostgreSQL with DATABASE_URL): the chained
update is one statement on PostgreSQL and a transaction elsewhere."""
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobsite.bulk import insert_rows
from jobsite.db import (
    IN_BATCH,
    InsertedPk,
    PkLookup,
    create_row,
    create_rows_if_updated,
    creates_rows_in_one_statement,
    id_batches,
    update_row,
    update_row_then,
)
from jobsite.exceptions import Conflict
from scheduling import maintenance_mode, services
from scheduling.models import AuditLog, Execution, Job
from scheduling.services import lifecycle
from tests.factories import ExecutionFactory, JobFactory

pytestmark = pytest.mark.django_db


def test_pk_lookup_reads_what_the_orm_reads():
    job = JobFactory(task_kwargs={"a": [1, 2]}, config={"x": "y"}, timeout_seconds=77)
    execution = ExecutionFactory(job=job, status="running", result={"rows": 3}, started_at=timezone.now())
    lookup = PkLookup(lambda: Execution.objects.select_related("job"))

    fast = lookup.get(execution.pk)
    slow = Execution.objects.select_related("job").get(pk=execution.pk)

    for field in Execution._meta.concrete_fields:
        assert getattr(fast, field.attname) == getattr(slow, field.attname), field.name
    for field in Job._meta.concrete_fields:
        assert getattr(fast.job, field.attname) == getattr(slow.job, field.attname), field.name
    assert Execution.job.is_cached(fast)  # select_related: no second query for .job
    assert fast.started_at.tzinfo is not None and fast._state.adding is False and fast._state.db == "default"


def test_pk_lookup_compiles_once_and_answers_missing_rows():
    execution = ExecutionFactory()
    lookup = PkLookup(lambda: Execution.objects.select_related("job"))
    lookup.get(execution.pk)
    with CaptureQueriesContext(connection) as queries:
        assert lookup.get(execution.pk).pk == execution.pk
        assert lookup.first(execution.pk + 1000) is None
        with pytest.raises(Execution.DoesNotExist):
            lookup.get(execution.pk + 1000)
    assert len(queries) == 3  # one query each, no health check or compile queries


def test_update_row_then_updates_both_rows_or_neither():
    job = JobFactory()
    running = ExecutionFactory(job=job, status="running")
    done = ExecutionFactory(job=job, status="success")
    now = timezone.now()

    updated = update_row_then(Execution, where={"pk": running.pk, "status": "running"},
                              values={"status": "success", "completed_at": now}, then_model=Job,
                              then_where={"pk": job.pk}, then_values={"last_status": "success"},
                              then_increments={"total_runs": 1, "total_duration_seconds": 1.5})
    assert updated == 1
    running.refresh_from_db()
    job.refresh_from_db()
    assert (running.status, running.completed_at) == ("success", now)
    assert (job.last_status, job.total_runs, job.total_duration_seconds) == ("success", 1, 1.5)

    # a row no longer running (a cancel won): nothing is counted
    again = update_row_then(Execution, where={"pk": done.pk, "status": "running"}, values={"status": "failed"},
                            then_model=Job, then_where={"pk": job.pk}, then_increments={"total_runs": 1})
    assert again == 0
    job.refresh_from_db()
    done.refresh_from_db()
    assert (job.total_runs, done.status) == (1, "success")


def test_update_row_then_is_one_statement_on_postgresql():
    job = JobFactory()
    execution = ExecutionFactory(job=job, status="running")
    with CaptureQueriesContext(connection) as queries:
        update_row_then(Execution, where={"pk": execution.pk, "status": "running"}, values={"status": "success"},
                        then_model=Job, then_where={"pk": job.pk}, then_increments={"total_runs": 1})
    statements = [q["sql"] for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    assert len(statements) == (1 if connection.vendor == "postgresql" else 2), statements


def test_update_row_stores_what_update_stores():
    execution = ExecutionFactory(status="running")
    when = timezone.now() - timedelta(minutes=3)
    assert update_row(Execution, where={"pk": execution.pk}, values={"completed_at": when, "result": {"k": [1]}}) == 1
    execution.refresh_from_db()
    assert (execution.completed_at, execution.result) == (when, {"k": [1]})


@pytest.mark.django_db(transaction=True)  # autocommit, as in a worker
def test_the_worker_skips_the_health_check_only_right_after_a_clean_task(monkeypatch):
    from jobsite import celery as jobsite_celery

    connection.ensure_connection()
    # "just": within the freshness window however slow the machine is right now
    monkeypatch.setattr(jobsite_celery, "HEALTH_CHECK_FRESH_SECONDS", 3600.0)
    jobsite_celery._after_task(task=None)  # a task just ended without a database error
    jobsite_celery._before_task(task=None)
    assert connection.health_check_done is True

    # long enough ago: checked again, as Django checks before each request
    monkeypatch.setitem(jobsite_celery._last_clean_use, connection.alias, -1e9)
    jobsite_celery._before_task(task=None)
    assert connection.health_check_done is False

    if connection.vendor != "postgresql":
        return  # Django takes an SQLite connection as always usable: nothing breaks it
    # a task whose connection broke: closed after it, and the next task connects anew
    jobsite_celery._after_task(task=None)
    connection.connection.close()
    connection.errors_occurred = True
    jobsite_celery._after_task(task=None)
    assert connection.connection is None and connection.alias not in jobsite_celery._last_clean_use
    jobsite_celery._before_task(task=None)
    assert Job.objects.count() == 0  # reconnects


def test_create_row_stores_what_create_stores():
    job = JobFactory()
    values = dict(job=job, status="queued", trigger="api", attempt=1, override_kwargs={"n": [1, "é"]},
                  celery_task_id="0b7c8e0e-0000-4000-8000-000000000001")
    fast = create_row(Execution, **values)
    slow = Execution.objects.create(**{**values, "celery_task_id": "0b7c8e0e-0000-4000-8000-000000000002"})
    assert fast.pk and fast._state.adding is False and fast._state.db == "default"
    assert fast.created_at is not None  # auto_now_add applied, as create() does
    stored, reference = Execution.objects.get(pk=fast.pk), Execution.objects.get(pk=slow.pk)
    for field in Execution._meta.concrete_fields:
        if field.name in ("id", "uuid", "celery_task_id", "created_at"):  # each its own
            continue
        assert getattr(stored, field.attname) == getattr(reference, field.attname), field.name
        assert getattr(fast, field.attname) == getattr(stored, field.attname), field.name
    assert (stored.created_at, stored.uuid, stored.celery_task_id) == (fast.created_at, fast.uuid, fast.celery_task_id)


def test_update_then_first_of_one_table_updates_and_reads_the_row_in_one_statement():
    job = JobFactory(task_kwargs={"a": 1}, timeout_seconds=42)
    now = timezone.now()
    lookup = PkLookup(lambda: Job.objects.all())
    mark = lambda pk: lookup.update_then_first(pk, where={"pk": pk}, values={"last_run_at": now})  # noqa: E731
    with CaptureQueriesContext(connection) as queries:
        read = mark(job.pk)
    assert len(queries) == 1  # UPDATE ... RETURNING: PostgreSQL and SQLite >= 3.35
    assert read.last_run_at == now and Job.objects.get(pk=job.pk).last_run_at == now
    reference = Job.objects.get(pk=job.pk)
    for field in Job._meta.concrete_fields:
        assert getattr(read, field.attname) == getattr(reference, field.attname), field.name
    assert read._state.adding is False
    assert mark(job.pk + 1000) is None


def test_update_then_first_is_for_one_table():
    execution = ExecutionFactory(status="queued")
    lookup = PkLookup(lambda: Execution.objects.select_related("job"))
    with pytest.raises(ValueError, match="one table"):
        lookup.update_then_first(execution.pk, where={"pk": execution.pk}, values={"worker": "w1 1"})
    assert Execution.objects.get(pk=execution.pk).worker == ""  # nothing written


@pytest.mark.parametrize("returning", [True, False], ids=["update-returning", "without-returning"])
def test_update_then_first_with_claims_and_reads_the_related_rows_own_values(monkeypatch, returning):
    if not returning:  # a database whose UPDATE returns no rows (SQLite < 3.35)
        monkeypatch.setattr("jobsite.db._updates_return_rows", lambda connection: False)
    job = JobFactory()
    Job.objects.filter(pk=job.pk).update(last_status="failed")  # as a finish writes it
    execution = ExecutionFactory(job=job, status="queued")
    lookup = PkLookup(lambda: Execution.objects.all())
    now = timezone.now()
    claim = {"where": {"pk": execution.pk, "status": "queued"},
             "values": {"status": "running", "started_at": now, "worker": "w1 1"},
             "related": "job", "fields": ("updated_at", "last_status")}
    with CaptureQueriesContext(connection) as queries:
        claimed, (updated_at, last_status) = lookup.update_then_first_with(execution.pk, **claim)
    assert len(queries) == 1 if returning else len(queries) > 1
    assert (claimed.status, claimed.started_at, claimed.worker, claimed.job_id) == ("running", now, "w1 1", job.pk)
    assert not Execution.job.is_cached(claimed)
    assert last_status == "failed"
    with connection.cursor() as cursor:  # the value as the database stores it
        cursor.execute("SELECT updated_at FROM scheduling_job WHERE id = %s", [job.pk])
        assert updated_at == cursor.fetchone()[0]
    stored = Execution.objects.get(pk=execution.pk)
    assert (stored.status, stored.started_at, stored.worker) == ("running", now, "w1 1")
    assert lookup.update_then_first_with(execution.pk, **claim) is None  # no longer queued
    with pytest.raises(ValueError, match="one table"):
        PkLookup(lambda: Execution.objects.select_related("job")).update_then_first_with(execution.pk, **claim)


@pytest.mark.django_db(transaction=True)  # autocommit, as in a worker
def test_an_unflushed_claim_skips_the_wait_for_the_disk_for_its_own_commit_only():
    job = JobFactory()
    first, second = ExecutionFactory(job=job, status="queued"), ExecutionFactory(job=job, status="queued")
    lookup = PkLookup(lambda: Execution.objects.all())
    claim = {"values": {"status": "running", "worker": "w1 1"}, "related": "job", "fields": ("updated_at",)}

    def session_setting():
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            return cursor.fetchone()[0]

    before = session_setting() if connection.vendor == "postgresql" else None
    with CaptureQueriesContext(connection) as queries:
        claimed, _ = lookup.update_then_first_with(first.pk, where={"pk": first.pk, "status": "queued"}, flush=False,
                                                   **claim)
    assert (claimed.pk, claimed.status, claimed.worker) == (first.pk, "running", "w1 1")
    assert Execution.objects.get(pk=first.pk).status == "running"  # committed, visible to every session
    sql = queries.captured_queries[0]["sql"]
    if connection.vendor == "postgresql":
        assert "set_config('synchronous_commit', 'off', true)" in sql
        assert session_setting() == before  # the session's own setting is back after that transaction
    else:
        assert "synchronous_commit" not in sql
    # Inside a transaction it would decide how the whole transaction commits: never there.
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        lookup.update_then_first_with(second.pk, where={"pk": second.pk, "status": "queued"}, flush=False, **claim)
    assert "synchronous_commit" not in queries.captured_queries[0]["sql"]


def _claim(execution):
    return services.execution_claim(execution_id=execution.pk, task_id=execution.celery_task_id, worker="w 1")


def test_a_worker_reads_a_job_once_per_version_and_runs_each_edit(monkeypatch):
    monkeypatch.setattr(lifecycle, "_run_jobs", lifecycle._RunJobs())
    job = JobFactory(task_kwargs={"n": 1}, timeout_seconds=30, overlap_policy="allow")
    first = _claim(services.job_execute(job=job))
    assert (first.job.task_kwargs, first.job.timeout_seconds) == ({"n": 1}, 30)
    services.execution_finish(execution=first, status="failed", error="boom")
    # then the job is held: the next claim is one statement, and it has the new last_status
    queued = services.job_execute(job=Job.objects.get(pk=job.pk))
    with CaptureQueriesContext(connection) as queries:
        second = _claim(queued)
    assert len(queries) == 1 and "scheduling_execution" in queries[0]["sql"]
    assert second.job.last_status == "failed" and second.job is not first.job
    assert second.job.task_kwargs == {"n": 1}
    # an edit is run from the next claim on
    edited = services.job_update(job=Job.objects.get(pk=job.pk), data={"task_kwargs": {"n": 2}, "timeout_seconds": 45})
    third = _claim(services.job_execute(job=edited))
    assert (third.job.task_kwargs, third.job.timeout_seconds) == ({"n": 2}, 45)
    reference = Job.objects.get(pk=job.pk)
    for field in Job._meta.concrete_fields:
        if field.name not in ("last_run_at", "last_status", "last_finished_at", "total_runs", "failed_runs", "successful_runs",
                              "total_duration_seconds"):
            assert getattr(third.job, field.attname) == getattr(reference, field.attname), field.name


def test_a_worker_holds_a_bounded_number_of_jobs(monkeypatch):
    run_jobs = lifecycle._RunJobs()
    monkeypatch.setattr(run_jobs, "MAX_JOBS", 2)
    jobs = JobFactory.create_batch(3)
    for job in jobs:
        assert run_jobs.get(job.pk, job.updated_at, "").pk == job.pk
    assert list(run_jobs._jobs) == [jobs[1].pk, jobs[2].pk]
    assert run_jobs.get(10 ** 9, timezone.now(), "") is None


def _writes(queries) -> list[str]:
    return [q["sql"] for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]


def test_create_rows_if_updated_creates_what_create_creates_atomically():
    job = JobFactory()
    now = timezone.now()
    values = dict(job=job, status="queued", trigger="api", attempt=1, override_kwargs={"n": [1, "é"]},
                  celery_task_id="0b7c8e0e-0000-4000-8000-000000000003")
    with CaptureQueriesContext(connection) as queries:
        execution, entry = create_rows_if_updated(Job, where={"pk": job.pk}, values={"last_run_at": now}, rows=[
            (Execution, values),
            (AuditLog, dict(action="execute", object_type="job", object_id=str(job.pk), object_repr="x",
                            changes=InsertedPk(0, key="execution", json={"execution": None, "force": False}))),
            (Execution, dict(values, celery_task_id=None, status="failed", retry_of=InsertedPk(0))),
        ])[:2]
    # PostgreSQL: one data-modifying WITH; elsewhere the update and each insert, in a transaction
    assert len(_writes(queries)) == (1 if creates_rows_in_one_statement("default") else 4)
    reference = Execution.objects.create(**{**values, "celery_task_id": "0b7c8e0e-0000-4000-8000-000000000004"})
    stored = Execution.objects.get(pk=execution.pk)
    for field in Execution._meta.concrete_fields:
        if field.name in ("id", "uuid", "celery_task_id", "created_at"):
            continue
        assert getattr(stored, field.attname) == getattr(reference, field.attname), field.name
        assert getattr(execution, field.attname) == getattr(stored, field.attname), field.name
    assert (stored.created_at, stored.uuid) == (execution.created_at, execution.uuid)
    assert entry.changes == {"execution": execution.pk, "force": False}
    assert AuditLog.objects.get(pk=entry.pk).changes == {"execution": execution.pk, "force": False}
    assert Execution.objects.get(retry_of=execution.pk).status == "failed"
    assert Job.objects.get(pk=job.pk).last_run_at == now


def test_create_rows_if_updated_creates_nothing_when_no_row_is_updated():
    job = JobFactory()
    created = create_rows_if_updated(Job, where={"pk": job.pk, "is_enabled": False}, values={"last_run_at": timezone.now()},
                                     rows=[(Execution, dict(job=job, status="queued", trigger="api"))])
    assert created is None
    assert Execution.objects.count() == 0 and Job.objects.get(pk=job.pk).last_run_at is None


def _run_request_writes(job, **kwargs):
    with CaptureQueriesContext(connection) as queries:
        execution = services.job_execute(job=job, actor_label="t", **kwargs)
    return execution, _writes(queries)


def test_a_run_request_writes_the_same_rows_either_way(monkeypatch):
    """The request that needs no lock (one statement on PostgreSQL) and the
    locked one store the same execution, audit row and last_run_at."""
    one, locked = JobFactory(overlap_policy="allow", task_kwargs={"a": 1}), JobFactory(overlap_policy="skip")
    # "nothing is paused" read once and trusted for the whole test (a request trusts it for a
    # second: on a slow machine the second request would read it again)
    monkeypatch.setattr(maintenance_mode, "REQUEST_CACHE_SECONDS", 3600.0)
    maintenance_mode.forget_cached_pauses()
    maintenance_mode.refuse_run_if_paused(one)
    fast, fast_sql = _run_request_writes(one, override_kwargs={"a": 2})
    slow, slow_sql = _run_request_writes(locked, override_kwargs={"a": 2})
    assert len(fast_sql) == (1 if connection.vendor == "postgresql" else 3), fast_sql
    assert len(slow_sql) >= 3  # lock-and-read the job, the active-run check, inserts
    for execution, job in ((fast, one), (slow, locked)):
        stored = Execution.objects.get(pk=execution.pk)
        assert (stored.status, stored.trigger, stored.override_kwargs, stored.job_id) == ("queued", "api", {"a": 2}, job.pk)
        assert stored.celery_task_id == execution.celery_task_id and stored.created_at == execution.created_at
        entry = AuditLog.objects.get(object_type="job", object_id=str(job.pk), action="execute")
        assert entry.changes == {"execution": execution.pk, "force": False, "override_kwargs": {"a": 2}}
        assert entry.actor_label == "t"
        job.refresh_from_db()
        assert job.last_run_at is not None and abs(job.last_run_at - stored.created_at) < timedelta(seconds=5)


def test_a_run_request_is_decided_on_the_job_as_stored_not_as_the_caller_read_it():
    job = JobFactory(overlap_policy="allow")
    stale = Job.objects.get(pk=job.pk)
    # disabled without a save (as a fired one-off is): the caller's copy still says enabled
    Job.objects.filter(pk=job.pk).update(is_enabled=False)
    with pytest.raises(Conflict, match="disabled"):
        services.job_execute(job=stale, actor_label="t")
    assert not Execution.objects.filter(job=job).exists()
    assert not AuditLog.objects.filter(action="execute").exists()
    assert Job.objects.get(pk=job.pk).last_run_at is None

    # and the other way round: the caller's copy says paused, the job was resumed since
    paused = Job.objects.get(pk=job.pk)
    paused.is_enabled, paused.status = True, "paused"
    Job.objects.filter(pk=job.pk).update(is_enabled=True)
    execution = services.job_execute(job=paused, actor_label="t")
    assert Execution.objects.get(pk=execution.pk).status == "queued"

    # edited meanwhile (a save: a new updated_at): the run uses the stored definition
    job = JobFactory(overlap_policy="allow")
    stale = Job.objects.get(pk=job.pk)
    edited = Job.objects.get(pk=job.pk)
    edited.overlap_policy = "skip"
    edited.save()
    first = services.job_execute(job=stale, actor_label="t")  # stale copy: allow; stored: skip
    assert first.pk
    with pytest.raises(Conflict, match="already running"):
        services.job_execute(job=stale, actor_label="t")


def test_any_of_finds_what_in_finds_as_one_array_on_postgresql_and_an_in_list_elsewhere():
    jobs = JobFactory.create_batch(3)
    executions = [ExecutionFactory(job=job) for job in jobs for _ in range(2)]
    ids = [e.pk for e in executions[:5]] + [10**9]  # one that does not exist
    assert (sorted(Execution.objects.filter(pk__any_of=ids).values_list("pk", flat=True))
            == sorted(Execution.objects.filter(pk__in=ids).values_list("pk", flat=True)))
    # a relation's column, as the burst's reads use it
    assert (sorted(Execution.objects.filter(job_id__any_of=[jobs[0].pk, jobs[2].pk]).values_list("pk", flat=True))
            == sorted(e.pk for e in executions if e.job_id in (jobs[0].pk, jobs[2].pk)))
    assert not Execution.objects.filter(pk__any_of=[]).exists()
    with CaptureQueriesContext(connection) as queries:
        list(Execution.objects.filter(pk__any_of=ids))
    sql = queries.captured_queries[0]["sql"]
    assert ("= ANY(" in sql) if connection.vendor == "postgresql" else (" IN (" in sql)


def test_id_batches_take_all_ids_at_once_only_where_one_array_carries_them():
    ids = list(range(1, 1201))
    batches = list(id_batches(ids))
    assert [i for batch in batches for i in batch] == ids
    if connection.vendor == "postgresql":
        assert len(batches) == 1
    else:
        assert max(len(batch) for batch in batches) == IN_BATCH and len(batches) == 3
    assert list(id_batches([])) == []


def test_insert_rows_stores_what_the_orm_stores():
    # given rows with their own values, values shared by all, and defaults (a uuid per row)
    job = JobFactory()
    due = timezone.now().replace(microsecond=0)
    rows = [{"job_id": job.pk, "celery_task_id": f"task-{n}", "scheduled_for": due + timedelta(minutes=n)}
            for n in range(3)]
    common = {"status": "queued", "trigger": "schedule", "attempt": 1, "override_kwargs": {"a": [1, "x"]},
              "created_at": due}
    with transaction.atomic():
        returned = insert_rows(Execution, rows, common=common, returning=("id", "job_id"))
    stored = list(Execution.objects.filter(job=job).order_by("scheduled_for"))
    # then each row is the one the ORM would have made of those values
    orm = Execution(job=job, celery_task_id="orm", scheduled_for=due, **common)
    for row, execution in zip(rows, stored):
        assert (execution.celery_task_id, execution.scheduled_for) == (row["celery_task_id"], row["scheduled_for"])
        for field in ("status", "trigger", "attempt", "override_kwargs", "created_at", "held", "did_nothing",
                      "output", "result"):
            assert getattr(execution, field) == getattr(orm, field), field
    assert len({execution.uuid for execution in stored}) == 3
    # and, where the database gives them back (one statement on PostgreSQL), the ids of the rows made
    if connection.vendor == "postgresql":
        assert sorted(returned) == sorted((execution.pk, job.pk) for execution in stored)
    else:
        assert returned is None


def test_insert_rows_gives_a_default_that_is_the_same_on_every_call_to_each_row_and_a_fresh_uuid_to_each():
    # given rows that leave override_kwargs (default dict) and uuid (default uuid4) to their defaults
    job = JobFactory()
    due = timezone.now().replace(microsecond=0)
    rows = [{"job_id": job.pk, "celery_task_id": f"task-{n}", "scheduled_for": due + timedelta(minutes=n)}
            for n in range(3)]
    # when
    with transaction.atomic():
        insert_rows(Execution, rows, common={"created_at": due})
    # then
    stored = list(Execution.objects.filter(job=job))
    assert [execution.override_kwargs for execution in stored] == [{}, {}, {}]
    assert len({execution.uuid for execution in stored}) == 3
    assert {(execution.status, execution.output, execution.result) for execution in stored} == {("queued", "", None)}
