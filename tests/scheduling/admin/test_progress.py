"""Any kind's progress, recorded the core's way while it runs
(``services.execution_record_progress``), as a bar with an ETA on the
dashboard's active runs, in the runs list and on the run's page: a vision
batch's run as the vision pipeline records it (images done of all), a task's
percent; and the Flower link that ``runstack --flower`` gives the web."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from scheduling import services
from scheduling.models import Execution
from tests.factories import ExecutionFactory, JobFactory
from tests.scheduling.admin.conftest import url

pytestmark = pytest.mark.django_db

BAR = re.compile(r'<span class="ops-progress" role="progressbar" aria-valuenow="(\d+)"[^>]*>.*?'
                 r'<span class="ops-progress-ok" style="width:([\d.]+)%"></span>'
                 r'<span class="ops-progress-failed" style="width:([\d.]+)%"></span></span>'
                 r'<span class="ops-progress-text">([^<]*)</span>', re.S)


@pytest.fixture
def vision_run():
    """A vision batch's run (the internal job the batch API makes runs of), running for a minute."""
    job = services.job_ensure_manual(name="vision.batch", kind="vision_batch", title="Vision batches")
    return ExecutionFactory(job=job, status=Execution.Status.RUNNING, started_at=timezone.now() - timedelta(seconds=60),
                            worker="celery@host pid 7", result={})


def bars(html: str) -> list[tuple[str, str, str, str]]:
    return BAR.findall(html)


def test_before_it_records_anything_the_dashboard_says_so(admin_client, broker, vision_run):
    page = admin_client.get("/admin/").content.decode()
    panel = page[page.index('id="panel-active"'):]
    assert "no progress reported" in panel[:panel.index("</table>")]


def test_a_vision_batchs_recorded_progress_shows_everywhere(admin_client, broker, vision_run):
    # as vision_pipeline.services.progress records it: images done (failed included) of all
    assert services.execution_record_progress(
        execution=vision_run, result={"processed_images": 3, "total_images": 12, "failed_images": 1,
                                      "batch_id": "b-1"})

    dashboard = admin_client.get("/admin/").content.decode()
    listed = admin_client.get(url("execution_changelist")).content.decode()
    page = admin_client.get(url("execution_change", vision_run.pk)).content.decode()

    active = dashboard[dashboard.index('id="panel-active"'):]
    active = active[:active.index("</table>")]
    assert "no progress reported" not in active
    # 3 of 12 done (25 %), 1 of 12 failed; 60 s for a quarter: 3 minutes to go at that rate
    for html in (active, listed, page):
        (percent, ok, failed, text), = bars(html)
        assert (percent, float(ok), float(failed)) == ("25", pytest.approx(16.67, abs=0.01), pytest.approx(8.33, abs=0.01))
        # (a slow machine renders the pages seconds later: more elapsed, a longer ETA)
        assert re.fullmatch(r"25% · ETA [34]m( \d+s)?", text), text
    assert "3 of 12 images · 1 failed" in listed and "3 of 12 images · 1 failed" in page


def test_a_task_percent_shows_in_the_list_and_a_finished_run_shows_none(admin_client, broker):
    job = JobFactory(name="counting", task_name="tests.noop")
    running = ExecutionFactory(job=job, status="running", started_at=timezone.now() - timedelta(seconds=30))
    ExecutionFactory(job=job, status="success", result={"percent": 40.0}, duration_seconds=2.0, output="done")
    services.execution_record_progress(execution=running, result={"percent": 50.0})

    listed = admin_client.get(url("execution_changelist")).content.decode()

    (percent, _, failed, text), = bars(listed)  # the running run's only: a finished one shows its output
    assert percent == "50" and float(failed) == 0 and text.startswith("50% · ETA ")
    assert ">done<" in listed


def test_the_list_reads_progress_in_one_query_whatever_it_holds(admin_client, broker):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    job = JobFactory(name="busy", task_name="tests.noop")
    counts = []
    for running in (1, 6):
        for _ in range(running):
            execution = ExecutionFactory(job=job, status="running", started_at=timezone.now())
            services.execution_record_progress(execution=execution, result={"percent": 10.0})
        with CaptureQueriesContext(connection) as queries:
            admin_client.get(url("execution_changelist"))
        counts.append(len(queries.captured_queries))
    assert counts[0] == counts[1]


def test_runstack_with_flower_tells_the_web_where_flower_is(tmp_path, monkeypatch, admin_client, broker, settings):
    from jobsite.management.commands.runstack import Command

    monkeypatch.delenv("FLOWER_URL", raising=False)
    manager = Command()._manager(host="0.0.0.0", port=8123, worker=False, beat=False, concurrency=None,
                                 var_dir=tmp_path, redis_server=None, flower_port=5599)
    web_env = manager._processes["web"]["obj"].env  # honcho keeps each process's environment there
    assert web_env["FLOWER_URL"] == "http://127.0.0.1:5599/"
    without = Command()._manager(host="127.0.0.1", port=8123, worker=False, beat=False, concurrency=None,
                                 var_dir=tmp_path, redis_server=None)
    assert "FLOWER_URL" not in without._processes["web"]["obj"].env

    # the web process reads it into settings.FLOWER_URL (jobsite/settings/operations.py): the header links to it
    settings.FLOWER_URL = web_env["FLOWER_URL"]
    page = admin_client.get("/admin/").content.decode()
    assert 'href="http://127.0.0.1:5599/"' in page
