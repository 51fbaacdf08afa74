"""``./manage predictions`` as people meet it: file names never wrapped or
cut, tab-separated output when piped, a human ``show``, a progress line that
fits the terminal, a quiet Ctrl-C (130) and a declined delete (0), did you
mean, and help with a description, examples and exit codes everywhere."""
import io
import json
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from predictions.management.commands import predictions as command
from predictions.models import BulkUploadJob
from scheduling.models import Execution
from scheduling.services import sending
from tests.jobsite.cli.progress_checks import redraws
from tests.jobsite.cli.terminal import run_in_terminal, visible
from tests.predictions_files import annual_row, csv_bytes
from tests.worker import worker_env

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
LONG_FILE = "quarterly-default-risk-review_all-portfolio-companies_2026-Q3_final-version.csv"


@pytest.fixture(autouse=True)
def _storage(settings, tmp_path):
    settings.PREDICTIONS_STORAGE_DIR = tmp_path / "storage"


@pytest.fixture(autouse=True)
def _no_worker_takes_it(monkeypatch):
    """The uploads' runs are never sent: the session's worker (if another test
    started it) must not move them on while a test sets their state."""
    monkeypatch.setattr(sending, "_send_executions", lambda *args, **kwargs: None)


class Terminal(io.StringIO):
    def isatty(self):
        return True


def predictions(*args, stdout=None) -> str:
    out = stdout or io.StringIO()
    call_command("predictions", *[str(a) for a in args], stdout=out, stderr=io.StringIO())
    return out.getvalue()


def upload(tmp_path, name=LONG_FILE, rows=3) -> BulkUploadJob:
    path = tmp_path / name
    path.write_bytes(csv_bytes([annual_row(i) for i in range(rows)]))
    predictions("upload", path, "--type", "annual", "--no-follow")
    return BulkUploadJob.objects.get(original_filename=name)


def processing(job: BulkUploadJob, *, done=425_000, total=1_000_000, failed=1_234) -> BulkUploadJob:
    """As if a worker were 42.5% through a million rows, for 35 s."""
    Execution.objects.filter(pk=job.execution_id).update(status="running",
                                                         started_at=timezone.now() - timedelta(seconds=35))
    BulkUploadJob.objects.filter(pk=job.pk).update(total_rows=total, processed_rows=done, failed_rows=failed)
    return BulkUploadJob.objects.get(pk=job.pk)


# -- names whole; piped: tab-separated ----------------------------------------------------
def test_list_piped_is_tab_separated_with_the_file_name_whole(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")  # not a terminal: the width does not matter
    job = upload(tmp_path)
    lines = predictions("list").splitlines()
    assert lines[0].split("\t") == ["ID", "Type", "Status", "Rows", "OK", "Errors", "Created", "File"]
    assert lines[1].split("\t")[:4] == [str(job.pk), "annual", "pending", "3"]
    assert lines[1].split("\t")[-1] == LONG_FILE
    assert len(lines) == 2


@pytest.mark.django_db(transaction=True)
def test_list_on_a_narrow_terminal_keeps_ids_and_file_names_whole(tmp_path):
    job = upload(tmp_path)
    run = run_in_terminal(["./manage", "predictions", "list", "--no-color"], columns=80, env=worker_env(), cwd=ROOT)
    assert run.returncode == 0, run.output
    row = next(line for line in visible(run.output).splitlines() if str(job.pk) in line)
    assert row.rstrip().endswith(LONG_FILE)  # one line, nothing wrapped or cut


def test_show_is_for_people_and_json_is_the_detail(tmp_path):
    job = processing(upload(tmp_path))
    text = predictions("show", job.pk)
    pairs = dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)
    assert pairs["File"] == LONG_FILE and pairs["Status"] == "processing"
    assert pairs["Progress"] == "42.5% (425,000 of 1,000,000 rows)"
    assert pairs["Processing time"] == "35.0s"  # jobsite.humanize's format, as everywhere
    assert pairs["Time left"].endswith("s") and "ETA" not in text
    body = json.loads(predictions("show", job.pk, "--json"))
    assert body["id"] == str(job.pk) and body["file_info"]["original_filename"] == LONG_FILE


# -- progress that fits the terminal -------------------------------------------------------
def test_follow_on_a_100_column_terminal_redraws_within_the_width(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    job = processing(upload(tmp_path))
    polls = []

    def next_poll(seconds):  # the worker finishes after two polls
        polls.append(seconds)
        if len(polls) == 2:
            Execution.objects.filter(pk=job.execution_id).update(status="success", completed_at=timezone.now())
            BulkUploadJob.objects.filter(pk=job.pk).update(processed_rows=1_000_000, successful_rows=998_766)

    monkeypatch.setattr(command, "sleep", next_poll)
    out = Terminal()
    predictions("follow", job.pk, stdout=out)
    drawn = redraws(out.getvalue())
    assert len(drawn) == 3
    assert all(len(line) <= 99 for line in drawn), drawn
    assert "rows/s" in drawn[0] and "ETA" in drawn[0]  # what fits is shown: the rate and time left
    assert drawn[-1].startswith("[" + "#" * 10) and "100.0%" in drawn[-1]
    assert "Completed: 998,766 predictions, 1,234 row errors." in out.getvalue()


def test_follow_piped_writes_plain_lines(tmp_path, monkeypatch):
    job = processing(upload(tmp_path))
    monkeypatch.setattr(command, "sleep", lambda seconds: Execution.objects.filter(pk=job.execution_id).update(
        status="success", completed_at=timezone.now()))
    output = predictions("follow", job.pk)
    assert "\r" not in output and "\x1b" not in output
    assert output.splitlines()[0].startswith(" 42.5%  425,000/1,000,000 rows  1,234 errors  processing")


@pytest.mark.django_db(transaction=True)
def test_follow_in_a_real_narrow_terminal_never_wraps(tmp_path):
    job = processing(upload(tmp_path))
    run = run_in_terminal(["./manage", "predictions", "follow", str(job.pk)], columns=50, env=worker_env(), cwd=ROOT,
                          interrupt_after="rows")
    assert run.returncode == 130, run.output
    drawn = redraws(run.output.split("\ninterrupted")[0])
    assert drawn and all(len(line) <= 49 for line in drawn), drawn
    assert "interrupted: stopped following" in run.output and "CommandError" not in run.output


# -- Ctrl-C and a declined delete ------------------------------------------------------------
def test_ctrl_c_while_following_is_interrupted_130(tmp_path, monkeypatch):
    job = upload(tmp_path)

    def interrupted(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(command, "sleep", interrupted)
    with pytest.raises(CommandError) as excinfo:
        predictions("follow", job.pk)
    assert excinfo.value.returncode == 130
    assert str(excinfo.value).startswith(f"interrupted: stopped following; job {job.pk} goes on")
    assert BulkUploadJob.objects.filter(pk=job.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_a_declined_delete_says_nothing_deleted_and_exits_0(tmp_path):
    job = upload(tmp_path)
    Execution.objects.filter(pk=job.execution_id).update(status="success")
    result = subprocess.run(["./manage", "predictions", "delete", str(job.pk)], cwd=ROOT, env=worker_env(),
                            input="n\n", capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Delete upload" in result.stdout and f"Nothing deleted: upload {job.pk} was kept" in result.stdout
    assert result.stderr == ""
    assert BulkUploadJob.objects.filter(pk=job.pk).exists()
    assert "deleted successfully" in predictions("delete", job.pk, "--force")
    assert not BulkUploadJob.objects.filter(pk=job.pk).exists()


# -- did you mean; help ---------------------------------------------------------------------------
def test_a_mistyped_subcommand_gets_did_you_mean():
    with pytest.raises(CommandError, match=r"unknown subcommand 'lst'; did you mean 'list'\?"):
        predictions("lst")
    with pytest.raises(CommandError, match=r"invalid choice: 'anual'; did you mean 'annual'\?"):
        predictions("upload", "x.csv", "--type", "anual")


def test_global_options_and_json_anywhere(tmp_path):
    job = upload(tmp_path)
    assert json.loads(predictions("--json", "list"))["jobs"][0]["id"] == str(job.pk)
    assert json.loads(predictions("list", "--json", "-v", "2", "--no-color"))["count"] == 1


def test_every_subcommand_has_a_description_examples_and_exit_codes():
    parser = command.Command().create_parser("manage.py", "predictions")
    top = parser.format_help()
    assert "Bulk default-risk predictions" in top and "examples:" in top and "exit codes:" in top
    subparsers = next(a for a in parser._actions if a.dest == "subcommand").choices
    assert set(subparsers) == {"upload", "follow", "list", "show", "cancel", "delete", "results"}
    for name, subparser in subparsers.items():
        text = subparser.format_help()
        assert subparser.description, name
        assert f"examples:\n  ./manage predictions {name}" in text, name
        assert "exit codes:\n  0 " in text and "130  interrupted (Ctrl-C)" in text, name
