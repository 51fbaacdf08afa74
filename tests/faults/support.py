"""Helpers for the fault tests (tests/faults/): a Redis of the test's
own that it may kill and restart, this process's Celery app pointed at it,
and small waiting helpers. Nothing here is mocked: the Redis, the workers
and beats are real processes."""
from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from pathlib import Path

from jobsite.runtime import EmbeddedRedis, free_port
from tests.worker import wait_for  # noqa: F401  (the fault tests import it from here)




class RestartableRedis:
    """A persistent EmbeddedRedis on a free port that a test kills (by pid)
    and starts again on the same port and data directory."""

    def __init__(self):
        self.server = EmbeddedRedis(port=free_port(), data_dir=Path(tempfile.mkdtemp(prefix="jobsite-fault-redis-")),
                                    persistent=True)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> "RestartableRedis":
        self.server.start()
        return self

    def kill(self, sig=signal.SIGKILL) -> None:
        process = self.server.process
        os.kill(process.pid, sig)
        process.wait(timeout=15)

    def stop(self) -> None:
        self.server.stop()

    def env(self) -> dict[str, str]:
        """Worker/beat subprocess environment pointing at this Redis."""
        return {"REDIS_URL": self.url, "CELERY_BROKER_URL": self.url, "CELERY_RESULT_BACKEND": self.url}


@contextlib.contextmanager
def celery_app_on(url: str, settings):
    """Point this process's Celery app (sends, control, results) and the
    Django settings read by the services at the broker ``url``."""
    from jobsite.celery import app

    names = ("broker_url", "result_backend")
    saved = {name: app.conf[name] for name in names}
    saved_settings = (settings.REDIS_URL, settings.CELERY_BROKER_URL, settings.CELERY_RESULT_BACKEND)

    def reset():
        # Drop this app's references to its pools (what Celery does after a fork); never close
        # them: kombu keeps one pool per broker URL for the process, and the session's is shared.
        app._after_fork()
        app._backend_cache = None
        app._local.__dict__.pop("backend", None)

    app.conf.update(broker_url=url, result_backend=url)
    settings.REDIS_URL = settings.CELERY_BROKER_URL = settings.CELERY_RESULT_BACKEND = url
    reset()
    try:
        yield app
    finally:
        reset()
        app.conf.update(**saved)
        settings.REDIS_URL, settings.CELERY_BROKER_URL, settings.CELERY_RESULT_BACKEND = saved_settings
        reset()


def short_visibility_env(redis_server: RestartableRedis, visibility_seconds: int, **settings) -> dict[str, str]:
    """Worker environment on ``redis_server`` whose broker delivers an unacked
    message again after ``visibility_seconds`` (and looks for such messages
    every second), with heartbeats every second; ``settings`` are more env
    variables."""
    return {**redis_server.env(), "CELERY_VISIBILITY_TIMEOUT": str(visibility_seconds),
            "JOBS_WORKER_HEARTBEAT_SECONDS": "1", **{name: str(value) for name, value in settings.items()}}


def copies_dropped(worker) -> int:
    """How many redelivered copies of a running run ``worker`` dropped (its log)."""
    return worker.log().count("this copy is dropped")


# ---------------------------------------------------------------------------
# Fixtures (import them into the test module)
# ---------------------------------------------------------------------------
import pytest  # noqa: E402


@pytest.fixture
def own_redis(settings):
    """A Redis of this test's own, with this process's Celery app on it."""
    redis_server = RestartableRedis().start()
    try:
        with celery_app_on(redis_server.url, settings):
            yield redis_server
    finally:
        redis_server.stop()
