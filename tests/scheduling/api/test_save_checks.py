"""Checks at save time: a time zone is an IANA name string, JSON parameters
are capped (JOBS_JSON_PARAM_MAX_BYTES), credentials are long enough to be
redacted as whole tokens."""
import pytest

from scheduling import services
from scheduling.models import AuditLog, Execution, Job
from tests.factories import JobFactory
from tests.workflows.test_workflows import (  # noqa: F401  (fixtures)
    CRON,
    alice,
    create_workflow,
    cron_body,
    interval_body,
    server,
)

pytestmark = pytest.mark.django_db
JOBS = "/api/v1/jobs/"
CAP = 2048


def body(**overrides):
    data = {"name": "probe", "schedule_type": "interval", "schedule_expression": "30", "task_name": "tests.echo"}
    data.update(overrides)
    return data


@pytest.fixture
def small_cap(settings):
    settings.JOBS_JSON_PARAM_MAX_BYTES = CAP
    return CAP


# -- timezone ----------------------------------------------------------------
@pytest.mark.parametrize("zone", [0, 1.5, True, ["UTC"], {"name": "UTC"}])
def test_validate_schedule_refuses_a_time_zone_that_is_not_a_string(admin_api, zone):
    response = admin_api.post(f"{JOBS}validate-schedule",
                              {"schedule_type": "cron", "schedule_expression": "0 * * * *", "timezone": zone},
                              format="json")
    assert response.status_code == 400, response.json()
    assert "timezone" in response.json()["detail"] and "IANA" in response.json()["detail"]


def test_validate_schedule_still_answers_an_unknown_zone_name_as_invalid(admin_api):
    response = admin_api.post(f"{JOBS}validate-schedule",
                              {"schedule_type": "cron", "schedule_expression": "0 * * * *", "timezone": "Mars/Base"},
                              format="json")
    assert response.status_code == 200
    assert response.json()["valid"] is False and "timezone" in response.json()["error"]


@pytest.mark.parametrize("zone", [0, "0", "Mars/Base", ""])
def test_create_and_update_refuse_a_zone_that_is_not_an_iana_name(admin_api, zone):
    response = admin_api.post(JOBS, body(timezone=zone), format="json")
    assert response.status_code == 400, response.json()
    assert "timezone" in response.json()["detail"]
    assert not Job.objects.filter(name="probe").exists()
    job = JobFactory(name="tz-kept", timezone="Europe/Paris")
    response = admin_api.patch(f"{JOBS}{job.pk}", {"timezone": zone}, format="json")
    assert response.status_code == 400 and "timezone" in response.json()["detail"]
    job.refresh_from_db()
    assert job.timezone == "Europe/Paris"


def test_an_iana_zone_is_stored(admin_api):
    response = admin_api.post(JOBS, body(timezone="America/New_York"), format="json")
    assert response.status_code == 201, response.json()
    assert Job.objects.get(name="probe").timezone == "America/New_York"


@pytest.mark.parametrize(("kind", "make"), [("cron", cron_body), ("interval", interval_body)])
@pytest.mark.parametrize("zone", [0, "Mars/Base"])
def test_workflow_schedules_refuse_a_zone_that_is_not_an_iana_name(alice, server, kind, make, zone):
    create_workflow(alice, server)
    response = alice.post(f"{CRON}/{kind}", make(timezone=zone), format="json")
    assert response.status_code == 400, response.json()
    assert "timezone" in response.json()["detail"]
    assert not Job.objects.filter(kind="workflow").exists()


# -- JSON parameters -----------------------------------------------------------
def _over(cap: int) -> str:
    return "x" * (cap + 1)


@pytest.mark.parametrize(("field", "value"), [
    ("task_kwargs", {"blob": _over(CAP)}),
    ("task_args", [_over(CAP)]),
    ("config", {"blob": _over(CAP)}),
    ("task_kwargs", {"blob": "é" * (CAP // 2 + 1)}),  # counted in UTF-8 bytes, not characters
])
def test_job_parameters_over_the_cap_are_a_400_naming_the_field(admin_api, small_cap, field, value):
    response = admin_api.post(JOBS, body(**{field: value}), format="json")
    assert response.status_code == 400, response.json()
    detail = response.json()["detail"]
    assert field in detail and f"{small_cap} bytes" in detail and "JOBS_JSON_PARAM_MAX_BYTES" in detail
    assert not Job.objects.filter(name="probe").exists()


def test_job_parameters_under_the_cap_are_stored_and_an_update_over_it_is_refused(admin_api, small_cap):
    response = admin_api.post(JOBS, body(task_kwargs={"blob": "x" * (small_cap // 2)}), format="json")
    assert response.status_code == 201, response.json()
    job_id = response.json()["id"]
    response = admin_api.patch(f"{JOBS}{job_id}", {"config": {"blob": _over(small_cap)}}, format="json")
    assert response.status_code == 400 and "config" in response.json()["detail"]
    assert Job.objects.get(pk=job_id).config == {}


def test_override_kwargs_over_the_cap_is_a_400_and_no_run(admin_api, small_cap):
    job = JobFactory(task_name="tests.echo")
    response = admin_api.post(f"{JOBS}{job.pk}/execute", {"override_kwargs": {"blob": _over(small_cap)}},
                              format="json")
    assert response.status_code == 400, response.json()
    assert "override_kwargs" in response.json()["detail"]
    assert not Execution.objects.exists()
    assert not AuditLog.objects.filter(action="execute").exists()


def test_the_default_cap_refuses_a_5_mb_override(admin_api, settings):
    assert settings.JOBS_JSON_PARAM_MAX_BYTES == 64 * 1024
    job = JobFactory(task_name="tests.echo")
    response = admin_api.post(f"{JOBS}{job.pk}/execute", {"override_kwargs": {"blob": "x" * 5_000_000}},
                              format="json")
    assert response.status_code == 400
    assert "65536 bytes" in response.json()["detail"]


def test_a_workflow_input_over_the_cap_is_a_400_naming_input(alice, server, small_cap):
    create_workflow(alice, server)
    response = alice.post(f"{CRON}/cron", cron_body(input=_over(small_cap)), format="json")
    assert response.status_code == 400, response.json()
    assert "input" in response.json()["detail"]
    assert not Job.objects.filter(kind="workflow").exists()


# -- credentials ---------------------------------------------------------------
@pytest.mark.parametrize("value", ["k", "end", "1234567"])
def test_short_job_secrets_are_refused(value):
    job = JobFactory()
    with pytest.raises(Exception) as caught:
        services.job_set_secrets(job=job, secrets={"api_key": value})
    assert "at least 8 characters" in str(caught.value) and "api_key" in str(caught.value)
    with pytest.raises(Exception, match="at least 8 characters"):
        JobFactory(name="with-short-secret", secrets={"token": value})
    assert not Job.objects.filter(name="with-short-secret").exists()


def test_an_eight_character_secret_is_kept():
    job = services.job_set_secrets(job=JobFactory(), secrets={"api_key": "12345678"})
    assert services.job_secrets(job) == {"api_key": "12345678"}


@pytest.mark.parametrize("field", ["external_api_key", "backend_api_key"])
def test_vision_cron_job_keys_shorter_than_8_are_a_400_naming_the_field(api, field):
    payload = {
        "name": "short-key", "schedule": "0 * * * *", "external_api_get_url": "https://example.com/get",
        "external_api_post_url": "https://example.com/post", "external_api_key": "a-long-enough-key",
        "organization_id": "org-1", field: "end",
    }
    response = api.post("/cron-jobs", payload, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["detail"] and "8" in response.json()["detail"]
    assert not Job.objects.exists()


def test_workflow_secrets_shorter_than_8_are_a_400(alice, server):
    response = alice.post("/api/workflows/", {"id": "wf-short", "name": "x", "steps": [], "secrets": {"TOKEN": "abc"}},
                          format="json")
    assert response.status_code == 400, response.json()
    assert "secrets" in response.json()["detail"] and "at least 8 characters" in response.json()["detail"]
