"""Seed 000's /cron-jobs API: paths, fields, defaults, messages and status
codes; the key encrypted at rest and never shown."""
import json

import pytest
from django_celery_beat.models import PeriodicTask

from scheduling.models import Job
from vision_pipeline.selectors import KIND

pytestmark = pytest.mark.django_db

KEY = "eyJhbGciOi.super-secret-jwt"


def body(**overrides):
    data = {
        "name": "Vision Analysis Job",
        "schedule": "0 2 * * *",
        "external_api_get_url": "https://api.example.com/api/v1/documents/vision_analysis",
        "external_api_post_url": "https://api.example.com/api/v1/documents/vision_analysis/upload",
        "external_api_key": KEY,
        "backend_api_url": "http://localhost:8000",
        "organization_id": "38162954-469A-40BC-B619-3E9F71DE6DB9",
        "enabled": True,
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def create(api, **overrides):
    response = api.post("/cron-jobs", body(**overrides), format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_create_answers_201_with_the_seed_fields(api):
    response = api.post("/cron-jobs", body(), format="json")
    assert response.status_code == 201
    data = response.json()
    assert set(data) == {"status", "job_id", "name", "schedule", "enabled"}
    assert (data["status"], data["name"], data["schedule"], data["enabled"]) == (
        "success", "Vision Analysis Job", "0 2 * * *", True)
    job = Job.objects.get(uuid=data["job_id"])
    assert (job.kind, job.job_type, job.schedule_type, job.queue) == (KIND, "vision_analysis", "cron", "vision")
    assert job.periodic_task.enabled


def test_defaults_backend_url_and_enabled(api):
    data = create(api, backend_api_url=None, enabled=None)
    detail = api.get(f"/cron-jobs/{data['job_id']}").json()
    assert detail["config"]["backend_api_url"] == "http://localhost:8000" and detail["enabled"] is True


def test_get_shows_config_with_the_key_masked_and_the_schedule_state(api):
    job_id = create(api)["job_id"]
    response = api.get(f"/cron-jobs/{job_id}")
    assert response.status_code == 200
    data = response.json()
    assert set(data) == {"job_id", "name", "schedule", "config", "enabled", "scheduled", "next_run",
                         "created_at", "updated_at"}
    assert data["config"] == {
        "external_api_get_url": "https://api.example.com/api/v1/documents/vision_analysis",
        "external_api_post_url": "https://api.example.com/api/v1/documents/vision_analysis/upload",
        "external_api_key": "***",
        "backend_api_url": "http://localhost:8000",
        "organization_id": "38162954-469A-40BC-B619-3E9F71DE6DB9",
    }
    assert data["scheduled"] is True and data["next_run"].endswith("T02:00:00")
    assert len(data["created_at"]) == 19  # 2025-01-20T10:30:00, as the seed writes it


def test_the_key_is_encrypted_at_rest_and_in_no_response(api, admin_api, client, superuser):
    job_id = create(api)["job_id"]
    job = Job.objects.get(uuid=job_id)
    assert KEY not in json.dumps(job.config) and KEY not in job.secrets
    from scheduling.services import job_secrets

    assert job_secrets(job)["external_api_key"] == KEY
    texts = [api.get("/cron-jobs").content, api.get(f"/cron-jobs/{job_id}").content,
             admin_api.get(f"/api/v1/jobs/{job.pk}").content]
    client.force_login(superuser)
    texts.append(client.get(f"/admin/scheduling/job/{job.pk}/change/").content)
    for text in texts:
        assert KEY.encode() not in text


def test_list_with_enabled_only(api):
    on = create(api, name="on")["job_id"]
    off = create(api, name="off", enabled=False)["job_id"]
    everything = api.get("/cron-jobs").json()["cron_jobs"]
    assert [j["job_id"] for j in everything] == [on, off]
    assert [j["job_id"] for j in api.get("/cron-jobs?enabled_only=true").json()["cron_jobs"]] == [on]
    assert api.get("/cron-jobs?enabled_only=false").json()["cron_jobs"][1]["scheduled"] is False


def test_only_vision_jobs_of_the_caller_are_listed(api, client_for, make_user, other_org):
    mine = create(api)["job_id"]
    stranger = client_for(make_user("carol", organization=other_org))
    theirs = create(stranger, name="theirs")["job_id"]
    assert [j["job_id"] for j in api.get("/cron-jobs").json()["cron_jobs"]] == [mine]
    response = api.get(f"/cron-jobs/{theirs}")
    assert response.status_code == 404 and response.json()["detail"] == f"Cron job {theirs} not found"
    assert api.post(f"/cron-jobs/{theirs}/deactivate").status_code == 404
    assert api.delete(f"/cron-jobs/{theirs}").status_code == 404


def test_activate_and_deactivate(api):
    job_id = create(api)["job_id"]
    response = api.post(f"/cron-jobs/{job_id}/deactivate")
    assert response.status_code == 200
    assert response.json() == {"status": "success", "message": f"Cron job {job_id} deactivated"}
    job = Job.objects.get(uuid=job_id)
    assert not job.is_enabled and not job.periodic_task.enabled
    assert api.get(f"/cron-jobs/{job_id}").json()["next_run"] is None
    response = api.post(f"/cron-jobs/{job_id}/activate")
    assert response.json() == {"status": "success", "message": f"Cron job {job_id} activated"}
    assert PeriodicTask.objects.get(pk=job.periodic_task_id).enabled


def test_delete(api):
    job_id = create(api)["job_id"]
    response = api.delete(f"/cron-jobs/{job_id}")
    assert response.json() == {"status": "success", "message": f"Cron job {job_id} deleted"}
    assert not Job.objects.filter(uuid=job_id).exists()
    assert api.get(f"/cron-jobs/{job_id}").status_code == 404


@pytest.mark.parametrize("job_id", ["nope", "9b1f3c2e-5a4d-4c8e-9f7a-2d6b8e1c4a53"])  # an id no job has
def test_unknown_jobs_are_404_with_a_detail(api, job_id):
    response = api.get(f"/cron-jobs/{job_id}")
    assert response.status_code == 404 and response.json()["detail"] == f"Cron job {job_id} not found"


@pytest.mark.parametrize("overrides, field", [
    ({"name": None}, "name"),
    ({"schedule": None}, "schedule"),
    ({"schedule": "every day"}, "schedule"),
    ({"schedule": "61 * * * *"}, "schedule"),
    ({"external_api_get_url": "not a url"}, "external_api_get_url"),
    ({"external_api_post_url": None}, "external_api_post_url"),
    ({"external_api_key": ""}, "external_api_key"),
    ({"organization_id": None}, "organization_id"),
    ({"enabled": "maybe"}, "enabled"),
    ({"analyzer": "gpt-99"}, "analyzer"),
])
def test_bad_input_is_a_400_naming_the_field(api, overrides, field):
    response = api.post("/cron-jobs", body(**overrides), format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["detail"].startswith(f"{field}:")
    assert KEY not in response.content.decode()


def test_private_and_metadata_urls_are_refused_at_create(api):
    response = api.post("/cron-jobs", body(external_api_get_url="http://169.254.169.254/latest/"), format="json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("external_api_get_url: refused: 169.254.169.254 is a link-local")
    response = api.post("/cron-jobs", body(external_api_post_url="http://10.0.0.8/upload"), format="json")
    assert response.status_code == 400 and "private address" in response.json()["detail"]


def test_a_malformed_body_is_a_400(api):
    response = api.post("/cron-jobs", "{not json", content_type="application/json")
    assert response.status_code == 400 and response.json()["detail"].startswith("Malformed request body")


def test_a_token_is_required(client_for):
    assert client_for(None).get("/cron-jobs").status_code == 401


def test_executions_with_limit(api, user):
    from scheduling.models import Execution

    job_id = create(api)["job_id"]
    job = Job.objects.get(uuid=job_id)
    for n in range(3):
        Execution.objects.create(job=job, status="success", output=f"run {n}", batch_id=None,
                                 result={"batch_ids": [f"b{n}", f"c{n}"]})
    Execution.objects.create(job=job, status="failed", output="Error: External API returned 500")
    data = api.get(f"/cron-jobs/{job_id}/executions?limit=2").json()
    assert data["job_id"] == job_id and len(data["executions"]) == 2
    latest = data["executions"][0]
    assert set(latest) >= {"execution_id", "job_id", "status", "started_at", "completed_at", "output", "batch_id"}
    assert (latest["status"], latest["output"], latest["batch_id"]) == ("failed", "Error: External API returned 500",
                                                                         None)
    assert data["executions"][1]["batch_id"] == "b2, c2"
    assert len(api.get(f"/cron-jobs/{job_id}/executions").json()["executions"]) == 4
    response = api.get(f"/cron-jobs/{job_id}/executions?limit=0")
    assert response.status_code == 400 and response.json()["detail"].startswith("limit:")


@pytest.mark.parametrize("raw, field", [
    (b'"name": "half \\ud800 pair"', "name"),
    (b'"organization_id": "ORG\\u0000"', "organization_id"),
    (b'"\\udfff": 1', "\\udfff"),  # a refused key is quoted escaped: the answer must be valid text
    (b'"name": "Job", "schedule": {"a": ' + b"[" * 5000 + b"]" * 5000 + b"}", None),
])
def test_text_no_database_can_hold_is_a_400_not_a_500(api, raw, field):
    fields = {k: v for k, v in body().items() if k not in ("name", "organization_id", "schedule")}
    fields.setdefault("schedule", "0 2 * * *")
    text = json.dumps(fields)[:-1].encode() + b", " + raw + b"}"
    response = api.generic("POST", "/cron-jobs", text, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert response.json()["detail"].startswith("Malformed request body: ")
    if field:
        assert f"{field}: " in response.json()["detail"]
    assert not Job.objects.filter(kind=KIND).exists()
