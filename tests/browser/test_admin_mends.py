"""In a browser: a calendar's next 12 months, a job's Backfill plan, the
banner's maintenance line, and run after other jobs on the job page
(screenshots under var/test-artifacts/browser/)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from scheduling.models import Calendar
from scheduling.services.pause_all import maintenance_pause
from tests.browser.conftest import screen_fits, screenshot, wait_for
from tests.factories import JobFactory

from selenium.webdriver.common.by import By  # noqa: E402  (after conftest's skip without selenium or a browser)
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_calendars_months_and_a_jobs_backfill_plan(signed_in, live_server):
    driver = signed_in
    today = timezone.now().date()
    calendar = Calendar.objects.create(
        name="release-freeze", timezone="UTC", dates=[(today + timedelta(days=2)).isoformat()],
        date_ranges=[{"start": (today + timedelta(days=40)).isoformat(), "end": (today + timedelta(days=46)).isoformat()}],
        weekly_windows=[{"day": 5, "start": "00:00", "end": "06:00"}])
    driver.get(live_server.url + reverse("admin:scheduling_calendar_change", args=[calendar.pk]))
    months = driver.find_elements(By.CSS_SELECTOR, "table.ops-month")
    assert len(months) == 12 and all(month.is_displayed() for month in months[:1])
    assert len(driver.find_elements(By.CSS_SELECTOR, "td.ops-day-skipped")) == 8
    assert driver.find_elements(By.CSS_SELECTOR, "td.ops-day-partly")  # the Saturday mornings
    screen_fits(driver)
    driver.execute_script("document.getElementById('ops-calendar-months').scrollIntoView()")
    screenshot(driver, "calendar-months")

    maintenance_pause(reason="database upgrade")
    job = JobFactory(name="hourly-sync", schedule_type="cron", schedule_expression="0 * * * *")
    driver.get(live_server.url + reverse("admin:scheduling_job_change", args=[job.pk]))
    assert "Maintenance: the whole site is paused" in driver.find_element(By.CSS_SELECTOR, ".ops-warnings").text
    driver.find_element(By.ID, "ops-backfill").click()
    wait_for(driver, EC.presence_of_element_located((By.ID, "ops-backfill-form")))
    end = timezone.now().replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=5)
    for name, value in (("start", f"{start:%Y-%m-%d %H:%M}"), ("end", f"{end:%Y-%m-%d %H:%M}")):
        field = driver.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)
    driver.find_element(By.ID, "ops-backfill-submit").click()
    plan = wait_for(driver, EC.presence_of_element_located((By.ID, "ops-backfill-plan")))
    assert plan.text == "The plan: 5 to run of 5 due times"
    assert len(driver.find_elements(By.CSS_SELECTOR, "#ops-backfill-rows tbody tr")) == 5
    screen_fits(driver)
    screenshot(driver, "job-backfill-plan", full_page=True)


def test_run_after_is_set_on_the_job_page_and_a_cycle_is_named(signed_in, live_server):
    driver = signed_in
    extract = JobFactory(name="extract", schedule_type="cron", schedule_expression="0 2 * * *")
    transform = JobFactory(name="transform", schedule_type="manual", schedule_expression="")
    driver.get(live_server.url + reverse("admin:scheduling_job_change", args=[transform.pk]))
    assert "No other job" in driver.find_element(By.ID, "ops-run-after").text
    driver.find_element(By.CSS_SELECTOR, "#ops-run-after-edit > summary").click()
    driver.find_element(By.NAME, "run_after-0-job").send_keys("extract")
    Select(driver.find_element(By.NAME, "run_after-0-condition")).select_by_value("finished")
    screen_fits(driver)
    screenshot(driver, "job-run-after-edit", full_page=True)
    driver.find_element(By.ID, "ops-run-after-submit").click()
    wait_for(driver, EC.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist")))
    upstreams = driver.find_element(By.ID, "ops-run-after-upstreams").text
    assert upstreams == "extract after it finishes (any outcome)"

    # the other way round closes a cycle: refused, named, nothing saved
    driver.get(live_server.url + reverse("admin:scheduling_job_change", args=[extract.pk]))
    assert "transform" in driver.find_element(By.ID, "ops-run-after-dependants").text
    driver.find_element(By.CSS_SELECTOR, "#ops-run-after-edit > summary").click()
    driver.find_element(By.NAME, "run_after-0-job").send_keys("transform")
    driver.find_element(By.ID, "ops-run-after-submit").click()
    errors = wait_for(driver, EC.presence_of_element_located((By.ID, "ops-run-after-errors")))
    assert errors.text == "Dependency cycle (each runs after the next): extract → transform → extract."
    screen_fits(driver)
    screenshot(driver, "job-run-after-cycle")
    assert not extract.upstream_links.exists()
