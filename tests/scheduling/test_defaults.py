"""The seed-003 default jobs (scheduling.defaults): what init creates, that it
is idempotent, that operators' changes survive, and the post_migrate hook."""
import io
import json

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db.models.signals import post_migrate
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from scheduling import services
from scheduling.beat import DISPATCH_TASK, celery_priority
from scheduling.models import AuditLog, Job

pytestmark = pytest.mark.django_db

DEFAULT_NAMES = ["system_health_check", "document_cleanup", "analytics_aggregation", "database_maintenance",
                 "mcp_server_health_check"]


@pytest.fixture(scope="module", autouse=True)
def _disconnect_the_hook_afterwards():
    # Importing scheduling.defaults connects its post_migrate receiver. Until the
    # suite runs with JOBS_CREATE_DEFAULT_JOBS=False, the flush after every
    # transactional test (which sends post_migrate) would then install the
    # default jobs into the other modules' databases.
    yield
    post_migrate.disconnect(dispatch_uid="scheduling.defaults.create_default_jobs")


@pytest.fixture
def defaults():
    from scheduling import defaults

    return defaults


def crontab_of(task: PeriodicTask) -> str:
    c = task.crontab
    return " ".join([c.minute, c.hour, c.day_of_month, c.month_of_year, c.day_of_week])


def test_init_creates_the_five_seed_jobs_with_their_schedules_and_beat_tasks(defaults):
    results = defaults.jobs_init_defaults()

    assert [(job.name, created) for job, created in results] == [(name, True) for name in DEFAULT_NAMES]
    jobs = {job.name: job for job in Job.objects.select_related("periodic_task__crontab", "periodic_task__interval")}
    assert set(jobs) == set(DEFAULT_NAMES)
    for job in jobs.values():
        assert job.kind == "task"
        assert job.job_type == job.name
        assert job.task_name == f"scheduling.{job.name}"
        assert job.queue == "maintenance"
        assert job.owner is None and job.organization is None
        task = job.periodic_task
        assert task is not None
        assert task.enabled is job.is_enabled
        assert (task.task, task.args, task.queue) == (DISPATCH_TASK, json.dumps([job.pk]), "maintenance")
        assert task.priority == celery_priority(job.priority)

    health, cleanup, analytics, database, mcp = (jobs[name] for name in DEFAULT_NAMES)
    assert (health.schedule_type, health.schedule_expression, health.is_enabled) == ("interval", "15", True)
    assert (health.periodic_task.interval.every, health.periodic_task.interval.period) == (
        900, IntervalSchedule.SECONDS)
    assert (cleanup.schedule_type, cleanup.schedule_expression, cleanup.is_enabled) == ("daily", "02:00", True)
    assert crontab_of(cleanup.periodic_task) == "0 2 * * *"
    assert (analytics.schedule_type, analytics.schedule_expression, analytics.is_enabled) == ("daily", "01:00", True)
    assert crontab_of(analytics.periodic_task) == "0 1 * * *"
    assert (database.schedule_type, database.schedule_expression) == ("weekly", "0:03:00")
    assert crontab_of(database.periodic_task) == "0 3 * * 1"  # Monday 03:00
    assert database.is_enabled is False and database.periodic_task.enabled is False
    assert database.next_run_at is None
    assert (mcp.schedule_type, mcp.schedule_expression, mcp.is_enabled) == ("interval", "30", True)
    assert mcp.periodic_task.interval.every == 1800
    assert health.title == "System Health Check"
    assert mcp.description == "Monitor MCP server connectivity and performance"
    assert health.next_run_at is not None
    assert AuditLog.objects.filter(action="create", actor_label="system", object_type="job").count() == 5


def test_init_twice_creates_nothing_new(defaults):
    defaults.jobs_init_defaults()
    counts = (Job.objects.count(), PeriodicTask.objects.count(), AuditLog.objects.count())

    results = defaults.jobs_init_defaults()

    assert [created for _, created in results] == [False] * 5
    assert (Job.objects.count(), PeriodicTask.objects.count(), AuditLog.objects.count()) == counts


def test_operators_changes_survive_re_init(defaults):
    # given: an operator moved the cleanup, disabled it, enabled database
    # maintenance, and deleted the MCP check
    defaults.jobs_init_defaults()
    cleanup = Job.objects.get(name="document_cleanup")
    services.job_update(job=cleanup, actor_label="ops", data={"schedule_expression": "04:30", "is_enabled": False,
                                                               "task_kwargs": {"cleanup_level": "deep"}})
    services.job_set_enabled(job=Job.objects.get(name="database_maintenance"), enabled=True, actor_label="ops")
    services.job_delete(job=Job.objects.get(name="mcp_server_health_check"), actor_label="ops")

    # when
    results = dict((job.name, created) for job, created in defaults.jobs_init_defaults())

    # then: only the missing one is back
    assert results == {**{name: False for name in DEFAULT_NAMES}, "mcp_server_health_check": True}
    cleanup = Job.objects.select_related("periodic_task__crontab").get(name="document_cleanup")
    assert (cleanup.schedule_expression, cleanup.is_enabled) == ("04:30", False)
    assert cleanup.task_kwargs == {"cleanup_level": "deep"}
    assert crontab_of(cleanup.periodic_task) == "30 4 * * *" and cleanup.periodic_task.enabled is False
    database = Job.objects.get(name="database_maintenance")
    assert database.is_enabled is True and database.periodic_task.enabled is True
    assert Job.objects.get(name="mcp_server_health_check").periodic_task.enabled is True


def test_init_leaves_a_same_named_user_job_alone(defaults):
    mine = services.job_create(name="system_health_check", schedule_type="interval", schedule_expression="5",
                               task_name="scheduling.system_health_check")

    results = dict((job.name, (job.pk, created)) for job, created in defaults.jobs_init_defaults())

    assert results["system_health_check"] == (mine.pk, False)
    assert Job.objects.get(pk=mine.pk).schedule_expression == "5"


def test_default_jobs_use_the_default_queue_when_maintenance_is_not_configured(defaults, settings):
    settings.JOBS_QUEUES = ["default", "vision"]

    defaults.jobs_init_defaults()

    assert set(Job.objects.values_list("queue", flat=True)) == {"default"}
    assert set(PeriodicTask.objects.filter(name__startswith="job:").values_list("queue", flat=True)) == {"default"}


def test_every_default_job_runs_its_task(defaults, settings, tmp_path):
    # The defaults name tasks that exist and accept their stored kwargs.
    settings.JOBS_TEMP_DIR = tmp_path
    settings.MCP_SERVER_URLS = []
    cleanup = dict(defaults.jobs_init_defaults())
    job = next(job for job in cleanup if job.name == "document_cleanup")

    execution = services.job_execute(job=job, force=True)
    execution = services.execution_run(execution_id=execution.pk, task_id=execution.celery_task_id, worker="t")

    assert execution.status == "success", execution.error
    assert execution.result["cleanup_level"] == "standard"


# ---------------------------------------------------------------------------
# post_migrate
# ---------------------------------------------------------------------------
def test_migrate_installs_the_default_jobs_when_enabled(defaults, settings):
    settings.JOBS_CREATE_DEFAULT_JOBS = True
    out = io.StringIO()

    call_command("migrate", verbosity=1, stdout=out)

    assert set(Job.objects.values_list("name", flat=True)) == set(DEFAULT_NAMES)
    assert f"Installed default jobs: {', '.join(DEFAULT_NAMES)}" in out.getvalue()

    # and again: nothing new, nothing printed
    out = io.StringIO()
    call_command("migrate", verbosity=1, stdout=out)
    assert Job.objects.count() == 5
    assert "Installed default jobs" not in out.getvalue()


def test_the_hook_is_off_when_the_setting_says_so(defaults, settings):
    settings.JOBS_CREATE_DEFAULT_JOBS = False

    defaults.create_default_jobs_after_migrate(sender=apps.get_app_config("scheduling"), using="default",
                                               stdout=io.StringIO())

    assert not Job.objects.exists()


def test_the_hook_only_acts_for_the_scheduling_app(defaults, settings):
    settings.JOBS_CREATE_DEFAULT_JOBS = True

    defaults.create_default_jobs_after_migrate(sender=apps.get_app_config("auth"), using="default")

    assert not Job.objects.exists()


def test_the_hook_waits_for_pending_migrations(defaults, settings, monkeypatch):
    settings.JOBS_CREATE_DEFAULT_JOBS = True
    monkeypatch.setattr(defaults, "_fully_migrated", lambda using: False)
    out = io.StringIO()

    defaults.create_default_jobs_after_migrate(sender=apps.get_app_config("scheduling"), using="default", stdout=out)

    assert not Job.objects.exists()
    assert "migrations are still pending" in out.getvalue()


def test_the_hook_reports_a_failure_without_failing_migrate(defaults, settings, monkeypatch):
    settings.JOBS_CREATE_DEFAULT_JOBS = True

    def broken(**kwargs):
        raise RuntimeError("no can do")

    monkeypatch.setattr(defaults, "jobs_init_defaults", broken)
    out = io.StringIO()

    defaults.create_default_jobs_after_migrate(sender=apps.get_app_config("scheduling"), using="default", stdout=out)

    assert "Default jobs not installed (RuntimeError: no can do); retry with `jobs init-defaults`." in out.getvalue()
