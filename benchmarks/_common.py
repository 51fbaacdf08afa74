"""Shared plumbing of the benchmark scripts: a throwaway environment.

Each script does::

    with BenchEnv("name") as bench:   # env vars set, Redis up, DB migrated, django.setup() done
        ... bench.start_worker() / bench.start_beat() / bench.start_process(...) ...

and everything it started (worker, beat, gunicorn, the embedded Redis) is
stopped on the way out, also on Ctrl-C, SIGTERM or when the run exceeds its
time limit (BENCH_TIMEOUT seconds, default per script).

Environment knobs:

* ``REDIS_URL``: use that Redis instead of starting an embedded one (its
  Celery queues are purged first).
* ``BENCH_DATABASE_URL``: use that database instead of SQLite under the temp
  dir. A PostgreSQL database is dropped and re-created at the start and
  dropped at the end, so its name must contain "bench" (a guard against
  pointing this at a real database).
* ``BENCH_KEEP_TMP=1``: keep the temp dir (logs, SQLite file) afterwards; it
  is always kept when the run fails.

Nothing here imports Django or the project before the environment is set.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TASK_MODULE = "benchmarks._tasks"


# ---------------------------------------------------------------------------
# The throwaway environment
# ---------------------------------------------------------------------------
class BenchTimeout(Exception):
    pass


def _raise_timeout(signum, frame):
    raise BenchTimeout("benchmark exceeded its time limit (BENCH_TIMEOUT)")


def _raise_exit(signum, frame):
    raise SystemExit(128 + signum)


class BenchEnv:
    def __init__(self, name: str, *, timeout: int = 900):
        self.name = name
        self.timeout = int(os.environ.get("BENCH_TIMEOUT", timeout))
        self.tmp: Path | None = None
        self.redis = None  # EmbeddedRedis we started
        self.redis_url = ""
        self.database_url = ""
        self._pg_recreated: dict | None = None
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self._ok = False

    # -- lifecycle -----------------------------------------------------------
    def __enter__(self) -> "BenchEnv":
        signal.signal(signal.SIGALRM, _raise_timeout)
        signal.signal(signal.SIGTERM, _raise_exit)
        signal.alarm(self.timeout)
        try:
            self._setup()
        except BaseException:
            self._teardown()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        signal.alarm(0)
        self._ok = exc_type is None
        self._teardown()

    def _setup(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix=f"jobsite-bench-{self.name}-"))
        print(f"[bench] temp dir {self.tmp} (time limit {self.timeout}s)", flush=True)
        if str(BASE_DIR) not in sys.path:
            sys.path.insert(0, str(BASE_DIR))

        # Redis
        if os.environ.get("REDIS_URL"):
            self.redis_url = os.environ["REDIS_URL"]
            print(f"[bench] using REDIS_URL {self.redis_url}", flush=True)
        else:
            from jobsite.runtime import EmbeddedRedis, free_port  # no Django import in there

            self.redis = EmbeddedRedis(port=free_port(), data_dir=self.tmp / "redis", persistent=False).start()
            self.redis_url = self.redis.url
            print(f"[bench] embedded Redis at {self.redis_url}", flush=True)

        # Database
        bench_db = os.environ.get("BENCH_DATABASE_URL", "").strip()
        if bench_db:
            self.database_url = bench_db
            if urlsplit(bench_db).scheme in ("postgres", "postgresql", "pgsql", "psql"):
                self._recreate_postgres(bench_db)
        else:
            self.database_url = f"sqlite:///{self.tmp / 'bench.sqlite3'}"
        print(f"[bench] database {self._redacted(self.database_url)}", flush=True)

        os.environ.update(
            DJANGO_SETTINGS_MODULE="jobsite.settings",
            JOBSITE_VAR_DIR=str(self.tmp / "var"),
            JOBS_CREATE_DEFAULT_JOBS="false",
            JOBS_TASK_MODULES=TASK_MODULE,
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            CELERY_BROKER_URL=self.redis_url,
            CELERY_RESULT_BACKEND=self.redis_url,
            # Production-like: no DEBUG query log, a fixed key shared with the subprocesses.
            DEBUG="false",
            SECRET_KEY=secrets.token_urlsafe(50),
            LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            PYTHONUNBUFFERED="1",
            PYTHONPATH=os.pathsep.join(filter(None, [str(BASE_DIR), os.environ.get("PYTHONPATH", "")])),
        )
        started = time.monotonic()
        result = subprocess.run(
            [PYTHON, "manage.py", "migrate", "--noinput"], cwd=BASE_DIR, env=dict(os.environ),
            capture_output=True, text=True, timeout=600,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        print(f"[bench] migrated in {time.monotonic() - started:.1f}s", flush=True)

        import django

        django.setup()
        if os.environ.get("REDIS_URL") and self.redis is None:
            from jobsite.celery import app

            purged = app.control.purge()
            print(f"[bench] purged {purged} message(s) from the Celery queues", flush=True)

    def _teardown(self) -> None:
        for name, process in reversed(self.processes):
            self.stop_process(name, process)
        self.processes.clear()
        try:
            from django.db import connections

            connections.close_all()
        except Exception:
            pass
        if self._pg_recreated:
            try:
                self._drop_postgres(**self._pg_recreated)
            except Exception as exc:
                print(f"[bench] could not drop the benchmark database: {exc}", flush=True)
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        if self.tmp and self.tmp.exists():
            if self._ok and not os.environ.get("BENCH_KEEP_TMP"):
                shutil.rmtree(self.tmp, ignore_errors=True)
            else:
                print(f"[bench] kept {self.tmp} (logs of the subprocesses are there)", flush=True)

    # -- PostgreSQL --------------------------------------------------------
    @staticmethod
    def _redacted(url: str) -> str:
        parts = urlsplit(url)
        if parts.password:
            return url.replace(f":{parts.password}@", ":***@")
        return url

    @staticmethod
    def _pg_params(url: str) -> dict:
        parts = urlsplit(url)
        name = unquote(parts.path.lstrip("/"))
        return {
            "host": parts.hostname or "localhost",
            "port": parts.port or 5432,
            "user": unquote(parts.username or ""),
            "password": unquote(parts.password or ""),
            "name": name,
        }

    @staticmethod
    def _pg_admin(params: dict):
        import psycopg

        kwargs = {"host": params["host"], "port": params["port"], "dbname": "postgres", "autocommit": True}
        if params["user"]:
            kwargs["user"] = params["user"]
        if params["password"]:
            kwargs["password"] = params["password"]
        return psycopg.connect(**kwargs)

    def _recreate_postgres(self, url: str) -> None:
        from psycopg import sql

        params = self._pg_params(url)
        if "bench" not in params["name"]:
            raise RuntimeError(
                f"BENCH_DATABASE_URL names database '{params['name']}': the benchmark drops and re-creates it, "
                "so its name must contain 'bench' (e.g. jobsite_bench)."
            )
        with self._pg_admin(params) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(params["name"])))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(params["name"])))
        self._pg_recreated = params
        print(f"[bench] re-created PostgreSQL database {params['name']}", flush=True)

    def _drop_postgres(self, **params) -> None:
        from psycopg import sql

        with self._pg_admin(params) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(params["name"])))

    # -- subprocesses --------------------------------------------------------
    def subprocess_env(self, **extra) -> dict:
        env = dict(os.environ)
        env["LOG_LEVEL"] = "INFO"
        env.update(extra)
        return env

    def start_process(self, name: str, args: list[str], **extra_env) -> subprocess.Popen:
        """Start ``args`` in its own session (so its children can be killed as a
        group), output to <tmp>/<name>.log."""
        log_path = self.tmp / f"{name}.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                args, cwd=BASE_DIR, env=self.subprocess_env(**extra_env), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        self.processes.append((name, process))
        return process

    def start_gunicorn(self, *, token: str, probe: str, workers: int = 2, args: tuple[str, ...] = (),
                       **extra_env) -> tuple[subprocess.Popen, str]:
        """``gunicorn jobsite.wsgi -w workers`` on a free port, once a GET of
        ``probe`` with ``token`` answers 200. Returns (the process, its base URL)."""
        import requests

        from jobsite.runtime import free_port

        port = free_port()
        process = self.start_process("gunicorn", [
            PYTHON, "-m", "gunicorn", "jobsite.wsgi", "-w", str(workers), "-b", f"127.0.0.1:{port}",
            "--log-level", "warning", *args,
        ], **extra_env)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.log_tail('gunicorn')}")
            try:
                if requests.get(base + probe, headers={"Authorization": f"Bearer {token}"}, timeout=2).status_code == 200:
                    return process, base
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn not answering:\n{self.log_tail('gunicorn')}")
            time.sleep(0.2)

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop_process(self, name: str, process: subprocess.Popen, timeout: float = 20.0) -> None:
        """SIGTERM (warm shutdown), SIGKILL after ``timeout``, then SIGKILL to the
        whole process group so no pool child is left behind."""
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                print(f"[bench] {name} did not stop within {timeout}s: killing it", flush=True)
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def start_worker(self, *, concurrency: int = 2, pool: str = "prefork", queues: list[str] | None = None,
                     name: str = "worker", ready_timeout: float = 60.0) -> str:
        """A real ``celery -A jobsite worker``; returns its node name once it answers ping."""
        from celery.utils.nodenames import host_format
        from django.conf import settings

        from jobsite.celery import app

        hostname = f"bench-{name}-{os.getpid()}@%h"
        nodename = host_format(hostname)
        process = self.start_process(name, [
            PYTHON, "-m", "celery", "-A", "jobsite", "worker", "--loglevel", "info",
            "--pool", pool, "--concurrency", str(concurrency), "--hostname", hostname,
            "--queues", ",".join(queues or settings.JOBS_QUEUES), "--without-mingle", "--without-gossip",
        ])
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"worker exited with code {process.returncode}:\n{self.log_tail(name)}")
            replies = app.control.ping(destination=[nodename], timeout=0.5)
            if any(nodename in reply for reply in replies):
                return nodename
        raise RuntimeError(f"worker {nodename} did not answer ping within {ready_timeout}s:\n{self.log_tail(name)}")

    def start_beat_ticking(self, *, timeout: float = 120, max_interval: float = 1) -> tuple[subprocess.Popen, float, float]:
        """Start beat and wait for its first tick (its first heartbeat in Redis).
        Returns (the process, when it was spawned, when it first ticked), as epoch seconds."""
        import redis

        from jobsite.services_health import BEAT_HEARTBEAT_KEY

        client = redis.Redis.from_url(self.redis_url)
        try:
            client.delete(BEAT_HEARTBEAT_KEY)
            spawned = time.time()
            beat = self.start_beat(max_interval=max_interval)
            while time.time() - spawned < timeout:
                if beat.poll() is not None:
                    raise RuntimeError(f"beat exited with code {beat.returncode}:\n{self.log_tail('beat')}")
                value = client.get(BEAT_HEARTBEAT_KEY)
                if value:
                    return beat, spawned, float(value)
                time.sleep(0.02)
            raise RuntimeError(f"beat did not tick within {timeout:g} s:\n{self.log_tail('beat')}")
        finally:
            client.close()

    def start_beat(self, *, max_interval: float = 1, name: str = "beat") -> subprocess.Popen:
        """A real ``celery -A jobsite beat`` with the scheduler from settings."""
        return self.start_process(name, [
            PYTHON, "-m", "celery", "-A", "jobsite", "beat", "--loglevel", "info",
            "--max-interval", str(max_interval), "--schedule", str(self.tmp / "celerybeat-schedule"),
            "--pidfile", str(self.tmp / "celerybeat.pid"),
        ])

