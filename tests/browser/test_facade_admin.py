"""The facades' admin pages in headless Chromium at 1400 x 900: the workflow
step editor (built by clicking, checked as you type, saved), a workflow's
schedules and runs, a vision batch with its thumbnails, and the predictions
upload form with its progress. Screenshots go to var/test-artifacts/browser/;
the step editor's is also docs/images/workflow-editor.png (the README's).
"""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from predictions.models import BulkUploadJob
from scheduling import services as core_services
from scheduling.models import Execution
from scheduling.workflows import services as workflow_services
from scheduling.workflows.models import Workflow
from tests.browser.conftest import HEIGHT, WIDTH, list_fits, screen_fits, screenshot, wait_for
from tests.predictions_files import annual_row, csv_bytes
from vision_pipeline import samples
from vision_pipeline import services as vision_services
from vision_pipeline.models import Batch

from selenium.webdriver.common.by import By  # noqa: E402  (after conftest's skip without selenium or a browser)
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)

README_IMAGE = Path(settings.BASE_DIR) / "docs" / "images" / "workflow-editor.png"


def cards(driver):
    return driver.find_elements(By.CSS_SELECTOR, ".wf-steps > .wf-card")


def add_step(driver, type_name: str):
    before = len(cards(driver))
    Select(driver.find_element(By.CSS_SELECTOR, ".wf-add-type")).select_by_value(type_name)
    driver.find_element(By.CSS_SELECTOR, ".wf-add-button").click()
    wait_for(driver, lambda d: len(cards(d)) == before + 1)
    return cards(driver)[-1]


def field(card, name: str):
    return card.find_element(By.CSS_SELECTOR, f".wf-field[data-field='{name}'] [data-field='{name}']")


def field_errors(card, name: str) -> str:
    return card.find_element(By.CSS_SELECTOR, f".wf-field[data-field='{name}'] .wf-field-errors").text


def status_is(kind: str):
    return lambda d: d.find_element(By.CSS_SELECTOR, ".wf-status").get_attribute("class").endswith(f"wf-status-{kind}")


# ---------------------------------------------------------------------------
def beat_is_up():
    """Beat's heartbeat, as a running beat writes it (a healthy installation, for the README's picture)."""
    try:
        from jobsite.services_health import record_beat_heartbeat
    except ImportError:  # no operator banner in this version
        return
    record_beat_heartbeat()


def test_build_a_workflow_with_the_step_editor(signed_in, live_server):
    driver = signed_in
    beat_is_up()
    driver.get(f"{live_server.url}/admin/workflows/workflow/add/")
    assert "No steps yet" in driver.find_element(By.CSS_SELECTOR, ".wf-status").text
    assert not driver.find_element(By.CSS_SELECTOR, ".wf-json").get_attribute("open")  # JSON is the escape hatch
    driver.find_element(By.ID, "id_id").send_keys("nightly-report")
    driver.find_element(By.ID, "id_name").send_keys("Nightly inspection report")
    driver.find_element(By.ID, "id_description").send_keys("Fetches the day's items, waits for the export, "
                                                           "then scores the file.")
    # add three steps by clicking
    wait_step = add_step(driver, "delay")
    field(wait_step, "name").clear()
    field(wait_step, "name").send_keys("settle")
    field(wait_step, "seconds").send_keys("30")
    wait_for(driver, status_is("ok"))
    fetch = add_step(driver, "http")
    field(fetch, "name").clear()
    field(fetch, "name").send_keys("fetch_items")
    Select(field(fetch, "method")).select_by_value("POST")
    # a validation error as you type: the scheme is refused under the URL field
    field(fetch, "url").send_keys("ftp://files.example.com/items")
    wait_for(driver, lambda d: "Must start with http:// or https://" in field_errors(cards(d)[1], "url"))
    assert "1 problem in step 2" in driver.find_element(By.CSS_SELECTOR, ".wf-status").text
    field(fetch, "headers").send_keys("Authorization: Bearer ${secrets.API_TOKEN}")
    field(fetch, "body").send_keys('{"day": "${input}"}')
    wait_for(driver, status_is("bad"))
    screenshot(driver, "workflow-editor-error", full_page=True)
    field(fetch, "url").clear()
    field(fetch, "url").send_keys("https://api.example.com/v1/items/export")
    wait_for(driver, lambda d: "no secret named 'API_TOKEN'" in field_errors(cards(d)[1], "headers"))
    driver.find_element(By.ID, "id_secrets_set").send_keys("API_TOKEN=tok-0123456789abcdef")
    driver.find_element(By.ID, "id_name").click()  # the secrets box's change event
    wait_for(driver, status_is("ok"))
    score = add_step(driver, "bulk_prediction")
    field(score, "name").clear()
    field(score, "name").send_keys("score")
    field(score, "file_url").send_keys("https://files.example.com/${steps.fetch_items.output.body.file}")
    wait_for(driver, status_is("ok"))
    assert [c.find_element(By.CSS_SELECTOR, ".wf-card-title strong").text for c in cards(driver)] == [
        "settle", "fetch_items", "score"]
    # reorder: the request first; a reference to a later step would now be refused
    cards(driver)[1].find_element(By.CSS_SELECTOR, ".wf-up").click()
    wait_for(driver, lambda d: cards(d)[0].find_element(By.CSS_SELECTOR, ".wf-card-title strong").text == "fetch_items")
    wait_for(driver, status_is("ok"))
    # remove the delay
    cards(driver)[1].find_element(By.CSS_SELECTOR, ".wf-remove").click()
    wait_for(driver, lambda d: len(cards(d)) == 2)
    wait_for(driver, status_is("ok"))
    assert "All 2 steps are valid" in driver.find_element(By.CSS_SELECTOR, ".wf-status").text
    screen_fits(driver)
    # the README's picture: the navigation folded away, the workflow and its steps in view
    driver.find_element(By.ID, "toggle-nav-sidebar").click()
    driver.set_window_size(WIDTH, 1300)
    driver.execute_script("window.scrollTo(0, 0);")
    shot = screenshot(driver, "workflow-editor")
    driver.set_window_size(WIDTH, HEIGHT)
    README_IMAGE.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, README_IMAGE)
    driver.find_element(By.ID, "toggle-nav-sidebar").click()
    # the JSON view follows the cards, and the cards follow the JSON (the escape hatch)
    driver.find_element(By.CSS_SELECTOR, ".wf-json summary").click()
    raw = driver.find_element(By.ID, "id_steps")
    assert '"fetch_items"' in raw.get_attribute("value")
    raw.send_keys("oops")
    wait_for(driver, status_is("bad"))
    assert "not a list of steps yet" in driver.find_element(By.CSS_SELECTOR, ".wf-status").text
    assert len(cards(driver)) == 2  # the last valid steps stay on the cards
    raw.send_keys(Keys.BACK_SPACE * 4)  # valid JSON again
    wait_for(driver, status_is("ok"))
    driver.find_element(By.CSS_SELECTOR, ".wf-json summary").click()
    driver.find_element(By.CSS_SELECTOR, "input[name=_save]").click()
    wait_for(driver, EC.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist")))
    workflow = Workflow.objects.get(pk="nightly-report")
    assert [(s["name"], s["type"]) for s in workflow.steps] == [("fetch_items", "http"), ("score", "bulk_prediction")]
    assert workflow.steps[0]["headers"] == {"Authorization": "Bearer ${secrets.API_TOKEN}"}
    assert workflow.steps[0]["body"] == {"day": "${input}"} and workflow.steps[0]["method"] == "POST"
    assert "tok-0123456789abcdef" not in driver.page_source


def test_a_workflows_page_links_its_schedules_and_runs(signed_in, live_server, root):
    driver = signed_in
    workflow_services.workflow_create(actor=root, id="video-automation", name="Video automation",
                                      description="Turns the day's topic into a short video.",
                                      steps=[{"name": "wait", "type": "delay", "seconds": 0},
                                             {"name": "cleanup", "type": "task", "task_name": "demo.sleep",
                                              "kwargs": {"seconds": 0}}])
    job, _ = workflow_services.workflow_schedule_save(
        actor=root, job_id="daily-video", workflow_id="video-automation", user_id=str(root.pk),
        input="Tech news of the day", schedule_type="cron", cron_expression="0 9 * * *")
    # a real run, run here (no worker races it for its message)
    run = Execution.objects.create(job=job, status="queued", trigger="manual", celery_task_id=str(uuid.uuid4()),
                                   override_kwargs={"input": "Tech news of the day"})
    core_services.execution_run(execution_id=run.pk, task_id=run.celery_task_id, worker="browser-test")
    run.refresh_from_db()
    assert run.status == "success", run.error
    driver.get(f"{live_server.url}/admin/workflows/workflow/")
    row = driver.find_element(By.XPATH, "//tr[.//a[contains(., 'video-automation')]]")
    assert row.find_element(By.CSS_SELECTOR, "td.field-schedules_link a").text == "1"
    assert row.find_element(By.CSS_SELECTOR, "td.field-runs_link a").text == "1"
    list_fits(driver)
    screenshot(driver, "workflow-list")
    driver.get(f"{live_server.url}/admin/workflows/workflow/video-automation/change/")
    panel = driver.find_element(By.CSS_SELECTOR, ".wf-links")
    assert "daily-video" in panel.text and f"Run {run.pk}" in panel.text and "Success" in panel.text
    wait_for(driver, status_is("ok"))
    screen_fits(driver)
    screenshot(driver, "workflow-page", full_page=True)
    panel.find_element(By.LINK_TEXT, f"Run {run.pk}").click()
    wait_for(driver, EC.url_contains(f"/admin/scheduling/execution/{run.pk}/change/"))


def test_a_vision_batch_page_shows_thumbnails_and_chips(signed_in, live_server, root, tmp_path, settings):
    driver = signed_in
    settings.VISION_STORAGE_DIR = str(tmp_path / "vision")
    settings.VISION_OCR = "off"
    files = []
    for name, kind, seed in (("hull-port.jpg", "rust", 0), ("deck-aft.jpg", "blurred", 1), ("mast.jpg", "clean", 2),
                             ("bridge-wing.jpg", "cracks", 3)):
        path = tmp_path / name
        path.write_bytes(samples.encode(samples.variant(kind, 800, 600, seed=seed)))
        files.append((name, path))
    batch = vision_services.batch_create(source=Batch.Source.API, files=files, owner=root,
                                         user_query="Any rust or cracks on the hull?",
                                         descriptions={"hull-port.jpg": "Port side hull, frame 12"})
    # its run, run here (a queued run with no message sent: no worker races it)
    run = Execution.objects.create(job=vision_services.batch_job(), status="queued", trigger="api",
                                   celery_task_id=str(uuid.uuid4()), override_kwargs={"batch_id": str(batch.pk)})
    Batch.objects.filter(pk=batch.pk).update(execution=run)
    core_services.execution_run(execution_id=run.pk, task_id=run.celery_task_id, worker="browser-test")
    batch.refresh_from_db()
    assert batch.status == "completed", batch.error
    driver.get(f"{live_server.url}/admin/vision_pipeline/batch/{batch.pk}/change/")
    wait_for(driver, lambda d: d.execute_script(
        "return Array.from(document.querySelectorAll('.vb-thumb img')).every(i => i.complete && i.naturalWidth > 0);"))
    assert len(driver.find_elements(By.CSS_SELECTOR, ".vb-thumb img")) == 4
    chips = [c.text for c in driver.find_elements(By.CSS_SELECTOR, ".vb-flags .vb-chip")]
    assert any(c.startswith("Possible rust") for c in chips), chips
    assert "possible_rust" not in driver.find_element(By.ID, "content-main").text
    assert f"Run {run.pk} of vision.batch" in driver.find_element(By.CSS_SELECTOR, ".vb-run").text
    report = driver.find_element(By.ID, "vb-report")
    assert report.location["y"] < driver.find_element(By.CSS_SELECTOR, "fieldset").location["y"]
    screen_fits(driver)
    screenshot(driver, "vision-batch", full_page=True)
    driver.get(f"{live_server.url}/admin/vision_pipeline/batch/")
    list_fits(driver)
    screenshot(driver, "vision-batch-list")


def test_the_predictions_upload_form_and_progress(signed_in, live_server, tmp_path):
    # the upload is stored in the session's PREDICTIONS_STORAGE_DIR (under its temporary JOBSITE_VAR_DIR), which a
    # worker of the session reads too when it takes the run's message first
    driver = signed_in
    bad = tmp_path / "prices.csv"
    bad.write_bytes(b"symbol,price\nA,1\n")
    good = tmp_path / "companies-2026.csv"
    good.write_bytes(csv_bytes([annual_row(i, **({"sector": ""} if i in (3, 7) else {})) for i in range(20)]))
    driver.get(f"{live_server.url}/admin/predictions/bulkuploadjob/")
    driver.find_element(By.ID, "pu-upload").click()
    wait_for(driver, EC.presence_of_element_located((By.ID, "pu-upload-form")))
    screenshot(driver, "predictions-upload-form")
    # a file the API refuses: the same message, on the file field
    driver.find_element(By.ID, "id_file").send_keys(str(bad))
    driver.find_element(By.ID, "pu-submit").click()
    error = wait_for(driver, EC.presence_of_element_located((By.CSS_SELECTOR, ".field-file .errorlist")))
    assert "missing required columns" in error.text
    screen_fits(driver)
    screenshot(driver, "predictions-upload-error")
    assert not BulkUploadJob.objects.exists()
    driver.find_element(By.ID, "id_file").send_keys(str(good))
    driver.find_element(By.ID, "pu-submit").click()
    wait_for(driver, EC.presence_of_element_located((By.CSS_SELECTOR, ".pu-top")))
    upload = BulkUploadJob.objects.get()
    assert "Uploaded companies-2026.csv: 20 rows queued for scoring." in driver.page_source
    page = driver.page_source
    if BulkUploadJob.objects.get(pk=upload.pk).status != "completed":  # still going now, so it was when drawn
        # (a worker left by an earlier test of the session may have scored it already: nothing to wait for then)
        assert "Downloads are ready once the upload has finished." in page
        assert driver.find_elements(By.CSS_SELECTOR, 'meta[name="ops-autorefresh"]')  # it reloads itself while queued
        screenshot(driver, "predictions-upload-queued")
    # its run, run here; a worker of the session that took its message first runs it instead
    core_services.execution_run(execution_id=upload.execution_id, task_id=upload.execution.celery_task_id,
                                worker="browser-test")
    wait_for(driver, lambda d: BulkUploadJob.objects.get(pk=upload.pk).status == "completed", timeout=60)
    driver.refresh()
    wait_for(driver, EC.presence_of_element_located((By.ID, "pu-results")))
    failed = driver.find_element(By.CSS_SELECTOR, ".pu-progress .ops-progress-failed")
    assert failed.size["width"] > 0 and "2 failed" in driver.find_element(By.CSS_SELECTOR, ".pu-progress").text
    assert driver.find_element(By.ID, "pu-errors").get_attribute("href").endswith("/errors.csv")
    screen_fits(driver)
    screenshot(driver, "predictions-upload-page", full_page=True)
    driver.get(f"{live_server.url}/admin/predictions/bulkuploadjob/")
    assert driver.find_element(By.CSS_SELECTOR, "td.field-progress .ops-progress-failed").size["width"] > 0
    list_fits(driver)
    screenshot(driver, "predictions-list")
