"""The runs console: the executions list (job filter and link, runs that did
nothing hidden, "re-run failed runs", a fixed number of queries a page) and a
run's page (progress, what went wrong first, a workflow run's steps and
re-run from the failed step, the live log tail with its permissions and
tenancy). Runs run in this process where they must really run."""
from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from scheduling import services
from scheduling.admin.execution_filters import CappedCountPaginator
from scheduling.admin.run_page import log_after
from scheduling.executors import RunResult
from scheduling.models import Execution
from tests.factories import ExecutionFactory, JobFactory
from tests.scheduling.admin.conftest import url

pytestmark = pytest.mark.django_db


def staff_client(user, *perms):
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.user_permissions.add(*Permission.objects.filter(codename__in=perms))
    client = Client()
    client.force_login(user)
    return client


def listed_ids(html: str) -> set[int]:
    import re

    return {int(pk) for pk in re.findall(r'<th class="field-id"><a href="/admin/scheduling/execution/(\d+)/change/', html)}


def run_here(execution: Execution) -> Execution:
    """What the worker's task does, in this process (nothing was sent: no worker races it)."""
    services.execution_run(execution_id=execution.pk, task_id=execution.celery_task_id or str(uuid.uuid4()),
                           worker="celery@pytest pid 0")
    execution.refresh_from_db()
    return execution


# -- the list: job filter and link ---------------------------------------------------------------
def test_job_filter_by_id_by_name_and_by_part_of_a_name(admin_client):
    nightly, hourly = JobFactory(name="nightly-cleanup"), JobFactory(name="hourly-digest")
    a, b = ExecutionFactory(job=nightly), ExecutionFactory(job=hourly)
    assert listed_ids(admin_client.get(url("execution_changelist")).content.decode()) == {a.pk, b.pk}
    by_id = admin_client.get(url("execution_changelist"), {"job__id__exact": nightly.pk}).content.decode()
    assert listed_ids(by_id) == {a.pk}
    assert listed_ids(admin_client.get(url("execution_changelist"), {"job": "hourly-digest"}).content.decode()) == {b.pk}
    assert listed_ids(admin_client.get(url("execution_changelist"), {"job": "NIGHTLY"}).content.decode()) == {a.pk}
    several = admin_client.get(url("execution_changelist"), {"job__id__in": f"{nightly.pk},{hourly.pk}"})
    assert listed_ids(several.content.decode()) == {a.pk, b.pk}
    # no such job: nothing listed, and it says so (never a 500 or the whole list)
    for params in ({"job": "nope"}, {"job__id__exact": "x1"}, {"job__id__exact": "99999999999999999999"}):
        response = admin_client.get(url("execution_changelist"), params)
        assert response.status_code == 200 and listed_ids(response.content.decode()) == set()
    assert "No job matches “nope”" in admin_client.get(url("execution_changelist"), {"job": "nope"}).content.decode()


def test_job_filter_offers_no_dropdown_of_every_job_and_the_job_column_links_to_the_job(admin_client):
    jobs = [JobFactory(name=f"job-number-{n}") for n in range(5)]
    run = ExecutionFactory(job=jobs[0])
    html = admin_client.get(url("execution_changelist")).content.decode()
    # the filter is a name box with suggestions from the jobs' autocomplete, not a list of every job
    assert 'id="ops-job-name"' in html and reverse("admin:autocomplete") in html
    assert "job-number-4" not in html
    assert f'href="{url("job_change", jobs[0].pk)}"' in html
    # the autocomplete the box asks answers job names
    suggestions = admin_client.get(reverse("admin:autocomplete"), {
        "app_label": "scheduling", "model_name": "execution", "field_name": "job", "term": "number-3"}).json()
    assert [item["text"] for item in suggestions["results"]] == ["job-number-3"]
    assert run.pk in listed_ids(html)


def test_job_filter_and_suggestions_see_only_the_users_jobs(user, job, foreign_job):
    mine, theirs = ExecutionFactory(job=job), ExecutionFactory(job=foreign_job)
    client = staff_client(user, "view_execution", "view_job")
    html = client.get(url("execution_changelist")).content.decode()
    assert listed_ids(html) == {mine.pk}
    # another organization's job by id or name: nothing, and its name is never shown
    for params in ({"job__id__exact": foreign_job.pk}, {"job": "globex-job"}):
        html = client.get(url("execution_changelist"), params).content.decode()
        assert listed_ids(html) == set() and theirs.pk not in listed_ids(html)
    assert "globex-job" not in client.get(url("execution_changelist"), {"job__id__exact": foreign_job.pk}).content.decode()
    suggestions = client.get(reverse("admin:autocomplete"), {
        "app_label": "scheduling", "model_name": "execution", "field_name": "job", "term": "job"}).json()
    assert [item["text"] for item in suggestions["results"]] == ["alice-job"]


def test_workflow_filter_lists_the_runs_of_a_workflows_schedules(admin_client, root):
    from scheduling.workflows import selectors as workflow_selectors
    from scheduling.workflows import services as workflows

    for workflow_id in ("nightly-report", "weekly-digest"):
        workflows.workflow_create(actor=root, id=workflow_id, name=workflow_id,
                                  steps=[{"name": "one", "type": "task", "task_name": "tests.echo"}])
    runs = {}
    for workflow_id in ("nightly-report", "weekly-digest"):
        schedule, _ = workflows.workflow_schedule_save(
            actor=root, job_id=f"{workflow_id}-schedule", workflow_id=workflow_id,
            user_id=workflow_selectors.user_seed_id(root), input="", schedule_type="cron", cron_expression="0 7 * * *")
        runs[workflow_id] = ExecutionFactory(job=schedule)
    ExecutionFactory(job=JobFactory())
    html = admin_client.get(url("execution_changelist"), {"workflow": "nightly-report"}).content.decode()
    assert listed_ids(html) == {runs["nightly-report"].pk} and "All workflows" in html
    assert listed_ids(admin_client.get(url("execution_changelist"), {"workflow": "nope"}).content.decode()) == set()
    assert "All workflows" not in admin_client.get(url("execution_changelist")).content.decode()


def test_search_finds_a_run_by_id_task_id_or_its_jobs_name_or_title(admin_client):
    nightly = JobFactory(name="nightly-cleanup", title="Clean up old documents")
    other = JobFactory(name="hourly-digest")
    task_id = str(uuid.uuid4())
    a, b = ExecutionFactory(job=nightly, celery_task_id=task_id), ExecutionFactory(job=other)

    def found(term):
        return listed_ids(admin_client.get(url("execution_changelist"), {"q": term}).content.decode())

    assert found("cleanup") == {a.pk} and found("OLD DOC") == {a.pk} and found("digest") == {b.pk}
    assert found(str(b.pk)) == {b.pk} and found(task_id) == {a.pk} and found(str(a.uuid)) == {a.pk}
    assert found("no-such-job") == set() and found("x" * 300) == set()


# -- runs that did nothing ----------------------------------------------------------------------
def test_runs_that_did_nothing_are_hidden_unless_asked(admin_client):
    poll = JobFactory(name="vision-poll")
    real = ExecutionFactory(job=poll, output="Processed 2 analyses")
    idle = ExecutionFactory.create_batch(3, job=poll, output="No unprocessed analyses", did_nothing=True)
    html = admin_client.get(url("execution_changelist")).content.decode()
    assert listed_ids(html) == {real.pk}
    assert "Hiding runs that did nothing" in html and 'id="ops-show-did-nothing"' in html
    shown = admin_client.get(url("execution_changelist"), {"did_nothing": "show"}).content.decode()
    assert listed_ids(shown) == {real.pk, *(run.pk for run in idle)} and 'id="ops-hide-did-nothing"' in shown
    only = admin_client.get(url("execution_changelist"), {"did_nothing": "only"}).content.decode()
    assert listed_ids(only) == {run.pk for run in idle}


def test_an_executor_says_a_run_did_nothing_and_only_a_success_can_be_one():
    assert RunResult(output="No unprocessed analyses", did_nothing=True).did_nothing
    with pytest.raises(ValueError, match="did_nothing"):
        RunResult(ok=False, did_nothing=True)
    job = JobFactory(task_name="tests.noop")
    for status, stored in (("success", True), ("failed", False)):
        run = ExecutionFactory(job=job, status="running")
        services.execution_finish(execution=run, status=status, output="nothing new", did_nothing=True)
        run.refresh_from_db()
        assert (run.status, run.did_nothing) == (status, stored)


def test_a_vision_poll_that_finds_nothing_did_nothing_and_one_that_cannot_fetch_did_not(settings, root, tmp_path):
    from vision_pipeline.demo import DEMO_ORGANIZATION_ID, DemoExternalAPI
    from vision_pipeline.services.cron_jobs import cron_job_create

    api = DemoExternalAPI(key="sEcReT-jwt-0123456789").start()
    settings.OUTBOUND_HTTP_ALLOW_HOSTS = [f"127.0.0.1:{api.port}"]
    settings.OUTBOUND_HTTP_RETRIES = 1
    settings.JOBS_TEMP_DIR = str(tmp_path / "tmp")
    try:
        job = cron_job_create(actor=root, name="vision-poll", schedule="* * * * *", external_api_get_url=api.get_url,
                              external_api_post_url=api.post_url, external_api_key="sEcReT-jwt-0123456789",
                              organization_id=DEMO_ORGANIZATION_ID)
        nothing = run_here(ExecutionFactory(job=job, status="queued", trigger="schedule"))
        assert (nothing.status, nothing.output, nothing.did_nothing) == ("success", "No unprocessed analyses", True)
        api.get_status = 500
        broken = run_here(ExecutionFactory(job=job, status="queued", trigger="schedule"))
        assert broken.status == "failed" and not broken.did_nothing
    finally:
        api.stop()


# -- bulk re-run ---------------------------------------------------------------------------------
def test_rerun_failed_runs_reruns_only_the_failed_ones_and_names_the_skipped(admin_client, django_capture_on_commit_callbacks):
    job = JobFactory(name="flaky", task_name="tests.noop", overlap_policy="allow")
    failed = [ExecutionFactory(job=job, status=status, override_kwargs={"n": i})
              for i, status in enumerate(("failed", "error", "timeout"))]
    done, running = ExecutionFactory(job=job, status="success"), ExecutionFactory(job=job, status="running")
    with django_capture_on_commit_callbacks(execute=False):
        response = admin_client.post(url("execution_changelist"), {
            "action": "rerun_failed", "_selected_action": [r.pk for r in (*failed, done, running)]}, follow=True)
    html = response.content.decode()
    reruns = list(Execution.objects.filter(trigger="manual").order_by("pk"))
    assert [(r.status, r.override_kwargs) for r in reruns] == [("queued", {"n": 0}), ("queued", {"n": 1}),
                                                                ("queued", {"n": 2})]
    assert f"Re-ran 3 failed run(s) with the same parameters: run {failed[0].pk} → run {reruns[0].pk}" in html
    assert f"Skipped 2 run(s) that did not fail: {done.pk} (success), {running.pk} (running)." in html


def test_rerun_failed_needs_the_right_to_run_jobs(user, job):
    run = ExecutionFactory(job=job, status="failed")
    client = staff_client(user, "view_execution")
    response = client.post(url("execution_changelist"), {"action": "rerun_failed", "_selected_action": [run.pk]})
    assert response.status_code in (200, 302)
    assert not Execution.objects.exclude(pk=run.pk).exists()


# -- query counts and the capped count ------------------------------------------------------------------
def test_the_list_costs_the_same_queries_for_5_or_40_runs_of_many_jobs(admin_client):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(url("execution_changelist")).status_code == 200
        # a page of runs reads no log, traceback or result (up to ~100 kB a run)
        assert not [q for q in captured if '"scheduling_execution"."log"' in q["sql"]]
        return len(captured)

    jobs = [JobFactory() for _ in range(5)]
    for job in jobs:
        ExecutionFactory(job=job, status="failed", error="boom", worker="celery@host-1 pid 12")
    few = queries()
    for job in jobs:
        ExecutionFactory.create_batch(7, job=job, duration_seconds=1.5, worker="celery@host-2 pid 3", output="ok")
    assert queries() == few


def test_the_count_stops_at_the_cap(admin_client, monkeypatch):
    monkeypatch.setattr(CappedCountPaginator, "CAP", 3)
    ExecutionFactory.create_batch(5, job=JobFactory())
    html = admin_client.get(url("execution_changelist")).content.decode()
    assert "more than 3 runs" in html
    ExecutionFactory.create_batch(0, job=JobFactory())
    monkeypatch.setattr(CappedCountPaginator, "CAP", 10)
    assert "5 executions" in admin_client.get(url("execution_changelist")).content.decode()


# -- a run's page -------------------------------------------------------------------------------------
def test_a_failed_runs_page_starts_with_what_went_wrong(admin_client):
    job = JobFactory(name="fails", task_name="tests.fail")
    run = run_here(ExecutionFactory(job=job, status="queued", trigger="manual"))
    assert run.status == "failed"
    html = admin_client.get(url("execution_change", run.pk)).content.decode()
    assert html.index("What went wrong") < html.index('class="form-row field-status_line')
    assert 'id="ops-error"' in html and "Traceback (most recent call last)" in html
    assert 'data-live=""' in html  # finished: no live tail


def test_progress_of_a_task_run_with_eta(admin_client):
    from django.utils import timezone

    from jobsite import humanize

    job = JobFactory(name="counting", task_name="tests.noop")
    started = timezone.now() - timezone.timedelta(seconds=30)
    run = ExecutionFactory(job=job, status="running", started_at=started, result={"percent": 25.0})
    before = timezone.now()
    html = admin_client.get(url("execution_change", run.pk)).content.decode()
    after = timezone.now()
    # 25% in ~30 s: ~90 s to go at that rate. The page reads the clock as it renders, a moment after
    # the run started 30 s ago (more on a loaded machine: 0.2 s more elapsed is 0.6 s more to go).
    low, high = (3 * (moment - started).total_seconds() for moment in (before, after))
    etas = {humanize.duration(seconds) for seconds in range(int(low), int(high) + 2)}
    assert "1m 30s" in etas
    assert 'aria-valuenow="25"' in html and any(f"25% · ETA {eta}<" in html for eta in etas), etas


def test_a_failed_workflow_run_shows_its_steps_and_reruns_from_the_failed_step(admin_client, root,
                                                                              django_capture_on_commit_callbacks):
    from scheduling.workflows import selectors as workflow_selectors
    from scheduling.workflows import services as workflows

    workflows.workflow_create(actor=root, id="nightly-report", name="Nightly report", steps=[
        {"name": "collect", "type": "task", "task_name": "tests.echo", "kwargs": {"what": "numbers"}},
        {"name": "render", "type": "task", "task_name": "tests.fail"},
        {"name": "send", "type": "task", "task_name": "tests.echo"},
    ])
    job, _ = workflows.workflow_schedule_save(
        actor=root, job_id="report-every-morning", workflow_id="nightly-report",
        user_id=workflow_selectors.user_seed_id(root), input="today", schedule_type="cron",
        cron_expression="0 7 * * *")
    with django_capture_on_commit_callbacks(execute=False):
        run = run_here(services.job_execute(job=job, actor=root, force=True))
    assert run.status == "failed"
    html = admin_client.get(url("execution_change", run.pk)).content.decode()
    # the steps as a timeline, not the result's JSON (which stays, collapsed, as an escape hatch)
    assert 'id="ops-steps"' in html and html.count('class="ops-step ops-step-') == 3
    assert "ops-step-success" in html and "ops-step-failed" in html and "ops-step-skipped" in html
    assert "in step 2 “render”" in html
    assert f'href="{reverse("admin:workflows_workflow_change", args=["nightly-report"])}"' in html
    assert 'id="ops-schedule-link"' in html and "report-every-morning" in html
    assert '<details class="collapse"' in html or "collapse" in html
    assert 'id="ops-rerun-from-step"' in html
    with django_capture_on_commit_callbacks(execute=False):
        response = admin_client.post(url("execution_rerun_from_step", run.pk), follow=True)
    rerun = Execution.objects.exclude(pk=run.pk).get(job=job)
    assert (rerun.override_kwargs["resume_from"], rerun.override_kwargs["resumed_from_execution"]) == (1, run.pk)
    assert f"Queued run {rerun.pk}: run {run.pk} again from step 2" in response.content.decode()
    # a successful or queued run has no failed step to re-run from
    assert 'id="ops-rerun-from-step"' not in admin_client.get(url("execution_change", rerun.pk)).content.decode()


def test_a_running_workflow_runs_steps_show_their_own_log_lines_and_update_live(admin_client, root):
    from datetime import timedelta

    from django.utils import timezone

    from scheduling.workflows import selectors as workflow_selectors
    from scheduling.workflows import services as workflows

    workflows.workflow_create(actor=root, id="gone", name="Gone", steps=[
        {"name": "fetch", "type": "task", "task_name": "tests.echo"},
        {"name": "store", "type": "task", "task_name": "tests.echo"}])
    job, _ = workflows.workflow_schedule_save(
        actor=root, job_id="s", workflow_id="gone", user_id=workflow_selectors.user_seed_id(root), input="",
        schedule_type="cron", cron_expression="0 7 * * *")
    start = timezone.now().replace(microsecond=0) - timedelta(seconds=30)

    def stamp(seconds):
        return (start + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S,000")

    result = {"workflow_id": "gone", "workflow_name": "Gone", "steps": [
        {"index": 0, "name": "fetch", "type": "http", "status": "success", "started_at": start.isoformat(),
         "finished_at": (start + timedelta(seconds=5)).isoformat(), "duration_seconds": 5.0, "attempts": 1,
         "output": {"status": 200}, "error": ""},
        {"index": 1, "name": "store", "type": "task", "status": "running",
         "started_at": (start + timedelta(seconds=10)).isoformat(), "finished_at": None, "duration_seconds": None,
         "attempts": 0, "output": None, "error": ""},
    ]}
    log = (f"{stamp(1)} INFO http: GET https://example.com/a\n{stamp(2)} INFO http: 200\nprinted by fetch\n"
           f"{stamp(12)} INFO store: writing 3 rows\n")
    run = ExecutionFactory(job=job, status="running", started_at=start, result=result, log=log)
    html = admin_client.get(url("execution_change", run.pk)).content.decode()
    fetch, store = html.split('<li class="ops-step ')[1:3]
    assert "log · 3 lines" in fetch and "printed by fetch" in fetch and "writing 3 rows" not in fetch
    assert "log · 1 line<" in store and "writing 3 rows" in store and "ops-step-running" in store
    assert "1 of 2 steps" in html
    live = admin_client.get(url("execution_log", run.pk), {"offset": len(log)}).json()
    assert 'id="ops-steps"' in live["steps"] and "store" in live["steps"]


# -- the live log tail ----------------------------------------------------------------------------------
def test_log_tail_answers_the_lines_after_the_offset(admin_client):
    run = ExecutionFactory(job=JobFactory(), status="running", log="one\ntwo\n", result={"percent": 40})
    first = admin_client.get(url("execution_log", run.pk), {"offset": 0}).json()
    assert (first["text"], first["offset"], first["reset"], first["status"], first["active"]) == (
        "one\ntwo\n", 8, False, "running", True)
    assert 'aria-valuenow="40"' in first["progress"]
    Execution.objects.filter(pk=run.pk).update(log="one\ntwo\nthree\n", status="success")
    second = admin_client.get(url("execution_log", run.pk), {"offset": first["offset"]}).json()
    assert (second["text"], second["offset"], second["status"], second["active"]) == ("three\n", 14, "success", False)
    assert admin_client.get(url("execution_log", run.pk), {"offset": 99}).json()["reset"] is True
    for bad in ("-1", "x", "1e3", "9" * 40):
        response = admin_client.get(url("execution_log", run.pk), {"offset": bad})
        assert response.status_code == 400 and "offset" in response.json()["detail"]
    assert admin_client.post(url("execution_log", run.pk)).status_code == 405


def test_log_tail_counts_what_a_long_log_cut():
    head, tail = "h" * 10, "t" * 20
    run = Execution(log=f"{head}\n[… 1,000 characters cut …]\n{tail}")
    end = 10 + 1000 + 20
    assert log_after(run, end) == {"text": "", "offset": end, "reset": False}
    assert log_after(run, end - 5) == {"text": "t" * 5, "offset": end, "reset": False}
    behind = log_after(run, 500)
    assert behind["text"] == f"\n[… 510 characters cut …]\n{tail}" and behind["offset"] == end


def test_log_tail_is_as_stored_with_secrets_redacted(admin_client):
    from scheduling import runlog

    secret = "sk-live-0123456789abcdef"
    run = ExecutionFactory(job=JobFactory(), status="running",
                           log=runlog.redact(f"calling with Authorization: Bearer {secret}\n", [secret]))
    text = admin_client.get(url("execution_log", run.pk), {"offset": 0}).json()["text"]
    assert secret not in text and "***" in text


def test_log_tail_is_scoped_like_the_page(user, job, foreign_job, make_user):
    mine, theirs = ExecutionFactory(job=job, log="mine\n"), ExecutionFactory(job=foreign_job, log="secret plans\n")
    viewer = staff_client(user, "view_execution")
    assert viewer.get(url("execution_log", mine.pk)).json()["text"] == "mine\n"
    assert viewer.get(url("execution_log", theirs.pk)).status_code == 404  # never revealed
    no_right = staff_client(make_user("dave", organization=job.organization))
    assert no_right.get(url("execution_log", mine.pk)).status_code == 403
    anonymous = Client().get(url("execution_log", mine.pk))
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
