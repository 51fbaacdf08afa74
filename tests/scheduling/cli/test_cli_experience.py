"""A CLI people enjoy: --json with the API's shapes, one execution
in full, executions across jobs, --wait and Ctrl-C, one clear line and a
non-zero exit for what goes wrong (through the real ``./manage``), and tab
completion through a real bash."""
import json
import os
import re
import shlex
import subprocess
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from scheduling.cli import handlers
from scheduling.models import Execution, Job
from tests.factories import ExecutionFactory, JobFactory
from tests.worker import worker_env

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[3]


def jobs(*args) -> str:
    """What a person sees: stdout, and the notes piped output sends to stderr."""
    out = StringIO()
    call_command("jobs", *[str(a) for a in args], stdout=out, stderr=out)
    return out.getvalue()


def jobs_json(*args):
    return json.loads(jobs(*args, "--json"))


def make_job(name="nightly", **kwargs):
    return JobFactory(name=name, **{"schedule_type": "daily", "schedule_expression": "02:00", "task_name": "tests.noop",
                                    **kwargs})


# -- --json: the API's shapes, one definition ---------------------------------------
def test_json_of_every_read_command_is_the_apis(admin_api):
    job = make_job("nightly")
    late = make_job("late")
    Job.objects.filter(pk=late.pk).update(next_run_at=timezone.now() - timedelta(hours=2))
    run = ExecutionFactory(job=job, status="failed", error="RuntimeError: boom", duration_seconds=1.0)

    assert jobs_json("list") == admin_api.get("/api/v1/jobs/").json()
    assert jobs_json("show", "nightly") == admin_api.get(f"/api/v1/jobs/{job.pk}").json()
    assert jobs_json("execution", run.pk) == admin_api.get(f"/api/v1/executions/{run.pk}").json()
    assert jobs_json("overdue") == admin_api.get("/api/v1/jobs/overdue/list").json()
    assert jobs_json("tasks") == admin_api.get("/api/v1/jobs/tasks").json()
    stats = jobs_json("stats")
    api_stats = admin_api.get("/api/v1/jobs/stats/overview").json()
    assert {k: v for k, v in stats.items() if k != "generated_at"} == {
        k: v for k, v in api_stats.items() if k != "generated_at"}
    body = {"schedule_type": "daily", "schedule_expression": "09:30", "timezone": "Europe/Paris"}
    assert jobs_json("validate-schedule", "daily", "09:30", "--timezone", "Europe/Paris") == admin_api.post(
        "/api/v1/jobs/validate-schedule", body, format="json").json()
    listed = jobs_json("executions", "nightly")
    assert listed == {"items": admin_api.get(f"/api/v1/jobs/{job.pk}/executions").json()["items"], "total": 1}


def test_json_of_an_invalid_schedule_still_exits_1():
    out = StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("jobs", "validate-schedule", "daily", "25:00", "--json", stdout=out)
    body = json.loads(out.getvalue())
    assert body["valid"] is False and body["error"] == str(excinfo.value)


# -- one execution in full; executions across jobs ---------------------------------
def test_execution_shows_one_run_in_full():
    job = make_job("nightly")
    run = ExecutionFactory(
        job=job, status="failed", error="RuntimeError: asked to fail", output="", duration_seconds=1.00937,
        worker="worker1@host pid 42", override_kwargs={"level": "deep"}, result={"rows": 3},
        traceback='Traceback (most recent call last):\n  File "tasks.py", line 3, in fail\nRuntimeError: asked to fail',
        log="INFO starting\nWARNING almost out of disk",
    )
    output = jobs("execution", run.pk)
    assert f"Execution {run.pk} of job 'nightly' (id {job.pk})" in output
    assert re.search(r"^Status\s+failed$", output, re.M)
    assert re.search(r"^Duration\s+1\.0s$", output, re.M)
    assert re.search(r"^Worker\s+worker1@host pid 42$", output, re.M)
    assert '{"level": "deep"}' in output and '"rows": 3' in output
    traceback = output.split("Traceback\n", 1)[1]
    assert '  File "tasks.py", line 3, in fail' in traceback and "  RuntimeError: asked to fail" in traceback
    assert "  WARNING almost out of disk" in output.split("Log\n", 1)[1]
    assert jobs_error("execution", 999) == "Execution 999 not found."


def test_executions_across_jobs_by_status():
    a, b = make_job("alpha"), make_job("beta")
    running_a = ExecutionFactory(job=a, status="running", output="halfway")
    running_b = ExecutionFactory(job=b, status="running")
    ExecutionFactory(job=b, status="success", output="done")

    output = jobs("executions", "--status", "running")

    ids = [int(m) for m in re.findall(r"^(\d+)\s+(?:alpha|beta)\s+running", output, re.M)]
    assert ids == [running_b.pk, running_a.pk]
    assert "done" not in output
    assert "Showing 2 of 2 running executions across all jobs." in output
    assert "Showing 3 of 3 executions across all jobs." in jobs("executions")
    assert [i["job_name"] for i in jobs_json("executions", "--status", "running")["items"]] == ["beta", "alpha"]


# -- --wait --------------------------------------------------------------------------
def jobs_error(*args, returncode=1) -> str:
    with pytest.raises(CommandError) as excinfo:
        call_command("jobs", *[str(a) for a in args], stdout=StringIO())
    assert excinfo.value.returncode == returncode
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_ctrl_c_while_waiting_says_the_run_goes_on_and_how_to_cancel(monkeypatch):
    job = make_job("nightly")

    def interrupted(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(handlers, "sleep", interrupted)
    message = jobs_error("execute", job.pk, "--wait", 30, returncode=130)
    assert message.startswith("interrupted: stopped waiting")
    execution = Execution.objects.get(job=job)
    assert f"execution {execution.pk} goes on (queued)" in message
    assert f"./manage jobs cancel {execution.pk}" in message
    assert Execution.objects.get(pk=execution.pk).status == "queued"  # not cancelled


# -- through the real ./manage -----------------------------------------------------------
def manage(*args, env=None, timeout=60):
    return subprocess.run(["./manage", *args], cwd=ROOT, env=env or worker_env(), capture_output=True, text=True,
                          timeout=timeout)


def assert_one_clear_line(result, returncode: int, *phrases):
    assert result.returncode == returncode, (result.stdout[-500:], result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]


@pytest.mark.django_db(transaction=True)
def test_a_broken_pipe_is_one_line_and_exit_141():
    job = make_job("chatty")
    ExecutionFactory(job=job, status="success", output="done")
    # the reader is gone before anything is written (`| head -3` once its 3 lines are in)
    result = subprocess.run(["bash", "-o", "pipefail", "-c", f"./manage jobs show {job.pk} | true"],
                            cwd=ROOT, env=worker_env(), capture_output=True, text=True, timeout=60)
    assert_one_clear_line(result, 141, "broken pipe")


def test_no_database_yet_is_one_line_and_creates_no_file(tmp_path):
    env = {**os.environ, "JOBSITE_VAR_DIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)  # SQLite under tmp_path, which migrate has not created
    result = manage("jobs", "list", env=env)
    assert_one_clear_line(result, 1, "no database yet", "./manage migrate")
    assert not list(tmp_path.glob("jobsite.sqlite3*"))


def test_an_unmigrated_database_is_one_line(tmp_path):
    env = {**os.environ, "JOBSITE_VAR_DIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    (tmp_path / "jobsite.sqlite3").touch()  # a database file without tables
    result = manage("jobs", "list", env=env)
    assert_one_clear_line(result, 1, "not migrated", "./manage migrate")


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_broker_is_one_line():
    # the test database (already migrated, seen by the subprocesses), and a broker nothing listens on
    unreachable = "redis://127.0.0.1:9/0"
    env = worker_env({"REDIS_URL": unreachable, "CELERY_BROKER_URL": unreachable, "CELERY_RESULT_BACKEND": unreachable})
    created = manage("jobs", "create", "demo", "Demo", "custom", "interval", "30", "scheduling.system_health_check",
                     env=env)
    assert created.returncode == 0, created.stderr
    result = manage("jobs", "execute", "demo", env=env, timeout=120)
    assert_one_clear_line(result, 1, "the task broker is unreachable")


def test_a_bad_argument_is_one_line_and_exit_2():
    result = manage("jobs", "list", "--status", "nope")
    assert_one_clear_line(result, 2, "invalid choice: 'nope'", "./manage jobs list --help")


# -- tab completion ------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_bash_completes_subcommands_job_names_and_statuses(tmp_path):
    make_job("system_backup")
    make_job("system_check")
    make_job("other")
    ExecutionFactory(job=Job.objects.get(name="other"), status="running")
    script = jobs("completion", "bash")
    assert "complete -o default -F _jobsite_manage_jobs manage ./manage" in script
    # the script as the real ./manage prints it, once; each completion below still runs ./manage itself
    printed = manage("jobs", "completion", "bash")
    assert printed.returncode == 0 and printed.stdout == script, printed.stderr
    sourced = tmp_path / "jobs-completion.bash"
    sourced.write_text(printed.stdout)

    def complete(line: str) -> list[str]:
        words = line.split(" ")
        program = f"""
source {shlex.quote(str(sourced))}
COMP_LINE={line!r}; COMP_POINT=${{#COMP_LINE}}; COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}
_jobsite_manage_jobs
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
        result = subprocess.run(["bash", "-c", program], cwd=ROOT, env=worker_env(), capture_output=True, text=True,
                                timeout=60)
        return sorted(word.strip() for word in result.stdout.splitlines() if word.strip())

    assert "execution" in complete("./manage jobs exec")
    assert complete("./manage jobs show system_") == ["system_backup", "system_check"]
    assert complete("./manage jobs executions --status ru") == ["running"]
    assert complete("./manage jobs list --st") == ["--status"]
    running = str(Execution.objects.get(status="running").pk)
    assert running in complete("./manage jobs cancel ")


def test_zsh_completion_loads_through_bashcompinit():
    script = jobs("completion", "zsh")
    assert "bashcompinit" in script and "_jobsite_manage_jobs" in script


# -- the predictions CLI's read command --------------------------------------------------
def test_predictions_list_json_is_the_apis(admin_api, settings, tmp_path):
    from tests.predictions_files import annual_row, csv_bytes

    settings.PREDICTIONS_STORAGE_DIR = tmp_path / "storage"
    data = tmp_path / "companies.csv"
    data.write_bytes(csv_bytes([annual_row(i) for i in range(3)]))
    call_command("predictions", "upload", str(data), "--type", "annual", "--no-follow", stdout=StringIO())
    out = StringIO()
    call_command("predictions", "list", "--json", stdout=out)
    assert json.loads(out.getvalue()) == admin_api.get("/api/v1/predictions/jobs?limit=20").json()
