"""GET /health and the checks behind it (jobsite.services_health)."""
import time

import pytest
import redis
from rest_framework.test import APIClient

from jobsite import services_health
from jobsite.runtime import free_port
from jobsite.services_health import BEAT_HEARTBEAT_KEY, health_report, record_beat_heartbeat

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_beat_heartbeat(settings):
    redis.Redis.from_url(settings.REDIS_URL).delete(BEAT_HEARTBEAT_KEY)
    yield
    redis.Redis.from_url(settings.REDIS_URL).delete(BEAT_HEARTBEAT_KEY)


@pytest.fixture
def small_disk_minimum(settings):
    settings.HEALTH_DISK_MIN_FREE_MB = 1


def test_health_requires_authentication():
    response = APIClient().get("/health")

    assert response.status_code == 401


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_health_is_ok_with_a_live_worker_and_a_beat_heartbeat(
    api, celery_worker_process, small_disk_minimum, no_beat_heartbeat
):
    # given: what beat's scheduler records on every tick
    assert record_beat_heartbeat()

    # when
    response = api.get("/health")

    # then
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "workers", "beat", "disk"}
    assert all(check["ok"] and "latency_ms" in check for check in body["checks"].values())
    assert celery_worker_process.nodename in body["checks"]["workers"]["workers"]
    assert body["checks"]["beat"]["source"] == "heartbeat"
    assert body["checks"]["beat"]["age_seconds"] < 10
    assert response["Cache-Control"] == "no-store"


def test_health_is_degraded_and_quick_when_the_broker_is_down(api, settings, small_disk_minimum):
    # given: nothing listens on the broker port
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"

    # when
    started = time.monotonic()
    response = api.get("/health")
    elapsed = time.monotonic() - started

    # then
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "degraded"
    assert body["checks"]["broker"]["ok"] is False
    assert "Connection" in body["checks"]["broker"]["detail"]
    assert body["checks"]["workers"] == {"ok": False, "detail": "not checked: the broker is unreachable",
                                         "workers": []}
    assert body["checks"]["database"]["ok"] is True
    assert elapsed < 6


def test_beat_is_down_without_heartbeat_ping_or_periodic_run(no_beat_heartbeat, small_disk_minimum):
    report = health_report(include_workers=False)

    assert "workers" not in report["checks"]
    assert report["checks"]["beat"]["ok"] is False
    assert "no beat answered ping" in report["checks"]["beat"]["detail"]
    assert report["status"] == "degraded"


def test_a_stale_heartbeat_is_reported_as_stale(no_beat_heartbeat, small_disk_minimum):
    # beat writes its heartbeat every few seconds: it is judged by that cadence, not by
    # HEALTH_BEAT_MAX_AGE_SECONDS (for the last periodic run, when beat writes no heartbeat)
    record_beat_heartbeat(at=time.time() - 3600)

    beat = health_report(include_workers=False)["checks"]["beat"]

    assert beat["ok"] is False
    assert beat["age_seconds"] >= 3600
    assert f"older than {services_health.BEAT_DOWN_AFTER_SECONDS:.0f}s" in beat["detail"]


def test_a_fresh_heartbeat_makes_beat_ok_without_a_broadcast(monkeypatch, no_beat_heartbeat, small_disk_minimum):
    record_beat_heartbeat()
    monkeypatch.setattr(services_health, "ping_nodes", lambda **kw: pytest.fail("must not ping"))

    report = health_report(include_workers=False)

    assert report["checks"]["beat"]["ok"] is True
    assert report["status"] == "ok", report


def test_disk_below_the_minimum_degrades(settings, no_beat_heartbeat):
    settings.HEALTH_DISK_MIN_FREE_MB = 10**9
    record_beat_heartbeat()

    report = health_report(include_workers=False)

    assert report["checks"]["disk"]["ok"] is False
    assert "minimum 1000000000 MB" in report["checks"]["disk"]["detail"]
    assert report["status"] == "degraded"


def test_a_hanging_check_is_cut_off_by_its_deadline(monkeypatch, no_beat_heartbeat, small_disk_minimum):
    monkeypatch.setattr(services_health, "CHECK_TIMEOUT_SECONDS", 0.5)
    def hanging_disk_check():
        time.sleep(3)
        return {"ok": True, "detail": "too late"}

    monkeypatch.setattr(services_health, "check_disk", hanging_disk_check)
    record_beat_heartbeat()

    started = time.monotonic()
    report = health_report(include_workers=False)

    assert time.monotonic() - started < 2
    assert report["checks"]["disk"] == {"ok": False, "detail": "timed out after 0.5s", "latency_ms": 500.0}
    assert report["checks"]["database"]["ok"] is True


def test_record_beat_heartbeat_never_raises(settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"

    assert record_beat_heartbeat() is False
