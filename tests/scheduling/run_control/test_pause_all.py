"""Pause-all (maintenance mode): nothing fires while paused; at resume each
job's catch-up policy decides; manual runs refused unless forced; API, audit."""
from datetime import timedelta

import pytest
from django.utils import timezone

from jobsite.exceptions import Conflict
from scheduling import services
from scheduling.maintenance_mode import active_pauses
from scheduling.models import AuditLog, Execution, Job, MaintenancePause
from scheduling.services.dispatch import ScheduledFire
from scheduling.services.pause_all import maintenance_pause, maintenance_resume
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db


def minute_job(**kwargs):
    return JobFactory(schedule_type="cron", schedule_expression="* * * * *", overlap_policy="allow", **kwargs)


def back_date(pause, minutes):
    """As if the pause had begun ``minutes`` ago (and the jobs been there before)."""
    MaintenancePause.objects.filter(pk=pause.pk).update(started_at=pause.started_at - timedelta(minutes=minutes))
    Job.objects.update(created_at=pause.started_at - timedelta(minutes=minutes + 1))


def now_minute():
    return timezone.now().replace(second=0, microsecond=0)


def test_nothing_fires_while_the_site_is_paused():
    job, other = minute_job(), minute_job()
    maintenance_pause(actor_label="ops", reason="database upgrade")
    assert services.job_dispatch_scheduled(job_id=job.pk, scheduled_for=now_minute()) is None
    assert services.jobs_dispatch_scheduled(fires=[ScheduledFire(other.pk, now_minute())]) == (0, 0)
    assert not Execution.objects.exists()


def test_a_pause_of_one_organization_or_queue_leaves_the_rest_firing(org, other_org):
    ours, theirs = minute_job(organization=org), minute_job(organization=other_org)
    maintenance_pause(scope="organization", organization=org)
    assert services.job_dispatch_scheduled(job_id=ours.pk, scheduled_for=now_minute()) is None
    assert services.job_dispatch_scheduled(job_id=theirs.pk, scheduled_for=now_minute()).status == "queued"
    maintenance_resume()
    on_queue, elsewhere = minute_job(queue="maintenance"), minute_job()
    maintenance_pause(scope="queue", queue="maintenance")
    due = now_minute() + timedelta(minutes=1)
    assert services.jobs_dispatch_scheduled(fires=[ScheduledFire(on_queue.pk, due), ScheduledFire(elsewhere.pk, due)]) == (1, 0)
    assert not Execution.objects.filter(job=on_queue).exclude(status="missed").exists()


@pytest.mark.parametrize("policy, runs", [("skip", 0), ("once", 1), ("all", 5)])
def test_at_resume_the_catch_up_policy_decides_and_missed_fires_are_recorded(policy, runs):
    job = minute_job(catch_up_policy=policy)
    pause = maintenance_pause()
    back_date(pause, 5)  # five minute boundaries fell in the pause
    maintenance_resume(actor_label="ops")
    queued = Execution.objects.filter(job=job, status="queued")
    assert queued.count() == runs
    assert all(run.scheduled_for is not None for run in queued)
    missed = Execution.objects.get(job=job, status="missed")
    assert "paused for maintenance" in missed.output
    assert missed.result["missed"] == (5 if policy != "once" else 4)


def test_an_expired_pause_ends_at_the_next_fire_with_its_catch_up():
    job = minute_job(catch_up_policy="skip")
    pause = maintenance_pause(until=timezone.now() + timedelta(minutes=1))
    back_date(pause, 3)
    MaintenancePause.objects.filter(pk=pause.pk).update(until=timezone.now() - timedelta(seconds=1))
    execution = services.job_dispatch_scheduled(job_id=job.pk, scheduled_for=now_minute())
    assert execution.status == "queued"
    pause.refresh_from_db()
    assert pause.ended_at is not None and not active_pauses()
    assert Execution.objects.filter(job=job, status="missed").exists()


def test_manual_runs_are_refused_unless_forced(org):
    job = minute_job(organization=org)
    maintenance_pause(scope="organization", organization=org, reason="migration")
    with pytest.raises(Conflict, match="paused for maintenance until resumed \\(migration\\); use force") as caught:
        services.job_execute(job=job)
    assert caught.value.status == 409 and caught.value.code == "maintenance"
    assert services.job_execute(job=job, force=True).status == "queued"


def test_bad_pauses_are_refused_naming_the_field(org):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as caught:
        maintenance_pause(scope="queue")
    assert "queue" in caught.value.message_dict
    with pytest.raises(ValidationError) as caught:
        maintenance_pause(until=timezone.now() - timedelta(minutes=1))
    assert "until" in caught.value.message_dict


def test_the_api_pauses_lists_and_resumes_audited(admin_api, api):
    job = minute_job()
    response = admin_api.post("/api/v1/maintenance", {"reason": "upgrade"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["scope"] == "site" and body["description"] == "the whole site is paused for maintenance until resumed (upgrade)"
    listed = api.get("/api/v1/maintenance").json()
    assert listed["total"] == 1
    assert api.post("/api/v1/maintenance", {}, format="json").status_code == 403
    refused = admin_api.post(f"/api/v1/jobs/{job.pk}/execute", {}, format="json")
    assert refused.status_code == 409 and "paused for maintenance" in refused.json()["detail"]
    assert admin_api.post("/api/v1/maintenance", {"scope": "queue"}, format="json").status_code == 400
    assert admin_api.post("/api/v1/maintenance", {"scope": "galaxy"}, format="json").status_code == 400
    response = admin_api.post("/api/v1/maintenance/resume", {}, format="json")
    assert response.status_code == 200 and response.json()["total"] == 1
    assert admin_api.get("/api/v1/maintenance").json()["total"] == 0
    assert list(AuditLog.objects.filter(object_type="maintenancepause").values_list("action", flat=True)) == [
        "resume", "pause"]
    assert admin_api.post("/api/v1/maintenance/resume", {"id": 999}, format="json").status_code == 404
