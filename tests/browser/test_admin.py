"""The admin and the docs in a real browser: headless Chromium (Debian's
chromium + chromium-driver) driven by Selenium against pytest-django's live
server, with a real Redis and, where a run must really run, a real worker.
The browser, the sign-in and the screenshots: conftest.py.
"""
from __future__ import annotations

import re
import time
import uuid

import pytest
from django.conf import settings

from scheduling import services
from scheduling.models import Execution
from tests.browser.conftest import click, screenshot, text_of, wait_for
from tests.factories import ExecutionFactory, JobFactory

from selenium.webdriver.common.by import By  # noqa: E402  (after conftest's skip without selenium or a browser)
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)


def badge_colour(driver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).value_of_css_property("background-color")


GREEN, GREY = "rgba(46, 125, 50, 1)", "rgba(97, 97, 97, 1)"


# ---------------------------------------------------------------------------
def test_docs_page_offline_after_login(driver, live_server, root):
    driver.delete_all_cookies()
    driver.get(f"{live_server.url}/api/docs/")
    assert "/admin/login/" in driver.current_url  # sent to the login, not a bare 401
    driver.find_element(By.ID, "id_username").send_keys("root")
    driver.find_element(By.ID, "id_password").send_keys("s3cret-pass!")
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait_for(driver, EC.url_to_be(f"{live_server.url}/api/docs/"))
    # Swagger UI's own script (served by the project, not a CDN) renders the schema
    title = wait_for(driver, EC.visibility_of_element_located((By.CSS_SELECTOR, ".swagger-ui .info .title")))
    assert "jobsite API" in title.text
    wait_for(driver, EC.presence_of_element_located((By.CSS_SELECTOR, ".opblock-tag")))
    screenshot(driver, "docs-swagger")
    driver.get(f"{live_server.url}/")
    assert {a.get_attribute("href").removeprefix(live_server.url) for a in driver.find_elements(By.CSS_SELECTOR, "a.card")} >= {
        "/admin/", "/api/docs/", "/api/redoc/", "/health"}
    screenshot(driver, "landing")


def test_job_page_buttons_pause_resume_disable_enable(signed_in, live_server):
    driver = signed_in
    job = JobFactory(name="nightly-cleanup", task_name="demo.sleep", task_kwargs={"seconds": 1},
                     schedule_type="daily", schedule_expression="02:00")
    driver.get(f"{live_server.url}/admin/scheduling/job/{job.pk}/change/")
    screenshot(driver, "job-change")
    click(driver, "ops-pause")
    job.refresh_from_db()
    assert job.state == "paused"
    assert "Paused nightly-cleanup." in text_of(driver, "ul.messagelist")
    click(driver, "ops-resume")
    job.refresh_from_db()
    assert job.state == "active"
    click(driver, "ops-disable")
    job.refresh_from_db()
    assert job.state == "disabled" and driver.find_elements(By.ID, "ops-enable")
    driver.get(f"{live_server.url}/admin/scheduling/job/")
    assert badge_colour(driver, ".ops-badge-disabled") == GREY  # not a green "Active"
    assert not driver.find_elements(By.CSS_SELECTOR, ".ops-badge-active")
    driver.get(f"{live_server.url}/admin/scheduling/job/{job.pk}/change/")
    click(driver, "ops-enable")
    job.refresh_from_db()
    assert job.state == "active"


def test_run_now_then_cancel_a_running_run_then_rerun(signed_in, live_server, celery_worker_process):
    driver = signed_in
    job = JobFactory(name="sleepy", task_name="demo.sleep", task_kwargs={"seconds": 30})
    driver.get(f"{live_server.url}/admin/scheduling/job/{job.pk}/change/")
    click(driver, "ops-run-now")
    execution = Execution.objects.get(job=job)
    assert f"/admin/scheduling/execution/{execution.pk}/change/" in driver.current_url
    # the page refreshes itself until the worker has picked the run up
    wait_for(driver, EC.presence_of_element_located((By.CSS_SELECTOR, ".ops-badge-running")), timeout=20)
    assert badge_colour(driver, ".field-status_line .ops-badge") == "rgba(21, 101, 192, 1)"
    assert f"Run {execution.pk} of sleepy (running)" in driver.page_source
    screenshot(driver, "execution-running")
    # the Workers and queues page shows the worker and maps its task to the run
    driver.get(f"{live_server.url}/admin/scheduling/execution/workers/")
    assert celery_worker_process.nodename in text_of(driver, "#content-main")
    assert driver.find_element(By.LINK_TEXT, f"Run {execution.pk} of sleepy (running)")
    screenshot(driver, "workers")
    driver.find_element(By.LINK_TEXT, f"Run {execution.pk} of sleepy (running)").click()
    click(driver, "ops-cancel")
    execution.refresh_from_db()
    assert execution.status == "cancelled"
    assert badge_colour(driver, ".field-status_line .ops-badge") == GREY
    screenshot(driver, "execution-cancelled")
    click(driver, "ops-rerun")
    rerun = Execution.objects.exclude(pk=execution.pk).get(job=job)
    assert f"/admin/scheduling/execution/{rerun.pk}/change/" in driver.current_url
    services.execution_cancel(execution=rerun, actor_label="test")


def test_job_list_running_since_fits_1400px_and_refreshes(signed_in, live_server):
    driver = signed_in
    busy = JobFactory(name="busy-job", title="A job that is running right now", task_name="tests.noop")
    ExecutionFactory(job=busy, status="running", started_at=busy.created_at)
    # a job with history: every column filled, as wide as they get
    type(busy).objects.filter(pk=busy.pk).update(last_status="timeout", last_run_at=busy.created_at, total_runs=1234,
                                                 successful_runs=1000)
    done = JobFactory(name="done-job", task_name="tests.noop")
    ExecutionFactory(job=done, status="failed")
    services.job_pause(job=done)
    driver.get(f"{live_server.url}/admin/scheduling/job/")
    row = driver.find_element(By.XPATH, "//tr[.//a[contains(., 'busy-job')]]")
    now = row.find_element(By.CSS_SELECTOR, "td.field-now_display")
    assert re.fullmatch(r"Running\nfor [\d.]+s", now.text)  # since when: on hover
    assert "since" in now.find_element(By.CSS_SELECTOR, "[title]").get_attribute("title")
    next_run = row.find_element(By.CSS_SELECTOR, "td.field-next_run time")
    assert next_run.text.startswith("in ")  # relative, the exact time with seconds and zone on hover
    assert re.search(r"\d\d:\d\d:\d\d UTC", next_run.get_attribute("title"))
    assert badge_colour(driver, ".ops-badge-active") == GREEN
    assert badge_colour(driver, ".ops-badge-paused") == "rgba(158, 158, 158, 1)"
    screenshot(driver, "job-list")
    # every column is on screen at 1,400 px
    overflow = driver.execute_script(
        "const box = document.querySelector('#changelist .results');"
        "const table = document.getElementById('result_list');"
        "return Math.max(box.scrollWidth - box.clientWidth, table.getBoundingClientRect().right - window.innerWidth);")
    assert overflow <= 0, f"the job list is {overflow}px wider than its space"
    # a run is going: the list reloads itself (a marker set now is gone after the reload)
    driver.execute_script("window.__before_reload = true;")
    wait_for(driver, lambda d: d.execute_script("return window.__before_reload === undefined;"), timeout=12)
    Execution.objects.filter(job=busy).update(status="success")
    driver.get(f"{live_server.url}/admin/scheduling/job/")
    assert not driver.find_elements(By.CSS_SELECTOR, 'meta[name="ops-autorefresh"]')


def test_schedule_preview_updates_as_you_type(signed_in, live_server):
    driver = signed_in
    driver.get(f"{live_server.url}/admin/scheduling/job/add/")
    Select(driver.find_element(By.ID, "id_schedule_type")).select_by_value("weekly")
    Select(driver.find_element(By.ID, "id_timezone")).select_by_value("America/New_York")
    expression = driver.find_element(By.ID, "id_schedule_expression")
    expression.send_keys("0:09:30")
    preview = driver.find_element(By.ID, "schedule-preview")
    wait_for(driver, lambda d: "09:30" in preview.text and len(preview.find_elements(By.TAG_NAME, "li")) == 5)
    runs = [li.text for li in preview.find_elements(By.TAG_NAME, "li")]
    assert all(run.startswith("Mon ") and "09:30:00 E" in run for run in runs), runs
    # the preview sits in the Schedule fieldset, right under the fields it describes
    assert preview.find_element(By.XPATH, "ancestor::fieldset").find_elements(By.ID, "id_schedule_expression")
    screenshot(driver, "job-form-preview")
    expression.clear()
    expression.send_keys("9:09:30")
    wait_for(driver, lambda d: "Invalid weekly schedule" in preview.text)
    screenshot(driver, "job-form-preview-invalid")


def test_failed_runs_traceback_and_log_show(signed_in, live_server):
    driver = signed_in
    job = JobFactory(name="fails", task_name="demo.sleep", task_kwargs={"seconds": 0, "fail": True})
    # a queued run with no message sent: run here, where the session's worker (if started) cannot take it too
    execution = ExecutionFactory(job=job, status="queued", trigger="manual", celery_task_id=str(uuid.uuid4()))
    services.execution_run(execution_id=execution.pk, task_id=execution.celery_task_id, worker="browser-test")
    driver.get(f"{live_server.url}/admin/scheduling/execution/{execution.pk}/change/")
    assert f"Run {execution.pk} of fails (failed)" in driver.title or f"Run {execution.pk} of fails (failed)" in driver.page_source
    assert badge_colour(driver, ".field-status_line .ops-badge") == "rgba(198, 40, 40, 1)"
    traceback = text_of(driver, ".field-traceback_block pre")
    assert "Traceback (most recent call last)" in traceback and "RuntimeError: asked to fail" in traceback
    assert "demo.sleep: sleeping 0s then failing" in text_of(driver, ".field-log_block pre")
    assert driver.find_elements(By.ID, "ops-rerun") and not driver.find_elements(By.ID, "ops-cancel")
    screenshot(driver, "execution-failed-traceback")


def test_workers_page_renders_with_no_worker_answering(signed_in, live_server, settings):
    settings.CELERY_BROKER_URL = settings.REDIS_URL.rsplit("/", 1)[0] + "/12"  # no worker listens there
    settings.ADMIN_INSPECT_TIMEOUT_SECONDS = 0.5
    driver = signed_in
    started = time.monotonic()
    driver.get(f"{live_server.url}/admin/scheduling/execution/workers/")
    assert time.monotonic() - started < 5
    assert driver.find_element(By.ID, "ops-no-workers")
    assert "default" in text_of(driver, "#ops-queues")
    screenshot(driver, "workers-none")
