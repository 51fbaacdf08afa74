"""``./manage runstack`` (what ``make run`` calls): the whole stack in one terminal.

Migrates, installs the default jobs, ensures a local ``admin`` superuser (its
random password is generated once into var/admin_password) and prints a
ready JWT, starts the embedded Redis under var/redis unless REDIS_URL is set,
then runs web, one Celery worker and Celery beat under honcho with prefixed,
interleaved logs. Ctrl-C or SIGTERM stops everything, Redis last; a second
run reuses the database, the Redis append-only file and the password.
"""
from __future__ import annotations

import datetime
import functools
import os
import queue
import secrets
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandError
from django.db import connections, transaction
from honcho.manager import KILL_WAIT, Manager
from honcho.printer import Printer
from honcho.process import Popen as HonchoPopen
from honcho.process import Process as HonchoProcess
from kombu.utils.url import maybe_sanitize_url

from jobsite.runtime import EmbeddedRedis, RedisUnavailable, port_open

ADMIN_USERNAME = "admin"
# Signals that stop the stack, and the exit code honcho reports for each.
STOP_SIGNALS = {signal.SIGHUP: 129, signal.SIGINT: 130, signal.SIGTERM: 143}
_PR_SET_PDEATHSIG = 1


# ---------------------------------------------------------------------------
# Preparation (plain functions: the command below only sequences them)
# ---------------------------------------------------------------------------
def local_admin_password(var_dir: Path) -> str:
    """The local admin's password: generated once, kept in var/admin_password (0600)."""
    path = var_dir / "admin_password"
    if path.exists():
        password = path.read_text().strip()
        if password:
            return password
    password = secrets.token_urlsafe(18)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    path.chmod(0o600)
    return password


@transaction.atomic
def ensure_local_admin(*, username: str, password: str):
    """Create or repair the local superuser so that ``password`` (the one the
    banner prints) always works; returns ``(user, created)``."""
    User = get_user_model()
    user, created = User._default_manager.get_or_create(
        username=username, defaults={"email": f"{username}@localhost"}
    )
    changed = created or not (user.is_active and user.is_staff and user.is_superuser)
    if created or not user.check_password(password):
        user.set_password(password)
        changed = True
    if changed:
        user.is_active = user.is_staff = user.is_superuser = True
        user.save()
    return user, created


def start_embedded_redis(*, port: int, data_dir: Path, timeout: float = 15.0) -> EmbeddedRedis:
    """Start the persistent embedded Redis in its own session.

    Unlike ``EmbeddedRedis.start()`` the server gets its own session, so the
    terminal's Ctrl-C reaches only this command, which then stops web, worker
    and beat first and Redis last (they still need the broker while they shut
    down). A Redis left running by a previous run that was killed (same data
    directory) is shut down first, with its data saved.
    """
    server = EmbeddedRedis(port=port, data_dir=data_dir, persistent=True)
    if port_open(port):
        _shutdown_leftover_redis(server)
    command = server.command()  # raises RedisUnavailable when there is no binary
    with open(data_dir / "redis.log", "ab") as log:
        server.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
    try:
        server.wait_ready(timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _shutdown_leftover_redis(server: EmbeddedRedis) -> None:
    import redis

    client = redis.Redis.from_url(server.url, socket_connect_timeout=1, socket_timeout=2)
    try:
        directory = client.config_get("dir").get("dir")
    except redis.RedisError:
        directory = None
    if directory is None or Path(directory).resolve() != server.data_dir.resolve():
        raise RedisUnavailable(
            f"Port {server.port} is already in use by another program; set EMBEDDED_REDIS_PORT to a free "
            "port, or REDIS_URL to the Redis listening there."
        )
    try:
        client.shutdown(save=True)
    except redis.RedisError:
        pass  # the connection drops when the server exits
    deadline = time.monotonic() + 10
    while port_open(server.port) and time.monotonic() < deadline:
        time.sleep(0.1)
    if port_open(server.port):
        raise RedisUnavailable(f"A Redis left over from a previous run still holds port {server.port}.")


def die_with_parent(sig: int):
    """A ``preexec_fn``-style hook: have Linux send ``sig`` to the calling
    process when the process that is running *now* (its parent-to-be) dies.

    Children run in their own sessions (so Ctrl-C reaches only this command,
    which stops them in order); this covers the case where this command is
    killed without a chance to clean up (kill -9, OOM), so no web, worker,
    beat or Redis outlives it. A no-op elsewhere than Linux.
    """
    if not sys.platform.startswith("linux"):
        return _no_op
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def arm() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, sig)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), sig)

    return arm


def _no_op() -> None:
    pass


class SupervisedProcess(HonchoProcess):
    """honcho's Process whose reader (forked from this command) and child both
    die with their parent; see die_with_parent()."""

    def __init__(self, *args, reader_hook=_no_op, **kwargs):
        super().__init__(*args, **kwargs)
        self.reader_hook = reader_hook

    def run(self, events=None, ignore_signals=False):
        self.reader_hook()  # runs in honcho's reader process: SIGKILL when runstack dies
        self._child_ctor = functools.partial(HonchoPopen, preexec_fn=die_with_parent(signal.SIGTERM))
        super().run(events, ignore_signals)


class StackManager(Manager):
    """honcho's Manager, safe against a stop request that arrives while the
    processes are still starting.

    honcho 2.0 signals processes by the pid they report once started; a
    SIGINT/SIGTERM in between raises KeyError('pid') in its handler and
    leaves them running. Here a process that reports its start after the stop
    request is stopped right away. SIGHUP (terminal closed) stops too. The
    loop is honcho's own otherwise.
    """

    def loop(self):
        def request_stop(signum, frame):
            self._system_print(f"{signal.Signals(signum).name} received\n")
            self.returncode = STOP_SIGNALS[signum]
            self.terminate()

        for signum in STOP_SIGNALS:
            signal.signal(signum, request_stop)
        self._start()

        exiting, exit_started = False, None
        while True:
            try:
                msg = self.events.get(timeout=0.1)
            except queue.Empty:
                if exiting:
                    break
            else:
                if msg.type == "line":
                    self._printer.write(msg)
                elif msg.type == "start":
                    self._processes[msg.name]["pid"] = msg.data["pid"]
                    self._system_print(f"{msg.name} started (pid={msg.data['pid']})\n")
                    if self._terminating:  # stop was requested while it was starting
                        self._system_print(f"sending SIGTERM to {msg.name} (pid {msg.data['pid']})\n")
                        self._procmgr.terminate(msg.data["pid"])
                elif msg.type == "stop":
                    self._processes[msg.name]["returncode"] = msg.data["returncode"]
                    self._system_print(f"{msg.name} stopped (rc={msg.data['returncode']})\n")
                    if self.returncode is None:
                        self.returncode = msg.data["returncode"]

            if self._all_started() and self._all_stopped():
                exiting = True
            if exit_started is None and (self._terminating or (self._all_started() and self._any_stopped())):
                exit_started = self._clock.now()
                self.terminate()
            if exit_started is not None and self._clock.now() - exit_started > datetime.timedelta(seconds=KILL_WAIT):
                self.kill()

    def _killall(self, force=False):
        for name, proc in self._processes.items():
            if "returncode" in proc or proc.get("pid") is None:
                continue  # stopped already, or stopped as soon as it reports its start
            self._system_print(f"sending {'SIGKILL' if force else 'SIGTERM'} to {name} (pid {proc['pid']})\n")
            if force:
                self._procmgr.kill(proc["pid"])
            else:
                self._procmgr.terminate(proc["pid"])


def remove_stale_pidfile(path: Path) -> None:
    """Celery beat refuses to start while its pidfile names a live process;
    after a crash the pid may have been reused by something else."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        path.unlink(missing_ok=True)
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        cmdline = b""
    if b"celery" not in cmdline or b"beat" not in cmdline:
        path.unlink(missing_ok=True)


def process_commands(*, host: str, port: int, worker: bool, beat: bool, concurrency: int | None,
                     var_dir: Path) -> dict[str, list[str]]:
    """The processes honcho runs, by name."""
    python = sys.executable
    commands = {
        "web": [python, str(Path(settings.BASE_DIR) / "manage.py"), "runserver", f"{host}:{port}",
                "--noreload", "--insecure"],
    }
    if worker:
        commands["worker"] = [python, "-m", "celery", "-A", "jobsite", "worker", "-l", "info",
                              "-n", "worker1@%h", "-Q", ",".join(settings.JOBS_QUEUES)]
        if concurrency:
            commands["worker"] += ["--concurrency", str(concurrency)]
    if beat:
        # The scheduler comes from settings (django-celery-beat's DatabaseScheduler
        # plus the /health heartbeat); remote control lets /health ping beat too.
        commands["beat"] = [python, "-m", "celery", "-A", "jobsite", "beat", "-l", "info",
                            "--scheduler", settings.CELERY_BEAT_SCHEDULER,
                            "--pidfile", str(var_dir / "celerybeat.pid"),
                            "--schedule", str(var_dir / "celerybeat-schedule"),
                            "--enable-remote-control"]
    return commands


def banner(*, base_url: str, password: str, token: str | None, redis_line: str, database_line: str,
           ready_seconds: float, disabled: list[str], token_note: str) -> str:
    rule = "=" * 78
    lines = [
        "",
        rule,
        f"  jobsite is up (ready in {ready_seconds:.1f} s)",
        "",
        f"  API docs    {base_url}/api/docs/",
        f"  API schema  {base_url}/api/schema/",
        f"  Admin       {base_url}/admin/",
        f"  Health      {base_url}/health",
        "",
        f"  Username    {ADMIN_USERNAME}",
        f"  Password    {password}    (kept in {Path(settings.VAR_DIR) / 'admin_password'})",
        f"  Token       {token or '(unavailable: ' + token_note + ')'}",
    ]
    if token:
        lines.append(f"              {token_note}")
    lines += [
        "",
        f"  Redis       {redis_line}",
        f"  Database    {database_line}",
    ]
    if disabled:
        lines.append(f"  Not started {', '.join(disabled)} (--no-{' / --no-'.join(disabled)})")
    lines += ["", "  Try it:"]
    if token:
        lines.append(f"    export TOKEN={token}")
    else:
        lines.append(
            f"    export TOKEN=$(curl -s -X POST {base_url}/api/auth/token -H 'Content-Type: application/json' "
            f"-d '{{\"username\": \"{ADMIN_USERNAME}\", \"password\": \"{password}\"}}' | python3 -c "
            "'import json,sys; print(json.load(sys.stdin)[\"access\"])')"
        )
    lines += [
        f'    curl -H "Authorization: Bearer $TOKEN" {base_url}/health',
        "",
        "  Ctrl-C stops everything.",
        rule,
        "",
    ]
    return "\n".join(lines)


def database_description() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"SQLite {db['NAME']}"
    return f"{db['ENGINE'].rsplit('.', 1)[-1]} {db.get('HOST') or 'localhost'}:{db.get('PORT') or ''}/{db['NAME']}"


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------
class Command(BaseCommand):
    help = "Run the whole local stack: migrate, admin + token, Redis, web, worker, beat (Ctrl-C stops all)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Web server address (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8000, help="Web server port (default 8000).")
        parser.add_argument("--no-worker", action="store_true", help="Do not start a Celery worker.")
        parser.add_argument("--no-beat", action="store_true", help="Do not start Celery beat.")
        parser.add_argument("--concurrency", type=int, default=None,
                            help="Worker processes (default: Celery's, one per CPU).")

    def handle(self, *args, host, port, no_worker, no_beat, concurrency, **options):
        started = time.monotonic()
        # Line-buffered, so `make run | tee run.log` shows logs as they happen.
        if hasattr(sys.stdout, "reconfigure"):
            sys.stdout.reconfigure(line_buffering=True)
        # Until honcho installs its handlers, SIGTERM unwinds like Ctrl-C, so
        # the finally-block below stops whatever was already started.
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)

        var_dir = Path(settings.VAR_DIR).resolve()
        probe_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        if port_open(port, probe_host):
            raise CommandError(f"Port {port} is already in use on {probe_host}; choose another one with --port.")

        redis_server = None
        try:
            password, token, token_note = self._prepare(var_dir, verbosity=options["verbosity"])
            if os.environ.get("REDIS_URL"):
                redis_line = f"{maybe_sanitize_url(os.environ['REDIS_URL'])} (REDIS_URL)"
                self._step(f"Using the Redis at {redis_line}; not starting the embedded one")
            else:
                redis_server = self._start_redis(var_dir)
                redis_line = f"{redis_server.url} (embedded, data in {redis_server.data_dir})"

            manager = self._manager(host=host, port=port, worker=not no_worker, beat=not no_beat,
                                    concurrency=concurrency, var_dir=var_dir, redis_server=redis_server)
            stop_banner = threading.Event()
            text = dict(
                base_url=f"http://{probe_host}:{port}", password=password, token=token, token_note=token_note,
                redis_line=redis_line, database_line=database_description(),
                disabled=[name for name, off in (("worker", no_worker), ("beat", no_beat)) if off],
            )
            threading.Thread(
                target=self._print_banner_when_up, args=(probe_host, port, started, text, stop_banner),
                name="runstack-banner", daemon=True,
            ).start()

            # honcho forks one reader per process: no open database handles across fork.
            connections.close_all()
            manager.loop()
            stop_banner.set()
        except RedisUnavailable as exc:
            raise CommandError(f"Cannot start the embedded Redis: {exc}") from None
        except KeyboardInterrupt:
            self.stdout.write("\nInterrupted; stopping.")
            return
        finally:
            if redis_server is not None:
                redis_server.stop()
                self._step("Redis stopped (data kept)")

        if manager.returncode not in STOP_SIGNALS.values():
            raise CommandError(
                f"A process exited (code {manager.returncode}), so everything was stopped; see the log above."
            )
        self._step(f"Stopped cleanly; data kept under {var_dir}")

    def _prepare(self, var_dir: Path, *, verbosity: int) -> tuple[str, str | None, str]:
        """Migrations, default jobs, the local admin; returns (password, token, token note)."""
        self._step("Applying migrations")
        call_command("migrate", interactive=False, verbosity=max(0, verbosity - 1))
        self._install_default_jobs()
        password = local_admin_password(var_dir)
        user, created = ensure_local_admin(username=ADMIN_USERNAME, password=password)
        self._step(f"{'Created' if created else 'Using'} the local superuser '{ADMIN_USERNAME}'")
        token, token_note = self._token_for(user)
        return password, token, token_note

    def _manager(self, *, host: str, port: int, worker: bool, beat: bool, concurrency: int | None,
                 var_dir: Path, redis_server: EmbeddedRedis | None) -> StackManager:
        env = dict(os.environ, PYTHONUNBUFFERED="1", JOBSITE_VAR_DIR=str(var_dir),
                   DJANGO_SETTINGS_MODULE=os.environ.get("DJANGO_SETTINGS_MODULE", "jobsite.settings"))
        if redis_server is not None:
            env["REDIS_URL"] = redis_server.url
        if beat:
            remove_stale_pidfile(var_dir / "celerybeat.pid")
        manager = StackManager(printer=Printer(sys.stdout))
        # honcho has no public hook for how it spawns; its constructor attribute is the seam.
        manager._process_ctor = functools.partial(SupervisedProcess, reader_hook=die_with_parent(signal.SIGKILL))
        commands = process_commands(host=host, port=port, worker=worker, beat=beat, concurrency=concurrency,
                                    var_dir=var_dir)
        for name, command in commands.items():
            # exec: the shell becomes the process, so honcho's signals reach it directly.
            manager.add_process(name, "exec " + shlex.join(command), env=env, cwd=str(settings.BASE_DIR))
        return manager

    # -- steps -------------------------------------------------------------
    def _step(self, message: str) -> None:
        self.stdout.write(self.style.SUCCESS("runstack | ") + message)

    def _install_default_jobs(self) -> None:
        # The `jobs` command is written alongside this one; until it exists, skip.
        if "jobs" not in get_commands():
            self._step("No `jobs` command installed; skipping the default jobs")
            return
        try:
            call_command("jobs", "init-defaults")
        except (CommandError, KeyError, SystemExit) as exc:
            self.stderr.write(f"runstack | default jobs not installed: {exc}")

    def _token_for(self, user) -> tuple[str | None, str]:
        try:
            from jobsite.auth import access_token_for
        except ImportError as exc:
            return None, f"jobsite.auth is not importable: {exc}"
        minutes = int(settings.JWT_ACCESS_TTL.total_seconds() // 60)
        note = f"JWT valid {minutes} min; a new one: ./manage token {ADMIN_USERNAME} or POST /api/auth/token"
        return access_token_for(user), note

    def _start_redis(self, var_dir: Path) -> EmbeddedRedis:
        port = settings.EMBEDDED_REDIS_PORT
        self._step(f"Starting the embedded Redis on 127.0.0.1:{port} (data in {var_dir / 'redis'})")
        if port_open(port):
            self._step(f"Port {port} is taken; if it is a Redis left over from a previous run on this "
                       "data directory, it is shut down first (data saved)")
        server = start_embedded_redis(port=port, data_dir=var_dir / "redis")
        self._step(f"Redis ready (pid {server.process.pid})")
        return server

    def _print_banner_when_up(self, host: str, port: int, started: float, text: dict,
                              stop: threading.Event) -> None:
        deadline = time.monotonic() + 90
        while not stop.is_set() and time.monotonic() < deadline and not port_open(port, host):
            time.sleep(0.2)
        if stop.is_set():
            return
        message = banner(ready_seconds=time.monotonic() - started, **text)
        if not port_open(port, host):
            message += f"\n(the web server is not answering on port {port} yet; see its log above)\n"
        sys.stdout.write(message + "\n")
        sys.stdout.flush()


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt
