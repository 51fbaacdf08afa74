"""POST /api/v1/jobs/apply: the file as YAML text or JSON, a dry run, errors naming the document and field."""
import pytest

from scheduling.models import AuditLog, Job
from tests.scheduling.apply.test_apply import FILE

pytestmark = pytest.mark.django_db
URL = "/api/v1/jobs/apply"


def test_yaml_text_dry_run_then_apply(admin_api, superuser):
    # given
    dry = admin_api.post(f"{URL}?dry_run=1", FILE, content_type="application/yaml")
    # then
    assert dry.status_code == 200, dry.content
    assert dry.json() == {"dry_run": True, "applied": False, "summary": {"create": 2, "update": 0, "delete": 0},
                          "changes": [{"section": "jobs", "action": "create", "name": "nightly-report", "fields": {}},
                                      {"section": "jobs", "action": "create", "name": "poll", "fields": {}}]}
    assert not Job.objects.exists()
    # when
    applied = admin_api.post(URL, FILE, content_type="text/plain")
    # then
    assert applied.status_code == 200 and applied.json()["applied"] is True
    assert set(Job.objects.values_list("name", flat=True)) == {"nightly-report", "poll"}
    assert AuditLog.objects.filter(actor=superuser, actor_label="root (apply)").count() == 2
    again = admin_api.post(URL, FILE, content_type="application/yaml")
    assert again.json()["changes"] == [] and again.json()["applied"] is True


def test_parsed_json_body(admin_api):
    body = {"jobs": [{"name": "j1", "schedule_type": "cron", "schedule_expression": "0 4 * * *",
                      "task_name": "tests.echo"}]}
    response = admin_api.post(URL, body, format="json")
    assert response.status_code == 200 and Job.objects.get().schedule_expression == "0 4 * * *"
    body["jobs"][0]["task_priority"] = 9
    plan = admin_api.post(f"{URL}?dry_run=true", body, format="json").json()
    assert plan["changes"] == [{"section": "jobs", "action": "update", "name": "j1",
                                "fields": {"task_priority": [5, 9]}}]


def test_a_bad_file_is_a_400_naming_the_document_and_field(admin_api):
    body = "jobs:\n  - {name: j1, schedule_type: daily, schedule_expression: '01:00', task_name: tests.echo, colour: red}\n"
    response = admin_api.post(URL, body, content_type="application/yaml")
    assert response.status_code == 400
    data = response.json()
    assert "request body: jobs[0] (j1): colour: Unknown field." in data["detail"]
    assert data["errors"] == [{"file": "request body", "section": "jobs", "index": 0, "name": "j1",
                               "field": "colour", "message": "Unknown field."}]
    assert not Job.objects.exists()


def test_only_superusers_apply(api):
    response = api.post(URL, FILE, content_type="application/yaml")
    assert response.status_code == 403 and not Job.objects.exists()


@pytest.mark.parametrize("body", [[{"name": "x"}], "just text", 7, None])
def test_json_that_is_not_a_mapping_is_a_400(admin_api, body):
    import json

    response = admin_api.post(URL, json.dumps(body), content_type="application/json")
    assert response.status_code == 400 and "must be a mapping" in response.json()["detail"]
    assert not Job.objects.exists()
