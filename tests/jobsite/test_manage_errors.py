"""Every ``./manage`` command, Django's own included, turns a known failure
into one line on stderr that says what to do, with a conventional exit code,
and no traceback (jobsite.cli.entry): no database yet, an unmigrated one, one
that cannot be reached, a broker that cannot be reached, a missing SECRET_KEY
with DEBUG off, Ctrl-C. ``--traceback`` still shows the traceback."""
import os
import subprocess
from pathlib import Path

import pytest

from tests.jobsite.cli.terminal import interruptible

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE_REDIS = "redis://127.0.0.1:9/0"  # the discard port: nothing listens


@pytest.fixture
def env(tmp_path):
    """A fresh installation: SQLite under tmp_path, which nothing has created."""
    environment = {**os.environ, "JOBSITE_VAR_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    for name in ("DATABASE_URL", "DEBUG", "SECRET_KEY", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        environment.pop(name, None)
    return environment


def manage(*args, env, timeout=90):
    return subprocess.run(["./manage", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def one_line(result, returncode: int, *phrases) -> str:
    assert result.returncode == returncode, (result.stdout[-500:], result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and "CommandError" not in result.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    return lines[0]


def test_a_command_before_migrate_says_to_migrate_and_creates_no_database_file(env, tmp_path):
    result = manage("token", "admin", env=env)
    one_line(result, 1, "no database yet", "./manage migrate")
    assert not list(tmp_path.glob("jobsite.sqlite3*"))  # no empty file left to be taken for a database


def test_an_unmigrated_database_says_to_migrate(env, tmp_path):
    (tmp_path / "jobsite.sqlite3").touch()  # the empty file an older version left behind
    one_line(manage("token", "admin", env=env), 1, "not migrated", "./manage migrate")


def test_no_secret_key_with_debug_off_is_one_line(env):
    env = {**env, "DEBUG": "false", "DATABASE_URL": "postgres://jobsite:secret@127.0.0.1:9/jobsite"}
    line = one_line(manage("check", "--deploy", env=env), 1, "SECRET_KEY must be set when DEBUG is false")
    assert "secrets.token_urlsafe" in line  # how to make one


def test_an_unreachable_database_is_one_line(env):
    env = {**env, "DATABASE_URL": "postgres://jobsite:secret@127.0.0.1:9/jobsite"}
    line = one_line(manage("token", "admin", env=env), 1, "Cannot reach the database", "DATABASE_URL")
    assert "secret" not in line  # the password is never shown


def test_an_unreachable_broker_is_one_line_in_any_command(env):
    # Django's own `shell`, here: the entry catches it, not the command
    env = {**env, "REDIS_URL": UNREACHABLE_REDIS}
    program = "from jobsite.celery import app; app.connection_for_write().ensure_connection(max_retries=1)"
    one_line(manage("shell", "-c", program, env=env), 1, "Cannot reach the task broker at redis://127.0.0.1:9/0",
             "REDIS_URL")


def test_ctrl_c_in_any_command_is_one_quiet_line_and_exit_130(env):
    process = subprocess.Popen(
        ["./manage", "shell", "-c", "import time; print('ready', flush=True); time.sleep(60)"], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, preexec_fn=interruptible)
    try:
        assert any(line.strip() == "ready" for line in iter(process.stdout.readline, ""))  # after the shell's lines
        process.send_signal(2)  # SIGINT, as Ctrl-C sends
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert stderr.strip() == "interrupted"


def test_traceback_still_shows_the_traceback(env):
    result = manage("token", "admin", "--traceback", env=env)
    assert result.returncode == 1 and "Traceback" in result.stderr


def test_global_options_may_come_before_the_command_name(env, tmp_path):
    from jobsite.cli.entry import hoist_leading_options

    assert hoist_leading_options(["manage.py", "-v", "2", "--no-color", "jobs", "list"]) == [
        "manage.py", "jobs", "-v", "2", "--no-color", "list"]
    assert hoist_leading_options(["manage.py", "--settings=x", "check"]) == ["manage.py", "check", "--settings=x"]
    assert hoist_leading_options(["manage.py", "--help"]) == ["manage.py", "--help"]
    # through the real ./manage, before and after the command's name alike
    before = manage("--traceback", "-v", "0", "token", "admin", env=env)
    assert before.returncode == 1 and "Traceback" in before.stderr
