"""The embedded runtime: Redis under var/, a real worker, and `./manage runstack`."""
import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import environ
import pytest
import redis
import requests
from django.conf import settings

from jobsite.management.commands.runstack import install_default_jobs
from jobsite.runtime import EmbeddedRedis, RedisUnavailable, free_port, port_open
from tests.worker import database_url_for, pid_alive, start_worker_process

BASE_DIR = Path(settings.BASE_DIR)


# ---------------------------------------------------------------------------
# EmbeddedRedis
# ---------------------------------------------------------------------------
def test_embedded_redis_persists_to_its_data_dir_and_stops_cleanly(tmp_path):
    # given
    data_dir = tmp_path / "redis"
    port = free_port()
    server = EmbeddedRedis(port=port, data_dir=data_dir, persistent=True).start()
    pid = server.process.pid
    try:
        client = redis.Redis.from_url(server.url)
        # when
        assert client.ping()
        client.set("jobsite:test:kept", "yes")
        # then
        assert any(path.name.startswith("appendonly") for path in data_dir.iterdir())
    finally:
        server.stop()
    assert not pid_alive(pid)
    assert not port_open(port)

    # A second start on the same directory reuses the data (append-only file).
    again = EmbeddedRedis(port=port, data_dir=data_dir, persistent=True).start()
    try:
        assert redis.Redis.from_url(again.url).get("jobsite:test:kept") == b"yes"
    finally:
        again.stop()
    assert not port_open(port)


def test_embedded_redis_replaces_a_leftover_on_its_own_data_dir_only(tmp_path):
    # given: a Redis left running on the port, serving this data directory
    port = free_port()
    leftover = EmbeddedRedis(port=port, data_dir=tmp_path / "redis").start()
    redis.Redis.from_url(leftover.url).set("jobsite:test:kept", "yes")
    try:
        # when: another data directory wants the port, it is refused
        with pytest.raises(RedisUnavailable, match="already in use by another program"):
            EmbeddedRedis(port=port, data_dir=tmp_path / "other").start()
        # when: the same data directory starts again, the leftover is shut down, data saved
        server = EmbeddedRedis(port=port, data_dir=tmp_path / "redis").start()
        try:
            assert leftover.process.wait(timeout=10) == 0
            assert redis.Redis.from_url(server.url).get("jobsite:test:kept") == b"yes"
        finally:
            server.stop()
    finally:
        leftover.stop()
    assert not port_open(port)


# ---------------------------------------------------------------------------
# The worker helper
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "settings_dict",
    [
        {"ENGINE": "django.db.backends.sqlite3", "NAME": "/srv/var/test_jobsite.sqlite3"},
        {"ENGINE": "django.db.backends.postgresql", "NAME": "test_jobs", "USER": "app", "PASSWORD": "p@ss:/w",
         "HOST": "db.internal", "PORT": "5433"},
        {"ENGINE": "django.db.backends.postgresql", "NAME": "test_jobs", "USER": "postgres", "PASSWORD": "",
         "HOST": "127.0.0.1", "PORT": ""},
        {"ENGINE": "django.db.backends.postgresql", "NAME": "test_jobs", "USER": "", "PASSWORD": "",
         "HOST": "/var/run/postgresql", "PORT": 5432},
    ],
)
def test_database_url_for_round_trips_through_the_settings_parser(settings_dict):
    parsed = environ.Env.db_url_config(database_url_for(settings_dict))

    assert parsed["ENGINE"] == settings_dict["ENGINE"]
    for key in ("NAME", "USER", "PASSWORD", "HOST"):
        assert str(parsed.get(key) or "") == str(settings_dict.get(key) or ""), key


@pytest.mark.e2e
def test_celery_round_trip_through_the_real_broker_and_worker(celery_worker_process):
    from jobsite.celery import ping

    assert ping.delay().get(timeout=20) == "pong"
    assert len(celery_worker_process.child_pids()) == 2  # prefork, concurrency 2


@pytest.mark.e2e
def test_worker_process_stop_leaves_no_process_behind(django_db_setup):
    # given
    worker = start_worker_process(concurrency=2, hostname="stopcheck@%h", queues=["maintenance"])
    pids = [worker.pid, *worker.child_pids()]
    assert len(pids) == 3
    # when
    worker.stop()
    # then
    assert [pid for pid in pids if pid_alive(pid)] == []
    assert not worker.ping(timeout=0.5)


# ---------------------------------------------------------------------------
# ./manage runstack
# ---------------------------------------------------------------------------
def _processes_with_env(marker: str) -> list[str]:
    """Command lines of live processes whose environment contains ``marker``."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        if int(proc.name) == os.getpid():
            continue
        try:
            if marker.encode() in (proc / "environ").read_bytes() and pid_alive(int(proc.name)):
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return found


def _get_json(url: str, token: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _start_stack(tmp_path, *options: str, **extra_env: str) -> tuple[subprocess.Popen, Path, Path, dict]:
    """``manage.py runstack --port <free> --concurrency 1 *options`` on a fresh var dir and
    a free Redis port, with no external Redis or database; its own process group, so that
    SIGINT to it is exactly the terminal's Ctrl-C. Returns (process, var dir, log, ports)."""
    var_dir = tmp_path / "var"
    ports = {"web": free_port(), "redis": free_port()}
    env = {key: value for key, value in os.environ.items()
           if key not in {"REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "DATABASE_URL", "SECRET_KEY",
                          "FLOWER_BASIC_AUTH"}}
    env.update(JOBSITE_VAR_DIR=str(var_dir), EMBEDDED_REDIS_PORT=str(ports["redis"]), PYTHONUNBUFFERED="1",
               **extra_env)
    log_path = tmp_path / "runstack.log"
    with open(log_path, "wb") as log:
        stack = subprocess.Popen(
            [sys.executable, "manage.py", "runstack", "--port", str(ports["web"]), "--concurrency", "1", *options],
            cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return stack, var_dir, log_path, ports


def _flower_workers(port: int, auth: str) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/workers?refresh=1", headers={"Authorization": auth})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)
    except (urllib.error.URLError, ValueError, TimeoutError):
        return {}


@pytest.mark.e2e
@pytest.mark.timeout(150)
def test_runstack_serves_a_healthy_stack_with_flower_and_ctrl_c_stops_everything(tmp_path):
    # given: a fresh var dir, free ports, and no external Redis or database; Flower beside
    # the stack (one start checks both: a stack start is the expensive part)
    flower_port = free_port()
    started = time.monotonic()
    stack, var_dir, log_path, ports = _start_stack(
        tmp_path, "--flower", "--flower-port", str(flower_port),
        HEALTH_DISK_MIN_FREE_MB="1", FLOWER_BASIC_AUTH="ops:flower-pass",  # Flower reads it itself
    )
    web_port = ports["web"]
    auth = "Basic " + base64.b64encode(b"ops:flower-pass").decode()
    try:
        # when: the banner shows a token and /health says ok with a live worker
        token, report, status = None, {}, None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert stack.poll() is None, log_path.read_text()
            if token is None:
                match = re.search(r"export TOKEN=(\S+)", log_path.read_text())
                token = match.group(1) if match else None
            elif port_open(web_port):
                status, report = _get_json(f"http://127.0.0.1:{web_port}/health", token)
                if status == 200 and report["checks"]["workers"]["ok"]:
                    break
            time.sleep(0.5)
        healthy_after = time.monotonic() - started
        # then
        assert status == 200, (report, log_path.read_text()[-4000:])
        assert report["status"] == "ok"
        assert [name for name in report["checks"]["workers"]["workers"] if name.startswith("worker1@")]
        assert report["checks"]["beat"]["ok"], report["checks"]["beat"]
        assert (var_dir / "admin_password").stat().st_mode & 0o777 == 0o600
        assert any(path.name.startswith("appendonly") for path in (var_dir / "redis").iterdir())
        print(f"runstack healthy after {healthy_after:.1f}s")

        # and: Flower answers its dashboard and lists the stack's worker
        workers, deadline = {}, time.monotonic() + 60
        while time.monotonic() < deadline and not workers:
            assert stack.poll() is None, log_path.read_text()[-4000:]
            workers = _flower_workers(flower_port, auth) if port_open(flower_port) else {}
            if not workers:
                time.sleep(0.5)
        assert any(name.startswith("worker1@") for name in workers), log_path.read_text()[-4000:]
        assert f"Flower      http://127.0.0.1:{flower_port}/" in log_path.read_text()

        # and: the admin, signed in as the local admin, links to that Flower
        session, login = requests.Session(), f"http://127.0.0.1:{web_port}/admin/login/"
        session.get(login, timeout=30)
        session.post(login, timeout=30, headers={"Referer": login}, data={
            "username": "admin", "password": (var_dir / "admin_password").read_text().strip(),
            "csrfmiddlewaretoken": session.cookies["csrftoken"], "next": "/admin/"})
        admin_index = session.get(f"http://127.0.0.1:{web_port}/admin/", timeout=30)
        assert admin_index.url.endswith("/admin/"), admin_index.url  # signed in, not sent back to the login
        assert f'href="http://127.0.0.1:{flower_port}/"' in admin_index.text
    finally:
        os.killpg(stack.pid, signal.SIGINT)
        try:
            returncode = stack.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(stack.pid, signal.SIGKILL)
            raise

    assert returncode == 0, log_path.read_text()[-4000:]
    assert "Stopped cleanly" in log_path.read_text()
    assert _processes_with_env(f"JOBSITE_VAR_DIR={var_dir}") == []
    assert not port_open(web_port) and not port_open(ports["redis"]) and not port_open(flower_port)


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_runstack_killed_with_sigkill_leaves_no_process_behind(tmp_path):
    # given: a running stack (web, worker, beat, Redis)
    stack, var_dir, log_path, ports = _start_stack(tmp_path)
    marker = f"JOBSITE_VAR_DIR={var_dir}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            "jobsite is up" in log_path.read_text() and len(_processes_with_env(marker)) >= 7
        ):  # runstack, its three readers, web, worker (+ its pool process), beat
            assert stack.poll() is None, log_path.read_text()
            time.sleep(0.5)
        assert "jobsite is up" in log_path.read_text(), log_path.read_text()[-4000:]
        # when: runstack itself is killed, with no chance to clean up
        os.kill(stack.pid, signal.SIGKILL)
        stack.wait(timeout=10)
        # then: every process it started stops on its own
        deadline = time.monotonic() + 30
        while _processes_with_env(marker) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _processes_with_env(marker) == []
        assert not port_open(ports["web"]) and not port_open(ports["redis"])
    finally:
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGKILL)


# ---------------------------------------------------------------------------
# runstack's steps
# ---------------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize("create_default_jobs", [False, True])
def test_runstack_installs_default_jobs_only_when_the_setting_is_on(settings, create_default_jobs):
    from io import StringIO

    from scheduling.models import Job

    settings.JOBS_CREATE_DEFAULT_JOBS = create_default_jobs
    stdout = StringIO()

    install_default_jobs(stdout=stdout, stderr=StringIO())

    names = set(Job.objects.values_list("name", flat=True))
    if create_default_jobs:
        assert {"system_health_check", "document_cleanup", "database_maintenance"} <= names
    else:
        assert names == set()
        assert "JOBS_CREATE_DEFAULT_JOBS is off" in stdout.getvalue()


def test_runstack_no_beat_and_flower_choose_the_processes(tmp_path):
    # (the stack above runs them all: which processes each option leaves out or adds)
    from jobsite.management.commands.runstack import process_commands

    options = {"host": "127.0.0.1", "port": 8000, "worker": True, "concurrency": 1, "var_dir": tmp_path}
    assert set(process_commands(**options, beat=True)) == {"web", "worker", "beat"}
    assert set(process_commands(**options, beat=False)) == {"web", "worker"}
    assert set(process_commands(**options, beat=False, flower_port=5555)) == {"web", "worker", "flower"}


@pytest.mark.timeout(60)
def test_respawn_restarts_a_crashed_process_and_stops_with_it(tmp_path):
    # given a command that crashes twice, then keeps running (a worker after two OOM kills)
    counter = tmp_path / "starts"
    script = (
        "import pathlib, sys, time\n"
        f"p = pathlib.Path({str(counter)!r}); n = int(p.read_text() or 0) + 1 if p.exists() else 1\n"
        "p.write_text(str(n))\n"
        "sys.exit(1) if n < 3 else time.sleep(60)\n"
    )
    wrapper = subprocess.Popen(
        [sys.executable, "-c", "import sys; from jobsite.respawn import supervise; "
         f"sys.exit(supervise([sys.executable, '-c', {script!r}], min_backoff=0.1))"],
        cwd=BASE_DIR, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (counter.exists() and counter.read_text() == "3"):
            time.sleep(0.05)
        # then it was started again after each crash
        assert counter.read_text() == "3"
        time.sleep(0.3)
        assert wrapper.poll() is None
        # and a SIGTERM to the wrapper stops it and its process
        wrapper.send_signal(signal.SIGTERM)
        assert wrapper.wait(timeout=10) != 0
        assert "exited with status 1; starting it again" in wrapper.stderr.read()
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
