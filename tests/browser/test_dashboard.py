"""The dashboard (the admin index) in headless Chromium at 1400 × 900, with
real runs of every kind made through the APIs and services and run by the
session's real worker: a scheduled task (one failed, one still running with
its progress), a workflow, a vision batch and a prediction upload.
Screenshots are kept under var/test-artifacts/browser/; the README's image
is docs/images/dashboard.png (refreshed with JOBSITE_UPDATE_DOCS_IMAGES=1)."""
from __future__ import annotations

import os
import shutil

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from jobsite.auth import access_token_for
from jobsite.services_health import record_beat_heartbeat
from scheduling import services
from scheduling.models import Execution
from tests.browser.conftest import no_sideways_scroll, screen_fits, screenshot, sign_in
from tests.factories import JobFactory
from tests.worker import wait_for

from selenium.webdriver.common.by import By  # noqa: E402  (after conftest's skip without selenium or a browser)

pytestmark = pytest.mark.django_db(transaction=True)

DOCS_IMAGE = settings.BASE_DIR / "docs" / "images" / "dashboard.png"


def work_of_every_kind(root) -> dict[str, Execution]:
    """One run of each kind, through the same APIs and services as a user's."""
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(root)}")
    runs = {}
    # a scheduled task that fails, and one that runs long enough to be seen running
    failing = JobFactory(name="invoice-export", title="Invoice export", task_name="demo.sleep",
                         task_kwargs={"seconds": 0, "fail": True, "message": "the invoice service answered 503"},
                         schedule_type="cron", schedule_expression="*/30 * * * *", owner=root)
    runs["failed"] = services.job_execute(job=failing, actor=root, trigger=Execution.Trigger.MANUAL)
    long = JobFactory(name="warehouse-sync", title="Warehouse sync", task_name="demo.sleep",
                      task_kwargs={"seconds": 90}, schedule_type="daily", schedule_expression="02:30", owner=root)
    runs["running"] = services.job_execute(job=long, actor=root, trigger=Execution.Trigger.MANUAL)
    JobFactory(name="cache-warmup", title="Cache warm-up", task_name="demo.sleep", task_kwargs={"seconds": 0},
               schedule_type="interval", schedule_expression="2h", owner=root)
    # a workflow on a schedule, triggered now
    from scheduling.workflows.selectors import user_seed_id

    response = api.post("/api/workflows/", {"id": "nightly-digest", "name": "Nightly digest", "steps": [
        {"name": "settle", "type": "delay", "seconds": 0.2},
        {"name": "compose", "type": "task", "task_name": "demo.sleep", "kwargs": {"seconds": 0.2}},
    ]}, format="json")
    assert response.status_code == 201, response.content
    response = api.post("/api/cron/jobs/cron", {"job_id": "digest", "workflow_id": "nightly-digest",
                                                "user_id": user_seed_id(root), "input": "today",
                                                "cron_expression": "0 6 * * *"}, format="json")
    assert response.status_code in (200, 201), response.content
    response = api.post("/api/cron/jobs/digest/trigger")
    assert response.status_code == 200, response.content
    runs["workflow"] = Execution.objects.get(pk=response.json()["execution_id"])
    # a vision batch of one image
    from vision_pipeline import samples

    image = SimpleUploadedFile("pipe.jpg", samples.encode(samples.variant("rust", 640, 480, seed=1)), "image/jpeg")
    response = api.post("/api/v1/vision/batches", {"images": [image]}, format="multipart")
    assert response.status_code in (200, 201, 202), response.content
    runs["vision"] = Execution.objects.filter(job__kind="vision_batch").latest("pk")
    # a prediction upload of the sample file
    sample = settings.BASE_DIR / "predictions" / "samples" / "annual_sample.csv"
    response = api.post("/api/v1/predictions/annual/bulk-upload-async",
                        {"file": SimpleUploadedFile("annual.csv", sample.read_bytes())}, format="multipart")
    assert response.status_code in (200, 201, 202), response.content
    runs["prediction"] = Execution.objects.filter(job__kind="bulk_prediction").latest("pk")
    return runs


def test_the_dashboard_shows_the_system_at_a_glance(driver, live_server, root, celery_worker_process):
    runs = work_of_every_kind(root)
    finished = [run for name, run in runs.items() if name != "running"]
    wait_for(lambda: not Execution.objects.filter(pk__in=[r.pk for r in finished],
                                                  status__in=Execution.ACTIVE_STATUSES).exists(),
             timeout=90, message="every short run to finish")
    wait_for(lambda: (Execution.objects.get(pk=runs["running"].pk).result or {}).get("percent"),
             timeout=60, message="the long run to report progress")
    assert Execution.objects.get(pk=runs["failed"].pk).status == "failed"
    record_beat_heartbeat()  # as beat's tick does: the dashboard shows beat up

    sign_in(driver, live_server, root)
    driver.get(f"{live_server.url}/admin/")
    dashboard = driver.find_element(By.ID, "ops-dashboard")
    screenshot(driver, "dashboard-1400x900")

    # active runs: the long one with its progress bar and ETA
    active = driver.find_element(By.ID, "panel-active")
    assert active.find_element(By.LINK_TEXT, str(runs["running"].pk))
    progress = active.find_element(By.CSS_SELECTOR, ".ops-progress")
    assert "ETA" in progress.text and "%" in progress.text
    # the failure, with its error and a re-run button
    failures = driver.find_element(By.ID, "panel-failures")
    assert "the invoice service answered 503" in failures.text
    # the queues and the live worker; beat up
    assert celery_worker_process.nodename in driver.find_element(By.ID, "workers").text
    assert "up" in driver.find_element(By.ID, "kpi-beat").text
    assert {row.text.split()[0] for row in driver.find_elements(By.CSS_SELECTOR, "#queues tbody tr")} >= set(
        settings.JOBS_QUEUES)
    # both charts, each hour a link to its runs
    assert len(driver.find_elements(By.CSS_SELECTOR, "svg.ops-svg-chart")) == 2
    assert driver.find_elements(By.CSS_SELECTOR, "#panel-runs-24h svg a")
    # the next 24 hours: the scheduled jobs on the timeline
    timeline = driver.find_element(By.ID, "panel-upcoming").text
    assert "Invoice export" in timeline and "Cache warm-up" in timeline
    # the audit trail instead of Django's empty "Recent actions"
    assert "root" in driver.find_element(By.ID, "panel-audit").text
    # the app list below, beat's tables folded away
    internal = driver.find_element(By.CSS_SELECTOR, "details.ops-internal")
    assert not internal.find_element(By.CSS_SELECTOR, "a[href*='clockedschedule']").is_displayed()
    assert driver.find_element(By.CSS_SELECTOR, "#app-list a[href*='/scheduling/job/']").is_displayed()
    screen_fits(driver)
    screenshot(driver, "dashboard-1400x900")
    full = screenshot(driver, "dashboard-full", full_page=True)
    if os.environ.get("JOBSITE_UPDATE_DOCS_IMAGES"):
        shutil.copyfile(full, DOCS_IMAGE)

    # one click re-runs the failed run
    failures = driver.find_element(By.ID, "panel-failures")
    failures.find_element(By.CSS_SELECTOR, "button.ops-button").click()
    wait_for(lambda: Execution.objects.filter(job_id=runs["failed"].job_id).count() == 2, timeout=10,
             message="the re-run")
    rerun = Execution.objects.filter(job_id=runs["failed"].job_id).latest("pk")
    assert rerun.trigger == Execution.Trigger.MANUAL
    wait_for(lambda: f"/admin/scheduling/execution/{rerun.pk}/change/" in driver.current_url, timeout=10,
             message="the re-run's page")
    services.execution_cancel(execution=Execution.objects.get(pk=runs["running"].pk), actor_label="test")
    assert dashboard is not None


def test_health_in_a_browser_is_a_page(driver, live_server, root):
    record_beat_heartbeat()
    sign_in(driver, live_server, root)
    driver.get(f"{live_server.url}/health")
    body = driver.find_element(By.TAG_NAME, "body").text
    assert "Database" in body and "Broker" in body and "Beat" in body
    assert not body.lstrip().startswith("{")
    no_sideways_scroll(driver)  # a page of its own, outside the admin
    screenshot(driver, "health")


def test_send_test_on_a_notification_destination(driver, live_server, root):
    from scheduling.notifications.services import destination_create

    destination = destination_create(name="on-call", kind="email", email_to="oncall@example.com")
    sign_in(driver, live_server, root)
    driver.get(f"{live_server.url}/admin/notifications/destination/{destination.pk}/change/")

    driver.find_element(By.ID, "ops-send-test").click()

    message = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "ul.messagelist li"), timeout=15,
                       message="the outcome of the test")[0].text
    assert message == "Test to on-call sent to 1 recipient(s)."
    screen_fits(driver)
    screenshot(driver, "destination-send-test")
