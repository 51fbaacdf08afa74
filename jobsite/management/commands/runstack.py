"""``./manage runstack`` (what ``make run`` calls): the whole stack in one terminal.

Migrates, installs the default jobs (unless JOBS_CREATE_DEFAULT_JOBS is off),
ensures a local ``admin`` superuser (its random password is generated once
into var/admin_password) and prints a ready JWT, starts the embedded Redis
under var/redis unless REDIS_URL is set, then runs web, one Celery worker and
Celery beat under honcho with prefixed, interleaved logs. Ctrl-C, SIGTERM or
SIGHUP stops everything, Redis last; a second run reuses the database, the
Redis append-only file and the password.

While it runs, var/stack.json says what it started (web and Redis URLs, pids),
so that every other ``./manage`` command finds this stack's Redis whatever
port it was given (settings/celery.py); runstack removes the file as it stops,
and a file whose runstack died is ignored.
"""
from __future__ import annotations

import multiprocessing
import os
import secrets
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections, transaction
from honcho.manager import Manager
from honcho.printer import Printer
from kombu.utils.url import maybe_sanitize_url

from jobsite.runtime import (
    EmbeddedRedis,
    PortInUse,
    RedisUnavailable,
    die_with_parent,
    next_free_port,
    port_open,
    remove_stack_file,
    running_stack,
    write_stack_file,
)

ADMIN_USERNAME = "admin"
# honcho's Manager.returncode after it stopped everything on SIGINT / SIGTERM
# (SIGHUP is turned into SIGTERM below).
STOPPED_BY_SIGNAL = {130, 143}


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


def install_default_jobs(*, stdout, stderr) -> None:
    """The missing default jobs (``jobs init-defaults``), unless
    settings.JOBS_CREATE_DEFAULT_JOBS is off.

    Through the ``jobs`` command: jobsite imports none of the apps. Like
    migrate's post_migrate handler, a default job that cannot be created is
    reported and does not stop the stack; ``jobs init-defaults`` retries it.
    """
    if not settings.JOBS_CREATE_DEFAULT_JOBS:
        stdout.write("runstack | Default jobs not installed: JOBS_CREATE_DEFAULT_JOBS is off")
        return
    try:
        call_command("jobs", "init-defaults", stdout=stdout, stderr=stderr)
    except CommandError as exc:
        stderr.write(f"runstack | default jobs not installed: {exc}; retry with `./manage jobs init-defaults`")


# ---------------------------------------------------------------------------
# Supervision: what honcho's public API leaves to us
# ---------------------------------------------------------------------------
# Ctrl-C and SIGTERM need nothing here: honcho stops every process itself. But
# honcho starts each process as `sh -c CMD` from a reader process it forks,
# with no hook into how either starts, and nothing would stop them if runstack
# were killed without a chance to clean up (kill -9, OOM). So each reader dies
# with runstack (an after-fork hook, see handle()) and each process dies with
# its reader (this launcher, which the command line honcho runs starts with).
_LAUNCHER = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG\n"
    "if os.getppid() != int(sys.argv[1]):  # the reader died before prctl took effect\n"
    "    sys.exit(143)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def _stop_readers() -> None:
    """Stop honcho's readers, and so their processes, after a stop signal
    honcho could not handle: honcho 2.0 signals each process by the pid it
    reports once started, and a Ctrl-C or SIGTERM before every pid is in
    raises KeyError('pid') out of its signal handler and loop, leaving them
    running. Each process gets SIGTERM as its reader dies (supervised_command).
    Without this, Python's exit would wait for the readers, which wait for
    their processes: forever."""
    for reader in multiprocessing.active_children():
        reader.kill()
        reader.join()


def supervised_command(argv: list[str]) -> str:
    """The shell command honcho runs for ``argv``: ``exec``, so that the shell
    becomes the process and honcho's signals reach it directly; on Linux
    through the launcher above ($PPID: the reader, the launcher's parent)."""
    if not sys.platform.startswith("linux"):
        return "exec " + shlex.join(argv)
    return f'exec {shlex.join([sys.executable, "-c", _LAUNCHER])} "$PPID" {shlex.join(argv)}'


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
                     var_dir: Path, flower_port: int | None = None) -> dict[str, list[str]]:
    """The processes honcho runs, by name (Flower only when ``flower_port`` is given)."""
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
    for name in ("worker", "beat"):
        if name in commands:
            # honcho stops the whole stack when a process exits: a crashed worker or
            # beat is started again instead (jobsite/respawn.py).
            commands[name] = [python, "-m", "jobsite.respawn", "--", *commands[name]]
    if flower_port:
        # Flower (Celery's monitoring UI) on the same broker, bound to the web host;
        # FLOWER_BASIC_AUTH=user:password (read by Flower itself) protects it.
        commands["flower"] = [python, "-m", "celery", "-A", "jobsite", "flower", f"--address={host}",
                              f"--port={flower_port}"]
    return commands


def flower_address(host: str, flower_port: int) -> str:
    """Where the stack's Flower answers: ``FLOWER_URL`` when set (a proxy in
    front of it), else its own port on the web host (a loopback address when
    the web binds every interface). The web process gets it as FLOWER_URL,
    so the admin's header links to it."""
    explicit = os.environ.get("FLOWER_URL", "").strip()
    if explicit:
        return explicit
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{f'[{local}]' if ':' in local else local}:{flower_port}/"


def banner(*, base_url: str, password: str, token: str | None, redis_line: str, database_line: str,
           ready_seconds: float, disabled: list[str], token_note: str, flower_url: str | None = None) -> str:
    rule = "=" * 78
    lines = [
        "",
        rule,
        f"  jobsite is up (ready in {ready_seconds:.1f} s)",
        "",
        f"  Home        {base_url}/",
        f"  API docs    {base_url}/api/docs/    (ReDoc: {base_url}/api/redoc/)",
        f"  API schema  {base_url}/api/schema/",
        f"  Admin       {base_url}/admin/",
        f"  Health      {base_url}/health",
        *([f"  Flower      {flower_url}"] if flower_url else []),
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


def port_in_use_message(*, what: str, port: int, host: str, make_option: str, flag: str,
                        avoid: tuple[int, ...] = ()) -> str:
    """One line: which port is taken and the command that picks a free one."""
    free = next_free_port(port, host, avoid=avoid)
    return (f"{what} port {port} is already in use on {host} (another `make run`, or another program). "
            f"Choose another one: make run {make_option}={free}  (or ./manage runstack {flag} {free})")


def database_description() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"SQLite {db['NAME']}"
    return f"{db['ENGINE'].rsplit('.', 1)[-1]} {db.get('HOST') or 'localhost'}:{db.get('PORT') or ''}/{db['NAME']}"


class Command(BaseCommand):
    help = "Run the whole local stack: migrate, admin + token, Redis, web, worker, beat (Ctrl-C stops all)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Web server address (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8000,
                            help="Web server port (default 8000; `make run PORT=8080`).")
        parser.add_argument("--redis-port", type=int, default=None,
                            help="Port of the embedded Redis (default: EMBEDDED_REDIS_PORT, 6390; "
                                 "`make run REDIS_PORT=6391`). Not used when REDIS_URL is set.")
        parser.add_argument("--no-worker", action="store_true", help="Do not start a Celery worker.")
        parser.add_argument("--no-beat", action="store_true", help="Do not start Celery beat.")
        parser.add_argument("--concurrency", type=int, default=None,
                            help="Worker processes (default: Celery's, one per CPU).")
        parser.add_argument("--flower", action="store_true",
                            help="Also start Flower, Celery's monitoring UI (on --flower-port).")
        parser.add_argument("--flower-port", type=int, default=5555, help="Flower's port (default 5555).")

    def handle(self, *args, host, port, no_worker, no_beat, concurrency, flower=False, flower_port=5555,
               redis_port=None, **options):
        started = time.monotonic()
        # Line-buffered, so `make run | tee run.log` shows logs as they happen.
        if hasattr(sys.stdout, "reconfigure"):
            sys.stdout.reconfigure(line_buffering=True)
        var_dir = Path(settings.VAR_DIR).resolve()
        redis_port = redis_port or settings.EMBEDDED_REDIS_PORT
        already = running_stack(var_dir)
        if already:
            raise CommandError(
                f"A stack is already running from {var_dir} (runstack pid {already['pid']}, "
                f"{already.get('web_url', 'web')}); stop it first (Ctrl-C in its terminal), "
                "or give this one another JOBSITE_VAR_DIR."
            )
        probe_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        if port_open(port, probe_host):
            raise CommandError(port_in_use_message(what="Web", port=port, host=probe_host, make_option="PORT",
                                                   flag="--port", avoid=(redis_port,)))
        if flower and port_open(flower_port, probe_host):
            raise CommandError(f"Flower port {flower_port} is already in use on {probe_host}; "
                               f"choose another one: ./manage runstack --flower --flower-port "
                               f"{next_free_port(flower_port, probe_host)}")
        if not os.environ.get("REDIS_URL"):
            try:
                EmbeddedRedis(port=redis_port, data_dir=var_dir / "redis").check_port()
            except PortInUse:
                raise CommandError(port_in_use_message(what="Redis", port=redis_port, host="127.0.0.1",
                                                       make_option="REDIS_PORT", flag="--redis-port",
                                                       avoid=(port,))) from None

        # Until honcho installs its handlers, SIGTERM unwinds like Ctrl-C, so
        # the finally-block below stops whatever was already started. A closed
        # terminal (SIGHUP) stops the stack like SIGTERM, then and under honcho.
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        signal.signal(signal.SIGHUP, _raise_sigterm)
        # Every process forked from here on (honcho's readers) dies with runstack.
        os.register_at_fork(after_in_child=die_with_parent(signal.SIGKILL))

        redis_server = None
        try:
            password, token, token_note = self._prepare(var_dir, verbosity=options["verbosity"])
            if os.environ.get("REDIS_URL"):
                redis_line = f"{maybe_sanitize_url(os.environ['REDIS_URL'])} (REDIS_URL)"
                self._step(f"Using the Redis at {redis_line}; not starting the embedded one")
            else:
                redis_server = self._start_redis(var_dir, redis_port)
                redis_line = f"{redis_server.url} (embedded, data in {redis_server.data_dir})"
            base_url = f"http://{probe_host}:{port}"
            stack_info = {
                "pid": os.getpid(), "web_url": base_url,
                "redis_url": redis_server.url if redis_server else os.environ["REDIS_URL"],
                "redis_embedded": redis_server is not None, "var_dir": str(var_dir),
                "pids": {"runstack": os.getpid(), **({"redis": redis_server.process.pid} if redis_server else {})},
            }
            write_stack_file(var_dir, stack_info)

            manager = self._manager(host=host, port=port, worker=not no_worker, beat=not no_beat,
                                    concurrency=concurrency, var_dir=var_dir, redis_server=redis_server,
                                    flower_port=flower_port if flower else None)
            stop_banner = threading.Event()
            text = dict(
                base_url=base_url, password=password, token=token, token_note=token_note,
                redis_line=redis_line, database_line=database_description(),
                disabled=[name for name, off in (("worker", no_worker), ("beat", no_beat)) if off],
                flower_url=flower_address(host, flower_port) if flower else None,
            )
            threading.Thread(
                target=self._print_banner_when_up,
                args=(probe_host, port, started, text, stop_banner, manager, var_dir, stack_info),
                name="runstack-banner", daemon=True,
            ).start()

            # honcho forks one reader per process: no open database handles across fork.
            connections.close_all()
            try:
                manager.loop()
            except KeyError as exc:
                if exc.args != ("pid",):
                    raise
                _stop_readers()
                self.stdout.write("\nStopped while the processes were starting.")
                return
            finally:
                stop_banner.set()
        except PortInUse as exc:
            raise CommandError(port_in_use_message(what="Redis", port=exc.port, host="127.0.0.1",
                                                   make_option="REDIS_PORT", flag="--redis-port",
                                                   avoid=(port,))) from None
        except RedisUnavailable as exc:
            raise CommandError(f"Cannot start the embedded Redis: {exc}") from None
        except KeyboardInterrupt:
            self.stdout.write("\nInterrupted; stopping.")
            return
        finally:
            remove_stack_file(var_dir, pid=os.getpid())
            if redis_server is not None:
                redis_server.stop()
                self._step("Redis stopped (data kept)")

        if manager.returncode not in STOPPED_BY_SIGNAL:
            raise CommandError(
                f"A process exited (code {manager.returncode}), so everything was stopped; see the log above."
            )
        self._step(f"Stopped cleanly; data kept under {var_dir}")

    def _prepare(self, var_dir: Path, *, verbosity: int) -> tuple[str, str | None, str]:
        """Migrations, default jobs, the local admin; returns (password, token, token note)."""
        self._step("Applying migrations")
        call_command("migrate", interactive=False, verbosity=max(0, verbosity - 1))
        install_default_jobs(stdout=self.stdout, stderr=self.stderr)
        password = local_admin_password(var_dir)
        user, created = ensure_local_admin(username=ADMIN_USERNAME, password=password)
        self._step(f"{'Created' if created else 'Using'} the local superuser '{ADMIN_USERNAME}'")
        token, token_note = self._token_for(user)
        return password, token, token_note

    def _manager(self, *, host: str, port: int, worker: bool, beat: bool, concurrency: int | None,
                 var_dir: Path, redis_server: EmbeddedRedis | None, flower_port: int | None = None) -> Manager:
        env = dict(os.environ, PYTHONUNBUFFERED="1", JOBSITE_VAR_DIR=str(var_dir),
                   DJANGO_SETTINGS_MODULE=os.environ.get("DJANGO_SETTINGS_MODULE", "jobsite.settings"))
        if redis_server is not None:
            env["REDIS_URL"] = redis_server.url
        # The stack's own address: a vision job's backend_api_url naming it runs in-process.
        web_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        env.setdefault("JOBSITE_PUBLIC_URL", f"http://{f'[{web_host}]' if ':' in web_host else web_host}:{port}")
        if flower_port:
            env["FLOWER_URL"] = flower_address(host, flower_port)  # the admin's Flower link
        if beat:
            remove_stale_pidfile(var_dir / "celerybeat.pid")
        manager = Manager(printer=Printer(sys.stdout))
        commands = process_commands(host=host, port=port, worker=worker, beat=beat, concurrency=concurrency,
                                    var_dir=var_dir, flower_port=flower_port)
        for name, command in commands.items():
            manager.add_process(name, supervised_command(command), env=env, cwd=str(settings.BASE_DIR))
        return manager

    # -- steps -------------------------------------------------------------
    def _step(self, message: str) -> None:
        self.stdout.write(self.style.SUCCESS("runstack | ") + message)

    def _token_for(self, user) -> tuple[str | None, str]:
        from jobsite.auth import access_token_for

        minutes = int(settings.JWT_ACCESS_TTL.total_seconds() // 60)
        note = f"JWT valid {minutes} min; a new one: ./manage token {ADMIN_USERNAME} or POST /api/auth/token"
        return access_token_for(user), note

    def _start_redis(self, var_dir: Path, port: int) -> EmbeddedRedis:
        self._step(f"Starting the embedded Redis on 127.0.0.1:{port} (data in {var_dir / 'redis'})")
        leftover = port_open(port)  # a Redis of this data directory is replaced, any other program refused
        server = EmbeddedRedis(port=port, data_dir=var_dir / "redis", persistent=True).start(15.0, supervised=True)
        if leftover:
            self._step(f"A Redis left over from a previous run held port {port}: it was shut down first (data saved)")
        self._step(f"Redis ready (pid {server.process.pid})")
        return server

    def _print_banner_when_up(self, host: str, port: int, started: float, text: dict,
                              stop: threading.Event, manager: Manager, var_dir: Path, stack_info: dict) -> None:
        deadline = time.monotonic() + 90
        while not stop.is_set() and time.monotonic() < deadline and not port_open(port, host):
            time.sleep(0.2)
        if stop.is_set():
            return
        # The processes' pids, now that honcho has started them (its Manager keeps
        # them in _processes; it has no public accessor), into var/stack.json.
        pids = {name: entry.get("pid") for name, entry in getattr(manager, "_processes", {}).items()}
        stack_info["pids"].update({name: pid for name, pid in pids.items() if pid})
        if not stop.is_set():
            write_stack_file(var_dir, stack_info)
        message = banner(ready_seconds=time.monotonic() - started, **text)
        if not port_open(port, host):
            message += f"\n(the web server is not answering on port {port} yet; see its log above)\n"
        sys.stdout.write(message + "\n")
        sys.stdout.flush()


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def _raise_sigterm(signum, frame):
    signal.raise_signal(signal.SIGTERM)
