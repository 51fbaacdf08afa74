"""``./manage jobs ...`` (seed 003 "CLI Commands"), through call_command; one
test runs the real ``./manage`` wrapper in a subprocess."""
import builtins
import re
import subprocess
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from jobsite.runtime import free_port
from scheduling import services
from scheduling.executors import schedulable
from scheduling.executors.base import RunResult
from scheduling.cli import handlers
from scheduling.cli.parser import EXAMPLES
from scheduling.management.commands.jobs import Command
from scheduling.models import AuditLog, Execution, Job
from tests.factories import ExecutionFactory, JobFactory
from tests.faults.support import celery_app_on
from tests.worker import worker_env

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[3]


@schedulable("tests.cli_noop", description="Does nothing (CLI test task).")
def noop(*, execution, **kw):
    return RunResult(output="ok", result={"kwargs": kw})


def jobs(*args) -> str:
    """What a person sees: stdout, and the notes piped output sends to stderr."""
    out = StringIO()
    call_command("jobs", *[str(a) for a in args], stdout=out, stderr=out)
    return out.getvalue()


def jobs_error(*args) -> tuple[str, str]:
    """Run a subcommand that must fail; return (its one-line error, what it printed)."""
    out = StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("jobs", *[str(a) for a in args], stdout=out)
    message = str(excinfo.value)
    assert "\n" not in message, message
    return message, out.getvalue()


def make_job(name="nightly", **kwargs):
    defaults = {"schedule_type": "daily", "schedule_expression": "02:00", "task_name": "tests.cli_noop"}
    return JobFactory(name=name, **{**defaults, **kwargs})


SEED_CREATE = [
    "create", "system_backup", "System Backup Job", "database_maintenance", "daily", "03:00",
    "app.tasks.backup.create_backup", "--description", "Daily system backup", "--queue", "backup",
    "--priority", "8", "--timeout", "7200", "--enabled",
]


# -- create ------------------------------------------------------------------
def test_create_with_the_seed_flags():
    # given the seed-003 example with a registered task and a configured queue
    args = list(SEED_CREATE)
    args[6], args[10] = "tests.cli_noop", "maintenance"
    # when
    output = jobs(*args)
    # then
    job = Job.objects.get(name="system_backup")
    assert f"Created job 'system_backup' (id {job.pk})" in output
    assert "At 03:00 (UTC)" in output
    assert (job.title, job.job_type, job.schedule_type, job.schedule_expression) == (
        "System Backup Job", "database_maintenance", "daily", "03:00")
    assert (job.description, job.queue, job.priority, job.timeout_seconds, job.is_enabled) == (
        "Daily system backup", "maintenance", 8, 7200, True)
    assert job.periodic_task.enabled is True
    audit = AuditLog.objects.get(action="create", object_id=str(job.pk))
    assert audit.actor_label == "cli"


def test_seed_example_with_an_unregistered_task_is_refused_in_one_readable_line():
    message, _ = jobs_error(*SEED_CREATE)
    assert "task_name: 'app.tasks.backup.create_backup' is not a schedulable task. Available:" in message
    assert "tests.cli_noop" in message
    assert "queue: Unknown queue 'backup'" in message
    assert not Job.objects.exists()


def test_create_disabled_with_timezone_kwargs_and_retries():
    jobs("create", "digest", "Digest", "user_activity_digest", "weekly", "0:09:00", "tests.cli_noop",
         "--disabled", "--timezone", "Europe/Paris", "--kwargs", '{"days": 7}', "--max-retries", "3")
    job = Job.objects.get(name="digest")
    assert job.is_enabled is False and job.periodic_task.enabled is False
    assert (job.timezone, job.task_kwargs, job.max_retries) == ("Europe/Paris", {"days": 7}, 3)


@pytest.mark.parametrize(
    "schedule_type, expression, expected",
    [
        ("cron", "0 2 * *", "schedule_expression: Invalid cron expression: 0 2 * *. Expected 5 parts"),
        ("daily", "25:00", "schedule_expression: Invalid daily schedule '25:00'"),
        ("hourly", "5", "schedule_type: Unknown schedule type 'hourly'"),
    ],
)
def test_create_with_an_invalid_schedule_fails_naming_the_field(schedule_type, expression, expected):
    message, _ = jobs_error("create", "bad", "Bad", "custom", schedule_type, expression, "tests.cli_noop")
    assert message.startswith(expected)
    assert not Job.objects.exists()


def test_create_with_malformed_kwargs_json_is_an_argument_error():
    message, _ = jobs_error("create", "x", "X", "custom", "interval", "30", "tests.cli_noop", "--kwargs", "{nope")
    assert "--kwargs" in message and "not valid JSON" in message


def test_create_with_a_taken_name_is_a_conflict():
    make_job("nightly")
    message, _ = jobs_error("create", "nightly", "Again", "custom", "interval", "30", "tests.cli_noop")
    assert message == "A job named 'nightly' already exists."


# -- list ----------------------------------------------------------------------
def test_list_piped_is_tab_separated_with_whole_names_and_a_page_footer():
    job = make_job("nightly", job_type="database_maintenance")
    ExecutionFactory(job=job, status=Execution.Status.SUCCESS, duration_seconds=2.0)
    Job.objects.filter(pk=job.pk).update(total_runs=4, successful_runs=3, last_status="success")
    make_job("every30", schedule_type="interval", schedule_expression="30")
    long_name = "predictions.bulk-upload_analytics_aggregation_for_every_organization_nightly"
    make_job(long_name, description="x " * 200)

    Job.objects.filter(pk=job.pk).update(last_finished_at=timezone.now() - timedelta(minutes=3))  # last_status's time
    make_job("off", is_enabled=False)

    output = jobs("list")  # not a terminal (a StringIO): tab-separated, header first

    lines = output.splitlines()
    assert lines[0].split("\t") == ["ID", "Name", "Schedule", "Status", "Last run", "Next run", "Runs (success)"]
    rows = {fields[1]: fields for fields in (line.split("\t") for line in lines[1:5])}
    assert set(rows) == {"nightly", "every30", long_name, "off"}  # one row per line, names whole
    assert all(len(fields) == 7 for fields in rows.values())
    assert rows["nightly"][2:4] == ["At 02:00 (UTC)", "active"]  # schedules in words
    assert rows["nightly"][4] == "success 3m ago" and rows["nightly"][5].startswith("in ")
    assert rows["nightly"][6] == "4 (75.0%)"
    assert rows["every30"][2] == "Every 30 minutes"
    assert rows["off"][3:] == ["disabled", "-", "-", "0"]
    assert "…" not in output
    assert output.rstrip().endswith("\nPage 1 of 1 (4 jobs)")
    # stdout alone is the table: the page line went to stderr
    stdout, stderr = StringIO(), StringIO()
    call_command("jobs", "list", stdout=stdout, stderr=stderr)
    assert stdout.getvalue().splitlines() == lines[:5]
    assert stderr.getvalue() == "Page 1 of 1 (4 jobs)\n"


def test_list_filters():
    make_job("a", job_type="system_health_check")
    paused = make_job("b")
    services.job_pause(job=paused)
    make_job("c", is_enabled=False)
    overdue = make_job("d")
    Job.objects.filter(pk=overdue.pk).update(next_run_at=timezone.now() - timedelta(hours=1))

    def names(*args):
        return {n for n in "abcd" if re.search(rf"^\d+\s+{n}\s", jobs("list", *args), re.M)}

    assert names() == {"a", "b", "c", "d"}
    assert names("--status", "paused") == {"b"}
    assert names("--type", "system_health_check") == {"a"}
    assert names("--enabled-only") == {"a", "b", "d"}
    assert names("--overdue-only") == {"d"}


def test_list_pagination():
    for name in ("a", "b", "c"):
        make_job(name)
    output = jobs("list", "--page", 2, "--size", 2)
    assert re.search(r"^\d+\s+c\s", output, re.M) and not re.search(r"^\d+\s+a\s", output, re.M)
    assert "Page 2 of 2 (3 jobs)" in output
    message, _ = jobs_error("list", "--page", 3, "--size", 2)
    assert message == "Page 3 does not exist: there are 2 page(s) of 2."


def test_list_without_jobs():
    assert jobs("list").splitlines()[-1] == "Page 1 of 1 (0 jobs)"
    assert jobs_error("list", "--page", 2)[0] == "Page 2 does not exist: there are 1 page(s) of 20."


# -- show ----------------------------------------------------------------------
@pytest.mark.parametrize("by", ["id", "name"])
def test_show_by_id_or_name(by):
    job = make_job("nightly", timezone="Europe/Paris")
    for status in (Execution.Status.SUCCESS, Execution.Status.FAILED):
        ExecutionFactory(job=job, status=status, duration_seconds=1.5, output=f"run {status}")

    output = jobs("show", job.pk if by == "id" else job.name)

    assert f"Job {job.pk}: nightly" in output
    assert "daily 02:00 (Europe/Paris)" in output
    assert "At 02:00 (Europe/Paris)" in output
    next_runs = output.split("Next 5 runs (Europe/Paris)")[1].split("Statistics")[0]
    assert len(re.findall(r"\d{4}-\d\d-\d\d 02:00:00 CES?T", next_runs)) == 5
    assert re.search(r"Success rate\s+50.0%", output)
    assert "run success" in output and "run failed" in output
    assert "secrets" not in output.lower()


def test_a_schedule_that_cannot_be_put_in_words_still_shows():
    # a valid cron that cron_descriptor cannot phrase
    job = make_job("odd", schedule_type="cron", schedule_expression="6 6 * 1-5 */7")
    output = jobs("show", "odd")
    assert re.search(r"Schedule description\s+\(cannot describe this schedule\)", output)
    assert len(re.findall(r"^  \d{4}-\d\d-\d\d 06:06:00 UTC$", output, re.M)) == 5
    output = jobs("validate-schedule", "cron", job.schedule_expression)
    assert "Valid: yes" in output and "Description: (cannot describe this schedule)" in output


def test_show_unknown_job_fails():
    assert jobs_error("show", 999)[0] == "Job 999 not found."
    assert jobs_error("show", "nope")[0] == "Job nope not found."


# -- update --------------------------------------------------------------------
def test_update_schedule_priority_and_enabled():
    job = make_job("nightly")

    output = jobs("update", job.pk, "--schedule", "04:00")
    assert "schedule_expression: '02:00' -> '04:00'" in output
    job.refresh_from_db()
    assert job.periodic_task.crontab.hour == "4"

    jobs("update", "nightly", "--priority", 9)
    jobs("update", "nightly", "--disabled")
    job.refresh_from_db()
    assert job.priority == 9 and job.is_enabled is False and job.periodic_task.enabled is False

    jobs("update", job.pk, "--enabled", "--schedule-type", "cron", "--schedule", "0 */6 * * *", "--timezone", "Asia/Tokyo")
    job.refresh_from_db()
    assert (job.is_enabled, job.schedule_type, job.schedule_expression, job.timezone) == (True, "cron", "0 */6 * * *", "Asia/Tokyo")
    assert job.periodic_task.enabled is True


def test_update_errors():
    job = make_job("nightly")
    assert jobs_error("update", job.pk, "--schedule", "nope")[0] == (
        "schedule_expression: Invalid daily schedule 'nope': time must be HH:MM.")
    assert jobs_error("update", job.pk, "--priority", 12)[0].startswith("priority: Priority must be")
    assert jobs_error("update", job.pk)[0].startswith("Nothing to update")
    assert jobs_error("update", 999, "--priority", 1)[0] == "Job 999 not found."
    job.refresh_from_db()
    assert (job.schedule_expression, job.priority) == ("02:00", 5)


# -- delete --------------------------------------------------------------------
def test_delete_asks_and_deletes_on_yes(monkeypatch):
    job = make_job("nightly")
    ExecutionFactory.create_batch(2, job=job)
    asked = []
    monkeypatch.setattr(builtins, "input", lambda *a: asked.append(a) or "y")

    output = jobs("delete", "nightly")

    assert f"Delete job 'nightly' (id {job.pk}) and its 2 executions? [y/N]" in output
    assert f"Deleted job 'nightly' (id {job.pk})." in output
    assert asked and not Job.objects.exists() and not Execution.objects.exists()
    assert not PeriodicTask.objects.filter(name=f"job:{job.pk}").exists()


@pytest.mark.parametrize("answer", ["n", "", "EOF"])
def test_a_declined_delete_says_nothing_deleted_and_succeeds(monkeypatch, answer):
    job = make_job("nightly")

    def fake_input(*args):
        if answer == "EOF":
            raise EOFError
        return answer

    monkeypatch.setattr(builtins, "input", fake_input)
    output = jobs("delete", job.pk)  # no CommandError: exit 0
    assert "and its 0 executions? [y/N]" in output
    assert "Nothing deleted: job 'nightly' was kept" in output
    assert Job.objects.filter(pk=job.pk).exists()


def test_delete_without_any_stdin_is_a_no():
    # pytest's captured stdin cannot be read: like a closed stdin, that is a No.
    job = make_job("nightly")
    assert "Nothing deleted" in jobs("delete", job.pk)
    assert Job.objects.filter(pk=job.pk).exists()


def test_delete_force_skips_the_question(monkeypatch):
    job = make_job("nightly")
    monkeypatch.setattr(builtins, "input", lambda *a: pytest.fail("asked"))
    assert "Deleted job 'nightly'" in jobs("delete", job.pk, "--force")
    assert not Job.objects.exists()


# -- execute / cancel / executions -----------------------------------------------
def test_execute_queues_a_cli_execution_and_sends_it_on_commit(django_capture_on_commit_callbacks):
    job = make_job("nightly")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        output = jobs("execute", job.pk, "--kwargs", '{"level": "deep"}')
    execution = Execution.objects.get(job=job)
    assert f"Queued execution {execution.pk} of job 'nightly'" in output
    assert f"Celery task id: {execution.celery_task_id}" in output
    assert (execution.trigger, execution.status, execution.override_kwargs) == ("cli", "queued", {"level": "deep"})
    assert len(callbacks) == 1  # the Celery message goes out only after commit


@pytest.mark.django_db(transaction=True)
def test_execute_with_the_broker_down_is_one_clear_error(settings):
    job = make_job("nightly")

    with celery_app_on(f"redis://127.0.0.1:{free_port()}/0", settings):  # nothing listens there
        message, _ = jobs_error("execute", job.pk)
    assert message == f"Execution {job.executions.get().pk} could not be queued: the task broker is unreachable."
    assert job.executions.get().status == "error"


def test_execute_paused_job_needs_force():
    job = make_job("nightly")
    services.job_pause(job=job)
    message, _ = jobs_error("execute", "nightly")
    assert message == "Job 'nightly' is paused; use force to run it anyway."
    jobs("execute", "nightly", "--force")
    assert Execution.objects.filter(job=job, trigger="cli").count() == 1


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_execute_wait_prints_the_outcome(celery_worker_process):
    job = make_job("nightly", task_name="tests.echo")  # run by the real worker
    output = jobs("execute", job.pk, "--wait", 20)
    execution = Execution.objects.get(job=job)
    assert f"Execution {execution.pk} finished: success" in output
    assert re.search(r"Output\s+echo", output)


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_execute_wait_exits_non_zero_when_the_run_fails(celery_worker_process):
    job = make_job("failing", task_name="tests.fail", task_kwargs={"message": "disk full"})
    message, output = jobs_error("execute", job.pk, "--wait", 20)
    assert "finished: failed" in output
    assert message.endswith("ended failed: RuntimeError: disk full")


def test_execute_wait_gives_up_after_the_timeout(monkeypatch):
    job = make_job("nightly")
    monkeypatch.setattr(handlers, "sleep", lambda seconds: None)
    message, _ = jobs_error("execute", job.pk, "--wait", "0.01")
    assert "is still queued after 0.01s" in message


def test_cancel_a_queued_execution():
    job = make_job("nightly")
    execution = services.job_execute(job=job)
    output = jobs("cancel", execution.pk)
    assert f"Cancelled execution {execution.pk} of job 'nightly'." in output
    assert execution.celery_task_id in output
    execution.refresh_from_db()
    assert execution.status == "cancelled" and execution.error.startswith("Cancelled by cli")
    assert jobs_error("cancel", execution.pk)[0].startswith(f"Execution {execution.pk} is already cancelled")
    assert jobs_error("cancel", 999)[0] == "Execution 999 not found."


def test_executions_lists_newest_first_with_limit_and_status():
    job = make_job("nightly")
    for status in ("success", "failed", "success"):
        ExecutionFactory(job=job, status=status, output=f"was {status}")
    output = jobs("executions", "nightly")
    assert "Showing 3 of 3 executions" in output
    ids = [int(m) for m in re.findall(r"^(\d+)\s+(?:success|failed)", output, re.M)]
    assert ids == sorted(ids, reverse=True)
    assert "Showing 1 of 3" in jobs("executions", job.pk, "--limit", 1)
    output = jobs("executions", job.pk, "--status", "failed")
    assert "was failed" in output and "was success" not in output


# -- pause / resume / overdue / stats ------------------------------------------------
def test_pause_and_resume():
    job = make_job("nightly")
    assert "Paused job 'nightly'" in jobs("pause", "nightly")
    job.refresh_from_db()
    assert job.status == "paused" and job.periodic_task.enabled is False and job.next_run_at is None
    assert "Resumed job 'nightly'" in jobs("resume", job.pk)
    job.refresh_from_db()
    assert job.status == "active" and job.periodic_task.enabled is True and job.next_run_at is not None


def test_overdue():
    job = make_job("late")
    make_job("on_time")
    assert jobs("overdue").strip() == "No overdue jobs."
    Job.objects.filter(pk=job.pk).update(next_run_at=timezone.now() - timedelta(hours=2))
    output = jobs("overdue")
    assert re.search(r"^\d+\s+late\s", output, re.M) and "on_time" not in output
    assert "1 overdue job." in output


def test_stats_renders_overview_tables():
    job = make_job("nightly", job_type="document_cleanup")
    ExecutionFactory(job=job, status="success", duration_seconds=2.0)
    ExecutionFactory(job=job, status="failed", duration_seconds=4.0)
    make_job("off", is_enabled=False)

    output = jobs("stats")

    # active, paused and disabled partition the jobs: the disabled one is not also active
    assert "Total\tEnabled\tDisabled\tActive\tPaused\tOverdue\n2\t1\t1\t1\t0\t0\n" in output
    assert "Period\tRuns\tSucceeded\tFailed\tCancelled\tRate\tAvg time\tp95 time\n" in output  # headers whole
    assert "All time\t2\t1\t1\t0\t50.0%\t3.0s\t" in output  # numbers whole
    assert re.search(r"document_cleanup\s+1\s+1\s+2", output)
    assert "Now queued: 0, running: 0" in output


# -- validate-schedule ---------------------------------------------------------------
def test_validate_schedule_daily_in_new_york():
    output = jobs("validate-schedule", "daily", "14:30", "--timezone", "America/New_York")
    assert "Valid: yes" in output
    assert "At 14:30 (America/New_York)" in output
    runs = re.findall(r"^  (\d{4}-\d\d-\d\d 14:30:00 E[SD]T)  \((.+) UTC\)$", output, re.M)
    assert len(runs) == 5
    assert all(utc.endswith(("18:30:00", "19:30:00")) for _, utc in runs)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["interval", "30"], "Every 30 minutes"),
        (["weekly", "1:10:00"], "At 10:00, only on Tuesday (UTC)"),
        (["monthly", "1:08:00"], "At 08:00, on day 1 of the month (UTC)"),
        (["cron", "0 2 * * 1"], "At 02:00, only on Monday (UTC)"),
    ],
)
def test_validate_schedule_types(args, expected):
    output = jobs("validate-schedule", *args)
    assert "Valid: yes" in output and expected in output


def test_validate_schedule_invalid_exits_non_zero():
    message, output = jobs_error("validate-schedule", "weekly", "9:10:00")
    assert "Valid: no" in output
    assert message.startswith("schedule_expression: Invalid weekly schedule '9:10:00'")
    message, _ = jobs_error("validate-schedule", "daily", "09:30", "--timezone", "Mars/Base")
    assert message.startswith("timezone: Unknown time zone 'Mars/Base'")


# -- tasks / init-defaults / sync-beat -------------------------------------------------
def test_tasks_lists_schedulable_tasks():
    output = jobs("tasks")
    assert re.search(r"tests\.cli_noop\s+default\s+Does nothing \(CLI test task\)\.", output)


def test_init_defaults_installs_the_seed_jobs_once():
    Job.objects.all().delete()  # whatever migrate installed: start from none
    output = jobs("init-defaults")
    assert re.search(r"created\s+system_health_check", output)
    assert set(Job.objects.values_list("name", flat=True)) >= {
        "system_health_check", "document_cleanup", "analytics_aggregation", "database_maintenance",
        "mcp_server_health_check",
    }
    assert output.rstrip().endswith("Default jobs initialised.")
    audit = AuditLog.objects.get(action="create", object_id=str(Job.objects.get(name="system_health_check").pk))
    assert audit.actor_label == "cli"
    again = jobs("init-defaults")
    assert "created" not in again and re.search(r"exists\s+system_health_check", again)


def test_sync_beat_reports_and_repairs_drift():
    job = make_job("nightly")
    assert "Beat is in sync" in jobs("sync-beat")
    # given: the job's PeriodicTask is gone and a stray one is left behind
    PeriodicTask.objects.filter(pk=job.periodic_task_id).delete()
    every_minute, _ = IntervalSchedule.objects.get_or_create(every=60, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="job:99999", task="scheduling.run_job", interval=every_minute)

    message, output = jobs_error("sync-beat")
    assert f"Missing PeriodicTask (1): nightly (id {job.pk})" in output
    assert "Orphan PeriodicTasks (1): job:99999" in output
    assert message.startswith("Beat is out of sync (1 missing, 0 mismatched, 1 orphans)")

    assert "Repaired" in jobs("sync-beat", "--repair")
    assert "Beat is in sync" in jobs("sync-beat")
    job.refresh_from_db()
    assert job.periodic_task is not None


# -- help --------------------------------------------------------------------------
def test_every_subcommand_has_help_with_examples():
    parser = Command().create_parser("manage.py", "jobs")
    subparsers = next(a for a in parser._actions if a.dest == "subcommand").choices
    assert set(subparsers) == set(EXAMPLES) == set(handlers.HANDLERS)
    for name, subparser in subparsers.items():
        text = subparser.format_help()
        assert "examples:" in text and f"./manage jobs {name}" in text, name
        assert "exit codes:" in text and "130  interrupted (Ctrl-C)" in text, name


# -- the real wrapper --------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_manage_wrapper_runs_jobs_list():
    # ./manage against the session's migrated test database (committed rows: the flush
    # after the test empties it), not a database migrated anew for this test
    env = worker_env()

    def manage(*args):
        return subprocess.run(["./manage", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    installed = manage("jobs", "init-defaults")  # idempotent, whether or not migrate installed them already
    assert installed.returncode == 0, installed.stderr
    listed = manage("jobs", "list")
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"^\d+\s+system_health_check\s+Every 15 minutes\s+active\s", listed.stdout, re.M)
    assert listed.stderr == "Page 1 of 1 (5 jobs)\n"  # piped: stdout is the table alone

    absent = Job.objects.order_by("-pk").values_list("pk", flat=True).first() + 1000  # ids go on across tests
    missing = manage("jobs", "show", str(absent))
    assert missing.returncode == 1
    assert f"Job {absent} not found." in missing.stderr


def test_overdue_lists_a_fired_one_off_whose_run_never_started(settings):
    # given a one-off that beat fired, whose run no worker took within the grace period
    settings.JOBS_OVERDUE_GRACE_SECONDS = 60
    job = make_job("once-stuck", schedule_type="once",
                   schedule_expression=(timezone.now() + timedelta(hours=1)).isoformat())
    queued = services.job_dispatch_scheduled(job_id=job.pk)
    Execution.objects.filter(pk=queued.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    Job.objects.filter(pk=job.pk).update(is_enabled=True)  # as before the fix: still enabled
    # then `jobs overdue` shows it, late since the run was queued
    output = jobs("overdue")
    assert "once-stuck" in output and "1 overdue job." in output
    assert re.search(r"once-stuck.*\t5m\t", output)  # late by 5m: jobsite.humanize's format


def test_catch_up_policy_on_create_and_update():
    jobs("create", "catchy", "Catchy", "custom", "interval", "5", "tests.cli_noop", "--catch-up", "all")
    assert Job.objects.get(name="catchy").catch_up_policy == "all"
    jobs("update", "catchy", "--catch-up", "skip")
    assert Job.objects.get(name="catchy").catch_up_policy == "skip"
    with pytest.raises(CommandError, match="invalid choice"):
        jobs("update", "catchy", "--catch-up", "sometimes")
