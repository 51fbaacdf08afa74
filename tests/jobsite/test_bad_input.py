"""Bad input is a clear 4xx naming the problem — never a 500, never a
half-written row."""
import json

import pytest

from scheduling.models import AuditLog, Job
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db
JOBS = "/api/v1/jobs/"


def body(**overrides):
    data = {"name": "probe", "schedule_type": "interval", "schedule_expression": "30", "task_name": "tests.echo"}
    data.update(overrides)
    return data


def post_raw(api, path, text):
    return api.post(path, data=text.encode("utf-8", "surrogatepass"), content_type="application/json")


@pytest.mark.parametrize(
    ("field", "raw", "message"),
    [
        ("task_kwargs", '{"a": "\\udfff"}', "unpaired surrogate"),
        ("task_kwargs", '{"a": "x\\u0000y"}', "NUL"),
        ("config", '{"a": "x\\u0000y"}', "NUL"),
        ("task_args", '["\\ud800"]', "unpaired surrogate"),
        ("task_kwargs", '{"n": 1e400}', "finite"),
        ("description", '"x\\u0000y"', "NUL"),
        ("title", '"\\udfff"', "unpaired surrogate"),
    ],
    ids=["surrogate-kwargs", "nul-kwargs", "nul-config", "surrogate-args", "inf-number", "nul-description", "surrogate-title"],
)
def test_values_the_database_cannot_hold_are_400_and_nothing_is_written(admin_api, field, raw, message):
    text = json.dumps(body())[:-1] + f', "{field}": {raw}}}'
    response = post_raw(admin_api, JOBS, text)
    assert response.status_code == 400, response.content
    assert field in response.json()["detail"]
    assert message in response.json()["detail"]
    assert not Job.objects.filter(name="probe").exists()
    assert not AuditLog.objects.exists()


def test_deep_nesting_is_a_400(admin_api):
    deep = "[" * 5000 + "]" * 5000
    response = post_raw(admin_api, JOBS, json.dumps(body())[:-1] + f', "task_kwargs": {{"a": {deep}}}}}')
    assert response.status_code == 400
    assert not Job.objects.filter(name="probe").exists()


def test_deep_nesting_on_the_token_endpoint_is_a_400(client):
    response = client.post("/api/auth/token", data="[" * 100_000 + "]" * 100_000, content_type="application/json")
    assert response.status_code == 400


def test_a_huge_description_is_refused(admin_api):
    response = admin_api.post(JOBS, body(description="x" * 9_000_000), format="json")
    assert response.status_code in (400, 413)
    assert not Job.objects.filter(name="probe").exists()


@pytest.mark.parametrize("path", [
    "/api/v1/executions/?job_id=9223372036854775808",
    "/api/v1/jobs/²", "/api/v1/jobs/0.5", "/api/v1/jobs/99999999999999999999999",
])
def test_odd_ids_are_json_4xx(admin_api, path):
    response = admin_api.get(path)
    assert 400 <= response.status_code < 500
    assert response["Content-Type"].startswith("application/json")


def test_override_kwargs_may_not_name_execution(admin_api):
    job = JobFactory(task_name="tests.echo")
    response = admin_api.post(f"{JOBS}{job.pk}/execute", {"override_kwargs": {"execution": 1}}, format="json")
    assert response.status_code == 400
    assert "execution" in response.json()["detail"]


@pytest.mark.parametrize(("tz", "moment"), [
    ("Etc/GMT-14", "9999-12-31T23:00:00+00:00"),
    ("Etc/GMT+12", "9999-12-31T23:59:59"),
    ("UTC", "2201-01-01T00:00:00"),
])
def test_far_future_once_is_a_400_on_validate_and_create(admin_api, tz, moment):
    response = admin_api.post(f"{JOBS}validate-schedule",
                              {"schedule_type": "once", "schedule_expression": moment, "timezone": tz}, format="json")
    assert response.status_code == 200 and response.json()["valid"] is False
    response = admin_api.post(JOBS, body(schedule_type="once", schedule_expression=moment, timezone=tz), format="json")
    assert response.status_code == 400
    assert "schedule_expression" in response.json()["detail"]
    assert not Job.objects.filter(name="probe").exists()
    assert admin_api.get(JOBS).status_code == 200


def test_a_disabled_job_does_not_report_active(admin_api):
    job = JobFactory(is_enabled=False)
    assert admin_api.get(f"{JOBS}{job.pk}").json()["status"] != "active"


def test_an_unknown_catch_up_policy_is_named(admin_api):
    response = admin_api.post(JOBS, body(catch_up_policy="sometimes"), format="json")
    assert response.status_code == 400 and "catch_up_policy" in response.json()["errors"]
    with pytest.raises(Exception, match="catch_up_policy"):
        from scheduling import services

        services.job_create(name="probe2", schedule_type="interval", schedule_expression="30",
                            task_name="tests.echo", catch_up_policy="sometimes")
