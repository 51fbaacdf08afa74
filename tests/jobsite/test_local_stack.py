"""How ./manage commands find the local stack `make run` started (var/stack.json),
and what runstack says when a port is taken (issue 26). The stack itself, on
other ports, is in test_local_stack_e2e.py."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from jobsite.management.commands.runstack import banner
from jobsite.runtime import (
    EmbeddedRedis,
    PortInUse,
    free_port,
    port_open,
    remove_stack_file,
    running_stack,
    stack_file,
    write_stack_file,
)

BASE_DIR = Path(settings.BASE_DIR)
BROKER_SETTINGS = {"REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "EMBEDDED_REDIS_PORT"}


def broker_url_seen_by_a_command(var_dir: Path, **extra_env) -> str:
    """CELERY_BROKER_URL as a fresh ./manage process reads it, with no broker setting in its environment."""
    env = {key: value for key, value in os.environ.items() if key not in BROKER_SETTINGS}
    env.update(JOBSITE_VAR_DIR=str(var_dir), **extra_env)
    code = "import django; django.setup(); from django.conf import settings; print(settings.CELERY_BROKER_URL)"
    done = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True,
                          timeout=60, check=True)
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def runstack_lookalike():
    """A live process whose command line names runstack, as `./manage runstack`'s does."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "manage.py", "runstack"])
    yield process
    process.kill()
    process.wait()


def test_a_command_uses_the_redis_of_the_running_stack(tmp_path, runstack_lookalike):
    write_stack_file(tmp_path, {"pid": runstack_lookalike.pid, "redis_url": "redis://127.0.0.1:16391/0",
                                "web_url": "http://127.0.0.1:8080"})

    assert broker_url_seen_by_a_command(tmp_path) == "redis://127.0.0.1:16391/0"
    assert stack_file(tmp_path).stat().st_mode & 0o777 == 0o600


def test_an_explicit_redis_url_or_broker_url_wins_over_the_stack_file(tmp_path, runstack_lookalike):
    write_stack_file(tmp_path, {"pid": runstack_lookalike.pid, "redis_url": "redis://127.0.0.1:16391/0"})

    assert broker_url_seen_by_a_command(tmp_path, REDIS_URL="redis://10.0.0.5:6379/2") == "redis://10.0.0.5:6379/2"
    assert broker_url_seen_by_a_command(tmp_path, CELERY_BROKER_URL="amqp://mq:5672//") == "amqp://mq:5672//"


def test_a_stack_file_left_by_a_dead_stack_is_not_used(tmp_path):
    # given: the file of a runstack that was killed (its pid is gone)
    gone = subprocess.Popen([sys.executable, "-c", "pass", "runstack"])
    gone.wait()
    write_stack_file(tmp_path, {"pid": gone.pid, "redis_url": "redis://127.0.0.1:16391/0"})

    assert running_stack(tmp_path) is None
    assert broker_url_seen_by_a_command(tmp_path) == "redis://127.0.0.1:6390/0"
    assert broker_url_seen_by_a_command(tmp_path, EMBEDDED_REDIS_PORT="6500") == "redis://127.0.0.1:6500/0"


def test_a_stack_file_whose_pid_now_belongs_to_another_program_is_not_used(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_stack_file(tmp_path, {"pid": other.pid, "redis_url": "redis://127.0.0.1:16391/0"})
        assert running_stack(tmp_path) is None
    finally:
        other.kill()
        other.wait()


def test_a_stack_removes_only_its_own_file(tmp_path, runstack_lookalike):
    write_stack_file(tmp_path, {"pid": runstack_lookalike.pid, "redis_url": "redis://127.0.0.1:16391/0"})

    remove_stack_file(tmp_path, pid=runstack_lookalike.pid + 1)
    assert running_stack(tmp_path)["redis_url"] == "redis://127.0.0.1:16391/0"
    remove_stack_file(tmp_path, pid=runstack_lookalike.pid)
    assert not stack_file(tmp_path).exists()
    assert running_stack(tmp_path) is None


@pytest.fixture
def taken_port():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_a_taken_web_port_is_one_line_that_says_what_to_do(taken_port, settings, tmp_path):
    settings.VAR_DIR = tmp_path

    with pytest.raises(CommandError) as raised:
        call_command("runstack", port=taken_port)

    message = str(raised.value)
    assert "\n" not in message
    assert f"Web port {taken_port} is already in use on 127.0.0.1" in message
    assert "make run PORT=" in message and "./manage runstack --port " in message


def test_a_taken_redis_port_is_one_line_that_says_what_to_do(taken_port, settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path
    monkeypatch.delenv("REDIS_URL")  # the embedded Redis is wanted

    with pytest.raises(CommandError) as raised:
        call_command("runstack", port=free_port(), redis_port=taken_port)

    message = str(raised.value)
    assert "\n" not in message
    assert f"Redis port {taken_port} is already in use on 127.0.0.1" in message
    assert "make run REDIS_PORT=" in message and "./manage runstack --redis-port " in message
    suggested = int(message.rsplit(" ", 1)[-1].rstrip(")"))
    # the port it suggests is one nothing answers on (binding it here could meet a
    # parallel test's client that holds it as its own end of a connection)
    assert suggested > taken_port and not port_open(suggested)
    assert not (tmp_path / "redis").exists() and not stack_file(tmp_path).exists()  # nothing was started
    with pytest.raises(PortInUse):
        EmbeddedRedis(port=taken_port, data_dir=tmp_path / "redis").start(2)


def test_a_second_stack_on_the_same_var_dir_is_refused(settings, tmp_path, runstack_lookalike):
    settings.VAR_DIR = tmp_path
    write_stack_file(tmp_path, {"pid": runstack_lookalike.pid, "web_url": "http://127.0.0.1:8080",
                                "redis_url": "redis://127.0.0.1:16391/0"})

    with pytest.raises(CommandError, match=r"already running from .*http://127\.0\.0\.1:8080.*stop it first"):
        call_command("runstack", port=free_port())


def test_the_banner_lists_home_and_redoc():
    text = banner(base_url="http://127.0.0.1:8080", password="pw", token="tok", redis_line="r", database_line="d",
                  ready_seconds=1.0, disabled=[], token_note="n")

    assert "Home        http://127.0.0.1:8080/\n" in text
    assert "http://127.0.0.1:8080/api/redoc/" in text
    assert "http://127.0.0.1:8080/api/docs/" in text
