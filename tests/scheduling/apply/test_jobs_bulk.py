"""jobs_create_bulk and jobs_update_bulk: the same jobs, beat entries, next runs and audit as job_create and
job_update one by one; all or nothing, errors naming the spec and field."""
import pytest
from django.core.exceptions import ValidationError
from django_celery_beat.models import PeriodicTask, PeriodicTasks

import tests.tasks  # noqa: F401  (the tests.* schedulable tasks)
from scheduling.models import AuditLog, Job
from scheduling.services.jobs import job_create, job_update, jobs_create_bulk, jobs_update_bulk
from scheduling.services.limits import concurrency_group_set

pytestmark = pytest.mark.django_db

SPECS = [
    {"schedule_type": "cron", "schedule_expression": "5 4 * * *", "timezone": "Europe/Berlin",
     "task_name": "tests.echo", "task_kwargs": {"days": 1}, "priority": 7, "jitter_seconds": 30},
    {"schedule_type": "interval", "schedule_expression": "45", "task_name": "tests.noop", "overlap_policy": "allow",
     "max_concurrent_runs": 2},
    {"schedule_type": "weekly", "schedule_expression": "2:09:30", "task_name": "tests.echo", "is_enabled": False},
    {"schedule_type": "manual", "task_name": "tests.echo", "secrets": {"TOKEN": "a-long-enough-token-1"}},
]
COMPARED = ("title", "kind", "schedule_type", "schedule_expression", "timezone", "task_name", "task_kwargs",
            "queue", "priority", "overlap_policy", "jitter_seconds", "max_concurrent_runs", "concurrency_group_id",
            "is_enabled", "status", "owner_id")
TASK_FIELDS = ("task", "kwargs", "queue", "priority", "expire_seconds", "enabled", "one_off", "crontab_id",
               "interval_id", "clocked_id")


def _shape(job):
    """What job_create makes of a spec, but the name (and the title and beat entry named after it)."""
    job.refresh_from_db()
    task = job.periodic_task
    if task is not None:
        assert (task.name, task.args, task.description) == (f"job:{job.pk}", f"[{job.pk}]", f"jobsite job {job.name}")
    audit = AuditLog.objects.get(object_type="job", object_id=str(job.pk), action="create")
    return ({f: getattr(job, f) for f in COMPARED if f != "title"}, job.title == job.name, job.next_run_at is None,
            task and {f: getattr(task, f) for f in TASK_FIELDS}, task and task.last_run_at is None,
            audit.actor_id, audit.actor_label, {k: v for k, v in audit.changes.items() if k not in ("name", "title")})


def test_jobs_created_in_bulk_are_the_jobs_job_create_makes(root):
    # given: the same specs created one by one
    group = concurrency_group_set(name="api", max_runs=2)
    specs = [{**spec, "concurrency_group": group} if i == 1 else spec for i, spec in enumerate(SPECS)]
    one_by_one = [job_create(actor=root, actor_label="cli", name=f"one-{i}", **spec) for i, spec in enumerate(specs)]
    changed = PeriodicTasks.last_change()
    # when
    bulk = jobs_create_bulk(specs=[{**spec, "name": f"bulk-{i}"} for i, spec in enumerate(specs)], actor=root,
                            actor_label="cli")
    # then
    assert [job.name for job in bulk] == ["bulk-0", "bulk-1", "bulk-2", "bulk-3"]
    for one, many in zip(one_by_one, bulk):
        assert _shape(one) == _shape(many)
        # an interval counts from its beat entry's anchor (now, at each create); the others are the same time
        assert one.next_run_at == many.next_run_at or one.schedule_type == "interval"
    assert bulk[3].periodic_task is None and bulk[0].periodic_task.enabled and not bulk[2].periodic_task.enabled
    assert bulk[1].concurrency_group == group
    assert PeriodicTasks.last_change() > changed  # beat reloads
    assert {a.actor_label for a in AuditLog.objects.filter(object_id__in=[str(j.pk) for j in bulk])} == {"cli"}


@pytest.mark.parametrize("bad, field, message", [
    ({"schedule_expression": "61 * * * *"}, "specs[1].schedule_expression", ""),
    ({"task_name": "tests.nope"}, "specs[1].task_name", ""),
    ({"priority": 12}, "specs[1].priority", "Priority must be an integer from 0"),
    ({"name": "first"}, "specs[1].name", "Listed twice (also at 0)."),
    ({"name": "taken"}, "specs[1].name", "A job named 'taken' already exists."),
    ({"colour": "red"}, "specs[1].colour", "Unknown field."),
    ({"secrets": {"K": "short"}}, "specs[1].secrets", ""),
])
def test_one_bad_spec_creates_nothing_and_names_its_index_and_field(root, bad, field, message):
    job_create(name="taken", schedule_type="manual", task_name="tests.echo")
    before = (Job.objects.count(), PeriodicTask.objects.count(), AuditLog.objects.count())
    specs = [{"name": "first", "schedule_type": "cron", "schedule_expression": "0 * * * *", "task_name": "tests.echo"},
             {"name": "second", "schedule_type": "cron", "schedule_expression": "0 * * * *",
              "task_name": "tests.echo", **bad}]
    with pytest.raises(ValidationError) as refused:
        jobs_create_bulk(specs=specs, actor=root)
    assert field in refused.value.message_dict and message in " ".join(refused.value.message_dict[field])
    assert (Job.objects.count(), PeriodicTask.objects.count(), AuditLog.objects.count()) == before


def test_jobs_updated_in_bulk_are_the_jobs_job_update_makes(root):
    # given: two pairs of the same jobs
    pairs = [[job_create(actor=root, name=f"{side}-{i}", **SPECS[i]) for side in ("one", "bulk")] for i in range(3)]
    edits = [{"schedule_expression": "7 5 * * *", "priority": 2}, {"schedule_type": "cron",
                                                                    "schedule_expression": "*/10 * * * *"},
             {"is_enabled": True, "jitter_seconds": 12}]
    for (one, _), data in zip(pairs, edits):
        job_update(job=one, actor=root, actor_label="ops", data=data)
    changed = PeriodicTasks.last_change()
    # when
    updated = jobs_update_bulk(updates=[(bulk, data) for (_, bulk), data in zip(pairs, edits)], actor=root,
                               actor_label="ops")
    # then
    assert [job.name for job in updated] == ["bulk-0", "bulk-1", "bulk-2"]
    for one, bulk in pairs:
        one.refresh_from_db()
        bulk.refresh_from_db()
        assert {f: getattr(one, f) for f in COMPARED[1:]} == {f: getattr(bulk, f) for f in COMPARED[1:]}
        assert ({f: getattr(one.periodic_task, f) for f in TASK_FIELDS}
                == {f: getattr(bulk.periodic_task, f) for f in TASK_FIELDS})
        assert one.next_run_at == bulk.next_run_at
        audits = [AuditLog.objects.get(object_id=str(job.pk), action="update") for job in (one, bulk)]
        assert audits[0].changes == audits[1].changes and {a.actor_label for a in audits} == {"ops"}
    assert pairs[1][1].periodic_task.interval_id is None and pairs[1][1].periodic_task.crontab.minute == "*/10"
    assert PeriodicTasks.last_change() > changed


def test_one_bad_update_changes_nothing(root):
    jobs = [job_create(name=f"j{i}", schedule_type="daily", schedule_expression="01:00", task_name="tests.echo")
            for i in range(2)]
    with pytest.raises(ValidationError) as refused:
        jobs_update_bulk(updates=[(jobs[0], {"priority": 3}), (jobs[1], {"schedule_expression": "25:00"}),
                                  (jobs[1], {"kind": "workflow"})])
    assert set(refused.value.message_dict) == {"updates[2].kind"}
    with pytest.raises(ValidationError) as refused:
        jobs_update_bulk(updates=[(jobs[0], {"priority": 3}), (jobs[1], {"schedule_expression": "25:00"})])
    assert set(refused.value.message_dict) == {"updates[1].schedule_expression"}
    assert [job.priority for job in Job.objects.order_by("name")] == [5, 5]
    assert not AuditLog.objects.filter(action="update").exists()
