"""Run control end to end: a real worker (and a real beat where beat's part
matters): start jitter, overlap policies queue and replace, pause-all,
concurrency limits (with retries, a pool process or a whole worker killed)
and run-after chains."""
from datetime import timedelta

import pytest
from django.utils import timezone

from scheduling import services
from scheduling.models import Execution
from scheduling.services.dispatch import ScheduledFire
from scheduling.services.jitter import start_at, start_offset_seconds
from tests.e2e.test_beat import running_beat
from tests.factories import JobFactory
from tests.faults.support import own_redis  # noqa: F401  (fixture)
from tests.worker import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def status_of(execution):
    execution.refresh_from_db()
    return execution.status


def assert_started_at_its_offset(run, jitter_seconds):
    """Never before its due time + its offset; then as soon as a worker takes it:
    within a few seconds of the later of that start time and when it was queued
    (a beat or a worker slowed by a loaded machine queues or takes it late)."""
    offset = start_offset_seconds(run.job_id, run.scheduled_for, jitter_seconds)
    begins = start_at(run.job_id, run.scheduled_for, jitter_seconds)
    lag = (run.started_at - run.scheduled_for).total_seconds()
    assert run.started_at >= begins - timedelta(seconds=0.05), (offset, lag)
    assert run.started_at <= max(begins, run.created_at) + timedelta(seconds=5), (offset, lag, run.created_at)


def test_jittered_runs_start_at_their_offset_after_the_due_time(celery_worker_process):
    # given 12 jobs with a 6 s jitter, fired together by beat's burst path for one due time
    jobs = [JobFactory(schedule_type="cron", schedule_expression="* * * * *", jitter_seconds=6,
                       overlap_policy="allow", task_name="tests.noop") for _ in range(12)]
    # (due a few seconds ahead, so that no offset has passed before the check that all wait)
    due = timezone.now().replace(microsecond=0) + timedelta(seconds=3)
    services.jobs_dispatch_scheduled(fires=[ScheduledFire(job.pk, due) for job in jobs])
    runs = Execution.objects.filter(job__in=jobs, scheduled_for=due)
    statuses = dict(runs.values_list("job_id", "status"))
    assert len(statuses) == 12
    # none has started before its start time, whatever the load on the machine
    assert all(status == "queued" for job_id, status in statuses.items()
               if timezone.now() < start_at(job_id, due, 6)), statuses
    # then each starts at due + its own offset (not before), and no earlier than its window
    wait_for(lambda: runs.filter(status="success").count() == 12, timeout=30, message="all 12 runs")
    for run in runs:
        assert_started_at_its_offset(run, 6)
        assert run.scheduled_for == due


def test_a_jittered_job_fired_by_beat_keeps_its_due_time(celery_worker_process):
    job = JobFactory(schedule_type="interval", schedule_expression="3s", jitter_seconds=2, task_name="tests.noop",
                     overlap_policy="allow")
    runs = Execution.objects.filter(job=job, scheduled_for__isnull=False, status="success")
    with running_beat():
        wait_for(lambda: runs.count() >= 2, timeout=30, message="two jittered fires run")
    for run in runs:
        assert_started_at_its_offset(run, 2)
    # one run per due time
    due_times = list(Execution.objects.filter(job=job, scheduled_for__isnull=False).values_list("scheduled_for", flat=True))
    assert len(due_times) == len(set(due_times))


def test_queue_runs_the_waiting_fire_when_the_running_one_ends_and_skips_the_rest(celery_worker_process):
    job = JobFactory(schedule_type="cron", schedule_expression="* * * * *", overlap_policy="queue",
                     task_name="tests.sleep", task_kwargs={"seconds": 2})
    due = timezone.now().replace(second=0, microsecond=0)
    first = services.job_dispatch_scheduled(job_id=job.pk, scheduled_for=due)
    wait_for(lambda: status_of(first) == "running", message="the first run to start")
    waiting = services.job_dispatch_scheduled(job_id=job.pk, scheduled_for=due + timedelta(minutes=1))
    skipped = services.job_dispatch_scheduled(job_id=job.pk, scheduled_for=due + timedelta(minutes=2))
    assert waiting.held and skipped.status == "skipped"
    wait_for(lambda: status_of(waiting) == "success", timeout=20, message="the waiting run")
    first.refresh_from_db()
    assert first.status == "success"
    # in order, and as the slot frees (within a second on an idle machine; slack for a loaded one)
    assert first.completed_at <= waiting.started_at <= first.completed_at + timedelta(seconds=3)


def test_replace_cancels_the_running_run_on_the_worker(celery_worker_process):
    job = JobFactory(schedule_type="cron", schedule_expression="* * * * *", overlap_policy="replace",
                     task_name="tests.sleep", task_kwargs={"seconds": 3})
    due = timezone.now().replace(second=0, microsecond=0)
    first = services.job_dispatch_scheduled(job_id=job.pk, scheduled_for=due)
    wait_for(lambda: status_of(first) == "running", message="the first run to start")
    second = services.job_dispatch_scheduled(job_id=job.pk, scheduled_for=due + timedelta(minutes=1))
    assert status_of(first) == "cancelled" and f"replaced by run {second.pk}" in first.error
    wait_for(lambda: status_of(second) == "success", timeout=20, message="the replacing run")
    assert status_of(first) == "cancelled"  # the cancel wins over the terminated run's outcome


def test_pause_all_holds_across_a_beat_restart_and_resume_catches_up(celery_worker_process):
    from scheduling.services.pause_all import maintenance_pause, maintenance_resume

    job = JobFactory(schedule_type="interval", schedule_expression="2s", task_name="tests.noop",
                     overlap_policy="allow", catch_up_policy="skip")
    fired = Execution.objects.filter(job=job, scheduled_for__isnull=False).exclude(status="missed")
    with running_beat():
        wait_for(lambda: fired.exists(), timeout=20, message="a fire before the pause")
    pause = maintenance_pause(actor_label="test", reason="upgrade")
    before = fired.count()
    # beat restarts while the site is paused: it fires (and owes) as usual, nothing runs
    with running_beat():
        import time

        time.sleep(6)
        assert fired.filter(scheduled_for__gt=pause.started_at).count() == 0
    assert fired.count() == before
    ended = maintenance_resume(actor_label="test")
    assert [p.pk for p in ended] == [pause.pk]
    # (a beat that starts slowly may record a missed row of its own before the pause)
    missed = Execution.objects.get(job=job, status="missed", output__contains="paused for maintenance")
    assert missed.result["missed"] >= 2
    # fires run again after the resume
    with running_beat():
        wait_for(lambda: fired.filter(scheduled_for__gt=ended[0].ended_at, status="success").exists(), timeout=20,
                 message="a fire after the resume")


def test_a_group_limit_holds_under_200_concurrent_requests_with_a_pool_process_killed(celery_worker_process):
    import os
    import signal
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    from scheduling.services.limits import concurrency_group_set

    group = concurrency_group_set(name="document-api", max_runs=2)
    jobs = [JobFactory(overlap_policy="allow", concurrency_group=group, task_name="tests.sleep",
                       task_kwargs={"seconds": 0.3}) for _ in range(3)]

    def request(i):
        try:
            return services.job_execute(job=jobs[i % 3]).pk
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=16) as pool:
        ids = list(pool.map(request, range(200)))
    assert len(set(ids)) == 200
    runs = Execution.objects.filter(pk__in=ids)
    # a pool process is killed while it runs one
    running = wait_for(lambda: runs.filter(status="running").first(), timeout=20, message="a run going")
    os.kill(int(running.worker.rsplit("pid ", 1)[1]), signal.SIGKILL)
    wait_for(lambda: not runs.filter(status__in=["queued", "running"]).exists(), timeout=240,
             message="every run to end")
    outcomes = list(runs.values_list("status", "started_at", "completed_at", "held"))
    assert not any(held for *_, held in outcomes)
    assert {status for status, *_ in outcomes} <= {"success", "error"}
    # the killed one is lost (its slot freed by the lost-run record), every other succeeded
    lost = list(runs.filter(status="error").values_list("error", flat=True))
    assert len(lost) == 1 and lost[0].startswith("Lost: "), lost
    assert sum(status == "success" for status, *_ in outcomes) == 199
    # never more than 2 running at once: at each start, the runs started and not ended
    spans = sorted((started, completed) for _, started, completed, _ in outcomes if started)
    assert len(spans) == 200  # every run started once (a doubled run would have been claimed twice)
    for started, _ in spans:
        going = sum(1 for s, c in spans if s <= started < c)
        assert going <= 2, (started, going)


def test_a_chain_of_three_jobs_of_different_kinds_with_a_failure_in_the_middle(celery_worker_process):
    from scheduling.services.dependencies import job_set_run_after

    # extract (a task, fired by beat every 2 s) → count (another kind: tests/kinds' test_countdown) → load (a task)
    extract = JobFactory(schedule_type="interval", schedule_expression="2s", overlap_policy="allow",
                         catch_up_policy="skip", task_name="tests.noop")
    count = JobFactory(kind="test_countdown", schedule_type="manual", schedule_expression="", task_name="",
                       overlap_policy="allow", config={"label": "liftoff", "step_seconds": 0.05})
    load = JobFactory(schedule_type="manual", schedule_expression="", overlap_policy="allow", task_name="tests.noop")
    job_set_run_after(job=count, upstreams=[(extract, "success")])
    job_set_run_after(job=load, upstreams=[(count, "success")])
    chain = Execution.objects.filter(job__in=[extract, count, load])
    with running_beat():
        last = wait_for(lambda: Execution.objects.filter(job=load, status="success").first(), timeout=30,
                        message="the chain to reach its end")
        services.job_pause(job=extract, actor_label="test")  # (a fire on its way is recorded before, or not at all)
    wait_for(lambda: not chain.filter(status__in=Execution.ACTIVE_STATUSES).exists(), timeout=30,
             message="the chains going to end")
    middle = Execution.objects.get(pk=last.trigger_run_id)
    first = Execution.objects.get(pk=middle.trigger_run_id)
    assert (first.job_id, first.trigger, middle.job_id) == (extract.pk, "schedule", count.pk)
    assert middle.scheduled_for == last.scheduled_for == first.scheduled_for
    assert middle.started_at >= first.completed_at
    assert last.started_at >= middle.completed_at
    # one chain run per fire of extract: each due time once in each job
    for job in (count, load):
        due_times = list(Execution.objects.filter(job=job).values_list("scheduled_for", flat=True))
        assert len(due_times) == len(set(due_times))
        assert set(due_times) <= set(Execution.objects.filter(job=extract).values_list("scheduled_for", flat=True))
    services.job_resume(job=extract, actor_label="test")  # beat is gone: fired by hand below

    # the middle one fails: the last is recorded skipped, with the reason, and never runs
    job_set_run_after(job=count, upstreams=[])
    failing = JobFactory(schedule_type="manual", schedule_expression="", overlap_policy="allow", task_name="tests.fail")
    job_set_run_after(job=failing, upstreams=[(extract, "success")])
    job_set_run_after(job=load, upstreams=[(failing, "success")])
    later = timezone.now().replace(microsecond=0) + timedelta(hours=1)  # a due time no fire above had
    services.job_dispatch_scheduled(job_id=extract.pk, scheduled_for=later)
    skipped = wait_for(lambda: Execution.objects.filter(job=load, scheduled_for=later).first(), timeout=30,
                       message="the last job's fire to be recorded")
    failed = Execution.objects.get(job=failing, scheduled_for=later)
    assert failed.status == "failed" and skipped.status == "skipped" and skipped.trigger_run_id == failed.pk
    assert "ended failed" in skipped.output


def test_a_retry_waits_for_a_slot_of_its_group_and_starts_as_it_frees(celery_worker_process):
    from scheduling.services.limits import concurrency_group_set

    # given a group of one slot, a run that fails (one retry after 1 s) and a 3 s run waiting behind it
    group = concurrency_group_set(name="one-at-a-time", max_runs=1)
    flaky = JobFactory(overlap_policy="allow", concurrency_group=group, task_name="tests.fail", max_retries=1,
                       retry_backoff_seconds=1)
    slow = JobFactory(overlap_policy="allow", concurrency_group=group, task_name="tests.sleep",
                      task_kwargs={"seconds": 3})
    failing = services.job_execute(job=flaky)
    waiting = services.job_execute(job=slow)
    # when the first fails, the waiting run takes the slot; the retry, past its backoff, waits for it
    retry = wait_for(lambda: Execution.objects.filter(retry_of=failing).first(), message="the retry")
    wait_for(lambda: status_of(waiting) == "running", message="the waiting run to take the slot")
    # then it starts when the slot frees (not before), once
    wait_for(lambda: status_of(retry) == "failed", timeout=30, message="the retry to run")
    waiting.refresh_from_db()
    lag = (retry.started_at - waiting.completed_at).total_seconds()
    assert retry.started_at >= retry.created_at + timedelta(seconds=1)  # after its backoff
    assert 0 <= lag < 3, lag  # within a second on an idle machine; slack for a loaded one
    assert Execution.objects.filter(job=flaky).count() == 2  # max_retries 1: no third run
    print(f"\nretry started {lag:.3f} s after the slot freed")


def test_a_group_limit_holds_under_200_concurrent_requests_with_a_worker_killed(own_redis, settings):
    """The whole worker is killed (main process and pool, SIGKILL) mid-run: its
    runs are found lost by the heartbeat sweep, which frees their slots; their
    retries and the failing runs' retries take slots like any run."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    from scheduling.services.limits import concurrency_group_set
    from tests.faults.support import short_visibility_env
    from tests.faults.test_long_runs import kill_whole
    from tests.worker import start_worker_process

    settings.JOBS_WORKER_HEARTBEAT_TIMEOUT_SECONDS = 4
    env = short_visibility_env(own_redis, 5, JOBS_WORKER_HEARTBEAT_TIMEOUT_SECONDS=4)
    group = concurrency_group_set(name="document-api", max_runs=2)
    in_group = {"overlap_policy": "allow", "concurrency_group": group, "retry_backoff_seconds": 1}
    # a long run that will be going when its worker dies; short runs; runs that fail (two retries each)
    long = JobFactory(task_name="tests.sleep", task_kwargs={"seconds": 300}, timeout_seconds=600, max_retries=0,
                      **in_group)
    short = [JobFactory(task_name="tests.sleep", task_kwargs={"seconds": 0.1}, max_retries=1, **in_group)
             for _ in range(2)]
    failing = JobFactory(task_name="tests.fail", max_retries=2, **in_group)
    first = start_worker_process(concurrency=2, hostname="limits-first@%h", extra_env=env)
    second = None
    try:
        doomed = services.job_execute(job=long)
        wait_for(lambda: status_of(doomed) == "running", message="the long run to start")

        def request(i):
            try:
                return services.job_execute(job=failing if i % 20 == 0 else short[i % 2]).pk
            finally:
                connection.close()

        with ThreadPoolExecutor(max_workers=16) as pool:
            ids = list(pool.map(request, range(200)))
        assert len(set(ids)) == 200
        # the worker dies with the long run (and maybe a short one) going
        wait_for(lambda: Execution.objects.filter(pk__in=ids, status__in=["running", "failed"]).exists(),
                 timeout=30, message="a short run going")
        kill_whole(first)
        second = start_worker_process(concurrency=2, hostname="limits-second@%h", extra_env=env)
        jobs = [long, *short, failing]
        runs = Execution.objects.filter(job__in=jobs)

        def all_ended():  # beat's sweeps, each second: lost runs, held and stale runs
            services.executions_reap_lost()
            services.executions_resend_stale_queued()
            return not runs.filter(status__in=Execution.ACTIVE_STATUSES).exists()

        wait_for(all_ended, timeout=300, interval=1, message="every run and retry to end")
    finally:
        first.stop()
        if second is not None:
            second.stop()
    # the long run is lost with its worker (its slot freed by the sweep, or its message's redelivery)
    doomed.refresh_from_db()
    assert doomed.status == "error" and doomed.error.startswith("Lost: "), doomed.error
    assert not runs.filter(held=True).exists()
    # every short run succeeded, at once or by its one retry (if it was lost with the worker)
    for run in runs.filter(job__in=short, trigger="api"):
        retries = list(Execution.objects.filter(retry_of=run))
        if run.status == "success":
            assert retries == []
        else:
            assert run.error.startswith("Lost: ") and [r.status for r in retries] == ["success"], run.error
    # every failing run ran three times: itself and two retries, none dropped or doubled
    for run in runs.filter(job=failing, trigger="api"):
        chain = [run]
        while (retry := Execution.objects.filter(retry_of=chain[-1]).first()) is not None:
            chain.append(retry)
        assert [(r.attempt, r.status) for r in chain] == [(1, "failed"), (2, "failed"), (3, "failed")]
    # never more than 2 going at once (a lost run holds its slot until it is found), each started once
    spans = sorted((r.started_at, r.completed_at) for r in runs if r.started_at)
    assert len(spans) == runs.count()
    for started, _ in spans:
        going = sum(1 for s, c in spans if s <= started < c)
        assert going <= 2, (started, going)


def test_beat_fires_queue_and_replace_jobs_in_their_orders(celery_worker_process):
    # given two 2-second jobs whose runs outlast a fire: one queues, one replaces
    queue = JobFactory(schedule_type="interval", schedule_expression="2s", overlap_policy="queue",
                       catch_up_policy="skip", task_name="tests.sleep", task_kwargs={"seconds": 3})
    replace = JobFactory(schedule_type="interval", schedule_expression="2s", overlap_policy="replace",
                         catch_up_policy="skip", task_name="tests.sleep", task_kwargs={"seconds": 60})
    queue_fires = Execution.objects.filter(job=queue, trigger="schedule").exclude(status="missed")
    replace_fires = Execution.objects.filter(job=replace, trigger="schedule").exclude(status="missed")
    # when beat fires them a while
    with running_beat():
        wait_for(lambda: queue_fires.filter(status="success").count() >= 2
                 and replace_fires.filter(status="cancelled").count() >= 2, timeout=60,
                 message="two queued runs done and two runs replaced")
        # (paused while beat runs: a fire already on its way is recorded before, or not at all)
        services.job_pause(job=queue, actor_label="test")
        services.job_pause(job=replace, actor_label="test")
    going = list(replace_fires.filter(status__in=Execution.ACTIVE_STATUSES))
    for run in going:
        services.execution_cancel(execution=run, actor_label="test")
    wait_for(lambda: not queue_fires.filter(status__in=Execution.ACTIVE_STATUSES).exists(), timeout=30,
             message="the queue job's last runs to end")
    # then the queue job ran one at a time, each waiting fire starting as the run before it ended,
    # and every fire that came while one waited is recorded skipped, with the reason
    ran = list(queue_fires.exclude(started_at=None).order_by("started_at"))
    assert len(ran) >= 2 and all(run.status == "success" for run in ran)
    for earlier, later in zip(ran, ran[1:]):
        assert later.started_at >= earlier.completed_at
        if later.created_at < earlier.completed_at:  # it waited for that run
            assert (later.started_at - earlier.completed_at).total_seconds() < 3
    skipped = list(queue_fires.filter(status="skipped"))
    assert skipped and all("overlap policy 'queue' keeps at most one waiting" in run.output for run in skipped)
    assert queue_fires.count() == len(ran) + len(skipped)
    # and each replace fire cancelled the run before it, which ended before the new one started
    fires = list(replace_fires.order_by("scheduled_for"))
    assert len(fires) >= 3
    for earlier, later in zip(fires, fires[1:]):
        assert earlier.status == "cancelled" and f"replaced by run {later.pk}" in earlier.error, earlier.error
        assert later.started_at is None or earlier.completed_at <= later.started_at


def test_run_after_across_kinds_a_vision_job_after_a_workflow_and_a_task_after_a_predictions_upload(
        celery_worker_process, user, api):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from predictions.models import BulkUploadJob
    from predictions.services import bulk_upload_job
    from scheduling.services.dependencies import job_set_run_after
    from scheduling.workflows import services as workflow_services
    from tests.predictions_files import annual_row, csv_bytes
    from vision_pipeline.demo import DEMO_ORGANIZATION_ID, DemoExternalAPI
    from vision_pipeline.services.cron_jobs import cron_job_create

    # given a vision job that runs after a workflow job succeeds ...
    workflow_services.workflow_create(actor=user, id="wf-extract", name="Extract",
                                      steps=[{"name": "one", "type": "delay", "seconds": 0}])
    extract, _ = workflow_services.workflow_schedule_save(
        actor=user, job_id="extract", workflow_id="wf-extract", user_id=str(user.pk), input="hi",
        schedule_type="cron", cron_expression="0 3 * * *")
    external = DemoExternalAPI(key="e2e-run-after-key").start()
    try:
        scans = cron_job_create(actor=user, name="Scans", schedule="0 4 * * *",
                                external_api_get_url=external.get_url, external_api_post_url=external.post_url,
                                external_api_key="e2e-run-after-key", organization_id=DEMO_ORGANIZATION_ID)
        job_set_run_after(job=scans, upstreams=[(extract, "success")])
        # ... and a report task that runs after each predictions upload succeeds
        report = JobFactory(schedule_type="manual", schedule_expression="", overlap_policy="allow",
                            task_name="tests.echo")
        job_set_run_after(job=report, upstreams=[(bulk_upload_job(), "success")])
        # when beat fires the workflow job
        due = timezone.now().replace(microsecond=0)
        first = services.job_dispatch_scheduled(job_id=extract.pk, scheduled_for=due)
        # then the vision job runs after it, for the same due time, recording the run that triggered it
        scan = wait_for(lambda: Execution.objects.filter(job=scans, status__in=["success", "failed", "error"]).first(),
                        timeout=60, message="the vision job's run")
        assert scan.status == "success", (scan.output, scan.error)
        assert (scan.trigger, scan.trigger_run_id, scan.scheduled_for) == ("dependency", first.pk, due)
        assert scan.started_at >= Execution.objects.get(pk=first.pk).completed_at
        assert Execution.objects.get(pk=first.pk).status == "success"
    finally:
        external.stop()
    # and when a predictions upload succeeds, the report task runs after its run
    rows = [annual_row(i) for i in range(5)]
    response = api.post("/api/v1/predictions/annual/bulk-upload-async",
                        {"file": SimpleUploadedFile("five.csv", csv_bytes(rows))}, format="multipart")
    assert response.status_code == 202, response.json()
    upload = BulkUploadJob.objects.get(pk=response.json()["job_id"])
    reported = wait_for(lambda: Execution.objects.filter(job=report, status="success").first(), timeout=60,
                        message="the report task's run")
    upload.refresh_from_db()
    assert upload.status == "completed"
    assert reported.trigger_run_id == upload.execution_id and reported.trigger == "dependency"
    assert reported.started_at >= upload.execution.completed_at
