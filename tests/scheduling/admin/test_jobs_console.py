"""The jobs console: the jobs list (run-history strips in a fixed number of
queries, users' jobs apart from internal ones, the last result with its own
time, pause/resume per row), the job page (summary first, duration chart,
Cancel, "Run now with parameters" with the API's own errors) and the fields
of a kind in the job form (a workflow schedule, a vision cron job: the key
never shown back)."""
import re
import uuid
from datetime import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobsite.admin.widgets import when
from scheduling import services
from scheduling.models import Execution, Job
from scheduling.workflows import services as workflow_services
from tests.factories import ExecutionFactory, JobFactory
from tests.scheduling.admin.conftest import url

pytestmark = pytest.mark.django_db


def rows_of(html: str) -> dict[str, str]:
    """The job list's rows by job name."""
    table = html[html.index('id="result_list"'):]
    table = table[:table.index("</table>")]
    return {m.group(1): row for row in table.split("<tr")[1:] if (m := re.search(r'class="ops-name">([^<]+)<', row))}


def cell(row: str, column: str) -> str:
    match = re.search(rf'<t([dh]) class="field-{column}[^"]*">(.*?)</t\1>', row, re.S)
    assert match, f"no {column} cell in {row[:300]}"
    return match.group(2)


def form_data(response) -> dict:
    """What the browser would post back from an admin change form as it is shown."""
    form = response.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if isinstance(value, bool):
            if value:
                data[name] = "on"
            continue
        data[name] = "" if value is None else value
    return data


def run_now_here(job: Job) -> Execution:
    """A run of ``job`` run in this process (no message: no worker can take it too)."""
    execution = ExecutionFactory(job=job, status="queued", trigger="manual", celery_task_id=str(uuid.uuid4()))
    services.execution_run(execution_id=execution.pk, task_id=execution.celery_task_id, worker="test")
    execution.refresh_from_db()
    return execution


# -- the list: history strips --------------------------------------------------------------------
def test_history_strip_shows_the_last_20_runs_oldest_first_each_a_link(admin_client):
    job = JobFactory(name="busy", task_name="tests.noop")
    runs = [ExecutionFactory(job=job, status="failed" if i % 5 == 0 else "success") for i in range(25)]
    html = admin_client.get(url("job_changelist")).content.decode()
    strip = cell(rows_of(html)["busy"], "run_history_strip")
    links = re.findall(r'<a class="ops-run ops-run-(\w+)" href="([^"]+)" title="([^"]+)"', strip)
    assert len(links) == 20
    shown = runs[-20:]  # the newest 20, oldest on the left
    assert [href for _, href, _ in links] == [url("execution_change", run.pk) for run in shown]
    assert [status for status, _, _ in links] == [run.status for run in shown]
    assert links[-1][2].startswith(f"Run {shown[-1].pk} · {shown[-1].get_status_display()} · ")
    assert "UTC" in links[-1][2]  # the exact time on hover


def test_history_strips_cost_the_same_queries_for_2_and_12_jobs(admin_client):
    def add_jobs(count):
        for _ in range(count):
            job = JobFactory(task_name="tests.noop")
            for status in ("success", "failed", "success", "running"):
                ExecutionFactory(job=job, status=status)

    def page_queries():
        with CaptureQueriesContext(connection) as queries:
            html = admin_client.get(url("job_changelist")).content.decode()
        return len(queries), html

    add_jobs(2)
    few, _ = page_queries()
    add_jobs(10)
    many, html = page_queries()
    assert html.count('<a class="ops-run ops-run-') == 12 * 4
    assert many == few, f"{few} queries for 2 jobs, {many} for 12"


# -- the list: users' jobs and internal jobs ------------------------------------------------------
@pytest.fixture
def internal_job():
    return services.job_ensure_manual(name="predictions.bulk-upload", kind="bulk_prediction", title="Bulk predictions")


def test_the_list_shows_users_jobs_by_default_and_internal_jobs_on_demand(admin_client, internal_job):
    JobFactory(name="nightly-report", task_name="tests.noop")
    default = rows_of(admin_client.get(url("job_changelist")).content.decode())
    assert set(default) == {"nightly-report"}
    internal_page = admin_client.get(url("job_changelist"), {"origin": "internal"}).content.decode()
    internal = rows_of(internal_page)
    assert set(internal) == {"predictions.bulk-upload"}
    row = internal["predictions.bulk-upload"]
    assert "internal" in cell(row, "name_display") and "manual: no schedule" in cell(row, "schedule")
    assert "ops-row-btn" not in row and "runs from its API" in row  # no Pause, no Run now
    assert set(rows_of(admin_client.get(url("job_changelist"), {"origin": "all"}).content.decode())) == {
        "nightly-report", "predictions.bulk-upload"}


def test_internal_jobs_are_not_paused_or_run_from_the_admin(admin_client, internal_job):
    response = admin_client.post(url("job_state", internal_job.pk, "pause"), follow=True)
    assert "an internal job has no Pause or Resume here" in response.content.decode()
    admin_client.post(url("job_changelist"), {"action": "run_now", "_selected_action": [internal_job.pk]})
    internal_job.refresh_from_db()
    assert internal_job.state == "active" and not internal_job.executions.exists()
    page = admin_client.get(url("job_change", internal_job.pk)).content.decode()
    assert 'id="ops-run-now"' not in page and 'id="ops-pause"' not in page
    assert "Run now with parameters" not in page


def test_pause_and_resume_from_a_row_go_back_to_the_list(admin_client):
    job = JobFactory(name="nightly-report", task_name="tests.noop")
    row = rows_of(admin_client.get(url("job_changelist")).content.decode())["nightly-report"]
    assert f'formaction="{url("job_state", job.pk, "pause")}"' in row
    listing = url("job_changelist") + "?q=nightly"
    response = admin_client.post(url("job_state", job.pk, "pause"), {"next": listing})
    assert response.status_code == 302 and response["Location"] == listing
    job.refresh_from_db()
    assert job.state == "paused"
    row = rows_of(admin_client.get(listing).content.decode())["nightly-report"]
    assert f'formaction="{url("job_state", job.pk, "resume")}"' in row
    admin_client.post(url("job_state", job.pk, "resume"), {"next": "https://elsewhere.example/"})
    job.refresh_from_db()
    assert job.state == "active"


# -- the last result and its own time --------------------------------------------------------------
def test_last_result_is_the_outcome_with_its_own_time_while_another_run_goes(
        admin_client, client_for, root, django_capture_on_commit_callbacks):
    job = JobFactory(name="flaky", task_name="tests.fail")
    failed = run_now_here(job)
    assert failed.status == "failed"
    # a later run is queued and starts: the last outcome is still the failure, at its own time
    with django_capture_on_commit_callbacks(execute=False):  # no message: nothing may run it
        later = services.job_execute(job=job, trigger=Execution.Trigger.MANUAL)
    services.execution_claim(execution_id=later.pk, task_id=str(uuid.uuid4()), worker="test")
    later.refresh_from_db()
    assert later.status == "running" and later.started_at > failed.completed_at
    job.refresh_from_db()
    assert (job.last_status, job.last_finished_at) == ("failed", failed.completed_at)
    # the API's pair
    body = client_for(root).get(f"/api/v1/jobs/{job.pk}").json()
    assert body["last_status"] == "failed"
    assert datetime.fromisoformat(body["last_run_at"].replace("Z", "+00:00")) == failed.completed_at
    # the list's pair
    row = rows_of(admin_client.get(url("job_changelist")).content.decode())["flaky"]
    last = cell(row, "last_result")
    assert "ops-badge-failed" in last
    assert f'datetime="{failed.completed_at.isoformat()}"' in last and f'title="{when(failed.completed_at)}"' in last
    assert "ops-badge-running" in cell(row, "now_display")


@pytest.mark.parametrize("task_name, outcome", [("tests.noop", "success"), ("tests.fail", "failed"),
                                                 (None, "cancelled")])
def test_every_outcome_is_stored_with_its_own_time(task_name, outcome):
    job = JobFactory(name="paired", task_name=task_name or "tests.noop")
    if task_name is None:
        execution = ExecutionFactory(job=job, status="running")
        services.execution_cancel(execution=execution, actor_label="test")
    else:
        execution = run_now_here(job)
    execution.refresh_from_db()
    job.refresh_from_db()
    assert (job.last_status, job.last_finished_at) == (outcome, execution.completed_at)
    assert job.last_finished_at is not None


# -- the job page ----------------------------------------------------------------------------------
def test_job_page_shows_the_summary_before_the_form(admin_client):
    job = JobFactory(name="nightly-report", task_name="tests.noop", schedule_type="daily", schedule_expression="02:00")
    for seconds in (1.0, 2.0, 3.0, 9.0):
        ExecutionFactory(job=job, status="success", duration_seconds=seconds)
    running = ExecutionFactory(job=job, status="running")
    html = admin_client.get(url("job_change", job.pk)).content.decode()
    summary, form = html.index('id="ops-job-summary"'), html.index('id="job_form"')
    assert summary < form
    part = html[summary:form]
    assert "02:00:00 UTC</li>" in part  # next runs
    assert "p50 2.0s · p95 9.0s" in part
    chart = part[part.index('id="ops-duration-chart"'):]
    assert "<svg" in chart and "<script" not in chart.split("</svg>")[0]  # server-rendered, no script
    assert f'id="ops-cancel-run-{running.pk}"' in part
    assert part.count('class="ops-row-btn ops-row-cancel"') == 1  # only the running run


@pytest.mark.parametrize("kind, extra", [
    ("task", {"task_name": "tests.noop"}),
    ("test_countdown", {"task_name": "", "config": {"label": "T"}}),
    ("bulk_prediction", {"task_name": "", "schedule_type": "manual", "schedule_expression": ""}),
    ("vision_batch", {"task_name": "", "schedule_type": "manual", "schedule_expression": ""}),
])
def test_every_kinds_job_page_and_run_form_render(admin_client, kind, extra):
    job = JobFactory(name=f"a-{kind}", kind=kind, **extra)
    ExecutionFactory(job=job, status="success", duration_seconds=1.0)
    ExecutionFactory(job=job, status="failed", duration_seconds=2.0)
    page = admin_client.get(url("job_change", job.pk))
    assert page.status_code == 200
    assert 'id="ops-job-summary"' in page.content.decode()
    run_page = admin_client.get(url("job_run_with_parameters", job.pk))
    assert run_page.status_code == (302 if kind in ("bulk_prediction", "vision_batch") else 200)


def test_cancel_from_the_job_page(admin_client):
    job = JobFactory(name="nightly-report", task_name="tests.noop")
    running = ExecutionFactory(job=job, status="running", celery_task_id=None)
    page = url("job_change", job.pk)
    response = admin_client.post(url("job_cancel_run", job.pk, running.pk), {"next": page})
    assert response["Location"] == page
    running.refresh_from_db()
    assert running.status == "cancelled"
    assert admin_client.post(url("job_cancel_run", job.pk, 999999)).status_code == 404


def test_catch_up_policy_and_jitter_are_edited_on_the_job_page(admin_client):
    job = JobFactory(name="nightly-report", task_name="tests.noop", schedule_type="daily", schedule_expression="02:00")
    response = admin_client.get(url("job_change", job.pk))
    data = form_data(response) | {"catch_up_policy": "skip", "jitter_seconds": "30"}
    assert admin_client.post(url("job_change", job.pk), data).status_code == 302
    job.refresh_from_db()
    assert (job.catch_up_policy, job.jitter_seconds) == ("skip", 30)


def test_manual_job_says_it_has_no_schedule(admin_client):
    job = JobFactory(name="on-demand", task_name="tests.noop", schedule_type="manual", schedule_expression="")
    html = admin_client.get(url("job_change", job.pk)).content.decode()
    assert "manual: no schedule" in html and "expected" not in html


# -- run now with parameters: the API's errors -------------------------------------------------------
def api_errors(client, job, override):
    response = client.post(f"/api/v1/jobs/{job.pk}/execute", {"override_kwargs": override}, format="json")
    assert response.status_code == 400, response.content
    return response.json()["errors"]["override_kwargs"]


def test_run_with_parameters_errors_are_the_apis(admin_client, client_for, root):
    job = JobFactory(name="countdown", kind="test_countdown", task_name="", config={"label": "T"})
    # when
    response = admin_client.post(url("job_run_with_parameters", job.pk), {"more_parameters": '{"ticks": -1}'})
    # then
    assert response.status_code == 400
    assert response.context["run_form"].non_field_errors() == api_errors(client_for(root), job, {"ticks": -1})
    assert "ticks must be an integer from 0 to 10000." in response.content.decode()
    # not JSON, not an object: form errors too, never a 500
    for bad in ("{ticks", "[1, 2]"):
        response = admin_client.post(url("job_run_with_parameters", job.pk), {"more_parameters": bad})
        assert response.status_code == 400 and response.context["run_form"].errors["more_parameters"]
    assert not job.executions.exists()


def test_run_with_parameters_of_a_workflow_has_the_apis_errors(admin_client, client_for, root):
    workflow_services.workflow_create(actor=root, id="wf-two", name="Two steps", steps=[
        {"name": "one", "type": "task", "task_name": "tests.echo"},
        {"name": "two", "type": "task", "task_name": "tests.echo"}])
    job, _ = workflow_services.workflow_schedule_save(actor=root, job_id="nightly", workflow_id="wf-two",
                                                      user_id=str(root.pk), input="hello", schedule_type="cron",
                                                      cron_expression="0 3 * * *")
    page = admin_client.get(url("job_change", job.pk)).content.decode()
    assert 'name="input"' in page and 'name="resume_from"' in page
    response = admin_client.post(url("job_run_with_parameters", job.pk), {"input": "hello", "resume_from": "7"})
    assert response.status_code == 400
    assert response.context["run_form"].non_field_errors() == api_errors(
        client_for(root), job, {"input": "hello", "resume_from": 7})


def test_run_with_parameters_of_a_task_queues_the_run(admin_client, django_capture_on_commit_callbacks):
    job = JobFactory(name="stubborn", task_name="tests.stubborn", task_kwargs={"seconds": 30.0})
    response = admin_client.get(url("job_run_with_parameters", job.pk))
    assert response.status_code == 200 and 'name="param_seconds"' in response.content.decode()
    bad = admin_client.post(url("job_run_with_parameters", job.pk), {"param_seconds": "soon"})
    assert bad.status_code == 400 and bad.context["run_form"].errors["param_seconds"]
    with django_capture_on_commit_callbacks(execute=False):  # the message is not sent: no worker runs it
        response = admin_client.post(url("job_run_with_parameters", job.pk), {"param_seconds": "2.5"})
    execution = job.executions.get()
    assert response["Location"] == url("execution_change", execution.pk)
    assert (execution.trigger, execution.override_kwargs) == ("manual", {"seconds": 2.5})


# -- the fields of a kind in the job form ---------------------------------------------------------------
def test_workflow_schedule_form_shows_its_workflow_and_input_and_saves_them(admin_client, root):
    for workflow_id in ("wf-a", "wf-b"):
        workflow_services.workflow_create(actor=root, id=workflow_id, name=workflow_id.upper(), steps=[
            {"name": "one", "type": "task", "task_name": "tests.echo"}])
    job, _ = workflow_services.workflow_schedule_save(actor=root, job_id="nightly", workflow_id="wf-a",
                                                      user_id=str(root.pk), input='{"city": "Oslo"}',
                                                      schedule_type="cron", cron_expression="0 3 * * *")
    config = dict(job.config)
    response = admin_client.get(url("job_change", job.pk))
    html = response.content.decode()
    assert 'name="workflow"' in html and 'value="wf-a" selected' in html
    assert "{\n  &quot;city&quot;: &quot;Oslo&quot;\n}" in html  # the input, pretty
    assert 'name="task_name"' not in html and 'name="config"' not in html and 'name="task_kwargs"' not in html
    # when
    data = form_data(response) | {"workflow": "wf-b", "workflow_input": '{"city": "Bergen"}'}
    saved = admin_client.post(url("job_change", job.pk), data)
    # then
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    job.refresh_from_db()
    assert job.config == config | {"workflow_id": "wf-b"}
    assert job.task_kwargs == {"input": '{"city": "Bergen"}'}
    # a workflow nobody may use here is refused on its field, by the services' rule
    data["workflow"] = "wf-missing"
    refused = admin_client.post(url("job_change", job.pk), data)
    assert refused.status_code == 200 and refused.context["adminform"].form.errors["workflow"]


def test_a_workflow_schedule_is_created_from_the_add_form(admin_client, root):
    workflow_services.workflow_create(actor=root, id="wf-a", name="A", steps=[
        {"name": "one", "type": "task", "task_name": "tests.echo"}])
    add = admin_client.get(url("job_add"))
    data = form_data(add) | {"name": "from-admin", "kind": "workflow", "schedule_type": "daily",
                             "schedule_expression": "03:00", "timezone": "UTC", "queue": "default",
                             "workflow": "wf-a", "workflow_input": "hi"}
    response = admin_client.post(url("job_add"), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    job = Job.objects.get(name="from-admin")
    assert (job.kind, job.config["workflow_id"], job.task_kwargs, job.task_name) == ("workflow", "wf-a",
                                                                                   {"input": "hi"}, "")


@pytest.fixture
def vision_job(root):
    from vision_pipeline.services.cron_jobs import cron_job_create

    return cron_job_create(actor=root, name="Scans", schedule="*/5 * * * *",
                           external_api_get_url="http://127.0.0.1:9/analyses",
                           external_api_post_url="http://127.0.0.1:9/results",
                           external_api_key="sk-very-secret-key-123", organization_id="org-7")


def test_vision_cron_job_form_shows_its_api_settings_and_never_the_key(admin_client, vision_job):
    response = admin_client.get(url("job_change", vision_job.pk))
    html = response.content.decode()
    assert "sk-very-secret-key-123" not in html
    assert 'name="cfg_external_api_get_url"' in html and 'value="http://127.0.0.1:9/analyses"' in html
    assert 'name="secret_external_api_key"' in html and 'type="password"' in html
    assert 'name="config"' not in html and 'name="task_name"' not in html
    # blank keeps the key; the URL changes
    data = form_data(response) | {"cfg_external_api_get_url": "http://127.0.0.1:9/v2/analyses"}
    assert data["secret_external_api_key"] == ""
    assert admin_client.post(url("job_change", vision_job.pk), data).status_code == 302
    vision_job.refresh_from_db()
    assert vision_job.config["external_api_get_url"] == "http://127.0.0.1:9/v2/analyses"
    assert vision_job.config["organization_id"] == "org-7"
    assert services.job_secrets(vision_job)["external_api_key"] == "sk-very-secret-key-123"
    # a new key replaces it, and is not shown back either
    data["secret_external_api_key"] = "sk-rotated-456"
    assert admin_client.post(url("job_change", vision_job.pk), data).status_code == 302
    assert services.job_secrets(Job.objects.get(pk=vision_job.pk))["external_api_key"] == "sk-rotated-456"
    assert "sk-rotated-456" not in admin_client.get(url("job_change", vision_job.pk)).content.decode()


def test_vision_cron_job_form_errors_are_on_their_fields(admin_client, vision_job):
    response = admin_client.get(url("job_change", vision_job.pk))
    data = form_data(response) | {"cfg_external_api_get_url": "not a url", "cfg_page_size": "0"}
    refused = admin_client.post(url("job_change", vision_job.pk), data)
    assert refused.status_code == 200
    errors = refused.context["adminform"].form.errors
    assert errors["cfg_external_api_get_url"] and errors["cfg_page_size"]
    assert "sk-very-secret-key-123" not in refused.content.decode()


def test_vision_api_settings_refused_by_the_apis_rule(admin_client, vision_job, settings):
    settings.OUTBOUND_HTTP_ALLOW_LOOPBACK = False
    response = admin_client.get(url("job_change", vision_job.pk))
    data = form_data(response) | {"cfg_external_api_get_url": "http://10.0.0.1/analyses"}
    refused = admin_client.post(url("job_change", vision_job.pk), data)
    assert refused.status_code == 200 and refused.context["adminform"].form.errors
    assert Job.objects.get(pk=vision_job.pk).config == vision_job.config  # unchanged
