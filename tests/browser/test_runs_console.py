"""The runs console in a real browser at 1,400 × 900: the executions list and
the page of a run of every kind, each run really run by the session's Celery
worker — a scheduled task, a workflow run whose second step fails, a vision
batch, a bulk predictions upload with bad rows, and a task still running with
its progress and live log. Screenshots go to var/test-artifacts/browser/."""
from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from scheduling import services
from scheduling.models import Execution
from tests.browser.conftest import HEIGHT, WIDTH, click, no_sideways_scroll, screenshot, set_viewport, text_of
from tests.browser.conftest import wait_for as wait_in_browser
from tests.factories import ExecutionFactory, JobFactory
from tests.predictions_files import annual_row, csv_bytes
from tests.worker import wait_for

from selenium.webdriver.common.by import By  # noqa: E402  (after conftest's skip without selenium or a browser)
from selenium.webdriver.common.keys import Keys  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def finished(execution_id: int) -> Execution | None:
    execution = Execution.objects.get(pk=execution_id)
    return execution if execution.status not in Execution.ACTIVE_STATUSES else None


def wait_finished(execution: Execution, timeout: float = 60) -> Execution:
    return wait_for(lambda: finished(execution.pk), timeout=timeout, message=f"run {execution.pk} to finish")


@pytest.fixture
def api_for(client_for, root):
    return client_for(root)


def open_page(driver, live_server, path: str, shot: str) -> None:
    driver.get(f"{live_server.url}{path}")
    no_sideways_scroll(driver)
    screenshot(driver, shot)


def run_page(execution: Execution) -> str:
    return reverse("admin:scheduling_execution_change", args=[execution.pk])


def test_runs_of_every_kind_in_the_list_and_on_their_pages(signed_in, live_server, celery_worker_process, root,
                                                          api_for, django_db_blocker):
    driver = signed_in
    # -- real runs, one of each kind ------------------------------------------------------
    # a scheduled task, fired as beat fires it
    nightly = JobFactory(name="nightly-cleanup", title="Clean up old documents", task_name="demo.sleep",
                         task_kwargs={"seconds": 1}, schedule_type="daily", schedule_expression="02:00")
    scheduled = wait_finished(services.job_dispatch_scheduled(job_id=nightly.pk))
    assert scheduled.status == "success" and scheduled.trigger == "schedule"

    # a workflow run whose second step fails
    from scheduling.workflows import selectors as workflow_selectors
    from scheduling.workflows import services as workflows

    workflows.workflow_create(actor=root, id="nightly-report", name="Nightly report", steps=[
        {"name": "collect", "type": "task", "task_name": "tests.echo", "kwargs": {"what": "numbers"}},
        {"name": "render", "type": "task", "task_name": "tests.fail"},
        {"name": "send", "type": "task", "task_name": "tests.echo"},
    ])
    schedule, _ = workflows.workflow_schedule_save(
        actor=root, job_id="report-every-morning", workflow_id="nightly-report",
        user_id=workflow_selectors.user_seed_id(root), input="today", schedule_type="cron", cron_expression="0 7 * * *")
    workflow_run = wait_finished(workflows.workflow_schedule_trigger(job=schedule, actor=root))
    assert workflow_run.status == "failed"

    # a vision batch of two images, uploaded through the batch API
    from vision_pipeline import samples

    images = [SimpleUploadedFile(f"hull-{n}.jpg", samples.encode(samples.variant("rust", 320, 240, seed=n)),
                                 "image/jpeg") for n in range(2)]
    response = api_for.post("/api/v1/vision/batches", {"images": images, "user_query": "Any corrosion?"},
                            format="multipart")
    assert response.status_code in (200, 201, 202), response.content
    from vision_pipeline.models import Batch

    batch = Batch.objects.get(pk=response.json()["batch_id"])
    vision_run = wait_finished(batch.execution)
    assert vision_run.status == "success", vision_run.error

    # a bulk predictions upload with 3 bad rows of 40
    rows = [annual_row(i, **({"sector": ""} if i in (5, 17, 33) else {})) for i in range(40)]
    response = api_for.post("/api/v1/predictions/annual/bulk-upload-async",
                            {"file": SimpleUploadedFile("companies.csv", csv_bytes(rows))}, format="multipart")
    assert response.status_code == 202, response.content
    from predictions.models import BulkUploadJob

    upload = BulkUploadJob.objects.get(pk=response.json()["job_id"])
    predictions_run = wait_finished(upload.execution)
    assert predictions_run.status == "success"

    # a poll that found nothing (hidden from the list unless asked)
    idle = ExecutionFactory(job=nightly, output="No unprocessed analyses", did_nothing=True, duration_seconds=0.2)

    # -- the list --------------------------------------------------------------------------------
    open_page(driver, live_server, reverse("admin:scheduling_execution_changelist"), "runs-list")
    for column in ("job_column", "created_when", "duration", "worker_column", "summary"):
        cell = driver.find_element(By.CSS_SELECTOR, f"#result_list th.column-{column}")
        assert cell.is_displayed() and cell.rect["x"] + cell.rect["width"] <= WIDTH, f"{column} is off the right edge"
    overflow = driver.execute_script(
        "const box = document.querySelector('#changelist .results');"
        "return box.scrollWidth - box.clientWidth;")
    assert overflow <= 0, f"the runs table is {overflow}px wider than its box"
    listed = {int(a.text) for a in driver.find_elements(By.CSS_SELECTOR, "#result_list th.field-id a")}
    assert {scheduled.pk, workflow_run.pk, vision_run.pk, predictions_run.pk} <= listed and idle.pk not in listed
    # times on one line, relative, the exact time on hover
    times = driver.find_elements(By.CSS_SELECTOR, "#result_list td.field-created_when time.ops-when")
    assert times and all(t.text.endswith("ago") or t.text == "just now" for t in times)
    assert all(driver.execute_script("return arguments[0].getClientRects().length;", t) == 1 for t in times)
    assert "UTC" in times[0].get_attribute("title")
    # the Job column links to the job
    row = driver.find_element(By.XPATH, f"//tr[.//th[contains(@class,'field-id')]/a[normalize-space()='{scheduled.pk}']]")
    assert row.find_element(By.CSS_SELECTOR, "td.field-job_column a").get_attribute("href").endswith(
        reverse("admin:scheduling_job_change", args=[nightly.pk]))
    # the job filter: type a name, press Enter
    box = driver.find_element(By.ID, "ops-job-name")
    box.send_keys("nightly")  # suggestions come from the jobs' autocomplete as you type
    wait_in_browser(driver, lambda d: "nightly-cleanup" in [o.get_attribute("value") for o in d.find_elements(
        By.CSS_SELECTOR, "#ops-job-names option")])
    box.send_keys("-cleanup", Keys.ENTER)
    wait_in_browser(driver, lambda d: "job=nightly-cleanup" in d.current_url)
    listed = {int(a.text) for a in driver.find_elements(By.CSS_SELECTOR, "#result_list th.field-id a")}
    assert listed == {scheduled.pk}
    no_sideways_scroll(driver)
    screenshot(driver, "runs-list-filtered")
    driver.find_element(By.ID, "ops-show-did-nothing").click()
    wait_in_browser(driver, lambda d: "did_nothing=show" in d.current_url)
    assert idle.pk in {int(a.text) for a in driver.find_elements(By.CSS_SELECTOR, "#result_list th.field-id a")}
    assert "did nothing" in driver.find_element(By.XPATH, f"//tr[.//th/a[normalize-space()='{idle.pk}']]").text.lower()
    # and at 1920 × 1080 as well: nothing sideways
    set_viewport(driver, 1920, 1080)
    driver.get(f"{live_server.url}{reverse('admin:scheduling_execution_changelist')}?did_nothing=show")
    no_sideways_scroll(driver)
    assert driver.execute_script("const b = document.querySelector('#changelist .results');"
                                 "return b.scrollWidth <= b.clientWidth;")
    screenshot(driver, "runs-list-1920")
    set_viewport(driver, WIDTH, HEIGHT)

    # -- each run's page ---------------------------------------------------------------------
    open_page(driver, live_server, run_page(scheduled), "run-task")
    assert "Success" in text_of(driver, ".field-status_line")
    assert "100%" in text_of(driver, ".field-progress_display")
    assert "demo.sleep: done" in text_of(driver, "#ops-log")

    open_page(driver, live_server, run_page(workflow_run), "run-workflow-failed")
    steps = driver.find_elements(By.CSS_SELECTOR, "#ops-steps > li")
    assert [s.get_attribute("class").split()[-1] for s in steps] == ["ops-step-success", "ops-step-failed",
                                                                      "ops-step-skipped"]
    assert "collect" in steps[0].text and "render" in steps[1].text
    failure = driver.find_element(By.CSS_SELECTOR, "fieldset.ops-failure")
    assert failure.location["y"] < driver.find_element(By.ID, "ops-steps").location["y"]
    assert "in step 2 “render”" in failure.text
    assert driver.find_element(By.ID, "ops-workflow-link").text == "Nightly report"
    assert driver.find_element(By.ID, "ops-schedule-link").text == "report-every-morning"
    assert not driver.find_element(By.CSS_SELECTOR, ".field-result_block").is_displayed()  # raw JSON: collapsed
    assert "2 of 3 steps · 1 failed · 1 skipped" in text_of(driver, ".field-progress_display")
    driver.execute_script("document.getElementById('ops-steps').scrollIntoView();")
    screenshot(driver, "run-workflow-failed-steps")
    click(driver, "ops-rerun-from-step")
    rerun = Execution.objects.exclude(pk=workflow_run.pk).get(job=schedule)
    assert run_page(rerun) in driver.current_url and rerun.override_kwargs["resume_from"] == 1
    rerun = wait_finished(rerun)
    driver.get(f"{live_server.url}{run_page(rerun)}")
    assert driver.find_elements(By.CSS_SELECTOR, "#ops-steps > li.ops-step-reused")
    screenshot(driver, "run-workflow-rerun-from-step")

    open_page(driver, live_server, run_page(vision_run), "run-vision-batch")
    assert "2 of 2 images" in text_of(driver, ".field-progress_display")
    assert driver.find_element(By.CSS_SELECTOR, ".field-subjects a").get_attribute("href").endswith(
        reverse("admin:vision_pipeline_batch_change", args=[batch.pk]))

    open_page(driver, live_server, run_page(predictions_run), "run-predictions-upload")
    progress = text_of(driver, ".field-progress_display")
    assert "40 of 40 rows" in progress and "3 failed" in progress
    assert "Predictions upload companies.csv" in text_of(driver, ".field-subjects")
    failed_part = driver.find_element(By.CSS_SELECTOR, ".field-progress_display .ops-progress-failed")
    assert failed_part.size["width"] > 0 and failed_part.value_of_css_property("background-color") == "rgba(198, 40, 40, 1)"


def test_a_running_run_shows_progress_and_tails_its_log_live(signed_in, live_server, celery_worker_process):
    driver = signed_in
    job = JobFactory(name="long-import", title="Import the archive", task_name="demo.sleep",
                     task_kwargs={"seconds": 40})
    running = services.job_execute(job=job)
    wait_for(lambda: (Execution.objects.get(pk=running.pk).result or {}).get("percent", 0) > 2, timeout=30,
             message="the run to report progress")
    open_page(driver, live_server, run_page(running), "run-running-loaded")
    assert "Running" in text_of(driver, ".field-status_line")
    bar = driver.find_element(By.CSS_SELECTOR, "#ops-progress .ops-progress")
    first_percent = float(bar.get_attribute("aria-valuenow"))
    assert 0 < first_percent < 100 and "ETA" in bar.text
    log = driver.find_element(By.ID, "ops-log")
    lines_at_load = log.text.count("\n")
    # the log grows on the page while it stays loaded (no reload: the marker survives)
    driver.execute_script("window.__still_this_page = true;")
    wait_in_browser(driver, lambda d: d.find_element(By.ID, "ops-log").text.count("\n") >= lines_at_load + 2,
                    timeout=15)
    assert driver.execute_script("return window.__still_this_page === true;")
    later = float(driver.find_element(By.CSS_SELECTOR, "#ops-progress .ops-progress").get_attribute("aria-valuenow"))
    assert later > first_percent
    no_sideways_scroll(driver)
    screenshot(driver, "run-running")
    driver.execute_script("document.getElementById('ops-log').scrollIntoView();")
    screenshot(driver, "run-running-log-tail")
    # cancel: the page shows it cancelled
    click(driver, "ops-cancel")
    assert Execution.objects.get(pk=running.pk).status == "cancelled"
    assert "Cancelled" in text_of(driver, ".field-status_line")


def test_rerun_failed_runs_from_the_list(signed_in, live_server, celery_worker_process):
    driver = signed_in
    job = JobFactory(name="flaky-export", task_name="demo.sleep", task_kwargs={"seconds": 0, "fail": True},
                     overlap_policy="allow")
    failed = wait_finished(services.job_execute(job=job))
    done = ExecutionFactory(job=job, status="success", output="exported 3 files")
    assert failed.status == "failed"
    open_page(driver, live_server, reverse("admin:scheduling_execution_changelist"), "runs-list-rerun-before")
    for run in (failed, done):
        driver.find_element(By.CSS_SELECTOR, f'input.action-select[value="{run.pk}"]').click()
    assert "2 of 2 selected" in text_of(driver, ".action-counter")
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.NAME, "action")).select_by_value("rerun_failed")
    driver.find_element(By.CSS_SELECTOR, "button[name=index]").click()
    wait_in_browser(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "ul.messagelist"))
    rerun = Execution.objects.exclude(pk__in=[failed.pk, done.pk]).get(job=job)
    messages = text_of(driver, "ul.messagelist")
    assert f"Re-ran 1 failed run(s) with the same parameters: run {failed.pk} → run {rerun.pk}" in messages
    assert f"Skipped 1 run(s) that did not fail: {done.pk} (success)" in messages
    screenshot(driver, "runs-list-rerun-failed")
    assert wait_finished(rerun).trigger == "manual"
