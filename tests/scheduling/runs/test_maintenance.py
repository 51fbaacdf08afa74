"""The built-in maintenance tasks (scheduling.maintenance), with real effects:
files on disk, rows in the database, the real Redis, real local HTTP servers."""
import os
import threading
import time
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils import timezone

from jobsite.runtime import free_port
from jobsite.services_health import BEAT_HEARTBEAT_KEY, record_beat_heartbeat
from scheduling import maintenance, services
from scheduling.executors import schedulable_task, schedulable_tasks
from scheduling.models import AuditLog, DailyJobStatistics, Execution, Job
from scheduling.statistics import nearest_rank_index, nearest_rank_percentile
from tests.factories import JobFactory


pytestmark = pytest.mark.django_db

HOUR = 3600


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
def make_file(path: Path, *, age_hours: float, size: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    age(path, hours=age_hours)
    return path


def age(path: Path, *, hours: float) -> None:
    stamp = time.time() - hours * HOUR
    os.utime(path, (stamp, stamp), follow_symlinks=False)


def make_execution(job, *, status=Execution.Status.SUCCESS, created_at=None, duration=None, completed_at="auto",
                   triggered_by=None):
    execution = Execution.objects.create(job=job, status=status, duration_seconds=duration, triggered_by=triggered_by)
    created_at = created_at or timezone.now()
    if completed_at == "auto":
        completed_at = created_at if status in Execution.FINISHED_STATUSES else None
    # created_at is auto_now_add: backdate it with an update
    Execution.objects.filter(pk=execution.pk).update(created_at=created_at, completed_at=completed_at)
    execution.refresh_from_db()
    return execution


def run_through_executor(job: Job, **override_kwargs) -> Execution:
    """Run ``job`` in-process the way a worker does (claim, executor, record)."""
    execution = services.job_execute(job=job, force=True, override_kwargs=override_kwargs)
    return services.execution_run(execution_id=execution.pk, task_id=execution.celery_task_id, worker="test pid 1")


@pytest.fixture
def temp_dir(settings, tmp_path):
    settings.JOBS_TEMP_DIR = tmp_path / "jobs-tmp"
    settings.JOBS_TEMP_RETENTION_HOURS = 24
    return settings.JOBS_TEMP_DIR


@pytest.fixture
def beat_heartbeat(settings):
    """A fresh beat heartbeat in the real Redis (what beat's tick records)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    assert record_beat_heartbeat()
    yield
    client.delete(BEAT_HEARTBEAT_KEY)


@pytest.fixture
def small_disk_minimum(settings):
    settings.HEALTH_DISK_MIN_FREE_MB = 1


def test_every_builtin_task_is_registered_on_the_maintenance_queue():
    names = {
        "scheduling.system_health_check", "scheduling.document_cleanup", "scheduling.analytics_aggregation",
        "scheduling.database_maintenance", "scheduling.mcp_server_health_check", "scheduling.user_activity_digest",
    }

    assert names <= set(schedulable_tasks())
    assert {schedulable_task(name).default_queue for name in names} == {"maintenance"}
    assert all(schedulable_task(name).description for name in names)


# ---------------------------------------------------------------------------
# system_health_check
# ---------------------------------------------------------------------------
def test_health_check_is_ok_with_the_database_and_the_real_redis(beat_heartbeat, small_disk_minimum):
    outcome = maintenance.system_health_check(include_workers=False)

    assert outcome.ok is True, outcome.output
    assert outcome.output.startswith("Healthy: database, broker, beat, disk ok")
    checks = outcome.result["checks"]
    assert checks["database"]["ok"] is True and checks["database"]["latency_ms"] >= 0
    assert checks["broker"]["ok"] is True and "latency_ms" in checks["broker"]
    assert outcome.result["status"] == "ok"


def test_health_check_fails_and_names_the_broker_when_it_is_down(settings, beat_heartbeat, small_disk_minimum):
    # given: nothing listens where the broker should be
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"

    outcome = maintenance.system_health_check()

    assert outcome.ok is False
    assert outcome.output.startswith("Unhealthy: broker down (")
    assert "workers down (not checked: the broker is unreachable)" in outcome.output
    assert outcome.result["checks"]["database"]["ok"] is True


def test_health_check_fails_when_the_disk_is_below_the_minimum(settings, beat_heartbeat):
    settings.HEALTH_DISK_MIN_FREE_MB = 10**9

    outcome = maintenance.system_health_check(include_workers=False)

    assert outcome.ok is False
    assert "disk down (" in outcome.output and "minimum 1000000000 MB" in outcome.output


def test_a_failed_health_check_is_recorded_as_a_failed_execution(settings, beat_heartbeat, small_disk_minimum):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    job = JobFactory(task_name="scheduling.system_health_check", queue="maintenance")

    execution = run_through_executor(job, include_workers=False)

    assert execution.status == Execution.Status.FAILED
    assert execution.output.startswith("Unhealthy: broker down")
    assert execution.error == execution.output
    assert execution.result["checks"]["broker"]["ok"] is False


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_health_check_job_runs_on_a_real_worker_and_sees_it(celery_worker_process, beat_heartbeat,
                                                           small_disk_minimum):
    # given: a job of the built-in task, on the maintenance queue
    job = JobFactory(name="health", task_name="scheduling.system_health_check", queue="maintenance",
                     job_type="system_health_check")

    # when: it is run through the broker by the worker
    execution = services.job_execute(job=job, force=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        execution.refresh_from_db()
        if execution.status not in Execution.ACTIVE_STATUSES:
            break
        time.sleep(0.2)

    # then
    assert execution.status == Execution.Status.SUCCESS, (execution.output, execution.error)
    assert execution.output.startswith("Healthy: database, broker, workers, beat, disk ok")
    assert celery_worker_process.nodename in execution.result["checks"]["workers"]["workers"]
    assert execution.worker.startswith(celery_worker_process.nodename)


# ---------------------------------------------------------------------------
# document_cleanup: temporary files
# ---------------------------------------------------------------------------
def test_cleanup_creates_a_missing_temp_dir(temp_dir):
    assert not temp_dir.exists()

    outcome = maintenance.document_cleanup()

    assert temp_dir.is_dir()
    assert outcome.ok and outcome.result["files_deleted"] == 0


def test_cleanup_deletes_files_older_than_the_retention_and_keeps_newer_ones(temp_dir):
    old = make_file(temp_dir / "old.bin", age_hours=25, size=1000)
    old_nested = make_file(temp_dir / "batch-1" / "img.jpg", age_hours=48, size=234)
    fresh = make_file(temp_dir / "fresh.bin", age_hours=23, size=50)
    fresh_nested = make_file(temp_dir / "batch-2" / "img.jpg", age_hours=1)

    outcome = maintenance.document_cleanup()

    assert not old.exists() and not old_nested.exists()
    assert fresh.exists() and fresh_nested.exists()
    # standard level keeps directories, even emptied ones
    assert (temp_dir / "batch-1").is_dir()
    assert outcome.result["files_deleted"] == 2
    assert outcome.result["bytes_freed"] == 1234
    assert outcome.result["dirs_removed"] == 0
    assert outcome.output.startswith("Deleted 2 temp file(s) (1.2 KB) and 0 execution(s)")


def test_cleanup_honours_the_temp_retention_setting_and_option(temp_dir, settings):
    settings.JOBS_TEMP_RETENTION_HOURS = 2
    three_hours = make_file(temp_dir / "three-hours.txt", age_hours=3)
    one_hour = make_file(temp_dir / "one-hour.txt", age_hours=1)

    maintenance.document_cleanup()
    assert not three_hours.exists() and one_hour.exists()

    maintenance.document_cleanup(temp_retention_hours="1")
    assert not one_hour.exists()


def test_deep_cleanup_also_removes_directories_left_empty(temp_dir):
    make_file(temp_dir / "done" / "a" / "b.txt", age_hours=30)
    (temp_dir / "empty-old").mkdir(parents=True)
    make_file(temp_dir / "busy" / "new.txt", age_hours=1)
    make_file(temp_dir / "busy" / "old.txt", age_hours=30)
    (temp_dir / "empty-new").mkdir()  # a batch just created its directory: not ours yet
    for directory in ("done/a", "done", "empty-old", "busy"):
        age(temp_dir / directory, hours=30)

    outcome = maintenance.document_cleanup(cleanup_level="deep")

    assert not (temp_dir / "done").exists()
    assert not (temp_dir / "empty-old").exists()
    assert (temp_dir / "busy" / "new.txt").exists() and not (temp_dir / "busy" / "old.txt").exists()
    assert (temp_dir / "empty-new").is_dir()
    assert temp_dir.is_dir()  # the root itself always stays
    assert outcome.result["dirs_removed"] == 3  # done/a, done, empty-old
    assert outcome.result["files_deleted"] == 2


def test_cleanup_never_follows_symlinks_out_of_the_temp_dir(temp_dir, tmp_path):
    # given: precious old files outside, reachable through links inside
    outside = tmp_path / "outside"
    precious_file = make_file(outside / "precious.txt", age_hours=100)
    precious_nested = make_file(outside / "dir" / "nested.txt", age_hours=100)
    age(outside / "dir", hours=100)
    temp_dir.mkdir()
    (temp_dir / "link-to-dir").symlink_to(outside / "dir", target_is_directory=True)
    (temp_dir / "link-to-file").symlink_to(precious_file)
    (temp_dir / "fresh-link").symlink_to(outside)
    for link in ("link-to-dir", "link-to-file"):
        age(temp_dir / link, hours=100)

    outcome = maintenance.document_cleanup(cleanup_level="deep")

    # then: stale links are removed as links; nothing outside is touched
    assert precious_file.exists() and precious_nested.exists() and (outside / "dir").is_dir()
    assert not os.path.lexists(temp_dir / "link-to-dir") and not os.path.lexists(temp_dir / "link-to-file")
    assert (temp_dir / "fresh-link").is_symlink()
    assert outcome.result["files_deleted"] == 2
    assert outcome.result["bytes_freed"] == 0


def test_dry_run_only_counts(temp_dir):
    old = make_file(temp_dir / "d" / "old.bin", age_hours=30, size=100)
    age(temp_dir / "d", hours=30)
    job = JobFactory()
    expired = make_execution(job, created_at=timezone.now() - timedelta(days=200))

    outcome = maintenance.document_cleanup(dry_run=True, cleanup_level="deep")

    assert old.exists() and Execution.objects.filter(pk=expired.pk).exists()
    assert outcome.result["dry_run"] is True
    assert outcome.result["files_deleted"] == 1 and outcome.result["bytes_freed"] == 100
    assert outcome.result["dirs_removed"] == 1
    assert outcome.result["executions_deleted"] == 1
    assert outcome.output.startswith("Would delete 1 temp file(s) (100 B), 1 empty dir(s) and 1 execution(s)")


# ---------------------------------------------------------------------------
# document_cleanup: executions
# ---------------------------------------------------------------------------
def test_cleanup_prunes_finished_executions_past_the_retention(temp_dir, settings):
    settings.JOBS_EXECUTION_RETENTION_DAYS = 30
    job = JobFactory()
    now = timezone.now()
    old_success = make_execution(job, created_at=now - timedelta(days=40))
    old_failed = make_execution(job, status=Execution.Status.FAILED, created_at=now - timedelta(days=31))
    old_but_running = make_execution(job, status=Execution.Status.RUNNING, created_at=now - timedelta(days=40))
    recent = make_execution(job, created_at=now - timedelta(days=29))
    recent_skip = make_execution(job, status=Execution.Status.SKIPPED, created_at=now - timedelta(days=1))
    # a retry of an old run keeps living when its original goes
    retry = make_execution(job, created_at=now - timedelta(days=2))
    Execution.objects.filter(pk=retry.pk).update(retry_of=old_failed)

    outcome = maintenance.document_cleanup()

    remaining = set(Execution.objects.values_list("pk", flat=True))
    assert remaining == {old_but_running.pk, recent.pk, recent_skip.pk, retry.pk}
    assert not {old_success.pk, old_failed.pk} & remaining
    assert outcome.result["executions_deleted"] == 2
    assert Execution.objects.get(pk=retry.pk).retry_of_id is None


def test_cleanup_retention_days_option_and_deep_level_for_skipped_runs(temp_dir):
    job = JobFactory()
    now = timezone.now()
    ten_days = make_execution(job, created_at=now - timedelta(days=10))
    three_days = make_execution(job, created_at=now - timedelta(days=3))
    skipped = make_execution(job, status=Execution.Status.SKIPPED, created_at=now - timedelta(minutes=5))

    outcome = maintenance.document_cleanup(retention_days=7, cleanup_level="deep")

    assert set(Execution.objects.values_list("pk", flat=True)) == {three_days.pk}
    assert not Execution.objects.filter(pk__in=[ten_days.pk, skipped.pk]).exists()
    assert outcome.result["executions_deleted"] == 2
    assert outcome.result["skipped_executions_deleted"] == 1


def test_cleanup_through_the_executor_with_seed_override_kwargs(temp_dir):
    # seed 003: POST /execute {"override_kwargs": {"cleanup_level": "deep"}}
    job = JobFactory(name="document_cleanup", task_name="scheduling.document_cleanup", queue="maintenance")
    make_file(temp_dir / "x" / "old.txt", age_hours=30)
    age(temp_dir / "x", hours=30)

    execution = run_through_executor(job, cleanup_level="deep")

    assert execution.status == Execution.Status.SUCCESS, execution.error
    assert execution.result["cleanup_level"] == "deep"
    assert execution.result["dirs_removed"] == 1
    assert not (temp_dir / "x").exists()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"cleanup_level": "nuclear"}, "cleanup_level must be one of standard, deep"),
        ({"retention_days": 0}, "retention_days must be at least 1"),
        ({"retention_days": "soon"}, "retention_days must be a whole number"),
        ({"dry_run": "maybe"}, "dry_run must be true or false"),
    ],
)
def test_bad_cleanup_options_fail_the_run_with_a_clear_error(temp_dir, kwargs, message):
    job = JobFactory(task_name="scheduling.document_cleanup", queue="maintenance")

    execution = run_through_executor(job, **kwargs)

    assert execution.status == Execution.Status.FAILED
    assert message in execution.error


def test_a_misspelt_cleanup_option_is_refused_before_the_run():
    # signature checks happen at request time (scheduling/executors/tasks.py), so
    # a typo is a 400 naming it instead of a failed run with a TypeError
    job = JobFactory(task_name="scheduling.document_cleanup", queue="maintenance")
    with pytest.raises(ValidationError, match="Unknown parameter 'retention_dayz'"):
        services.job_execute(job=job, override_kwargs={"retention_dayz": 3})
    assert not job.executions.exists()


# ---------------------------------------------------------------------------
# analytics_aggregation
# ---------------------------------------------------------------------------
def at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=dt_timezone.utc)


def test_aggregation_computes_per_job_and_overall_statistics_for_a_day():
    # given: 20 runs of job A (durations 1..20 s, 2 failed, 1 timeout, 1 cancelled) and 2 of job B
    day = timezone.localdate() - timedelta(days=3)
    job_a, job_b = JobFactory(), JobFactory()
    statuses = [Execution.Status.SUCCESS] * 16 + [Execution.Status.FAILED] * 2 + [
        Execution.Status.TIMEOUT, Execution.Status.CANCELLED]
    for seconds, status in zip(range(1, 21), statuses):
        make_execution(job_a, status=status, duration=float(seconds), created_at=at(day, seconds % 24))
    make_execution(job_b, duration=100.0, created_at=at(day, 0))
    make_execution(job_b, status=Execution.Status.ERROR, duration=None, created_at=at(day, 23))
    # not counted: skipped, still running, other days
    make_execution(job_a, status=Execution.Status.SKIPPED, created_at=at(day, 12))
    make_execution(job_a, status=Execution.Status.RUNNING, created_at=at(day, 12))
    make_execution(job_a, duration=999.0, created_at=at(day - timedelta(days=1), 23))
    make_execution(job_a, duration=999.0, created_at=at(day + timedelta(days=1), 0))

    # when
    outcome = maintenance.analytics_aggregation(day=day.isoformat())

    # then
    a = DailyJobStatistics.objects.get(day=day, job=job_a)
    assert (a.runs, a.successes, a.failures) == (20, 16, 3)
    assert a.average_duration_seconds == 10.5
    assert a.p95_duration_seconds == 19.0  # nearest rank: ceil(0.95 × 20) = 19th of 1..20
    b = DailyJobStatistics.objects.get(day=day, job=job_b)
    assert (b.runs, b.successes, b.failures) == (2, 1, 1)
    assert b.average_duration_seconds == 100.0 and b.p95_duration_seconds == 100.0
    overall = DailyJobStatistics.objects.get(day=day, job=None)
    assert (overall.runs, overall.successes, overall.failures) == (22, 17, 4)
    assert overall.average_duration_seconds == round((210 + 100) / 21, 3)
    assert overall.p95_duration_seconds == 20.0  # 20th of 21 durations
    assert outcome.result["days"] == [
        {"day": day.isoformat(), "jobs": 2, "runs": 22, "successes": 17, "failures": 4,
         "average_duration_seconds": round(310 / 21, 3), "p95_duration_seconds": 20.0}
    ]
    assert outcome.output == f"Aggregated {day.isoformat()}: 22 run(s) over 2 job(s), 4 failed"


def test_aggregation_is_idempotent_and_updates_rows_in_place():
    day = timezone.localdate() - timedelta(days=2)
    job = JobFactory()
    make_execution(job, duration=2.0, created_at=at(day, 10))
    maintenance.analytics_aggregation(day=day.isoformat())
    maintenance.analytics_aggregation(day=day.isoformat())
    assert DailyJobStatistics.objects.filter(day=day).count() == 2  # job + overall

    make_execution(job, duration=4.0, status=Execution.Status.FAILED, created_at=at(day, 11))
    maintenance.analytics_aggregation(day=day.isoformat())

    assert DailyJobStatistics.objects.filter(day=day).count() == 2
    row = DailyJobStatistics.objects.get(day=day, job=job)
    assert (row.runs, row.failures, row.average_duration_seconds, row.p95_duration_seconds) == (2, 1, 3.0, 4.0)


def test_aggregation_defaults_to_yesterday_and_today():
    today = timezone.localdate()
    job = JobFactory()
    make_execution(job, duration=1.0, created_at=timezone.now())

    outcome = maintenance.analytics_aggregation()

    assert [item["day"] for item in outcome.result["days"]] == [(today - timedelta(days=1)).isoformat(),
                                                                today.isoformat()]
    assert DailyJobStatistics.objects.get(day=today, job=job).runs == 1
    yesterday = DailyJobStatistics.objects.get(day=today - timedelta(days=1), job=None)
    assert (yesterday.runs, yesterday.average_duration_seconds, yesterday.p95_duration_seconds) == (0, None, None)


@pytest.mark.parametrize("day, message", [("yesterday", "day must be an ISO date"),
                                          ("2000-01-01", "before the execution retention window")])
def test_aggregation_refuses_bad_or_pruned_days(day, message):
    with pytest.raises(ValueError, match=message):
        maintenance.analytics_aggregation(day=day)


@pytest.mark.parametrize(
    "values, expected",
    [([], None), ([7.0], 7.0), ([3.0, 1.0, 2.0], 3.0), (list(map(float, range(1, 101))), 95.0),
     (list(map(float, range(1, 21))), 19.0), (list(map(float, range(1, 22))), 20.0)],
)
def test_nearest_rank_percentile(values, expected):
    assert nearest_rank_percentile(values, 95) == expected


@pytest.mark.parametrize("count, fraction, index", [(20, 0.95, 18), (100, 0.95, 94), (21, 0.95, 19), (1, 0.95, 0),
                                                    (3, 0.5, 1), (10, 1.0, 9), (10, 0.0, 0), (7, 0.99, 6)])
def test_nearest_rank_index_is_exact_at_multiples(count, fraction, index):
    # the database-side p95 (selectors) and the Python-side one pick the same element
    assert nearest_rank_index(count, fraction) == index


# ---------------------------------------------------------------------------
# database_maintenance
# ---------------------------------------------------------------------------
def _backdate_audit(days: int) -> AuditLog:
    entry = AuditLog.objects.create(actor_label="test", action="update", object_type="job", object_id="1")
    AuditLog.objects.filter(pk=entry.pk).update(created_at=timezone.now() - timedelta(days=days))
    return entry


def test_database_maintenance_optimises_and_prunes_the_audit_log():
    old = _backdate_audit(400)
    recent = _backdate_audit(100)

    outcome = maintenance.database_maintenance()

    assert outcome.ok
    assert not AuditLog.objects.filter(pk=old.pk).exists()
    assert AuditLog.objects.filter(pk=recent.pk).exists()
    assert outcome.result["audit_entries_deleted"] == 1
    if outcome.result["vendor"] == "sqlite":
        # inside the test's transaction the checkpoint must wait (see the autocommit test)
        assert outcome.result["statements"] == ["PRAGMA optimize", "ANALYZE"]
        assert "WAL checkpoint skipped: inside a transaction" in outcome.result["notes"]
        assert outcome.result["size_bytes_after"] > 0
    else:
        assert "scheduling_job" in outcome.result["tables"]
    assert "1 audit entry older than 365 day(s) deleted" in outcome.output


def test_audit_retention_is_an_option():
    entry = _backdate_audit(40)

    maintenance.database_maintenance(audit_retention_days=30)

    assert not AuditLog.objects.filter(pk=entry.pk).exists()


def test_vacuum_inside_a_transaction_is_skipped_with_a_note():
    outcome = maintenance.database_maintenance(vacuum=True)

    assert "VACUUM" not in " ".join(outcome.result["statements"]).replace("VACUUM skipped", "")
    assert any(note.startswith("VACUUM skipped") for note in outcome.result["notes"])


@pytest.mark.django_db(transaction=True)
def test_vacuum_and_checkpoint_run_in_autocommit_as_in_a_worker():
    outcome = maintenance.database_maintenance(vacuum=True)

    if outcome.result["vendor"] == "sqlite":
        assert outcome.result["statements"] == ["PRAGMA optimize", "ANALYZE", "VACUUM",
                                                "PRAGMA wal_checkpoint(TRUNCATE)"]
        assert set(outcome.result["wal_checkpoint"]) == {"busy", "wal_pages", "checkpointed_pages"}
    else:
        assert outcome.result["statements"] == ["VACUUM (ANALYZE) <table>"]
    assert not any("skipped" in note for note in outcome.result["notes"])


# ---------------------------------------------------------------------------
# mcp_server_health_check
# ---------------------------------------------------------------------------
class _McpHandler(BaseHTTPRequestHandler):
    stop = threading.Event()

    def do_GET(self):  # noqa: N802 (http.server API)
        if self.path.startswith("/broken"):
            self.send_response(503)
            self.end_headers()
        elif self.path.startswith("/sse"):
            # an SSE endpoint: headers, then a stream that never ends
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.write(b": ping\n\n")
            self.wfile.flush()
            self.stop.wait(30)
        else:
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def mcp_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _McpHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _McpHandler.stop.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    _McpHandler.stop.set()
    server.shutdown()
    server.server_close()


def test_mcp_check_without_servers_succeeds(settings):
    settings.MCP_SERVER_URLS = []

    outcome = maintenance.mcp_server_health_check()

    assert outcome.ok is True
    assert outcome.output == "No MCP servers configured (MCP_SERVER_URLS is empty)"


def test_mcp_check_records_status_and_latency_of_a_live_server(settings, mcp_server):
    settings.MCP_SERVER_URLS = [f"{mcp_server}/mcp"]

    outcome = maintenance.mcp_server_health_check()

    assert outcome.ok is True, outcome.output
    [server] = outcome.result["servers"]
    assert server["url"] == f"{mcp_server}/mcp"
    assert server["status_code"] == 200 and server["ok"] is True and server["latency_ms"] >= 0
    assert outcome.output.startswith("All 1 MCP server(s) up")


def test_mcp_check_fails_when_a_server_is_down(settings, mcp_server):
    closed = f"http://127.0.0.1:{free_port()}/mcp"
    settings.MCP_SERVER_URLS = [f"{mcp_server}/mcp", closed, f"{mcp_server}/broken"]

    outcome = maintenance.mcp_server_health_check()

    assert outcome.ok is False
    by_url = {server["url"]: server for server in outcome.result["servers"]}
    assert by_url[f"{mcp_server}/mcp"]["ok"] is True
    assert by_url[closed] == {**by_url[closed], "ok": False, "status_code": None, "error": "connection failed"}
    assert by_url[f"{mcp_server}/broken"]["status_code"] == 503
    assert (outcome.result["up"], outcome.result["down"]) == (1, 2)
    assert outcome.output.startswith("2 of 3 MCP server(s) down: ")
    assert closed in outcome.output


def test_mcp_check_does_not_wait_for_a_streaming_endpoint(settings, mcp_server):
    settings.MCP_SERVER_URLS = [f"{mcp_server}/sse"]

    started = time.monotonic()
    outcome = maintenance.mcp_server_health_check()

    assert time.monotonic() - started < 3
    assert outcome.ok is True and outcome.result["servers"][0]["status_code"] == 200


def test_mcp_check_never_shows_credentials_in_urls(settings, mcp_server):
    settings.MCP_SERVER_URLS = [mcp_server.replace("http://", "http://user:s3cret@") + "/mcp?api_key=s3cret"]

    outcome = maintenance.mcp_server_health_check()

    assert outcome.ok is True
    assert "s3cret" not in str(outcome.result) and "s3cret" not in outcome.output
    assert outcome.result["servers"][0]["url"] == mcp_server.replace("http://", "http://***@") + "/mcp?api_key=***"


def test_mcp_urls_option_overrides_the_setting_within_the_outbound_policy(settings, mcp_server):
    settings.MCP_SERVER_URLS = []
    settings.OUTBOUND_HTTP_ALLOW_LOOPBACK = False
    settings.OUTBOUND_HTTP_ALLOW_PRIVATE = False
    settings.OUTBOUND_HTTP_ALLOW_HOSTS = [mcp_server.removeprefix("http://")]

    outcome = maintenance.mcp_server_health_check(urls=[f"{mcp_server}/mcp"])
    assert outcome.ok is True and len(outcome.result["servers"]) == 1

    # URLs given as a run option may not probe internal hosts unless allowed
    settings.OUTBOUND_HTTP_ALLOW_HOSTS = []
    with pytest.raises(ValueError, match="127.0.0.1 is a loopback address"):
        maintenance.mcp_server_health_check(urls=[f"{mcp_server}/mcp"])
    with pytest.raises(ValueError, match="10.1.2.3 is a private address"):
        maintenance.mcp_server_health_check(urls=["http://10.1.2.3/mcp"])
    with pytest.raises(ValueError, match="169.254.169.254 is a link-local address"):
        maintenance.mcp_server_health_check(urls=["http://169.254.169.254/latest/meta-data/"])
    with pytest.raises(ValueError, match="not an http"):
        maintenance.mcp_server_health_check(urls=["file:///etc/passwd"])


def test_mcp_servers_in_settings_are_trusted_for_their_own_probe_only(settings, mcp_server):
    # given: the strict policy; the operator lists an internal MCP server
    settings.OUTBOUND_HTTP_ALLOW_LOOPBACK = False
    settings.OUTBOUND_HTTP_ALLOW_HOSTS = []
    settings.MCP_SERVER_URLS = [f"{mcp_server}/mcp"]

    outcome = maintenance.mcp_server_health_check()

    assert outcome.ok is True, outcome.output
    # the same server is still refused as a run option, and a denied host even from settings
    with pytest.raises(ValueError, match="loopback address"):
        maintenance.mcp_server_health_check(urls=[f"{mcp_server}/mcp"])
    settings.OUTBOUND_HTTP_DENY_HOSTS = ["127.0.0.1"]
    with pytest.raises(ValueError, match="denied by OUTBOUND_HTTP_DENY_HOSTS"):
        maintenance.mcp_server_health_check()


def test_mcp_check_through_the_executor_fails_the_execution(settings, mcp_server):
    settings.MCP_SERVER_URLS = [f"http://127.0.0.1:{free_port()}/"]
    job = JobFactory(task_name="scheduling.mcp_server_health_check", queue="maintenance")

    execution = run_through_executor(job)

    assert execution.status == Execution.Status.FAILED
    assert execution.output.startswith("1 of 1 MCP server(s) down")


# ---------------------------------------------------------------------------
# user_activity_digest
# ---------------------------------------------------------------------------
def test_user_activity_digest_counts_per_user(make_user):
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    job1 = JobFactory(owner=alice)
    JobFactory(owner=alice)
    old_job = JobFactory(owner=carol)
    Job.objects.filter(pk=old_job.pk).update(created_at=timezone.now() - timedelta(days=30))
    JobFactory()  # system job, nobody's
    for _ in range(3):
        make_execution(job1, triggered_by=bob)
    make_execution(job1, triggered_by=alice)
    make_execution(job1, triggered_by=bob, created_at=timezone.now() - timedelta(days=8))
    make_execution(job1)  # scheduled: triggered by nobody

    outcome = maintenance.user_activity_digest()

    assert outcome.result["days"] == 7
    assert outcome.result["users"] == [
        {"user_id": alice.pk, "username": "alice", "jobs_created": 2, "executions_triggered": 1},
        {"user_id": bob.pk, "username": "bob", "jobs_created": 0, "executions_triggered": 3},
    ]
    assert outcome.result["totals"] == {"jobs_created": 2, "executions_triggered": 4}
    assert outcome.output == "2 active user(s) in the last 7 day(s): 2 job(s) created, 4 execution(s) triggered"

    wider = maintenance.user_activity_digest(days=60)
    assert {row["username"] for row in wider.result["users"]} == {"alice", "bob", "carol"}
    assert get_user_model().objects.count() == 3
