"""``./manage jobs`` as people meet it: global options anywhere, did you mean,
help that never breaks a word, a terminal table that never cuts a name, and
Ctrl-C on --wait that ends quietly with 130."""
import json
import re
import subprocess
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from scheduling import services
from scheduling.cli.parser import HELP
from scheduling.management.commands.jobs import Command
from scheduling.models import Execution, Job
from tests.factories import ExecutionFactory, JobFactory
from tests.jobsite.cli.terminal import interruptible, run_in_terminal, visible
from tests.worker import worker_env

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[3]
LONG_NAME = "analytics_aggregation_of_every_organization_and_every_day"


def jobs(*args) -> str:
    """What a person sees: stdout, and the notes piped output sends to stderr."""
    out = StringIO()
    call_command("jobs", *[str(a) for a in args], stdout=out, stderr=out)
    return out.getvalue()


def manage(*args, env=None, timeout=60):
    return subprocess.run(["./manage", *args], cwd=ROOT, env=env or worker_env(), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def make_job(name, **kwargs):
    return JobFactory(name=name, **{"schedule_type": "daily", "schedule_expression": "02:00", "task_name": "tests.noop",
                                    **kwargs})


# -- global options anywhere ------------------------------------------------------------
def test_global_options_work_after_the_subcommand():
    make_job("nightly")
    assert jobs("list", "-v", "2", "--no-color", "--skip-checks") == jobs("list")
    assert jobs("list", "--verbosity=0", "--traceback", "--force-color").count("nightly") == 1


def test_json_goes_before_or_after_the_subcommand_where_it_applies():
    make_job("nightly")
    assert json.loads(jobs("--json", "list")) == json.loads(jobs("list", "--json"))
    with pytest.raises(CommandError, match=r"--json does not apply to `jobs pause`") as refused:
        jobs("--json", "pause", "nightly")
    assert refused.value.returncode == 2
    assert Job.objects.get(name="nightly").state == "active"  # refused before anything was done


@pytest.mark.django_db(transaction=True)
def test_settings_and_verbosity_after_the_subcommand_through_the_real_manage():
    make_job("nightly")
    result = manage("jobs", "list", "--settings", "jobsite.settings", "-v", "2", "--no-color")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^\d+\tnightly\t", result.stdout, re.M)


# -- did you mean ---------------------------------------------------------------------
def test_a_mistyped_subcommand_gets_did_you_mean():
    result = manage("jobs", "lsit")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("./manage jobs: error: unknown subcommand 'lsit'; did you mean 'list'? (one of: list, show, ")
    assert line.endswith(") (see `./manage jobs --help`)")


def test_a_mistyped_choice_gets_did_you_mean():
    with pytest.raises(CommandError, match=r"invalid choice: 'activ'; did you mean 'active'\?"):
        jobs("list", "--status", "activ")
    with pytest.raises(CommandError, match=r"did you mean 'validate-schedule'\?"):
        jobs("validate-shedule", "daily", "09:00")


# -- help ----------------------------------------------------------------------------
def words(text: str) -> set[str]:
    return set(text.split())


@pytest.mark.parametrize("columns", [40, 80])
def test_help_never_breaks_a_word(monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    parser = Command().create_parser("manage.py", "jobs")
    text = parser.format_help()
    assert words(HELP) <= words(text)  # every word of the description whole ("validate-schedule" too)
    assert "./manage jobs list --json | jq '.items[].name'" in text  # examples as written
    prose = text.split("\nexamples:")[0].split("\nsubcommands:")[1]
    assert all(len(line) <= max(columns - 2, 40) or " " not in line.strip() for line in prose.splitlines())
    assert "exit codes:\n  0    done\n  1    refused or failed" in text
    assert "go anywhere on the line" in " ".join(text.split())  # global options


def test_long_choices_move_from_the_usage_into_the_help():
    parser = Command().create_parser("manage.py", "jobs")
    text = next(a for a in parser._actions if a.dest == "subcommand").choices["list"].format_help()
    usage = text.split("\n\n")[0]
    assert "--type JOB_TYPE" in usage and "document_cleanup" not in usage
    assert "One of: document_cleanup, analytics_aggregation," in " ".join(text.split())


# -- a terminal ------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_terminal_table_fits_its_width_and_cuts_only_free_text():
    make_job(LONG_NAME, schedule_type="cron", schedule_expression="0 9 1 * 1")
    make_job("short")
    run = run_in_terminal(["./manage", "jobs", "list", "--no-color"], columns=140, env=worker_env(), cwd=ROOT)
    assert run.returncode == 0, run.output
    lines = visible(run.output).splitlines()
    header = lines[0]
    assert header.split() == ["ID", "Name", "Schedule", "Status", "Last", "run", "Next", "run", "Runs", "(success)"]
    row = next(line for line in lines if LONG_NAME in line)  # the name whole, on one line
    assert max(len(line) for line in lines) <= 140
    assert "…" in row  # the schedule in words gave way
    assert row.index(LONG_NAME) == header.index("Name")


@pytest.mark.django_db(transaction=True)
def test_stats_on_a_narrow_terminal_keeps_numbers_and_headers_whole():
    job = make_job("nightly")
    ExecutionFactory(job=job, status="success", duration_seconds=150.0)
    run = run_in_terminal(["./manage", "jobs", "stats", "--no-color"], columns=60, env=worker_env(), cwd=ROOT)
    assert run.returncode == 0, run.output
    text = visible(run.output)
    assert "…" not in text
    assert re.search(r"^All time +1 +1 +0 +0 +100\.0% +2m 30s +2m 30s$", text, re.M)  # one duration format
    assert re.search(r"Avg time +p95 time$", text, re.M)


def test_a_piped_table_keeps_long_names_whole_whatever_columns_says(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    make_job(LONG_NAME)
    lines = jobs("list").splitlines()
    assert lines[1].split("\t")[1] == LONG_NAME


# -- Ctrl-C on --wait ------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_ctrl_c_on_wait_ends_quietly_with_130():
    # no worker consumes this queue: the run stays queued, and --wait waits
    job = make_job("slow")
    Job.objects.filter(pk=job.pk).update(queue="cli-test-nobody-consumes")  # (not a queue the settings list)
    process = subprocess.Popen(["./manage", "jobs", "execute", "slow", "--wait", "60"], cwd=ROOT, env=worker_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                               preexec_fn=interruptible)
    try:
        shown = []
        for line in iter(process.stdout.readline, ""):
            shown.append(line)
            if "elapsed" in line:  # the first plain progress line: it is waiting
                break
        process.send_signal(2)  # SIGINT, as Ctrl-C sends
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    execution = Execution.objects.get(job=job)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines() == [stderr.strip()]
    assert stderr.startswith(f"interrupted: stopped waiting after ") and "CommandError" not in stderr
    assert f"execution {execution.pk} goes on (queued)" in stderr
    assert f"Execution {execution.pk}: queued  " in "".join(shown)  # not a terminal: a plain line, no \r
    services.execution_cancel(execution=execution, actor_label="test", reason="test over")  # no message left behind


@pytest.mark.django_db(transaction=True)
def test_wait_on_a_narrow_terminal_redraws_one_line_that_fits():
    from tests.jobsite.cli.progress_checks import redraws

    job = make_job("slow")
    Job.objects.filter(pk=job.pk).update(queue="cli-test-nobody-consumes")  # the run stays queued
    run = run_in_terminal(["./manage", "jobs", "execute", "slow", "--wait", "60"], columns=40, env=worker_env(),
                          cwd=ROOT, interrupt_after="elapsed")
    execution = Execution.objects.get(job=job)
    services.execution_cancel(execution=execution, actor_label="test", reason="test over")
    assert run.returncode == 130, run.output
    drawn = redraws(run.output)
    assert drawn and all(len(line) <= 39 for line in drawn), drawn
    assert drawn[0].endswith(f"Execution {execution.pk}: queued  0.0s elapsed")  # the hint did not fit: left out
    assert visible(run.output).rstrip().splitlines()[-1].startswith("interrupted: stopped waiting")
