"""The API docs speak the product's words (issue 26): no "seed 00x" anywhere in
the OpenAPI schema, every tag names the API it groups, and a vision cron job's
three ids are explained where the API shows them."""
import re

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(admin_api):
    response = admin_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response


def test_the_schema_never_says_seed(schema):
    text = schema.content.decode()

    found = sorted({text[max(0, m.start() - 60):m.end() + 20] for m in re.finditer(r"\bseeds?\b", text, re.I)})
    assert found == []


def test_every_tag_names_its_api_and_is_described(schema):
    document = schema.json()
    described = {tag["name"]: tag["description"] for tag in document["tags"]}
    used = {tag for path in document["paths"].values() for operation in path.values()
            if isinstance(operation, dict) for tag in operation.get("tags", [])}

    assert used <= set(described), used - set(described)
    assert "(/api/cron/jobs)" in described["workflow schedules"]
    assert "(/cron-jobs)" in described["vision cron jobs"]
    assert described["predictions"].startswith("Bulk predictions (/api/v1/predictions)")


def test_a_vision_cron_jobs_three_ids_are_explained(schema):
    components = schema.json()["components"]["schemas"]

    for name in ("VisionCronJob", "VisionCronJobCreated"):
        description = components[name]["description"]
        assert "three ids" in description and "/api/v1/jobs/{id}" in description and "vision-" in description
    assert "UUID" in components["VisionCronJob"]["properties"]["job_id"]["description"]
    assert "numeric" in components["VisionCronJob"]["properties"]["job_id"]["description"]
    cron_job_ops = schema.json()["paths"]["/cron-jobs/{job_id}/"]
    assert cron_job_ops["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/VisionCronJob"}


def test_the_workflow_schedules_user_id_says_whose_id(schema):
    properties = schema.json()["components"]["schemas"]["CronJobCreateRequest"]["properties"]

    assert "your own user id" in properties["user_id"]["description"]


@pytest.mark.django_db(transaction=True)
def test_stored_job_descriptions_lose_the_seed_numbers():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = ("scheduling", "0011_execution_created_status_index"), ("scheduling", "0012_descriptions_name_the_apis")
    executor = MigrationExecutor(connection)
    executor.migrate([before])
    Job = executor.loader.project_state([before]).apps.get_model("scheduling", "Job")
    old = {
        "wf": "Seed-002 workflow schedule 'daily-report'",
        "vision": "Vision analysis for organization org-7 (seed 000 /cron-jobs).",
        "bulk": "Scores uploaded CSV/XLSX files (seed 004). Each upload is one run; tune the queue, timeout and "
                "retries here.",
        "own": "Mine: seed 001 of my experiment",
    }
    for name, description in old.items():
        Job.objects.create(name=name, description=description, schedule_type="manual", kind="task")

    executor = MigrationExecutor(connection)
    try:
        executor.migrate([after])
        Job = executor.loader.project_state([after]).apps.get_model("scheduling", "Job")
        descriptions = dict(Job.objects.values_list("name", "description"))
    finally:  # the other tests want every migration applied
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert descriptions == {
        "wf": "Workflow schedule 'daily-report' (created through /api/cron/jobs)",
        "vision": "Vision analysis for organization org-7 (created through /cron-jobs).",
        "bulk": "Scores uploaded CSV/XLSX files (/api/v1/predictions). Each upload is one run; tune the queue, "
                "timeout and retries here.",
        "own": "Mine: seed 001 of my experiment",  # a person's own words are theirs
    }
