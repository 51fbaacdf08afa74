"""`make run PORT=... REDIS_PORT=...` (issue 26): a stack on other ports than
the defaults, found by a plain `./manage jobs` command through var/stack.json,
with no REDIS_URL or EMBEDDED_REDIS_PORT in its environment."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from jobsite.runtime import free_port, port_open, stack_file

pytestmark = pytest.mark.e2e
BASE_DIR = Path(settings.BASE_DIR)
BROKER_SETTINGS = {"REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "EMBEDDED_REDIS_PORT",
                   "DATABASE_URL", "SECRET_KEY"}


@pytest.mark.timeout(180)
def test_a_stack_on_other_ports_is_found_by_the_cli_and_forgotten_when_it_stops(tmp_path):
    # given: `make run PORT=<web> REDIS_PORT=<redis>` on a fresh var dir
    var_dir, web_port, redis_port = tmp_path / "var", free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if key not in BROKER_SETTINGS}
    env.update(JOBSITE_VAR_DIR=str(var_dir), JOBS_CREATE_DEFAULT_JOBS="true", PYTHONUNBUFFERED="1",
               HEALTH_DISK_MIN_FREE_MB="1")
    log_path = tmp_path / "make-run.log"
    with open(log_path, "wb") as log:
        stack = subprocess.Popen(
            ["make", "--no-print-directory", "run", f"PORT={web_port}", f"REDIS_PORT={redis_port}"],
            cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and "jobsite is up" not in log_path.read_text():
            assert stack.poll() is None, log_path.read_text()[-4000:]
            time.sleep(0.5)
        assert "jobsite is up" in log_path.read_text(), log_path.read_text()[-4000:]
        info = json.loads(stack_file(var_dir).read_text())
        assert info["web_url"] == f"http://127.0.0.1:{web_port}"
        assert info["redis_url"] == f"redis://127.0.0.1:{redis_port}/0"
        assert {"runstack", "redis", "web", "worker", "beat"} <= set(info["pids"])

        # when: a run is requested from the command line, with no broker in the environment
        done = subprocess.run(
            [sys.executable, "manage.py", "jobs", "execute", "system_health_check", "--wait", "60"],
            cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
        )

        # then: it reached the stack's Redis and its worker ran it
        assert done.returncode == 0, (done.stdout, done.stderr, log_path.read_text()[-3000:])
        assert "unreachable" not in done.stdout + done.stderr
        assert re.search(r"finished: success", done.stdout), done.stdout
    finally:
        os.killpg(stack.pid, signal.SIGINT)
        try:
            stack.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(stack.pid, signal.SIGKILL)
            raise

    # and: once stopped, the stack file is gone and its ports are free
    assert "Stopped cleanly" in log_path.read_text()
    assert not stack_file(var_dir).exists()
    assert not port_open(web_port) and not port_open(redis_port)
