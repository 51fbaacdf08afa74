"""Run after another job: chains, all-of, failures skip with the reason, cycles refused."""
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from scheduling import services
from scheduling.models import AuditLog, Execution
from scheduling.services.dependencies import job_set_run_after
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db

DUE = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=1)


def run_inline(execution):
    """What the worker does for a run, in this process."""
    return services.execution_run(execution_id=execution.pk, task_id=execution.celery_task_id, worker="inline pid 1")


def nightly(**kwargs):
    return JobFactory(schedule_type="cron", schedule_expression="* * * * *", overlap_policy="allow", **kwargs)


def manual(**kwargs):
    return JobFactory(schedule_type="manual", schedule_expression="", overlap_policy="allow", **kwargs)


def test_a_chain_of_three_runs_in_order_for_the_same_due_time():
    a, b, c = nightly(), manual(), manual()
    job_set_run_after(job=b, upstreams=[(a, "success")])
    job_set_run_after(job=c, upstreams=[(b, "success")])
    first = run_inline(services.job_dispatch_scheduled(job_id=a.pk, scheduled_for=DUE))
    second = Execution.objects.get(job=b)
    assert (second.trigger, second.trigger_run_id, second.scheduled_for) == ("dependency", first.pk, DUE)
    run_inline(second)
    third = Execution.objects.get(job=c)
    assert third.trigger_run_id == second.pk and third.scheduled_for == DUE
    assert run_inline(third).status == "success"


def test_a_failure_in_the_middle_skips_the_rest_with_the_reason():
    a, b, c = nightly(), manual(task_name="tests.fail"), manual()
    job_set_run_after(job=b, upstreams=[(a, "success")])
    job_set_run_after(job=c, upstreams=[(b, "success")])
    run_inline(services.job_dispatch_scheduled(job_id=a.pk, scheduled_for=DUE))
    failed = run_inline(Execution.objects.get(job=b))
    assert failed.status == "failed"
    skipped = Execution.objects.get(job=c)
    assert skipped.status == "skipped" and skipped.trigger_run_id == failed.pk
    assert f"upstream job '{b.name}' run {failed.pk} ended failed" in skipped.output


def test_after_it_finishes_runs_whatever_the_outcome():
    a, b = nightly(task_name="tests.fail"), manual()
    job_set_run_after(job=b, upstreams=[(a, "finished")])
    run_inline(services.job_dispatch_scheduled(job_id=a.pk, scheduled_for=DUE))
    assert Execution.objects.get(job=b).status == "queued"


def test_after_a_and_b_both_succeeded_for_the_same_due_time():
    a, b, c = nightly(), nightly(), manual()
    job_set_run_after(job=c, upstreams=[(a, "success"), (b, "success")])
    run_inline(services.job_dispatch_scheduled(job_id=a.pk, scheduled_for=DUE))
    assert not Execution.objects.filter(job=c).exists()  # waits for b's run of that due time
    run_inline(services.job_dispatch_scheduled(job_id=b.pk, scheduled_for=DUE - timedelta(minutes=1)))
    assert not Execution.objects.filter(job=c).exists()  # another due time: not it
    last = run_inline(services.job_dispatch_scheduled(job_id=b.pk, scheduled_for=DUE))
    run = Execution.objects.get(job=c)
    assert (run.status, run.trigger_run_id, run.scheduled_for) == ("queued", last.pk, DUE)


def test_a_failure_waits_for_its_retries():
    a, b = nightly(task_name="tests.fail", max_retries=1, retry_backoff_seconds=0), manual()
    job_set_run_after(job=b, upstreams=[(a, "success")])
    run_inline(services.job_dispatch_scheduled(job_id=a.pk, scheduled_for=DUE))
    assert not Execution.objects.filter(job=b).exists()
    retry = Execution.objects.get(job=a, trigger="retry")
    run_inline(retry)
    skipped = Execution.objects.get(job=b)
    assert skipped.status == "skipped" and skipped.scheduled_for == DUE and skipped.trigger_run_id == retry.pk


def test_cycles_are_refused_naming_the_cycle():
    a, b, c = manual(name="extract"), manual(name="transform"), manual(name="load")
    job_set_run_after(job=b, upstreams=[(a, "success")])
    job_set_run_after(job=c, upstreams=[(b, "success")])
    with pytest.raises(ValidationError) as caught:
        job_set_run_after(job=a, upstreams=[(c, "success")])
    assert caught.value.message_dict["run_after"] == ["Dependency cycle (each runs after the next): extract → load → transform → extract."]
    with pytest.raises(ValidationError, match=r"next\): extract → extract"):
        job_set_run_after(job=a, upstreams=[(a, "success")])
    assert AuditLog.objects.filter(object_type="job", object_id=str(b.pk), changes__has_key="run_after").exists()


def test_jobs_without_dependants_look_for_none():
    job = manual()
    assert job.has_downstream is False
    other = manual()
    job_set_run_after(job=other, upstreams=[(job, "success")])
    job.refresh_from_db()
    assert job.has_downstream is True
    job_set_run_after(job=other, upstreams=[])
    job.refresh_from_db()
    assert job.has_downstream is False


def test_the_api_sets_shows_and_refuses(admin_api, api):
    a, b = manual(name="extract"), manual(name="transform")
    url = f"/api/v1/jobs/{b.pk}/run-after"
    response = admin_api.put(url, {"run_after": [{"job": "extract"}]}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"run_after": [{"job": "extract", "job_id": a.pk, "condition": "success"}]}
    assert api.get(url).status_code in (200, 404)  # tenancy: seen by whom may see the job
    response = admin_api.put(f"/api/v1/jobs/{a.pk}/run-after", {"run_after": [{"job": b.pk}]}, format="json")
    assert response.status_code == 400
    assert "Dependency cycle (each runs after the next): extract → transform → extract." in str(response.json())
    response = admin_api.put(url, {"run_after": [{"job": "nope"}]}, format="json")
    assert response.status_code == 400 and "no job 'nope'" in str(response.json())
    response = admin_api.put(url, {"run_after": [{"job": "extract", "condition": "sometimes"}]}, format="json")
    assert response.status_code == 400
    assert api.put(url, {"run_after": []}, format="json").status_code in (403, 404)
