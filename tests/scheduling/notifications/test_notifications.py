"""Notifications (scheduling/notifications): failure, recovery and overdue
events, delivered to a real local webhook receiver (HMAC checked) and by
email (Django's locmem backend), retried with every attempt recorded."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from celery import current_app
from django.core import mail
from django.utils import timezone

from jobsite.tenancy import SYSTEM
from scheduling import services as core_services
from scheduling.models import Execution, Job
from scheduling.notifications import selectors, services
from scheduling.notifications.models import Destination, Notification, NotificationDelivery, OverdueEpisode
from scheduling.notifications.tasks import deliver, overdue_check
from tests.factories import JobFactory
from tests.worker import wait_for

pytestmark = pytest.mark.django_db
SECRET = "whsec-test-0123456789"


# ---------------------------------------------------------------------------
# A real webhook receiver
# ---------------------------------------------------------------------------
class Receiver:
    def __init__(self):
        self.requests: list[dict] = []
        self.answers: list[int] = []  # status codes to answer, in order; then 200
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    code = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests]

    def wait_for(self, count: int, timeout: float = 30.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.requests


@pytest.fixture
def receiver(settings):
    server = Receiver()
    # Loopback stays refused; only this receiver's host:port is let through the guard.
    settings.OUTBOUND_HTTP_ALLOW_LOOPBACK = False
    settings.OUTBOUND_HTTP_ALLOW_HOSTS = [f"127.0.0.1:{server.port}"]
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def eager(settings):
    """Run queued Celery tasks in this process (this test's transaction sees
    its own rows); the end-to-end test below uses the real worker."""
    settings.NOTIFICATIONS_RETRY_BACKOFF_SECONDS = 0
    current_app.conf.task_always_eager = True
    yield
    current_app.conf.task_always_eager = False


@pytest.fixture
def hook(receiver):
    return services.destination_create(name="ops-hook", kind="webhook", url=receiver.url, secret=SECRET)


def make_job(name="nightly", **kwargs):
    return JobFactory(name=name, **{"task_name": "tests.fail", "task_kwargs": {"message": "disk full"}, **kwargs})


def run(job, django_capture_on_commit_callbacks, **kwargs) -> Execution:
    """Queue one execution; eager Celery runs it in this process after commit,
    then whatever it queues in turn (notifications, deliveries)."""
    with django_capture_on_commit_callbacks(execute=True):
        execution = core_services.job_execute(job=job, force=True, **kwargs)
    execution.refresh_from_db()
    return execution


def verify(request: dict) -> bool:
    headers = {k.lower(): v for k, v in request["headers"].items()}
    expected = "sha256=" + hmac.new(SECRET.encode(), headers["x-jobsite-timestamp"].encode() + b"." + request["body"],
                                    hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["x-jobsite-signature"], expected)


# ---------------------------------------------------------------------------
# Failure, recovery
# ---------------------------------------------------------------------------
def test_a_failure_then_a_recovery_are_posted_signed(hook, receiver, eager, django_capture_on_commit_callbacks):
    job = make_job()
    services.job_notification_settings_update(job=job, destinations=["ops-hook"])

    failed = run(job, django_capture_on_commit_callbacks)
    assert failed.status == "failed"
    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert verify(request)
    assert request["headers"]["X-Jobsite-Event"] == "failure"
    body = json.loads(request["body"])
    assert body["event"] == "failure" and body["job"]["name"] == "nightly"
    assert body["execution"]["id"] == failed.pk and "disk full" in body["execution"]["error"]

    # a second failure is a failure again, not a recovery
    run(job, django_capture_on_commit_callbacks)
    assert [b["event"] for b in receiver.bodies()] == ["failure", "failure"]

    # the first success after failures is a recovery; the next success says nothing
    core_services.job_update(job=job, data={"task_name": "tests.echo", "task_kwargs": {}})
    ok = run(job, django_capture_on_commit_callbacks)
    assert ok.status == "success"
    run(job, django_capture_on_commit_callbacks)
    assert [b["event"] for b in receiver.bodies()] == ["failure", "failure", "recovery"]
    assert all(verify(r) for r in receiver.requests)
    delivered = NotificationDelivery.objects.filter(status="delivered")
    assert delivered.count() == 3 and set(delivered.values_list("status_code", flat=True)) == {200}


def test_a_tampered_body_fails_the_signature(hook, receiver, eager, django_capture_on_commit_callbacks):
    job = make_job()
    services.job_notification_settings_update(job=job, destinations=["ops-hook"])
    run(job, django_capture_on_commit_callbacks)
    request = dict(receiver.requests[0])
    request["body"] = request["body"].replace(b"nightly", b"nightlx")
    assert not verify(request)


def test_a_failure_with_retries_left_waits_for_its_last_retry(hook, receiver, eager, django_capture_on_commit_callbacks):
    job = make_job(max_retries=1, retry_backoff_seconds=0)
    services.job_notification_settings_update(job=job, destinations=["ops-hook"])
    first = run(job, django_capture_on_commit_callbacks)  # eager: its retry runs at once, and fails too
    retry = first.retries.get()
    assert retry.status == "failed" and retry.attempt == 2
    bodies = receiver.bodies()
    assert len(bodies) == 1  # one notification, about the last try only
    assert (bodies[0]["execution"]["id"], bodies[0]["execution"]["attempt"]) == (retry.pk, 2)


def test_delivery_is_retried_and_every_attempt_recorded(hook, receiver, eager, settings,
                                                        django_capture_on_commit_callbacks):
    settings.NOTIFICATIONS_MAX_ATTEMPTS = 4
    receiver.answers = [500, 503]  # then 200
    job = make_job()
    services.job_notification_settings_update(job=job, destinations=["ops-hook"])

    run(job, django_capture_on_commit_callbacks)

    attempts = list(NotificationDelivery.objects.order_by("attempt").values_list("attempt", "status", "status_code"))
    assert attempts == [(1, "retrying", 500), (2, "retrying", 503), (3, "delivered", 200)]
    assert len(receiver.requests) == 3
    # the same notification each time (one id), each attempt freshly signed
    ids = {r["headers"]["X-Jobsite-Delivery"] for r in receiver.requests}
    assert len(ids) == 1 and all(verify(r) for r in receiver.requests)


def test_delivery_gives_up_after_the_last_attempt(hook, receiver, eager, settings, django_capture_on_commit_callbacks):
    settings.NOTIFICATIONS_MAX_ATTEMPTS = 2
    receiver.answers = [500, 500, 500]
    job = make_job()
    services.job_notification_settings_update(job=job, destinations=["ops-hook"])
    run(job, django_capture_on_commit_callbacks)
    assert list(NotificationDelivery.objects.order_by("attempt").values_list("status", flat=True)) == ["retrying", "failed"]
    assert "HTTP 500" in NotificationDelivery.objects.get(attempt=2).error


def test_the_guard_still_refuses_other_loopback_ports(receiver, eager, django_capture_on_commit_callbacks, settings):
    settings.NOTIFICATIONS_MAX_ATTEMPTS = 1
    services.destination_create(name="elsewhere", kind="webhook", url=f"http://127.0.0.1:{receiver.port + 1}/x")
    job = make_job()
    services.job_notification_settings_update(job=job, destinations=["elsewhere"])
    run(job, django_capture_on_commit_callbacks)
    delivery = NotificationDelivery.objects.get()
    assert delivery.status == "failed" and "loopback" in delivery.error.lower()


def test_email_on_failure(eager, django_capture_on_commit_callbacks, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    services.destination_create(name="oncall", kind="email", email_to="ops@example.com, dev@example.com")
    job = make_job()
    services.job_notification_settings_update(job=job, destinations=["oncall"])
    run(job, django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.subject == "[jobsite] nightly failed"
    assert message.to == ["ops@example.com", "dev@example.com"]
    assert "disk full" in message.body
    assert NotificationDelivery.objects.get().status == "delivered"


def test_the_global_default_applies_to_jobs_without_settings(hook, receiver, eager, settings,
                                                            django_capture_on_commit_callbacks):
    settings.NOTIFICATIONS_DEFAULT_DESTINATIONS = ["ops-hook"]
    plain = make_job("plain")
    quiet = make_job("quiet")
    services.job_notification_settings_update(job=quiet, include_defaults=False)
    muted = make_job("muted")
    services.job_notification_settings_update(job=muted, on_failure=False)

    for job in (plain, quiet, muted):
        run(job, django_capture_on_commit_callbacks)

    assert [b["job"]["name"] for b in receiver.bodies()] == ["plain"]


def test_no_destination_no_notification(eager, django_capture_on_commit_callbacks):
    run(make_job(), django_capture_on_commit_callbacks)
    assert not Notification.objects.exists()


def test_the_secret_is_stored_encrypted(hook):
    stored = Destination.objects.values_list("secret", flat=True).get(pk=hook.pk)
    assert SECRET not in stored and services.destination_secret(hook) == SECRET


# ---------------------------------------------------------------------------
# Overdue
# ---------------------------------------------------------------------------
def test_overdue_is_notified_once_per_episode(hook, receiver, eager, settings, django_capture_on_commit_callbacks):
    settings.NOTIFICATIONS_DEFAULT_DESTINATIONS = ["ops-hook"]
    job = make_job("late", schedule_type="daily", schedule_expression="02:00")
    Job.objects.filter(pk=job.pk).update(next_run_at=timezone.now() - timedelta(hours=2))

    with django_capture_on_commit_callbacks(execute=True):
        overdue_check.apply()
    with django_capture_on_commit_callbacks(execute=True):
        overdue_check.apply()  # still the same episode
    bodies = receiver.bodies()
    assert [b["event"] for b in bodies] == ["overdue"]
    assert bodies[0]["job"]["name"] == "late" and bodies[0]["overdue_since"]

    # the job runs again (no longer overdue): the episode ends ...
    Job.objects.filter(pk=job.pk).update(next_run_at=timezone.now() + timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        overdue_check.apply()
    assert not OverdueEpisode.objects.exists()
    # ... and the next time it is overdue is a new one
    Job.objects.filter(pk=job.pk).update(next_run_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        overdue_check.apply()
    assert [b["event"] for b in receiver.bodies()] == ["overdue", "overdue"]


def test_overdue_check_is_schedulable_and_on_beat(settings):
    from scheduling.executors import schedulable_task

    assert schedulable_task("notifications.overdue_check") is not None
    entry = settings.CELERY_BEAT_SCHEDULE["notifications: overdue check"]
    assert entry["task"] == "notifications.overdue_check" and entry["options"]["queue"] == "default"


# ---------------------------------------------------------------------------
# Tenancy
# ---------------------------------------------------------------------------
def _delivery(job, destination) -> NotificationDelivery:
    now = timezone.now()
    notification = Notification.objects.create(event="failure", job=job, payload={})
    return NotificationDelivery.objects.create(notification=notification, destination=destination, event="failure",
                                               job=job, attempt=1, status="delivered", started_at=now, finished_at=now)


def test_a_user_never_sees_another_organizations_deliveries(user, job, org_mate_job, foreign_job):
    # given: one delivery for alice's job, her organization's, and another organization's
    destination = services.destination_create(name="oncall", kind="email", email_to="ops@example.com")
    own, mate, foreign = (_delivery(j, destination) for j in (job, org_mate_job, foreign_job))
    # then: alice sees her organization's deliveries, never the other one's, even when asking for its job
    assert set(selectors.delivery_list(user=user)) == {own, mate}
    assert not selectors.delivery_list(user=user, job=foreign_job).exists()
    # the installation sees every tenant's; a read that names no reader is refused
    assert set(selectors.delivery_list(user=SYSTEM)) == {own, mate, foreign}
    with pytest.raises(TypeError):
        selectors.delivery_list(user=None)


# ---------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------
def test_api_get_shows_the_defaults_then_put_changes_them(admin_api, job, hook, settings):
    settings.NOTIFICATIONS_DEFAULT_DESTINATIONS = ["ops-hook"]
    url = f"/api/v1/jobs/{job.pk}/notifications"
    body = admin_api.get(url).json()
    assert body == {
        "job_id": job.pk, "on_failure": True, "on_recovery": True, "on_overdue": True, "destinations": [],
        "include_defaults": True, "default_destinations": ["ops-hook"],
        "effective_destinations": [{"name": "ops-hook", "kind": "webhook", "is_enabled": True}], "customised": False,
    }
    services.destination_create(name="oncall", kind="email", email_to="ops@example.com")
    response = admin_api.put(url, {"on_recovery": False, "destinations": ["oncall"], "include_defaults": False},
                             format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["on_failure"], body["on_recovery"], body["destinations"], body["customised"]) == (
        True, False, ["oncall"], True)
    assert [d["name"] for d in body["effective_destinations"]] == ["oncall"]


def test_api_put_errors_and_permissions(api, admin_api, job, foreign_job):
    url = f"/api/v1/jobs/{job.pk}/notifications"
    assert api.get(url).status_code == 200  # the owner reads
    response = api.put(url, {"on_failure": False}, format="json")
    assert response.status_code == 403
    assert response.json()["detail"] == "Only superusers can create or modify jobs."
    assert api.get(f"/api/v1/jobs/{foreign_job.pk}/notifications").status_code == 404
    response = admin_api.put(url, {"destinations": ["nope"]}, format="json")
    assert response.status_code == 400 and "Unknown destination(s): nope" in response.json()["detail"]
    response = admin_api.put(url, {"on_falure": True}, format="json")
    assert response.status_code == 400 and "on_falure" in response.json()["detail"]


def test_api_lists_a_jobs_deliveries(admin_api, hook, receiver, eager, settings, django_capture_on_commit_callbacks):
    settings.NOTIFICATIONS_MAX_ATTEMPTS = 3
    receiver.answers = [502]
    job = make_job()
    services.job_notification_settings_update(job=job, destinations=["ops-hook"])
    run(job, django_capture_on_commit_callbacks)
    body = admin_api.get(f"/api/v1/jobs/{job.pk}/notifications/deliveries").json()
    assert body["total"] == 2
    assert [(i["attempt"], i["status"], i["status_code"], i["destination"], i["event"]) for i in body["items"]] == [
        (2, "delivered", 200, "ops-hook", "failure"), (1, "retrying", 502, "ops-hook", "failure")]
    assert admin_api.get(f"/api/v1/jobs/{job.pk}/notifications/deliveries?status=retrying").json()["total"] == 1


def test_admin_pages_render(admin_client, hook, eager, receiver, django_capture_on_commit_callbacks):
    job = make_job()
    services.job_notification_settings_update(job=job, destinations=["ops-hook"])
    run(job, django_capture_on_commit_callbacks)
    for url in ("/admin/notifications/destination/", f"/admin/notifications/destination/{hook.pk}/change/",
                "/admin/notifications/notificationdelivery/", "/admin/notifications/notification/",
                f"/admin/notifications/notification/{Notification.objects.get().pk}/change/",
                "/admin/notifications/jobnotificationsettings/"):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert SECRET not in response.content.decode()
    assert admin_client.get("/admin/notifications/notificationdelivery/add/").status_code == 403


# ---------------------------------------------------------------------------
# End to end: the real worker runs the job and delivers
# ---------------------------------------------------------------------------
@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_worker_notifies_a_failure_then_the_recovery(celery_worker_process, receiver):
    services.destination_create(name="e2e-hook", kind="webhook", url=receiver.url, secret=SECRET)
    job = make_job("e2e-notify")
    services.job_notification_settings_update(job=job, destinations=["e2e-hook"])

    failed = core_services.job_execute(job=job, force=True)
    assert [r for r in receiver.wait_for(1)], "no failure notification arrived"
    core_services.job_update(job=job, data={"task_name": "tests.echo", "task_kwargs": {}})
    core_services.job_execute(job=job, force=True)
    receiver.wait_for(2)

    bodies = receiver.bodies()
    assert [b["event"] for b in bodies] == ["failure", "recovery"]
    assert bodies[0]["execution"]["id"] == failed.pk
    assert all(verify(r) for r in receiver.requests)
    # the worker records a delivery once the receiver has answered: a moment after it got the request
    wait_for(lambda: NotificationDelivery.objects.filter(status="delivered").count() == 2, timeout=10,
             message="both deliveries recorded as delivered")
