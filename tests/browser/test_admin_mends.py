"""In a browser: a calendar's next 12 months, a job's Backfill plan and the
banner's maintenance line (screenshots under var/test-artifacts/browser/)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from scheduling.models import Calendar
from scheduling.services.pause_all import maintenance_pause
from tests.browser.test_facade_admin import (  # noqa: F401  (fixtures)
    assert_no_horizontal_scroll, driver, root, screenshot, signed_in, wait_for,
)
from tests.factories import JobFactory

selenium = pytest.importorskip("selenium")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402

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
    assert_no_horizontal_scroll(driver)
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
    assert_no_horizontal_scroll(driver)
    screenshot(driver, "job-backfill-plan", full_page=True)
