"""The scheduling services, tested directly (no worker: the executor runs inline)."""
import json
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_celery_beat.models import PeriodicTask, PeriodicTasks

from jobsite.exceptions import Conflict
from jobsite.tenancy import SYSTEM
from scheduling import services
from scheduling.beat import beat_drift_check, celery_priority
from scheduling.models import AuditLog, Execution, Job
from scheduling.services import fires
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db


def run_inline(execution):
    """What the worker does for an execution, in this process."""
    return services.execution_run(execution_id=execution.pk, task_id=execution.celery_task_id, worker="inline pid 1")


# -- beat sync -------------------------------------------------------------
def test_create_writes_one_enabled_periodic_task_per_job():
    job = JobFactory(schedule_type="daily", schedule_expression="02:00", timezone="Europe/Paris", priority=8, queue="maintenance")
    task = PeriodicTask.objects.get(pk=job.periodic_task_id)
    assert task.task == "scheduling.run_job"
    assert json.loads(task.args) == [job.pk]
    assert task.enabled is True
    assert task.queue == "maintenance"
    assert task.priority == celery_priority(8)
    assert (task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == ("0", "2", "Europe/Paris")
    assert job.next_run_at is not None and job.next_run_at > timezone.now()


@pytest.mark.parametrize(
    "schedule_type, expression, kind",
    [("interval", "10s", "interval"), ("interval", "30", "interval"), ("cron", "*/5 * * * *", "crontab"),
     ("weekly", "0:03:00", "crontab"), ("monthly", "1:08:00", "crontab"), ("once", "2039-01-01T00:00", "clocked")],
)
def test_every_schedule_type_maps_to_a_beat_schedule(schedule_type, expression, kind):
    job = JobFactory(schedule_type=schedule_type, schedule_expression=expression)
    task = job.periodic_task
    assert getattr(task, kind) is not None
    assert task.one_off is (kind == "clocked")


def test_disabled_job_keeps_a_disabled_periodic_task():
    job = JobFactory(is_enabled=False)
    assert job.periodic_task.enabled is False
    assert job.next_run_at is None


def test_schedule_change_updates_beat_and_tells_the_scheduler():
    job = JobFactory(schedule_type="daily", schedule_expression="02:00")
    before = PeriodicTasks.last_change()
    job = services.job_update(job=job, data={"schedule_type": "cron", "schedule_expression": "15 4 * * 1"})
    task = PeriodicTask.objects.get(pk=job.periodic_task_id)
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("15", "4", "1")
    assert PeriodicTasks.last_change() > before
    assert beat_drift_check().clean


def test_pause_resume_toggle_the_periodic_task():
    job = JobFactory()
    job = services.job_pause(job=job)
    assert (job.status, job.periodic_task.enabled, job.next_run_at) == ("paused", False, None)
    job = services.job_resume(job=job)
    job.periodic_task.refresh_from_db()
    assert (job.status, job.periodic_task.enabled) == ("active", True)
    assert job.next_run_at is not None


def test_delete_removes_the_periodic_task():
    job = JobFactory()
    task_id = job.periodic_task_id
    services.job_delete(job=job)
    assert not Job.objects.filter(pk=job.pk).exists()
    assert not PeriodicTask.objects.filter(pk=task_id).exists()


def test_drift_check_finds_and_repairs_missing_mismatched_and_orphans():
    a, b, c = JobFactory(), JobFactory(), JobFactory()
    PeriodicTask.objects.filter(pk=a.periodic_task_id).delete()  # missing
    PeriodicTask.objects.filter(pk=b.periodic_task_id).update(enabled=False)  # mismatched (bulk update!)
    Job.objects.filter(pk=c.pk).update(periodic_task=None)  # its task is now an orphan
    report = beat_drift_check()
    assert sorted(report.missing) == sorted([a.pk, c.pk])
    assert report.mismatched == [b.pk]
    assert report.orphans == [f"job:{c.pk}"]
    repaired = beat_drift_check(repair=True)
    assert repaired.repaired
    assert beat_drift_check().clean
    assert PeriodicTask.objects.filter(name__startswith="job:").count() == 3


# -- validation ------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"task_name": "os.system"}, "task_name"),
        ({"task_name": ""}, "task_name"),
        ({"schedule_type": "cron", "schedule_expression": "0 9"}, "schedule_expression"),
        ({"timezone": "Nowhere/Land"}, "timezone"),
        ({"queue": "no-such-queue"}, "queue"),
        ({"priority": 10}, "priority"),
        ({"name": "has spaces"}, "name"),
        ({"job_type": "mining"}, "job_type"),
        ({"kind": "shell"}, "kind"),
        ({"task_kwargs": ["not", "a", "dict"]}, "task_kwargs"),
        ({"timeout_seconds": 10**20}, "timeout_seconds"),
        ({"retry_backoff_seconds": 10**20}, "retry_backoff_seconds"),
        ({"schedule_expression": "9" * 300}, "schedule_expression"),
    ],
)
def test_create_rejects_bad_input_naming_the_field(overrides, field):
    with pytest.raises(ValidationError) as excinfo:
        JobFactory(**overrides)
    assert field in excinfo.value.message_dict
    assert not Job.objects.exists() and not PeriodicTask.objects.filter(name__startswith="job:").exists()


def test_unknown_task_error_lists_the_schedulable_ones():
    with pytest.raises(ValidationError) as excinfo:
        JobFactory(task_name="app.tasks.backup.create_backup")
    message = excinfo.value.message_dict["task_name"][0]
    assert "'app.tasks.backup.create_backup' is not a schedulable task" in message
    assert "tests.echo" in message


def test_duplicate_name_is_a_conflict():
    JobFactory(name="nightly")
    with pytest.raises(Conflict):
        JobFactory(name="nightly")


# -- executing -------------------------------------------------------------
def test_execute_queues_an_execution_and_sends_it_on_commit(django_capture_on_commit_callbacks):
    job = JobFactory(task_kwargs={"a": 1})
    with django_capture_on_commit_callbacks() as callbacks:
        execution = services.job_execute(job=job, override_kwargs={"b": 2})
    assert execution.status == "queued" and execution.celery_task_id
    assert len(callbacks) == 1
    run_inline(execution)
    execution.refresh_from_db()
    assert execution.status == "success"
    assert execution.result == {"args": [], "kwargs": {"a": 1, "b": 2}}
    assert execution.duration_seconds is not None and execution.worker == "inline pid 1"
    job.refresh_from_db()
    assert (job.total_runs, job.successful_runs, job.last_status) == (1, 1, "success")


def test_execute_refuses_paused_and_disabled_jobs_without_force():
    job = services.job_pause(job=JobFactory())
    with pytest.raises(Conflict, match="is paused; use force"):
        services.job_execute(job=job)
    assert services.job_execute(job=job, force=True).status == "queued"


def test_execute_refuses_overlap_unless_forced_or_allowed():
    job = JobFactory()
    first = services.job_execute(job=job)
    with pytest.raises(Conflict, match=f"already running \\(execution {first.pk} is queued, waiting for a worker\\)"):
        services.job_execute(job=job)
    assert services.job_execute(job=job, force=True).pk != first.pk
    relaxed = JobFactory(overlap_policy="allow")
    services.job_execute(job=relaxed)
    services.job_execute(job=relaxed)


def test_scheduled_dispatch_skips_while_a_run_is_going():
    job = JobFactory()
    first = services.job_dispatch_scheduled(job_id=job.pk)
    assert first.status == "queued" and first.trigger == "schedule"
    second = services.job_dispatch_scheduled(job_id=job.pk)
    assert second.status == "skipped"
    assert second.output == f"Skipped: execution {first.pk} is queued, waiting for a worker (overlap policy 'skip')."
    job.refresh_from_db()
    assert job.last_run_at is not None and job.next_run_at > job.last_run_at


def test_scheduled_dispatch_ignores_paused_or_deleted_jobs():
    job = services.job_pause(job=JobFactory())
    assert services.job_dispatch_scheduled(job_id=job.pk) is None
    assert services.job_dispatch_scheduled(job_id=999999) is None
    assert not Execution.objects.exists()


def test_failure_is_recorded_and_retried_with_backoff(django_capture_on_commit_callbacks):
    job = JobFactory(task_name="tests.fail", task_kwargs={"message": "disk on fire"}, max_retries=2, retry_backoff_seconds=5)
    execution = services.job_execute(job=job)
    run_inline(execution)
    execution.refresh_from_db()
    assert execution.status == "failed"
    assert "RuntimeError: disk on fire" in execution.error
    retry = Execution.objects.get(retry_of=execution)
    assert (retry.attempt, retry.trigger, retry.status) == (2, "retry", "queued")
    run_inline(retry)
    third = Execution.objects.get(retry_of=retry)
    assert third.attempt == 3
    run_inline(third)
    assert not Execution.objects.filter(retry_of=third).exists()  # max_retries reached
    job.refresh_from_db()
    assert (job.total_runs, job.failed_runs, job.success_rate) == (3, 3, 0.0)


def test_cancelled_queued_execution_never_starts():
    execution = services.job_execute(job=JobFactory())
    services.execution_cancel(execution=execution, reason="changed my mind")
    assert run_inline(execution) is None
    execution.refresh_from_db()
    assert execution.status == "cancelled" and execution.started_at is None
    assert "changed my mind" in execution.error
    with pytest.raises(Conflict, match="already cancelled"):
        services.execution_cancel(execution=execution)


def test_cancel_wins_over_a_late_finish():
    execution = services.job_execute(job=JobFactory())
    claimed = services.execution_claim(execution_id=execution.pk, task_id=execution.celery_task_id, worker="w pid 1")
    services.execution_cancel(execution=claimed)
    services.execution_finish(execution=claimed, status="success", output="too late")
    claimed.refresh_from_db()
    assert claimed.status == "cancelled"


def test_redelivered_running_execution_is_marked_lost_and_retried():
    job = JobFactory(max_retries=1)
    execution = services.job_execute(job=job)
    services.execution_claim(execution_id=execution.pk, task_id=execution.celery_task_id, worker="w1@h pid 7")
    # the worker died; the broker redelivers the same message
    assert services.execution_claim(execution_id=execution.pk, task_id=execution.celery_task_id, worker="w2@h pid 8") is None
    execution.refresh_from_db()
    assert execution.status == "error" and "was lost mid-run" in execution.error
    assert Execution.objects.get(retry_of=execution).status == "queued"


def test_reaper_marks_executions_past_their_hard_limit_and_of_restarted_workers():
    job = JobFactory(timeout_seconds=10)
    stale = services.job_execute(job=job, force=True)
    fresh = services.job_execute(job=job, force=True)
    mine = services.job_execute(job=job, force=True)
    for execution, worker in ((stale, "a@h pid 1"), (fresh, "a@h pid 1"), (mine, "b@h pid 2")):
        services.execution_claim(execution_id=execution.pk, task_id=execution.celery_task_id, worker=worker)
    Execution.objects.filter(pk=stale.pk).update(started_at=timezone.now() - timedelta(minutes=5))
    assert services.executions_reap_lost() == 1
    assert services.executions_reap_lost(hostname="b@h") == 1
    statuses = dict(Execution.objects.filter(pk__in=[stale.pk, fresh.pk, mine.pk]).values_list("pk", "status"))
    assert statuses == {stale.pk: "error", fresh.pk: "running", mine.pk: "error"}


def test_every_change_is_audited():
    job = JobFactory(name="audited")
    services.job_update(job=job, data={"priority": 9})
    services.job_pause(job=job)
    services.job_resume(job=job)
    execution = services.job_execute(job=job, actor_label="cli")
    services.execution_cancel(execution=execution, actor_label="cli")
    services.job_delete(job=job)
    actions = list(AuditLog.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["create", "update", "pause", "resume", "execute", "cancel", "delete"]
    update = AuditLog.objects.get(action="update")
    assert update.changes == {"priority": [5, 9]}
    assert AuditLog.objects.get(action="cancel").actor_label == "cli"


def test_interval_next_run_is_beats_due_time_and_restarts_on_resume():
    # given an interval job: beat counts from the PeriodicTask's last_run_at
    job = JobFactory(schedule_type="interval", schedule_expression="30")
    task = PeriodicTask.objects.get(pk=job.periodic_task_id)
    assert task.last_run_at is not None
    assert job.next_run_at == task.last_run_at + timedelta(minutes=30)
    # when it is paused for a while and resumed
    services.job_pause(job=job)
    assert PeriodicTask.objects.get(pk=job.periodic_task_id).last_run_at is None
    job = services.job_resume(job=job)
    task.refresh_from_db()
    # then the interval starts again from the resume, for beat and for next_run_at alike
    assert task.last_run_at > timezone.now() - timedelta(seconds=5)
    assert job.next_run_at == task.last_run_at + timedelta(minutes=30)


def test_overdue_when_late_or_when_a_scheduled_run_never_started(settings):
    from scheduling import selectors

    settings.JOBS_OVERDUE_GRACE_SECONDS = 60
    on_time, late, stuck, paused = (JobFactory(name=n) for n in ("on-time", "late", "stuck", "paused"))
    Job.objects.filter(pk__in=[late.pk, paused.pk]).update(next_run_at=timezone.now() - timedelta(minutes=5))
    services.job_pause(job=paused)
    Job.objects.filter(pk=paused.pk).update(next_run_at=timezone.now() - timedelta(minutes=5))
    queued = services.job_dispatch_scheduled(job_id=stuck.pk)  # beat fired; no worker took it
    Execution.objects.filter(pk=queued.pk).update(created_at=timezone.now() - timedelta(minutes=2))
    overdue = {job.name for job in selectors.job_overdue_list(user=SYSTEM)}
    assert overdue == {"late", "stuck"}
    assert [selectors.job_is_overdue(j) for j in selectors.job_list(user=SYSTEM, filters={})] == [False, True, True, False]
    assert selectors.job_stats_overview(user=SYSTEM)["jobs"]["overdue"] == 2


def test_a_skip_behind_a_retry_says_it_is_a_retry_waiting():
    # given a failed run whose retry waits out its backoff (queued, not running)
    job = JobFactory(max_retries=1, retry_backoff_seconds=600)
    first = services.job_dispatch_scheduled(job_id=job.pk)
    Execution.objects.filter(pk=first.pk).update(status="running", started_at=timezone.now())
    first.refresh_from_db()
    services.execution_finish(execution=first, status="failed", error="boom")
    retry = Execution.objects.get(retry_of=first)
    # when beat fires again
    skipped = services.job_dispatch_scheduled(job_id=job.pk)
    # then the skip names what is really going on
    assert skipped.output == f"Skipped: execution {retry.pk} is a retry waiting out its backoff (overlap policy 'skip')."


def test_a_fired_one_off_is_disabled_and_cannot_be_resumed_into_a_second_run():
    moment = (timezone.now() + timedelta(hours=1)).isoformat()
    job = JobFactory(schedule_type="once", schedule_expression=moment)
    services.job_dispatch_scheduled(job_id=job.pk)
    job.refresh_from_db()
    assert (job.is_enabled, job.next_run_at) == (False, None)
    assert PeriodicTask.objects.get(pk=job.periodic_task_id).enabled is False
    # the repair finds nothing to re-enable, and a resume is refused while the time is the old one
    assert beat_drift_check(repair=True).clean
    Job.objects.filter(pk=job.pk).update(schedule_expression=(timezone.now() - timedelta(minutes=1)).isoformat())
    job.refresh_from_db()
    with pytest.raises(Conflict, match="ran once"):
        services.job_resume(job=job)
    job.refresh_from_db()
    assert job.is_enabled is False


def test_execution_finished_is_sent_after_commit(django_capture_on_commit_callbacks):
    from scheduling.signals import execution_finished

    received = []

    def receiver(sender, **kwargs):
        received.append((kwargs["execution_id"], kwargs["job_id"], kwargs["status"]))

    execution_finished.connect(receiver)
    try:
        job = JobFactory()
        execution = services.job_dispatch_scheduled(job_id=job.pk)
        Execution.objects.filter(pk=execution.pk).update(status="running", started_at=timezone.now())
        execution.refresh_from_db()
        with django_capture_on_commit_callbacks(execute=True):
            services.execution_finish(execution=execution, status="failed", error="boom")
            assert received == []  # nothing before the commit
        assert received == [(execution.pk, job.pk, "failed")]
    finally:
        execution_finished.disconnect(receiver)


# ---------------------------------------------------------------------------
# A fire is (job, scheduled time); catch-up policy
# ---------------------------------------------------------------------------
def _due(minutes_ago=0):
    return (timezone.now() - timedelta(minutes=minutes_ago)).replace(second=0, microsecond=0)


@pytest.mark.parametrize("overlap", ["allow", "skip"])
def test_a_duplicated_fire_returns_the_first_execution_never_a_second_run_or_a_skip(overlap):
    job = JobFactory(overlap_policy=overlap)
    due = _due()
    first = services.job_dispatch_scheduled(job_id=job.pk, scheduled_for=due)
    again = services.job_dispatch_scheduled(job_id=job.pk, scheduled_for=due)  # a second beat, a redelivery
    assert again.pk == first.pk and first.scheduled_for == due
    assert list(job.executions.values_list("status", flat=True)) == ["queued"]
    # the next due time is a new fire
    nxt = services.job_dispatch_scheduled(job_id=job.pk, scheduled_for=due + timedelta(minutes=30))
    assert nxt.pk != first.pk
    assert nxt.status == ("queued" if overlap == "allow" else "skipped")
    assert services.job_dispatch_scheduled(job_id=job.pk, scheduled_for=due + timedelta(minutes=30)).pk == nxt.pk
    assert job.executions.count() == 2


def test_the_database_refuses_a_second_execution_for_one_fire():
    from django.db import IntegrityError, transaction

    job = JobFactory()
    due = _due()
    services.job_dispatch_scheduled(job_id=job.pk, scheduled_for=due)
    with pytest.raises(IntegrityError), transaction.atomic():
        Execution.objects.create(job=job, scheduled_for=due, status="queued", trigger="schedule")
    # the service's race path (the row lock did not serialize) returns the existing one
    existing = fires.new_fire(job, scheduled_for=due)
    assert existing._duplicate and job.executions.count() == 1


@pytest.mark.parametrize("policy, runs, caught_up_words", [
    ("skip", 1, "none of them was run (catch-up policy 'skip')"),  # the on-time fire still runs
    ("once", 1, "ran once now instead (catch-up policy 'once')"),
    ("all", 4, "ran each of them now (catch-up policy 'all')"),
])
def test_missed_fires_follow_the_catch_up_policy_and_leave_one_missed_row(policy, runs, caught_up_words, settings):
    settings.JOBS_MISSED_GRACE_SECONDS = 60
    job = JobFactory(schedule_type="cron", schedule_expression="* * * * *", overlap_policy="allow")
    Job.objects.filter(pk=job.pk).update(catch_up_policy=policy)
    # beat was down for 3 minutes: fires for t-3, t-2, t-1 were missed; it fires t now, 30 s late
    now_due = _due()
    services.job_dispatch_scheduled(job_id=job.pk, scheduled_for=now_due, missed=3,
                                    missed_from=now_due - timedelta(minutes=3))
    missed = job.executions.get(status="missed")
    assert missed.result["missed"] == 3
    assert missed.output.startswith("Missed 3 scheduled runs between ")
    assert "beat was not running" in missed.output and caught_up_words in missed.output
    queued = job.executions.filter(status="queued")
    assert queued.count() == runs
    if policy == "all":
        assert sorted(queued.values_list("scheduled_for", flat=True)) == [
            now_due - timedelta(minutes=n) for n in (3, 2, 1, 0)]


def test_policy_skip_does_not_run_a_late_fire_and_a_duplicate_of_it_records_nothing_more(settings):
    settings.JOBS_MISSED_GRACE_SECONDS = 60
    job = JobFactory(schedule_type="cron", schedule_expression="0 * * * *")
    Job.objects.filter(pk=job.pk).update(catch_up_policy="skip")
    due = _due(10)  # beat comes back 10 minutes after the due time
    assert services.job_dispatch_scheduled(job_id=job.pk, scheduled_for=due) is None
    again = services.job_dispatch_scheduled(job_id=job.pk, scheduled_for=due)
    assert again.status == "missed"
    assert list(job.executions.values_list("status", flat=True)) == ["missed"]
    assert again.result["missed"] == 1


def test_catch_up_all_is_capped(settings):
    settings.JOBS_CATCH_UP_MAX = 5
    job = JobFactory(schedule_type="cron", schedule_expression="* * * * *", overlap_policy="allow")
    Job.objects.filter(pk=job.pk).update(catch_up_policy="all")
    due = _due()
    services.job_dispatch_scheduled(job_id=job.pk, scheduled_for=due, missed=60, missed_from=due - timedelta(hours=1))
    assert job.executions.filter(status="queued").count() == 5 + 1
    missed = job.executions.get(status="missed")
    assert missed.result["caught_up"] == 5 and "ran 5 of them now" in missed.output


def test_overdue_when_the_beat_entry_has_not_fired_for_its_period_plus_the_grace(settings):
    from scheduling import selectors

    settings.JOBS_OVERDUE_GRACE_SECONDS = 60
    job = JobFactory(schedule_type="cron", schedule_expression="*/5 * * * *")
    fired_at = _due()
    services.job_dispatch_scheduled(job_id=job.pk, scheduled_for=fired_at)
    job.refresh_from_db()
    assert job.next_run_at > fired_at
    period = job.next_run_at - fired_at
    # within the period plus the grace: not overdue; past it: overdue
    assert not selectors.job_is_overdue(selectors.job_get(user=SYSTEM, job_id=job.pk), job.next_run_at + timedelta(seconds=59))
    later = fired_at + period + timedelta(seconds=61)
    assert selectors.job_is_overdue(selectors.job_get(user=SYSTEM, job_id=job.pk), later)


def test_the_catch_up_policy_is_an_editable_field_with_default_once():
    job = JobFactory()
    assert job.catch_up_policy == "once"
    job = services.job_update(job=job, data={"catch_up_policy": "skip"})
    assert Job.objects.get(pk=job.pk).catch_up_policy == "skip"


def test_the_api_takes_a_catch_up_policy_on_update_and_refuses_an_unknown_one(client_for, superuser):
    job = JobFactory()
    api = client_for(superuser)
    response = api.patch(f"/api/v1/jobs/{job.pk}", {"catch_up_policy": "all"}, format="json")
    assert response.status_code == 200, response.json()
    assert Job.objects.get(pk=job.pk).catch_up_policy == "all"
    response = api.patch(f"/api/v1/jobs/{job.pk}", {"catch_up_policy": "sometimes"}, format="json")
    assert response.status_code == 400 and "catch_up_policy" in response.json()["errors"]
