"""Run control on the command line: --jitter and --overlap, pause-all, resume-all, maintenance."""
import json

import pytest
from django.core.management import CommandError

from scheduling.models import AuditLog, Job, MaintenancePause
from tests.scheduling.cli.test_cli import jobs

pytestmark = pytest.mark.django_db


def test_create_and_update_take_jitter_and_the_new_overlap_policies():
    jobs("create", "nightly", "Nightly", "custom", "cron", "0 2 * * *", "tests.echo", "--jitter", "30", "--overlap", "queue")
    job = Job.objects.get(name="nightly")
    assert (job.jitter_seconds, job.overlap_policy) == (30, "queue")
    jobs("update", "nightly", "--jitter", "0", "--overlap", "replace")
    job.refresh_from_db()
    assert (job.jitter_seconds, job.overlap_policy) == (0, "replace")
    with pytest.raises(CommandError, match="jitter_seconds"):
        jobs("update", "nightly", "--jitter", "4000")
    jobs("update", "nightly", "--jitter", "90")
    shown = jobs("show", "nightly")
    assert "Start jitter" in shown and "up to 90s after the due time" in shown
    assert "(starts by " in shown and "02:01" in shown


def test_pause_all_resume_all_and_the_list(org):
    out = jobs("pause-all", "--org", org.name, "--reason", "upgrade")
    assert f"organization '{org.name}' is paused for maintenance until resumed (upgrade)" in out
    listed = json.loads(jobs("maintenance", "--json"))
    assert listed["total"] == 1 and listed["items"][0]["scope"] == "organization"
    assert "Ended pause" in jobs("resume-all")
    assert "Nothing is paused." in jobs("maintenance")
    assert set(AuditLog.objects.filter(object_type="maintenancepause").values_list("action", "actor_label")) == {
        ("pause", "cli"), ("resume", "cli")}


def test_pause_all_refuses_bad_input():
    with pytest.raises(CommandError, match="No organization"):
        jobs("pause-all", "--org", "nobody")
    with pytest.raises(CommandError, match="until: The end of a pause must be in the future"):
        jobs("pause-all", "--until", "2001-01-01T00:00+00:00")
    with pytest.raises(CommandError, match="No pause 42"):
        jobs("resume-all", "--id", "42")
    assert not MaintenancePause.objects.exists()


def test_groups_and_limits_on_the_command_line():
    assert "at most 2 run(s) at once" in jobs("group-set", "document-api", "--max", "2")
    jobs("create", "poll", "Poll", "custom", "cron", "* * * * *", "tests.echo", "--overlap", "allow",
         "--max-concurrent", "3", "--group", "document-api")
    job = Job.objects.get(name="poll")
    assert (job.max_concurrent_runs, job.concurrency_group.name) == (3, "document-api")
    jobs("update", "poll", "--max-concurrent", "1")
    job.refresh_from_db()
    assert job.max_concurrent_runs == 1
    with pytest.raises(CommandError, match="no concurrency group named 'nope'"):
        jobs("update", "poll", "--group", "nope")


def test_run_after_on_the_command_line():
    for name in ("extract", "transform", "enrich"):
        jobs("create", name, name, "custom", "manual", "", "tests.echo", "--overlap", "allow")
    out = jobs("run-after", "transform", "--after", "extract", "--after", "enrich:finished")
    assert "runs after 'extract' once it succeeds" in out and "runs after 'enrich' once it finishes" in out
    with pytest.raises(CommandError, match=r"Dependency cycle \(each runs after the next\): extract → transform → extract"):
        jobs("run-after", "extract", "--after", "transform")
    assert "runs after no job" in jobs("run-after", "transform", "--clear")
