"""The jobs console in a real browser (headless Chromium), at 1400 × 900 and
1920 × 1080, with real runs of every kind done by the session's worker: a
scheduled task that succeeds and one that fails, a workflow schedule, a vision
cron job polling a (local) document API, a bulk predictions upload (the
internal job), and one task still running. Screenshots:
var/test-artifacts/browser/jobs-*.png.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from scheduling import services
from scheduling.models import Execution, Job
from scheduling.workflows import services as workflow_services
from tests.browser.conftest import no_sideways_scroll, page_left, screenshot, set_viewport, wait_for
from tests.factories import JobFactory

from selenium.webdriver.common.by import By  # noqa: E402  (after conftest's skip without selenium or a browser)
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)

SIZES = [(1400, 900), (1920, 1080)]
SAMPLE = Path(__file__).resolve().parents[2] / "predictions" / "samples" / "annual_sample.csv"


def wait_until(condition, *, timeout: float = 90.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def finished(job: Job, count: int) -> bool:
    return job.executions.filter(status__in=Execution.FINISHED_STATUSES).count() >= count


def every_column_on_screen(driver) -> None:
    """No column past the window's edge, and the list's own box does not scroll sideways either."""
    offscreen = driver.execute_script(
        "const w = document.documentElement.clientWidth;"
        "return [...document.querySelectorAll('#result_list thead th')]"
        "  .filter(th => th.getBoundingClientRect().right > w + 0.5).map(th => th.innerText);")
    assert not offscreen, f"columns off the right edge: {offscreen}"
    box = driver.execute_script("const box = document.querySelector('#changelist .results');"
                                "return [box.scrollWidth, box.clientWidth];")
    assert box[0] <= box[1], f"the list scrolls sideways in its box: {box[0]} px in {box[1]} px"


def times_on_one_line(driver) -> int:
    """Every relative time of the list is one line (a wrapped one has several boxes); their count."""
    wrapped = driver.execute_script(
        "return [...document.querySelectorAll('#result_list time.ops-when')]"
        "  .filter(t => t.getClientRects().length > 1).map(t => t.innerText);")
    assert not wrapped, f"times wrapped over lines: {wrapped}"
    return len(driver.find_elements(By.CSS_SELECTOR, "#result_list time.ops-when"))


def show(driver, element_id: str) -> None:
    """Scroll the fieldset of ``element_id`` to the top of the window (for the screenshot)."""
    driver.execute_script("document.getElementById(arguments[0]).closest('fieldset').scrollIntoView()", element_id)


def row(driver, name: str):
    return driver.find_element(By.XPATH, f"//tr[.//span[@class='ops-name' and text()='{name}']]")


@pytest.fixture
def world(root, celery_worker_process, serve_directory, tmp_path, client_for):
    """Jobs of every kind with real runs by the session's worker, one still running."""
    nightly = JobFactory(name="nightly-report", title="Nightly sales report", task_name="tests.echo",
                         schedule_type="daily", schedule_expression="02:00", owner=root)
    # a name as long as names get: the list still fits
    JobFactory(name="warehouse.rebuild-aggregates-for-every-organization-and-region-nightly", task_name="tests.noop",
               schedule_type="manual", schedule_expression="", owner=root)
    flaky = JobFactory(name="flaky-export", task_name="tests.fail", task_kwargs={"message": "export refused"},
                       schedule_type="cron", schedule_expression="*/15 * * * *", owner=root)
    workflow_services.workflow_create(actor=root, id="daily-digest", name="Daily digest", steps=[
        {"name": "collect", "type": "task", "task_name": "tests.echo"},
        {"name": "send", "type": "task", "task_name": "tests.echo"}])
    digest, _ = workflow_services.workflow_schedule_save(
        actor=root, job_id="digest", workflow_id="daily-digest", user_id=str(root.pk), input='{"team": "ops"}',
        schedule_type="cron", cron_expression="0 7 * * *")
    # the document API the vision job polls: nothing new to analyse
    (tmp_path / "analyses.json").write_text(json.dumps(
        {"code": 200, "status": "success", "data": {"vision_analysis": [], "total": 0}}))
    api = serve_directory(tmp_path)
    from vision_pipeline.services.cron_jobs import cron_job_create

    scans = cron_job_create(actor=root, name="Warehouse scans", schedule="*/5 * * * *",
                            external_api_get_url=f"{api}/analyses.json", external_api_post_url=f"{api}/results",
                            external_api_key="sk-browser-secret-991", organization_id="org-7")
    wanted = ((nightly, 3), (flaky, 2), (digest, 1), (scans, 1))
    for round_ in range(3):  # one run of a job at a time (their overlap policy: skip)
        for job, runs in wanted:
            if round_ < runs:
                services.job_execute(job=job, actor=root, trigger=Execution.Trigger.MANUAL)
        for job, runs in wanted:
            wait_until(lambda: finished(job, min(runs, round_ + 1)), what=f"run {round_ + 1} of {job.name}")
    response = client_for(root).post("/api/v1/predictions/annual/bulk-upload-async",
                                     {"file": SimpleUploadedFile("companies.csv", SAMPLE.read_bytes())},
                                     format="multipart")
    assert response.status_code in (200, 201, 202), response.content
    uploads = Job.objects.get(name="predictions.bulk-upload")
    for job, runs in ((nightly, 3), (flaky, 2), (digest, 1), (scans, 1), (uploads, 1)):
        wait_until(lambda: finished(job, runs), what=f"{runs} runs of {job.name}")
    # last: a long run the worker is busy with while the pages are looked at
    long_import = JobFactory(name="long-import", task_name="tests.sleep", task_kwargs={"seconds": 120},
                             schedule_type="interval", schedule_expression="60", owner=root)
    running = services.job_execute(job=long_import, actor=root, trigger=Execution.Trigger.MANUAL)
    wait_until(lambda: Execution.objects.get(pk=running.pk).status == "running", what="the long run to start")
    yield {"nightly": nightly, "flaky": flaky, "digest": digest, "scans": scans, "uploads": uploads,
           "long_import": long_import, "running": running}
    running.refresh_from_db()
    if running.status in Execution.ACTIVE_STATUSES:
        services.execution_cancel(execution=running, actor_label="test")


def test_jobs_console_at_1400_and_1920(signed_in, live_server, world):
    driver = signed_in
    base = f"{live_server.url}/admin/scheduling/job/"
    for width, height in SIZES:
        set_viewport(driver, width, height)
        # -- the list: users' jobs, every column on screen, one line a time
        driver.get(base)
        names = {e.text for e in driver.find_elements(By.CSS_SELECTOR, "#result_list .ops-name")}
        assert names == {"nightly-report", "flaky-export", world["digest"].name, world["scans"].name, "long-import",
                         "warehouse.rebuild-aggregates-for-every-organization-and-region-nightly"}
        no_sideways_scroll(driver)
        every_column_on_screen(driver)
        assert times_on_one_line(driver) >= 8
        nightly = row(driver, "nightly-report")
        assert len(nightly.find_elements(By.CSS_SELECTOR, ".ops-run-success")) == 3
        assert "Success" in nightly.find_element(By.CSS_SELECTOR, "td.field-last_result").text
        assert nightly.find_element(By.CSS_SELECTOR, "td.field-next_run").text.startswith("in ")
        assert nightly.find_element(By.CSS_SELECTOR, "td.field-success_rate_display").text.startswith("100%")
        assert nightly.find_element(By.CSS_SELECTOR, "button.ops-row-pause").is_displayed()
        flaky = row(driver, "flaky-export")
        assert len(flaky.find_elements(By.CSS_SELECTOR, ".ops-run-failed")) == 2
        assert "Failed" in flaky.find_element(By.CSS_SELECTOR, "td.field-last_result").text
        long_row = row(driver, "long-import")
        assert "Running" in long_row.find_element(By.CSS_SELECTOR, "td.field-now_display").text
        assert long_row.find_elements(By.CSS_SELECTOR, ".ops-run-running")
        assert "no result yet" in long_row.find_element(By.CSS_SELECTOR, "td.field-last_result").text
        assert "Workflow" in row(driver, world["digest"].name).text
        screenshot(driver, f"jobs-list-{width}")
        # -- internal jobs, on demand: no Pause, no Run
        driver.find_element(By.LINK_TEXT, "Internal jobs").click()
        uploads = wait_for(driver, lambda d: row(d, "predictions.bulk-upload"))
        assert "runs from its API" in uploads.text and not uploads.find_elements(By.CSS_SELECTOR, "button")
        assert uploads.find_elements(By.CSS_SELECTOR, ".ops-run-success")
        no_sideways_scroll(driver)
        screenshot(driver, f"jobs-list-internal-{width}")
        # -- a job page: the summary first
        driver.get(f"{base}{world['nightly'].pk}/change/")
        summary = driver.find_element(By.ID, "ops-job-summary")
        assert "100%" in summary.find_element(By.ID, "ops-card-rate").text
        assert "02:00:00" in summary.find_element(By.ID, "ops-card-next").text
        assert summary.find_element(By.CSS_SELECTOR, "#ops-duration-chart svg").is_displayed()
        assert summary.location["y"] < driver.find_element(By.ID, "job_form").location["y"]
        no_sideways_scroll(driver)
        screenshot(driver, f"jobs-page-{width}")
        # -- the workflow schedule: its workflow and input as fields
        driver.get(f"{base}{world['digest'].pk}/change/")
        chosen = driver.find_element(By.CSS_SELECTOR, "#id_workflow option:checked")
        assert chosen.get_attribute("value") == "daily-digest"
        assert '"team": "ops"' in driver.find_element(By.ID, "id_workflow_input").get_attribute("value")
        assert not driver.find_elements(By.ID, "id_config") and not driver.find_elements(By.ID, "id_task_name")
        no_sideways_scroll(driver)
        show(driver, "id_workflow")
        screenshot(driver, f"jobs-workflow-schedule-{width}")
        # -- the vision cron job: its external API as fields, the key never shown
        driver.get(f"{base}{world['scans'].pk}/change/")
        assert driver.find_element(By.ID, "id_cfg_organization_id").get_attribute("value") == "org-7"
        assert driver.find_element(By.ID, "id_secret_external_api_key").get_attribute("value") == ""
        assert "sk-browser-secret-991" not in driver.page_source
        no_sideways_scroll(driver)
        show(driver, "id_cfg_external_api_get_url")
        screenshot(driver, f"jobs-vision-cron-job-{width}")

    # -- the add page shows the fields of the kind chosen
    driver.get(f"{base}add/")
    assert driver.find_element(By.ID, "id_task_name").is_displayed()
    assert not driver.find_element(By.ID, "id_workflow").is_displayed()
    Select(driver.find_element(By.ID, "id_kind")).select_by_value("workflow")
    assert driver.find_element(By.ID, "id_workflow").is_displayed()
    assert not driver.find_element(By.ID, "id_task_name").is_displayed()
    assert not driver.find_element(By.ID, "id_cfg_external_api_get_url").is_displayed()
    Select(driver.find_element(By.ID, "id_kind")).select_by_value("vision_analysis")
    assert driver.find_element(By.ID, "id_cfg_external_api_get_url").is_displayed()
    assert not driver.find_element(By.ID, "id_workflow").is_displayed()
    show(driver, "id_cfg_external_api_get_url")
    screenshot(driver, "jobs-add-vision-cron-job")

    # -- run with parameters: a refused value is a form error, then a run with its own parameters
    driver.get(f"{base}{world['nightly'].pk}/change/")
    driver.find_element(By.CSS_SELECTOR, "#ops-run-with-parameters summary").click()
    box = driver.find_element(By.ID, "id_more_parameters")
    box.clear()
    box.send_keys('{"region": ')
    page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.ID, "ops-run-with-parameters-submit").click()
    wait_for(driver, page_left(page))
    assert "Enter a valid JSON" in driver.find_element(By.CSS_SELECTOR, ".field-more_parameters .errorlist").text
    screenshot(driver, "jobs-run-with-parameters-error")
    box = driver.find_element(By.ID, "id_more_parameters")
    box.clear()
    box.send_keys('{"region": "north"}')
    driver.find_element(By.ID, "ops-run-with-parameters-submit").click()
    wait_for(driver, EC.url_contains("/admin/scheduling/execution/"))
    assert world["nightly"].executions.filter(override_kwargs={"region": "north"}).exists()

    # -- Cancel the running run from its job's page
    driver.get(f"{base}{world['long_import'].pk}/change/")
    page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.ID, f"ops-cancel-run-{world['running'].pk}").click()
    wait_for(driver, page_left(page))
    message = driver.find_element(By.CSS_SELECTOR, "ul.messagelist").text
    assert f"Cancelled run {world['running'].pk} of long-import." in message
    world["running"].refresh_from_db()
    assert world["running"].status == "cancelled"
    screenshot(driver, "jobs-page-after-cancel")
