"""The workflow admin's step editor: its check answers what the API answers,
a save round-trips the steps, secrets stay write-only, and the workflow's
schedules and runs are linked."""
from __future__ import annotations

import html
import json
import re

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from jobsite.crypto import secrets_decrypt
from scheduling import services as core_services
from scheduling.models import Execution, Job
from scheduling.steps import StepField, step_type_spec, step_types
from scheduling.workflows import services
from scheduling.workflows.models import Workflow

pytestmark = pytest.mark.django_db

VALIDATE = "/admin/workflows/workflow/validate-steps/"
ADD = "/admin/workflows/workflow/add/"
WORKFLOWS = "/api/workflows/"


@pytest.fixture
def admin_browser(superuser):
    client = Client()
    client.force_login(superuser)
    return client


def check(client, steps, **extra):
    response = client.post(VALIDATE, json.dumps({"steps": steps, **extra}), content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


BAD_STEPS = [
    [],
    "not a list",
    [{"type": "delay", "seconds": -1}],
    [{"type": "http", "url": "ftp://example.com/x", "method": "GET", "body": {"a": 1}}],
    [{"type": "delay", "seconds": 1, "name": "a"}, {"type": "delay", "seconds": 1, "name": "a"}],
    [{"type": "nope"}, {"name": "9bad", "type": "task", "task_name": "no.such.task"}],
    [{"type": "http", "url": "https://example.com/${steps.later.output}"}, {"type": "delay", "seconds": 1,
                                                                          "name": "later"}],
    [{"type": "http", "url": "https://example.com", "headers": {"Authorization": "Bearer plain"}}],
    [{"type": "vision_analysis", "image_urls": []}],
    [{"type": "bulk_prediction", "file_url": "https://example.com/f.csv", "job_type": "weekly"}],
    [{"type": "delay", "seconds": 1, "retries": 99, "unknown": 1}],
    [{"type": "http", "url": "https://example.com/${secrets.TOKEN}"}],
]


@pytest.mark.parametrize("steps", BAD_STEPS)
def test_the_editor_check_answers_the_apis_errors(admin_browser, admin_api, steps):
    # given the same steps sent to the API and to the editor's check, by the same user
    api = admin_api.post(WORKFLOWS, {"id": "wf-check", "name": "Check", "steps": steps}, format="json")
    assert api.status_code == 400, api.json()
    api_errors = {key: value for key, value in api.json()["errors"].items() if key.startswith("steps")}
    # when the editor checks them
    answer = check(admin_browser, steps)
    # then it finds the same problems, under the same step and field keys
    assert answer["valid"] is False
    assert answer["errors"] == api_errors
    assert not Workflow.objects.exists()


def test_valid_steps_come_back_normalised(admin_browser):
    answer = check(admin_browser, [{"type": "delay", "seconds": 2}])
    assert answer == {"valid": True, "errors": {}, "steps": [
        {"type": "delay", "seconds": 2, "name": "step1", "retries": 0, "retry_delay_seconds": 1,
         "continue_on_failure": False}]}


def test_the_check_knows_the_workflows_secrets_and_the_ones_being_set(admin_browser, superuser):
    services.workflow_create(actor=superuser, id="wf-secret", name="S", secrets={"TOKEN": "abcdefghijklmnop-1"},
                             steps=[{"type": "delay", "seconds": 1}])
    uses = [{"type": "http", "url": "https://example.com/", "headers": {"Authorization": "Bearer ${secrets.TOKEN}"}}]
    assert check(admin_browser, uses)["valid"] is False  # a new workflow has no TOKEN
    assert check(admin_browser, uses, workflow="wf-secret")["valid"] is True
    assert check(admin_browser, uses, workflow="wf-secret", removed_secrets=["TOKEN"])["valid"] is False
    assert check(admin_browser, uses, secret_names=["TOKEN"])["valid"] is True


def test_task_steps_are_checked_against_the_chosen_owners_rights(admin_browser, user, settings):
    settings.WORKFLOWS_TASK_NAMES = []
    steps = [{"type": "task", "task_name": "scheduling.database_maintenance"}]
    assert check(admin_browser, steps)["valid"] is True  # a superuser's workflow may call maintenance tasks
    answer = check(admin_browser, steps, owner=str(user.pk))  # alice's may not
    assert list(answer["errors"]) == ["steps[0].task_name"]


def test_the_check_refuses_odd_bodies_and_methods(admin_browser):
    assert admin_browser.get(VALIDATE).status_code == 405
    assert admin_browser.post(VALIDATE, "{", content_type="application/json").status_code == 400
    assert admin_browser.post(VALIDATE, "[1]", content_type="application/json").status_code == 400
    response = admin_browser.post(VALIDATE, json.dumps({"steps": [], "workflow": "nope"}),
                                  content_type="application/json")
    assert response.status_code == 404


def test_the_check_needs_the_admin_and_a_workflow_permission(make_user, org, other_org, superuser):
    anonymous = Client()
    response = anonymous.post(VALIDATE, "{}", content_type="application/json")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    staff = make_user("staff", organization=org)
    staff.is_staff = True
    staff.save()
    client = Client()
    client.force_login(staff)
    assert client.post(VALIDATE, json.dumps({"steps": []}), content_type="application/json").status_code == 403
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["change_workflow", "view_workflow"]))
    assert client.post(VALIDATE, json.dumps({"steps": [{"type": "delay", "seconds": 1}]}),
                       content_type="application/json").json()["valid"] is True
    # a staff user's check speaks for their own rights, not for the owner they name (only operators assign owners)
    maintenance = [{"type": "task", "task_name": "scheduling.database_maintenance"}]
    answer = client.post(VALIDATE, json.dumps({"steps": maintenance, "owner": str(superuser.pk)}),
                         content_type="application/json").json()
    assert list(answer["errors"]) == ["steps[0].task_name"]
    # someone else's workflow (another organization's) is not there for this user
    stranger = make_user("stranger", organization=other_org)
    services.workflow_create(actor=stranger, id="theirs", name="T", steps=[{"type": "delay", "seconds": 1}])
    response = client.post(VALIDATE, json.dumps({"steps": [], "workflow": "theirs"}), content_type="application/json")
    assert response.status_code == 404


def textarea_steps(page: str) -> list:
    match = re.search(r'<textarea name="steps"[^>]*>(.*?)</textarea>', page, re.S)
    assert match, "no steps textarea on the page"
    return json.loads(html.unescape(match.group(1)))


def test_the_editor_save_round_trips_the_steps_and_keeps_secrets_write_only(admin_browser, superuser):
    page = admin_browser.get(ADD).content.decode()
    assert 'class="wf-editor"' in page and "Edit as JSON" in page and "step_editor.js" in page
    spec = json.loads(html.unescape(re.search(r'id="id_steps-spec"[^>]*>(.*?)</script>', page, re.S).group(1)))
    assert {t["type"] for t in spec["types"]} >= {"http", "task", "delay", "vision_analysis", "bulk_prediction"}
    # what the editor writes: pretty JSON, fields left empty omitted
    steps = [
        {"name": "fetch", "type": "http", "method": "POST", "url": "https://example.com/items",
         "headers": {"Authorization": "Bearer ${secrets.API_TOKEN}"}, "body": {"q": "${input}"}},
        {"name": "wait", "type": "delay", "seconds": 1.5, "retries": 2, "continue_on_failure": True},
        {"name": "score", "type": "bulk_prediction", "file_url": "https://example.com/${steps.fetch.output.file}"},
    ]
    response = admin_browser.post(ADD, {
        "id": "wf-editor", "name": "Editor", "description": "", "enabled": "on", "steps": json.dumps(steps, indent=2),
        "secrets_set": "API_TOKEN=tok-abcdefghijklmnop\n", "owner": superuser.pk,
    })
    assert response.status_code == 302, response.content.decode()[:3000]
    workflow = Workflow.objects.get(pk="wf-editor")
    assert secrets_decrypt(workflow.secrets) == {"API_TOKEN": "tok-abcdefghijklmnop"}
    assert [s["name"] for s in workflow.steps] == ["fetch", "wait", "score"]
    assert workflow.steps[1]["retries"] == 2 and workflow.steps[1]["continue_on_failure"] is True
    # the page gives back exactly what is stored, never a secret's value
    page = admin_browser.get(f"/admin/workflows/workflow/{workflow.pk}/change/").content.decode()
    assert textarea_steps(page) == workflow.steps
    assert "tok-abcdefghijklmnop" not in page and "Stored secrets: API_TOKEN" in page
    # saved again unchanged, with a step removed and the secret removed
    response = admin_browser.post(f"/admin/workflows/workflow/{workflow.pk}/change/", {
        "name": "Editor", "description": "", "enabled": "on", "owner": superuser.pk, "organization": "",
        "steps": json.dumps([workflow.steps[1]]), "secrets_remove": ["API_TOKEN"]})
    assert response.status_code == 302, response.content.decode()[:3000]
    workflow.refresh_from_db()
    assert workflow.steps == [steps[1] | {"retry_delay_seconds": 1}] and secrets_decrypt(workflow.secrets) == {}


def test_a_bad_secret_line_or_bad_steps_are_form_errors(admin_browser, superuser):
    base = {"id": "wf-bad", "name": "Bad", "description": "", "enabled": "on", "owner": superuser.pk,
            "steps": json.dumps([{"type": "delay", "seconds": 1}])}
    response = admin_browser.post(ADD, {**base, "secrets_set": "no equals sign"})
    assert response.status_code == 200 and "Line 1: write NAME=value." in response.content.decode()
    response = admin_browser.post(ADD, {**base, "secrets_set": "1BAD=abcdefghijklmnop"})
    assert response.status_code == 200 and "check: 1BAD" in response.content.decode()
    response = admin_browser.post(ADD, {**base, "steps": "[{"})
    assert response.status_code == 200 and "Enter a valid JSON." in response.content.decode()
    response = admin_browser.post(ADD, {**base, "steps": "[]"})
    assert response.status_code == 200 and "A workflow needs at least one step." in response.content.decode()
    # a form shown again after an error never gives back a secret's value
    response = admin_browser.post(ADD, {**base, "steps": json.dumps([{"type": "delay", "seconds": -1}]),
                                        "secrets_set": "API_TOKEN=tok-never-shown-0123"})
    assert response.status_code == 200 and "steps[0].seconds" in response.content.decode()
    assert "tok-never-shown-0123" not in response.content.decode()
    assert not Workflow.objects.exists()


def test_the_list_and_page_link_schedules_and_runs(admin_browser, superuser):
    workflow = services.workflow_create(actor=superuser, id="wf-linked", name="Linked",
                                        steps=[{"type": "delay", "seconds": 0}])
    services.workflow_create(actor=superuser, id="wf-alone", name="Alone", steps=[{"type": "delay", "seconds": 0}])
    job, _ = services.workflow_schedule_save(actor=superuser, job_id="nightly", workflow_id="wf-linked",
                                             user_id=str(superuser.pk), input="hello", schedule_type="cron",
                                             cron_expression="0 3 * * *")
    run = core_services.job_execute(job=job, actor=superuser, trigger=Execution.Trigger.MANUAL, force=True)
    page = html.unescape(admin_browser.get("/admin/workflows/workflow/").content.decode())
    schedules = "/admin/scheduling/job/?kind__exact=workflow&config__workflow_id=wf-linked"
    runs = "/admin/scheduling/execution/?workflow=wf-linked"
    assert f'href="{schedules}"' in page and f'href="{runs}"' in page
    # the filtered lists behind the links show this workflow's schedule and run only
    jobs_page = admin_browser.get(schedules)
    assert jobs_page.status_code == 200 and [j.pk for j in jobs_page.context["cl"].result_list] == [job.pk]
    runs_page = admin_browser.get(runs)
    assert runs_page.status_code == 200 and [r.pk for r in runs_page.context["cl"].result_list] == [run.pk]
    # the workflow's page starts with its schedules and latest runs
    page = admin_browser.get(f"/admin/workflows/workflow/{workflow.pk}/change/").content.decode()
    assert page.index("wf-links") < page.index('name="steps"')
    assert f"/admin/scheduling/job/{job.pk}/change/" in page and f"/admin/scheduling/execution/{run.pk}/change/" in page
    assert "At 03:00" in page or "03:00" in page
    alone = admin_browser.get("/admin/workflows/workflow/wf-alone/change/").content.decode()
    assert "Not scheduled." in alone and "No runs yet." in alone
    assert Job.objects.filter(kind="workflow").count() == 1


def test_every_step_type_declares_its_fields():
    for step_type in step_types().values():
        declared = [field.name for field in step_type.fields]
        assert declared, f"{step_type.type} declares no fields"
        assert all(isinstance(field, StepField) for field in step_type.fields)
        serializer = getattr(step_type, "config_serializer", None)
        if serializer is not None:  # the form offers exactly the fields the check accepts
            assert sorted(declared) == sorted(serializer().fields), step_type.type
        spec = step_type_spec(step_type)
        assert spec["label"] and spec["description"] and json.dumps(spec)
        templated = set(getattr(step_type, "templated_fields", ()))
        assert {f["name"] for f in spec["fields"] if f["templated"]} == templated & set(declared)


def test_the_workflow_list_costs_the_same_queries_for_more_rows(admin_browser, superuser):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def add(n):
        services.workflow_create(actor=superuser, id=f"wf-{n}", name=f"W{n}", steps=[{"type": "delay", "seconds": 0}])
        services.workflow_schedule_save(actor=superuser, job_id=f"job-{n}", workflow_id=f"wf-{n}",
                                        user_id=str(superuser.pk), input="", schedule_type="cron",
                                        cron_expression="0 3 * * *")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_browser.get("/admin/workflows/workflow/").status_code == 200
        return len(captured)

    add(1)
    few = queries()
    for n in range(2, 7):
        add(n)
    assert queries() == few
