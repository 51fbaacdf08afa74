"""What the admin's tests share: a superuser signed in with Django's test
client, the admin's URLs by name, and the broker's Redis cleared of what
another test left (worker heartbeats, queued messages, beat's heartbeat),
which the dashboard and the operator-warning banner on every page read."""
from __future__ import annotations

import pytest
import redis
from django.conf import settings
from django.test import Client
from django.urls import reverse

from jobsite.services_health import BEAT_HEARTBEAT_KEY
from scheduling import heartbeat


def url(name: str, *args) -> str:
    """``admin:scheduling_<name>`` with ``args``."""
    return reverse(f"admin:scheduling_{name}", args=args)


@pytest.fixture
def root(django_user_model):
    # No password: force_login needs none, and hashing one costs most of a test's time.
    return django_user_model.objects.create_superuser("root", email="root@example.com", password=None)


@pytest.fixture
def admin_client(root):
    """The test client signed in as ``root`` (instead of pytest-django's own ``admin`` user)."""
    client = Client()
    client.force_login(root)
    return client


@pytest.fixture
def broker():
    """The broker's Redis without worker heartbeats, queued messages or a beat
    heartbeat left by another test."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    keys = [heartbeat.HEARTBEATS_KEY, heartbeat.QUEUES_KEY, BEAT_HEARTBEAT_KEY]

    def clear():
        client.delete(*keys)
        for queue in settings.JOBS_QUEUES:
            lists = client.keys(f"{queue}*")
            if lists:
                client.delete(*lists)

    clear()
    yield client
    clear()
