"""Executor plug-ins: the registry is the one list of job kinds; each kind
validates its own settings and a run's parameters at request time; a kind from
another app (tests/kinds) runs through the API, the worker and cancel."""

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management import CommandError, call_command
from django_celery_beat.models import PeriodicTask

from jobsite.tenancy import SYSTEM
from scheduling import selectors, services
from scheduling.beat import beat_drift_check
from scheduling.executors import Executor, kind_choices, register, registered_kinds, unregister
from scheduling.models import AuditLog, Execution, Job
from tests.factories import JobFactory
from tests.worker import pid_alive, wait_for

pytestmark = pytest.mark.django_db
JOBS = "/api/v1/jobs/"


def countdown_body(**overrides):
    body = {"name": "countdown", "kind": "test_countdown", "schedule_type": "manual",
            "config": {"label": "liftoff", "step_seconds": 0.05}}
    body.update(overrides)
    return body


# -- the registry -----------------------------------------------------------
def test_every_kind_comes_from_the_registry():
    assert {"task", "test_countdown"} <= set(registered_kinds())
    field_choices = dict(Job._meta.get_field("kind").choices)
    assert field_choices == dict(kind_choices())
    assert field_choices["test_countdown"] == "Countdown (test kind)"


def test_a_kind_cannot_be_registered_twice_by_different_classes():
    class Impostor(Executor):
        kind = "test_countdown"
        label = "Impostor"

    with pytest.raises(ImproperlyConfigured, match="registered twice"):
        register(Impostor)


def test_a_kind_needs_a_name_and_a_label():
    class Nameless(Executor):
        label = "No kind"

    with pytest.raises(ImproperlyConfigured):
        register(Nameless)


def test_an_unregistered_kind_is_refused_naming_the_valid_ones(admin_api):
    response = admin_api.post(JOBS, countdown_body(kind="warp_drive"), format="json")
    assert response.status_code == 400
    assert "kind" in response.json()["errors"]
    assert "test_countdown" in response.json()["detail"] and "task" in response.json()["detail"]


def test_the_cli_offers_exactly_the_registered_kinds(capsys):
    JobFactory(name="countdown-cli", kind="test_countdown", task_name="", schedule_type="manual",
               schedule_expression="", config={"label": "x"})
    out = _call("list", "--kind", "test_countdown")
    assert "countdown-cli" in out
    with pytest.raises(CommandError, match="invalid choice"):
        _call("list", "--kind", "warp_drive")


def _call(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("jobs", *args, stdout=out)
    return out.getvalue()


def test_a_removed_kind_leaves_its_jobs_readable_and_their_runs_fail_clearly():
    @register
    class Ephemeral(Executor):
        kind = "test_ephemeral"
        label = "Ephemeral"

    job = services.job_create(name="ephemeral", kind="test_ephemeral", schedule_type="manual")
    unregister("test_ephemeral")
    claimed = Execution.objects.create(job=job, celery_task_id="t-ephemeral")  # as if queued before the removal
    result = services.execution_run(execution_id=claimed.pk, task_id="t-ephemeral", worker="w pid 1")
    assert (result.status, result.output) == ("error", "No executor")
    assert "test_ephemeral" in result.error


# -- the task kind's checks ---------------------------------------------------
def test_unknown_task_parameter_is_a_400_at_create(admin_api):
    body = {"name": "health", "schedule_type": "interval", "schedule_expression": "30",
            "task_name": "scheduling.system_health_check", "task_kwargs": {"cleanup_level": "deep"}}
    response = admin_api.post(JOBS, body, format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]["task_kwargs"]
    assert errors == ["Unknown parameter 'cleanup_level' for task 'scheduling.system_health_check'. "
                      "It accepts: include_workers."]


def test_the_execute_help_example_with_a_bad_parameter_is_a_400_not_a_failed_run(admin_api):
    # given the `jobs execute --help` example's override on a job whose task does not take it
    job = services.job_create(name="health", schedule_type="interval", schedule_expression="30",
                              task_name="scheduling.system_health_check")
    # when it is requested through the API and the CLI
    response = admin_api.post(f"{JOBS}{job.pk}/execute", {"override_kwargs": {"cleanup_level": "deep"}}, format="json")
    # then both refuse it before anything is queued
    assert response.status_code == 400
    assert "override_kwargs: Unknown parameter 'cleanup_level'" in response.json()["detail"]
    with pytest.raises(CommandError, match="Unknown parameter 'cleanup_level'"):
        _call("execute", str(job.pk), "--kwargs", '{"cleanup_level":"deep"}')
    assert not Execution.objects.filter(job=job).exists()


def test_missing_and_positional_arguments_are_named():
    from scheduling.executors import schedulable, schedulable_task

    @schedulable("tests.needs_target")
    def needs_target(target, *, execution, mode="fast"):
        return None

    task = schedulable_task("tests.needs_target")
    assert task.argument_errors([], {}) == {"task_kwargs": ["Missing required parameter 'target' for task 'tests.needs_target'."]}
    assert task.argument_errors(["a"], {}) == {}
    assert task.argument_errors([], {"target": "a", "mode": "slow"}) == {}
    assert task.argument_errors(["a", "b"], {})["task_args"] == [
        "Task 'tests.needs_target' takes 1 positional argument(s); 2 given."]
    assert "given both by position and by name" in task.argument_errors(["a"], {"target": "b"})["task_kwargs"][0]
    with pytest.raises(ValidationError) as exc:
        services.job_create(name="needs", schedule_type="interval", schedule_expression="30",
                            task_name="tests.needs_target")
    assert "Missing required parameter 'target'" in exc.value.message_dict["task_kwargs"][0]


def test_tasks_taking_any_keyword_accept_any_parameter(admin_api):
    job = JobFactory(task_name="tests.echo")
    response = admin_api.post(f"{JOBS}{job.pk}/execute", {"override_kwargs": {"anything": 1}}, format="json")
    assert response.status_code == 202


# -- a kind's own config and parameter checks ---------------------------------
def test_the_kinds_config_serializer_names_the_field(admin_api):
    response = admin_api.post(JOBS, countdown_body(config={"step_seconds": 99}), format="json")
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith("config: ")
    assert "label: This field is required." in detail
    assert "step_seconds: Ensure this value is less than or equal to 5." in detail


def test_the_kinds_parameter_check_runs_at_request_time(admin_api):
    job_id = admin_api.post(JOBS, countdown_body(), format="json").json()["id"]
    response = admin_api.post(f"{JOBS}{job_id}/execute", {"override_kwargs": {"ticks": "many"}}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"override_kwargs": ["ticks must be an integer from 0 to 10000."]}


def test_the_admin_form_validates_with_the_kinds_rules(client, superuser):
    client.force_login(superuser)
    response = client.post("/admin/scheduling/job/add/", {
        "name": "countdown-admin", "title": "", "description": "", "kind": "test_countdown",
        "job_type": "custom", "schedule_type": "manual", "schedule_expression": "", "timezone": "UTC",
        "task_name": "", "task_args": "[]", "task_kwargs": "{}", "config": '{"step_seconds": 1}',
        "queue": "default", "priority": 5, "timeout_seconds": 60, "max_retries": 0,
        "retry_backoff_seconds": 60, "overlap_policy": "skip", "is_enabled": "on", "status": "active",
    })
    assert response.status_code == 200  # the form again, with the error
    assert "label: This field is required." in response.content.decode()
    assert not Job.objects.filter(name="countdown-admin").exists()


# -- manual jobs: what facades run their one-off work as ----------------------
def test_a_manual_job_has_no_beat_entry_and_is_never_due():
    job = services.job_create(name="on-demand", schedule_type="manual", task_name="tests.noop")
    assert job.periodic_task_id is None and job.next_run_at is None
    assert not PeriodicTask.objects.filter(name=f"job:{job.pk}").exists()
    assert beat_drift_check().clean
    assert not selectors.job_is_overdue(selectors.job_get(user=SYSTEM, job_id=job.pk))
    # switching a scheduled job to manual drops its beat entry, and back again adds one
    scheduled = services.job_create(name="scheduled", schedule_type="interval", schedule_expression="5", task_name="tests.noop")
    assert scheduled.periodic_task_id is not None
    services.job_update(job=scheduled, data={"schedule_type": "manual", "schedule_expression": ""})
    assert not PeriodicTask.objects.filter(name=f"job:{scheduled.pk}").exists()
    assert beat_drift_check().clean
    services.job_update(job=scheduled, data={"schedule_type": "cron", "schedule_expression": "0 * * * *"})
    assert PeriodicTask.objects.filter(name=f"job:{scheduled.pk}").exists()
    with pytest.raises(ValidationError, match="takes no expression"):
        services.job_create(name="odd", schedule_type="manual", schedule_expression="5", task_name="tests.noop")


def test_job_ensure_manual_creates_once():
    first = services.job_ensure_manual(name="facade.one-off", kind="test_countdown", config={"label": "x"})
    again = services.job_ensure_manual(name="facade.one-off", kind="test_countdown", config={"label": "x"})
    assert first.pk == again.pk
    assert (first.schedule_type, first.overlap_policy, first.owner_id) == ("manual", "allow", None)


# -- the audit trail ----------------------------------------------------------
def test_every_editable_field_change_is_audited(org):
    job = services.job_create(name="audited", schedule_type="interval", schedule_expression="30", task_name="tests.echo")
    services.job_update(job=job, data={"config": {"a": 1}})
    row = AuditLog.objects.filter(object_type="job", object_id=str(job.pk), action="update").latest("id")
    assert row.changes == {"config": [{}, {"a": 1}]}
    services.job_update(job=job, data={"description": "why", "retry_backoff_seconds": 5, "organization": org})
    row = AuditLog.objects.filter(object_type="job", object_id=str(job.pk), action="update").latest("id")
    assert row.changes == {"description": ["", "why"], "retry_backoff_seconds": [60, 5], "organization": [None, str(org.pk)]}
    created = AuditLog.objects.get(object_type="job", object_id=str(job.pk), action="create")
    assert set(created.changes) == {"kind", "status", *Job.EDITABLE_FIELDS}


def test_the_api_update_body_covers_exactly_the_editable_fields():
    from scheduling.serializers import JobUpdateSerializer

    fields = {field.source for name, field in JobUpdateSerializer().fields.items()}
    assert fields == set(Job.EDITABLE_FIELDS)


# -- end to end: a kind from another app through the API, the worker and cancel
@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_kind_from_a_test_app_runs_and_cancels_through_the_api_and_worker(celery_worker_process, admin_api):
    # given a job of the test app's kind, created through the API
    response = admin_api.post(JOBS, countdown_body(), format="json")
    assert response.status_code == 201, response.json()
    job_id = response.json()["id"]
    # when it is run through the API, the real worker runs it with its parameters
    response = admin_api.post(f"{JOBS}{job_id}/execute", {"override_kwargs": {"ticks": 2}}, format="json")
    assert response.status_code == 202, response.json()
    execution = Execution.objects.get(pk=response.json()["id"])
    wait_for(lambda: Execution.objects.get(pk=execution.pk).status == "success", message="success")
    execution.refresh_from_db()
    assert (execution.output, execution.result) == ("liftoff: counted down 2", {"ticks": 2})
    # and a long run is cancelled through the API: recorded at once, and its worker process is stopped
    response = admin_api.post(f"{JOBS}{job_id}/execute", {"override_kwargs": {"ticks": 10000}}, format="json")
    long_run = Execution.objects.get(pk=response.json()["id"])
    wait_for(lambda: Execution.objects.get(pk=long_run.pk).status == "running", message="running")
    long_run.refresh_from_db()
    pid = int(long_run.worker.rsplit("pid ", 1)[1])
    response = admin_api.post(f"/api/v1/executions/{long_run.pk}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    wait_for(lambda: not pid_alive(pid), timeout=15, message="the pool process to be terminated")
    long_run.refresh_from_db()
    assert long_run.status == "cancelled"


def test_the_execute_help_examples_kwargs_are_accepted_by_their_task():
    # the example in `jobs execute --help` must be one the signature check accepts
    import re

    from scheduling.cli.parser import EXAMPLES
    from scheduling.defaults import jobs_init_defaults

    jobs_init_defaults()
    name, kwargs = re.search(r"execute (\S+) --kwargs '(\{.*\})'", EXAMPLES["execute"]).groups()
    out = _call("execute", name, "--kwargs", kwargs)
    assert f"of job '{name}'" in out and out.startswith("Queued execution")
