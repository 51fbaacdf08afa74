"""Concurrency limits: max_concurrent_runs per job and concurrency groups shared by jobs."""
from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone

from scheduling import services
from scheduling.models import AuditLog, Execution, Job
from scheduling.services.limits import concurrency_group_set
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db


def start(execution):
    return services.execution_claim(execution_id=execution.pk, task_id=execution.celery_task_id, worker="w1 pid 1")


def sent(execution):
    execution.refresh_from_db()
    return execution.status == "queued" and not execution.held


def test_runs_over_the_jobs_limit_wait_in_order_and_start_as_slots_free():
    job = JobFactory(overlap_policy="allow", max_concurrent_runs=2)
    runs = [services.job_execute(job=job) for _ in range(5)]
    assert [sent(run) for run in runs] == [True, True, False, False, False]
    assert "Waiting for a free slot (max_concurrent_runs 2)" in Execution.objects.get(pk=runs[2].pk).output
    first = start(runs[0])
    services.execution_finish(execution=first, status="success")
    assert [sent(run) for run in runs[2:]] == [True, False, False]  # the oldest waiting one, only
    services.execution_cancel(execution=runs[1], actor_label="t")  # a cancel frees its slot too
    assert [sent(run) for run in runs[3:]] == [True, False]
    lost = start(runs[2])
    services.execution_mark_lost(execution=lost, reason="worker killed")  # the lost-run sweep's way
    assert sent(runs[4])
    assert Execution.objects.filter(job=job, held=True).count() == 0


def test_a_group_limits_the_runs_of_all_its_jobs():
    group = concurrency_group_set(name="document-api", max_runs=2, actor_label="t")
    a = JobFactory(overlap_policy="allow", concurrency_group=group)
    b = JobFactory(overlap_policy="allow", concurrency_group=group)
    runs = [services.job_execute(job=job) for job in (a, b, a, b)]
    assert [sent(run) for run in runs] == [True, True, False, False]
    services.execution_finish(execution=start(runs[1]), status="failed", error="x")
    assert [sent(run) for run in runs[2:]] == [True, False]
    # a raised limit sends what now fits
    concurrency_group_set(name="document-api", max_runs=5, actor_label="t")
    assert sent(runs[3])
    assert AuditLog.objects.filter(object_type="concurrencygroup").count() == 2


def test_a_changed_limit_sends_what_now_fits_at_once():
    group = concurrency_group_set(name="document-api", max_runs=1, actor_label="t")
    job = JobFactory(overlap_policy="allow", max_concurrent_runs=1)
    other = JobFactory(overlap_policy="allow", concurrency_group=group)
    runs = [services.job_execute(job=job) for _ in range(4)]
    assert [sent(run) for run in runs] == [True, False, False, False]
    services.job_update(job=job, data={"max_concurrent_runs": 2}, actor_label="t")  # raised: one more goes
    assert [sent(run) for run in runs] == [True, True, False, False]
    # joined a full group: nothing more goes; the runs already sent stay sent
    group_runs = [services.job_execute(job=other) for _ in range(2)]
    assert [sent(run) for run in group_runs] == [True, False]
    services.job_update(job=job, data={"max_concurrent_runs": None, "concurrency_group": group}, actor_label="t")
    assert [sent(run) for run in runs[2:]] == [False, False]
    # removed from the group and unlimited: every held run goes, and the group's next run takes the slot it left
    services.jobs_update_bulk(updates=[(job, {"concurrency_group": None})], actor_label="t")
    assert [sent(run) for run in runs[2:]] == [True, True]
    assert not sent(group_runs[1])  # the group's own run still holds its one slot
    services.execution_finish(execution=start(group_runs[0]), status="success")
    assert sent(group_runs[1])


def test_scheduled_fires_wait_too_one_run_per_fire():
    job = JobFactory(schedule_type="cron", schedule_expression="* * * * *", overlap_policy="allow",
                     max_concurrent_runs=1)
    due = timezone.now().replace(second=0, microsecond=0)
    fires = [services.job_dispatch_scheduled(job_id=job.pk, scheduled_for=due + timedelta(minutes=m)) for m in range(3)]
    assert [sent(fire) for fire in fires] == [True, False, False]
    assert services.job_dispatch_scheduled(job_id=job.pk, scheduled_for=due).pk == fires[0].pk
    services.execution_finish(execution=start(fires[0]), status="success")
    assert [sent(fire) for fire in fires[1:]] == [True, False]


def test_limits_are_validated(admin_api):
    body = {"name": "l", "schedule_type": "cron", "schedule_expression": "* * * * *", "task_name": "tests.echo"}
    response = admin_api.post("/api/v1/jobs/", {**body, "max_concurrent_runs": 0}, format="json")
    assert response.status_code == 400 and "max_concurrent_runs" in response.json()["errors"]
    response = admin_api.post("/api/v1/jobs/", {**body, "max_concurrent_runs": 2}, format="json")
    assert response.status_code == 400 and "overlap policy 'allow'" in str(response.json()["errors"])
    response = admin_api.post("/api/v1/jobs/", {**body, "concurrency_group": "nope"}, format="json")
    assert response.status_code == 400 and "No concurrency group named 'nope'" in str(response.json())
    concurrency_group_set(name="api", max_runs=1)
    response = admin_api.post("/api/v1/jobs/", {**body, "overlap_policy": "allow", "max_concurrent_runs": 3,
                                                "concurrency_group": "api"}, format="json")
    assert response.status_code == 201, response.content
    assert (response.json()["max_concurrent_runs"], response.json()["concurrency_group"]) == (3, "api")


def test_unlimited_jobs_are_untouched():
    job = JobFactory(overlap_policy="allow")
    assert all(sent(services.job_execute(job=job)) for _ in range(3))


def test_the_groups_api(admin_api, api):
    response = admin_api.post("/api/v1/concurrency-groups", {"name": "document-api", "max_runs": 2}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["max_runs"] == 2
    assert admin_api.post("/api/v1/concurrency-groups", {"name": " ", "max_runs": 2}, format="json").status_code == 400
    assert admin_api.post("/api/v1/concurrency-groups", {"name": "x", "max_runs": 0}, format="json").status_code == 400
    assert api.post("/api/v1/concurrency-groups", {"name": "x", "max_runs": 1}, format="json").status_code == 403
    assert api.get("/api/v1/concurrency-groups").json()["total"] == 1


def test_the_sweep_releases_runs_whose_slot_freed_without_a_release():
    job = JobFactory(overlap_policy="allow", max_concurrent_runs=1)
    first, second = services.job_execute(job=job), services.job_execute(job=job)
    assert not sent(second)
    Execution.objects.filter(pk=first.pk).update(status="success")  # ended by a process that died before releasing
    services.executions_resend_stale_queued()
    assert sent(second)


# -- retries obey the limits ------------------------------------------------------------------------
def backoff_over(job, seconds):
    """The clock moves on ``seconds`` for the job's runs (their order kept): an injected clock."""
    Execution.objects.filter(job=job).update(created_at=F("created_at") - timedelta(seconds=seconds))


def woken(retry):
    """The retry's wake-up message (sent with its backoff as countdown) reaches a worker."""
    return services.execution_claim(execution_id=retry.pk, task_id=retry.celery_task_id, worker="w2 pid 2")


def test_a_retry_waits_out_its_backoff_then_for_a_slot_in_order_and_runs_once():
    job = JobFactory(overlap_policy="allow", max_concurrent_runs=1, max_retries=1, retry_backoff_seconds=30)
    first, second = services.job_execute(job=job), services.job_execute(job=job)
    services.execution_finish(execution=start(first), status="failed", error="x")
    retry = Execution.objects.get(retry_of=first)
    # the retry is held through its backoff: the freed slot goes to the run that waited
    assert retry.held and retry.attempt == 2 and retry.trigger == "retry"
    assert retry.output == f"Retry of run {first.pk}, after a backoff of 30 s. Waiting for a free slot " \
                           "(max_concurrent_runs 1)."
    assert sent(second)
    third = services.job_execute(job=job)  # comes during the backoff: held behind
    # when the backoff is over while the slot is taken, its wake-up message finds no slot: it waits, held
    backoff_over(job, 31)
    assert woken(retry) is None and not sent(retry)
    services.executions_resend_stale_queued()  # the sweep's release: no slot either
    assert not sent(retry) and not sent(third)
    # then the slot frees: the retry goes first (made before the third run), and only it
    services.execution_finish(execution=start(second), status="success")
    assert sent(retry) and not sent(third)
    services.execution_finish(execution=start(retry), status="success")
    assert sent(third)
    assert Execution.objects.filter(job=job, trigger="retry").count() == 1
    assert Execution.objects.get(pk=retry.pk).status == "success"


def test_a_woken_retry_takes_a_free_slot_of_its_group_at_once():
    group = concurrency_group_set(name="document-api", max_runs=1, actor_label="t")
    flaky = JobFactory(overlap_policy="allow", concurrency_group=group, max_retries=1, retry_backoff_seconds=5)
    other = JobFactory(overlap_policy="allow", concurrency_group=group)
    run = services.job_execute(job=flaky)
    services.execution_finish(execution=start(run), status="error", error="x")
    retry = Execution.objects.get(retry_of=run)
    assert retry.held and "concurrency group 'document-api'" in retry.output
    # during its backoff a run of another job of the group takes the free slot
    meanwhile = services.job_execute(job=other)
    assert sent(meanwhile)
    services.execution_finish(execution=start(meanwhile), status="success")
    assert not sent(retry)  # a slot is free, but the retry is not due yet
    # when its message comes, it takes the free slot, and holds it
    assert woken(retry) is None and sent(retry)
    blocked = services.job_execute(job=other)
    assert not sent(blocked)
    claimed = start(retry)
    assert claimed is not None and claimed.attempt == 2
    services.execution_finish(execution=claimed, status="success")
    assert sent(blocked)


def test_a_retry_of_a_run_lost_with_its_worker_waits_for_the_slot_the_sweep_freed():
    job = JobFactory(overlap_policy="allow", max_concurrent_runs=1, max_retries=1, retry_backoff_seconds=0)
    lost, waiting = services.job_execute(job=job), services.job_execute(job=job)
    services.execution_mark_lost(execution=start(lost), reason="worker killed")  # the lost-run sweep's way
    retry = Execution.objects.get(retry_of=lost)
    # no backoff: in order behind the run that waited, which took the freed slot
    assert sent(waiting) and not sent(retry)
    services.execution_finish(execution=start(waiting), status="success")
    assert sent(retry)
    assert Execution.objects.filter(job=job, held=True).count() == 0


def test_a_held_retry_cancelled_never_starts_and_frees_nothing():
    job = JobFactory(overlap_policy="allow", max_concurrent_runs=1, max_retries=1, retry_backoff_seconds=30)
    run = services.job_execute(job=job)
    services.execution_finish(execution=start(run), status="failed", error="x")
    retry = Execution.objects.get(retry_of=run)
    services.execution_cancel(execution=retry, actor_label="t")
    backoff_over(job, 31)
    assert woken(retry) is None
    assert Execution.objects.get(pk=retry.pk).status == "cancelled"


def test_the_sweep_releases_the_runs_of_a_job_whose_limit_was_removed_retries_once_due():
    job = JobFactory(overlap_policy="allow", max_concurrent_runs=1, max_retries=1, retry_backoff_seconds=30)
    failing, second, third = (services.job_execute(job=job) for _ in range(3))
    services.execution_finish(execution=start(failing), status="failed", error="x")
    retry = Execution.objects.get(retry_of=failing)
    assert sent(second) and not sent(third) and not sent(retry)
    Job.objects.filter(pk=job.pk).update(max_concurrent_runs=None)  # no limit any more
    services.executions_resend_stale_queued()
    assert sent(third) and not sent(retry)  # every held run goes; the retry once its backoff is over
    backoff_over(job, 31)
    services.executions_resend_stale_queued()
    assert sent(retry)
