"""A real Celery worker in a subprocess, for end-to-end tests.

``start_worker_process()`` runs ``celery -A jobsite worker`` against the same
broker (settings.REDIS_URL / CELERY_BROKER_URL) and the same *test* database
as this pytest session, and returns once the worker answers a remote-control
ping. ``celery_worker_process`` is one such worker for the whole session.

Rows a worker should see must be committed: use ``transactional_db`` (or
``@pytest.mark.django_db(transaction=True)``) in tests that hand work to it.
On SQLite the test database is a file (the session's own: tests/plugin.py), so
the worker opens the very same database.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from celery.utils.nodenames import host_format
from django.conf import settings
from django.db import connection

READY_TIMEOUT_SECONDS = 60.0


# ---------------------------------------------------------------------------
# Environment of the worker subprocess
# ---------------------------------------------------------------------------
def database_url_for(settings_dict: dict) -> str:
    """A DATABASE_URL naming the database ``settings_dict`` points at (after
    pytest-django's setup: the test database)."""
    engine = settings_dict["ENGINE"]
    name = str(settings_dict["NAME"])
    if engine.endswith("sqlite3"):
        if name == ":memory:" or "mode=memory" in name:
            raise RuntimeError("An in-memory SQLite database cannot be shared with a worker process; "
                               "give DATABASES['default']['TEST']['NAME'] a file path.")
        return f"sqlite:///{Path(name).resolve()}"
    if engine.endswith(("postgresql", "postgis")):
        user = quote(settings_dict.get("USER") or "", safe="")
        password = settings_dict.get("PASSWORD") or ""
        credentials = user + (f":{quote(password, safe='')}" if password else "")
        prefix = f"postgres://{credentials + '@' if credentials else ''}"
        host = settings_dict.get("HOST") or "localhost"
        if host.startswith("/"):  # a Unix socket directory: django-environ's postgres:////dir/name form
            return f"{prefix}/{host}/{quote(name, safe='')}"
        port = settings_dict.get("PORT") or 5432
        return f"{prefix}{host}:{port}/{quote(name, safe='')}"
    raise RuntimeError(f"No DATABASE_URL form for the {engine} engine.")


def worker_env(extra_env: dict | None = None) -> dict[str, str]:
    """This process's environment, pointed at the current test database,
    broker and keys (so encrypted fields and JWTs agree on both sides)."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE=os.environ.get("DJANGO_SETTINGS_MODULE", "jobsite.settings"),
        DATABASE_URL=database_url_for(connection.settings_dict),
        REDIS_URL=settings.REDIS_URL,
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        CELERY_RESULT_BACKEND=settings.CELERY_RESULT_BACKEND,
        JOBSITE_VAR_DIR=str(settings.VAR_DIR),
        SECRET_KEY=settings.SECRET_KEY,
        PYTHONUNBUFFERED="1",
    )
    if settings.FIELD_ENCRYPTION_KEY:
        env["FIELD_ENCRYPTION_KEY"] = settings.FIELD_ENCRYPTION_KEY
    env.update(extra_env or {})
    return env


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------
def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (prefork pool processes of a worker)."""
    children: set[int] = set()
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text()
            children.update(int(item) for item in text.split())
        return sorted(children)
    except (OSError, ValueError):
        pass
    # Kernels without /proc/<pid>/task/*/children: scan every process's parent.
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.add(int(stat.parent.name))
    return sorted(children)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@dataclass
class WorkerProcess:
    """Handle on a worker subprocess started by :func:`start_worker_process`."""

    process: subprocess.Popen
    nodename: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def is_alive(self) -> bool:
        return self.process.poll() is None

    def child_pids(self) -> list[int]:
        """Pids of the pool processes (prefork), [] for solo/threads pools."""
        return child_pids(self.pid) if self.is_alive() else []

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ping(self, timeout: float = 1.0) -> bool:
        from jobsite.celery import app

        replies = app.control.ping(destination=[self.nodename], timeout=timeout)
        return any(self.nodename in reply for reply in replies)

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> "WorkerProcess":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_alive():
                raise RuntimeError(f"Celery worker exited with code {self.process.returncode}:\n{self.log()[-4000:]}")
            if self.ping(timeout=0.5):
                return self
        self.stop()
        raise RuntimeError(f"Celery worker {self.nodename} did not answer ping within {timeout}s:\n"
                           f"{self.log()[-4000:]}")

    def stop(self, timeout: float = 15.0) -> None:
        """Warm shutdown (SIGTERM), SIGKILL after ``timeout``; then make sure no
        pool process of its group is left either."""
        if self.is_alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(self.pid)
                self.process.wait(timeout=10)
        _kill_group(self.pid)  # the worker runs in its own session: pgid == pid


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def start_worker_process(
    *,
    concurrency: int = 2,
    pool: str = "prefork",
    queues: list[str] | None = None,
    hostname: str = "testworker@%h",
    extra_env: dict | None = None,
    ready_timeout: float = READY_TIMEOUT_SECONDS,
) -> WorkerProcess:
    """Start ``celery -A jobsite worker`` on ``queues`` (default: all of
    settings.JOBS_QUEUES) and return once it answers ping."""
    nodename = host_format(hostname)
    command = [
        sys.executable, "-m", "celery", "-A", "jobsite", "worker",
        "--loglevel", "info",
        "--pool", pool,
        "--concurrency", str(concurrency),
        "--hostname", hostname,
        "--queues", ",".join(queues or settings.JOBS_QUEUES),
        # No neighbours to sync with; skipping mingle saves a second per start.
        "--without-mingle", "--without-gossip",
    ]
    fd, log_name = tempfile.mkstemp(prefix=f"celery-{nodename.split('@')[0]}-", suffix=".log")
    with os.fdopen(fd, "wb") as log:
        process = subprocess.Popen(
            command, cwd=str(settings.BASE_DIR), env=worker_env(extra_env), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    return WorkerProcess(process=process, nodename=nodename, log_path=Path(log_name)).wait_ready(ready_timeout)


# ---------------------------------------------------------------------------
# Fixture (imported into tests/conftest.py)
# ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker):
    """One real prefork worker (2 processes, every queue) for the session,
    against the test database; stopped before the test database is dropped."""
    from jobsite.celery import app

    with django_db_blocker.unblock():
        # Messages left in a reused broker by an earlier session would name rows
        # that no longer exist.
        app.control.purge()
        worker = start_worker_process()
    try:
        yield worker
    finally:
        worker.stop()


def wait_for(predicate, timeout=20.0, interval=0.05, message="condition"):
    """Poll ``predicate`` until it returns something truthy (returned), or fail
    after ``timeout`` seconds naming ``message``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
