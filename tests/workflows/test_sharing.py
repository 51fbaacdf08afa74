"""Workflow ownership: a workflow is used (scheduled, triggered, run for a
job, re-run) by its owner only, unless the owner shares it with its
organization. Seeing it stays the tenancy rule (organization members see it;
other organizations get 404). Sharing is set by the owner (API PATCH) or an
operator (admin), shown in both, and audited."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError

from jobsite.tenancy import SYSTEM
from scheduling import services as core_services
from scheduling.models import AuditLog, Execution, Job
from scheduling.workflows import services as workflow_services
from scheduling.workflows.models import Workflow
from tests.workflows.test_workflows import (  # noqa: F401  (server: a fixture)
    CRON,
    RUNS,
    WORKFLOWS,
    create_workflow,
    cron_body,
    interval_body,
    run_in_process,
    server,
    trigger_and_run,
)

pytestmark = pytest.mark.django_db

WF = "video-automation-workflow"
NOT_YOURS = "Unauthorized: You can only run your own workflows."


@pytest.fixture
def people(make_user, org, other_org):
    return SimpleNamespace(owner=make_user("wf-owner", organization=org), mate=make_user("wf-mate", organization=org),
                           stranger=make_user("wf-stranger", organization=other_org))


@pytest.fixture
def api(people, client_for):
    return SimpleNamespace(owner=client_for(people.owner), mate=client_for(people.mate),
                           stranger=client_for(people.stranger))


@pytest.fixture
def workflow(api, server):
    """The owner's workflow, calling the local server with the owner's secret."""
    return create_workflow(api.owner, server, secrets={"TOKEN": "owners-secret"}, steps=[
        {"name": "call", "type": "http", "method": "POST", "url": server.url("/hook"),
         "headers": {"Authorization": "Bearer ${secrets.TOKEN}"}, "body": {"text": "${input}"}},
    ])


def schedule_as(client, user, **overrides):
    return client.post(f"{CRON}/cron", cron_body(user_id=str(user.pk), **overrides), format="json")


def share(client, shared: bool):
    return client.patch(f"{WORKFLOWS}{WF}", {"shared_with_organization": shared}, format="json")


def schedule_and_run(client, user, server) -> Execution:
    """Schedule the workflow as ``user``, trigger it and run it here: it calls the server with the owner's secret."""
    assert schedule_as(client, user).status_code == 200
    execution = trigger_and_run(client, "daily-video-generation")
    assert execution.status == "success", execution.output
    assert server.received("/hook")[-1]["headers"]["Authorization"] == "Bearer owners-secret"
    return execution


def audit_of_workflow(action: str) -> list[AuditLog]:
    return list(AuditLog.objects.filter(object_type="workflow", object_id=WF, action=action).order_by("id"))


def test_the_owner_uses_an_unshared_workflow_as_before(api, people, workflow, server):
    assert workflow["shared_with_organization"] is False
    schedule_and_run(api.owner, people.owner, server)


def test_an_organization_mate_sees_an_unshared_workflow_but_may_not_use_it(api, people, workflow):
    # given a workflow its owner has not shared: the mate sees it
    response = api.mate.get(f"{WORKFLOWS}{WF}")
    assert response.status_code == 200 and response.json()["shared_with_organization"] is False
    # when the mate schedules it (cron or interval), the contract's refusal answers
    for response in (schedule_as(api.mate, people.mate),
                     api.mate.post(f"{CRON}/interval", interval_body(user_id=str(people.mate.pk)), format="json")):
        assert response.status_code == 403
        assert response.json()["detail"] == NOT_YOURS
        assert response.json()["code"] == "not_your_workflow"
    # nor may the mate share it themselves
    response = share(api.mate, True)
    assert response.status_code == 403
    assert response.json()["detail"] == "Only the workflow's owner can change or delete it."
    assert not Job.objects.filter(kind="workflow").exists()
    assert Workflow.objects.get(pk=WF).shared_with_organization is False


def test_a_job_of_the_workflow_kind_is_refused_for_an_owner_who_may_not_use_it(people, workflow, superuser):
    # operators create jobs through the core (API, admin, CLI): the job's owner must be allowed to use it
    fields = {"kind": "workflow", "schedule_type": "cron", "schedule_expression": "0 9 * * *", "queue": "workflows",
              "task_kwargs": {"input": ""}, "config": {"workflow_id": WF, "job_id": "ops", "user_id": "ops"}}
    with pytest.raises(ValidationError) as refused:
        core_services.job_create(actor=superuser, name="ops-mate", owner=people.mate, **fields)
    assert refused.value.message_dict["config"][0].startswith(NOT_YOURS)
    assert core_services.job_create(actor=superuser, name="ops-owner", owner=people.owner, **fields).pk


def test_a_shared_workflow_is_used_by_organization_mates_until_the_owner_stops_sharing(api, people, workflow, server):
    # when the owner shares it
    response = share(api.owner, True)
    assert response.status_code == 200, response.json()
    assert response.json()["shared_with_organization"] is True
    assert api.mate.get(WORKFLOWS).json()["items"][0]["shared_with_organization"] is True
    # then it is audited: who, what, before and after
    [entry] = audit_of_workflow("update")
    assert (entry.actor, entry.changes) == (people.owner, {"shared_with_organization": [False, True]})
    assert audit_of_workflow("create")[0].actor == people.owner
    # and a mate schedules and triggers it; it runs with the owner's secret, which the mate never sees
    execution = schedule_and_run(api.mate, people.mate, server)
    assert "owners-secret" not in json.dumps(api.mate.get(f"{WORKFLOWS}{WF}").json())
    assert "owners-secret" not in json.dumps(api.mate.get(f"{RUNS}/{execution.pk}").json())

    # when the owner stops sharing it
    assert share(api.owner, False).status_code == 200
    assert audit_of_workflow("update")[-1].changes == {"shared_with_organization": [True, False]}
    # then the mate's job may no longer trigger, resume or re-run it (pausing one's own job is still fine)
    for path in ("/trigger", "/resume"):
        response = api.mate.post(f"{CRON}/daily-video-generation{path}")
        assert (response.status_code, response.json()["detail"]) == (403, NOT_YOURS), path
    assert api.mate.post(f"{CRON}/daily-video-generation/pause").status_code == 200
    # and a run already on its way (a scheduled fire) is refused by the worker, saying why
    job = Job.objects.get(kind="workflow", owner=people.mate)
    fired = run_in_process(core_services.job_execute(job=job, actor_label="beat", trigger="schedule", force=True))
    assert fired.status == "failed"
    assert fired.output.startswith(f"{NOT_YOURS} The job's owner may not use workflow '{WF}'")
    hits = len(server.received("/hook"))
    response = api.mate.post(f"{RUNS}/{fired.pk}/rerun")
    assert (response.status_code, response.json()["detail"]) == (403, NOT_YOURS)
    assert len(server.received("/hook")) == hits


def test_other_organizations_never_see_it_shared_or_not(api, people, workflow):
    assert share(api.owner, True).status_code == 200
    assert schedule_as(api.owner, people.owner).status_code == 200
    response = api.owner.post(f"{CRON}/daily-video-generation/trigger")
    execution_id = response.json()["execution_id"]
    # the workflow and the owner's runs are 404 to another organization
    assert api.stranger.get(f"{WORKFLOWS}{WF}").status_code == 404
    assert share(api.stranger, False).status_code == 404
    assert api.stranger.delete(f"{WORKFLOWS}{WF}").status_code == 404
    assert api.stranger.get(WORKFLOWS).json()["total"] == 0
    for method, suffix in (("get", ""), ("post", "/rerun"), ("post", "/cancel")):
        assert getattr(api.stranger, method)(f"{RUNS}/{execution_id}{suffix}").status_code == 404
    # and scheduling it answers the contract's refusal (it never says whether it exists)
    response = schedule_as(api.stranger, people.stranger)
    assert (response.status_code, response.json()["detail"]) == (403, NOT_YOURS)
    assert Workflow.objects.get(pk=WF).shared_with_organization is True


def test_sharing_needs_an_organization_and_a_boolean(client_for, make_user, server):
    loner = client_for(make_user("loner"))
    response = loner.post(WORKFLOWS, {"id": WF, "name": "x", "steps": [{"type": "delay", "seconds": 0}],
                                      "shared_with_organization": True}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == ("shared_with_organization: The workflow belongs to no organization "
                                         "to share it with.")
    create_workflow(loner, server, steps=[{"type": "delay", "seconds": 0}])
    assert share(loner, True).status_code == 400
    response = loner.patch(f"{WORKFLOWS}{WF}", {"shared_with_organization": "maybe"}, format="json")
    assert response.status_code == 400 and response.json()["detail"].startswith("shared_with_organization:")


def test_the_admin_shows_and_sets_sharing_and_it_is_audited(admin_client, admin_user, people, org):
    workflow_services.workflow_create(actor=people.owner, id=WF, name="Video", steps=[{"type": "delay", "seconds": 0}])
    page = admin_client.get("/admin/workflows/workflow/").content.decode()
    assert "Shared with organization" in page
    change = {"name": "Video", "description": "", "steps": json.dumps([{"type": "delay", "seconds": 0}]),
              "enabled": "on", "owner": people.owner.pk, "organization": org.pk, "shared_with_organization": "on"}
    response = admin_client.post(f"/admin/workflows/workflow/{WF}/change/", change)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Workflow.objects.get(pk=WF).shared_with_organization is True
    entry = audit_of_workflow("update")[-1]
    assert (entry.actor, entry.changes) == (admin_user, {"shared_with_organization": [False, True]})
    assert admin_client.get("/admin/workflows/workflow/?shared_with_organization__exact=1").status_code == 200
    # sharing with no organization is a form error, not a crash
    response = admin_client.post(f"/admin/workflows/workflow/{WF}/change/", {**change, "organization": ""})
    assert response.status_code == 200 and "Choose the organization to share it with." in response.content.decode()


def test_superusers_and_the_system_use_every_workflow(people, superuser, workflow):
    from scheduling.workflows.selectors import workflow_usable_by

    stored = Workflow.objects.get(pk=WF)
    assert workflow_usable_by(stored, superuser) and workflow_usable_by(stored, SYSTEM)
    assert workflow_usable_by(stored, people.owner) and not workflow_usable_by(stored, people.mate)
