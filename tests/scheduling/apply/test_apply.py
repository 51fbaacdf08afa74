"""Jobs as code: plan, apply, a second apply that changes nothing, prune, secrets, export round trips."""
import textwrap

import pytest
from django_celery_beat.models import PeriodicTask

import tests.tasks  # noqa: F401  (the tests.* schedulable tasks)
from jobsite.crypto import secrets_decrypt
from scheduling import manifest
from scheduling.models import AuditLog, Calendar, Job
from scheduling.services.apply import ManifestError, manifest_apply
from scheduling.workflows import services as workflow_services
from scheduling.workflows.models import Workflow

pytestmark = pytest.mark.django_db

FILE = textwrap.dedent("""\
    jobs:
      - name: nightly-report
        title: Nightly report
        schedule_type: daily
        schedule_expression: "02:00"
        timezone: Europe/Berlin
        task_name: tests.echo
        task_kwargs: {days: 1}
        task_priority: 7
      - name: poll
        schedule_type: interval
        schedule_expression: "30"
        task_name: tests.noop
        paused: true
""")


def apply(text, *, file="jobs.yaml", **kwargs):
    return manifest_apply(documents=manifest.read(text, file=file), file=file, **kwargs)


def test_apply_creates_then_a_second_apply_changes_nothing(root):
    # when
    plan = apply(FILE, actor=root)
    # then
    assert [(c.action, c.name) for c in plan.changes] == [("create", "nightly-report"), ("create", "poll")]
    assert plan.applied
    report = Job.objects.get(name="nightly-report")
    assert (report.title, report.schedule_expression, report.timezone, report.priority, report.task_kwargs) == (
        "Nightly report", "02:00", "Europe/Berlin", 7, {"days": 1})
    assert report.periodic_task.enabled and report.next_run_at is not None
    assert report.periodic_task.crontab.timezone.key == "Europe/Berlin"
    poll = Job.objects.get(name="poll")
    assert poll.status == "paused" and not poll.periodic_task.enabled
    assert poll.periodic_task.last_run_at is None  # a paused interval is not anchored (as periodic_task_sync)
    audit = AuditLog.objects.filter(action="create", object_type="job")
    assert sorted(a.object_repr for a in audit) == ["nightly-report", "poll"]
    assert {(a.actor, a.actor_label) for a in audit} == {(root, "root (apply)")}
    # a second apply of the same file is a no-op
    entries = AuditLog.objects.count()
    again = apply(FILE, actor=root)
    assert again.changes == [] and again.lines() == ["No changes: everything matches the file."]
    assert AuditLog.objects.count() == entries


def test_the_plan_of_an_edited_file_lists_exactly_the_changed_fields(root):
    apply(FILE, actor=root)
    edited = FILE.replace('"02:00"', '"03:30"').replace("task_priority: 7", "task_priority: 2").replace(
        "    paused: true\n", "")
    plan = apply(edited, actor=root, dry_run=True)
    assert not plan.applied
    assert [(c.action, c.name, c.fields) for c in plan.changes] == [
        ("update", "nightly-report", {"schedule_expression": ["02:00", "03:30"], "task_priority": [7, 2]}),
        ("update", "poll", {"status": ["paused", "active"]}),
    ]
    assert "    schedule_expression: \"02:00\" -> \"03:30\"" in plan.lines()
    assert Job.objects.get(name="nightly-report").schedule_expression == "02:00"  # dry run: nothing written
    # applied for real, the audit says who and how
    apply(edited, actor=root)
    report = Job.objects.get(name="nightly-report")
    assert (report.schedule_expression, report.priority) == ("03:30", 2)
    assert report.periodic_task.crontab.minute == "30"
    assert Job.objects.get(name="poll").periodic_task.enabled
    update = AuditLog.objects.filter(action="update", object_repr="nightly-report").get()
    assert update.actor_label == "root (apply)" and update.changes["schedule_expression"] == ["02:00", "03:30"]
    assert AuditLog.objects.filter(action="resume", object_repr="poll", actor_label="root (apply)").exists()
    assert apply(edited, actor=root).changes == []


def test_prune_deletes_what_the_file_does_not_list_and_never_internal_jobs(root):
    apply(FILE, actor=root)
    from scheduling import services

    manual = services.job_ensure_manual(name="vision.batch", kind="vision_batch")
    plan = apply(FILE.split("  - name: poll")[0], actor=root, prune=True)
    assert [(c.action, c.name) for c in plan.changes] == [("delete", "poll")]
    assert set(Job.objects.values_list("name", flat=True)) == {"nightly-report", manual.name}
    assert AuditLog.objects.filter(action="delete", object_repr="poll", actor_label="root (apply)").exists()


def test_secrets_come_from_the_environment_and_are_kept_when_it_has_none(root):
    text = FILE + "    secrets: {API_KEY: {from_env: POLL_API_KEY}}\n"
    with pytest.raises(ManifestError) as refused:
        apply(text, actor=root, env={})
    assert "jobs.yaml: jobs[1] (poll): secrets.API_KEY: The environment variable POLL_API_KEY is not set" in str(
        refused.value.message)
    assert not Job.objects.exists()
    apply(text, actor=root, env={"POLL_API_KEY": "key-number-one-123"})
    poll = Job.objects.get(name="poll")
    assert secrets_decrypt(poll.secrets) == {"API_KEY": "key-number-one-123"}
    # no variable where it is applied again: the stored value is kept, nothing changes
    assert apply(text, actor=root, env={}).changes == []
    # a new value: the plan says so without showing it
    plan = apply(text, actor=root, env={"POLL_API_KEY": "key-number-two-456"})
    assert plan.changes[0].fields == {"secrets": ["changed", "changed"]}
    assert "key-number" not in "\n".join(plan.lines())
    assert secrets_decrypt(Job.objects.get(name="poll").secrets) == {"API_KEY": "key-number-two-456"}
    # left out of the file: kept
    assert apply(FILE, actor=root).changes == []
    # a value written in the file is refused
    with pytest.raises(ManifestError, match="a value does not belong in the file"):
        apply(FILE + "    secrets: {API_KEY: plain-text-value}\n", actor=root)


BOMB = textwrap.dedent("""\
    a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
    d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
    jobs: [*d, *d, *d, *d, *d, *d, *d, *d, *d]
""")


@pytest.mark.parametrize("text, message", [
    (BOMB, "jobs.yaml: YAML aliases (*name) are not allowed: the value anchored at line"),
    ("a: &a [1]\nb: *a\n", "YAML aliases (*name) are not allowed: the value anchored at line 1 is used again"),
    ("jobs: []\n---\njobs: []\n", "Put everything in one YAML document"),
    ("jobs: {name: x}\n", "jobs.yaml: jobs: Must be a list of jobs; got dict."),
    ("- name: x\n", "jobs.yaml: The file must be a mapping with 'concurrency_groups:', 'calendars:', 'workflows:' and 'jobs:'; got list."),
    ("cronjobs: []\n", "jobs.yaml: cronjobs: Unknown section. Use 'concurrency_groups:', 'calendars:', 'workflows:' and 'jobs:'."),
    ("jobs: [{name: x, schedule_type: daily, schedule_expression: '01:00', task_name: tests.echo, task_priority: high}]",
     "jobs.yaml: jobs[0] (x): task_priority: A valid integer is required."),
    ("jobs: [{name: x, schedule_type: daily, schedule_expression: '01:00', task_name: tests.echo, schedule: x}]",
     "jobs.yaml: jobs[0] (x): schedule: Unknown field."),
    ("jobs: [{name: x, schedule_type: daily, schedule_expression: '01:00', task_name: tests.echo},"
     " {name: x, schedule_type: daily, schedule_expression: '02:00', task_name: tests.echo}]",
     "jobs.yaml: jobs[1] (x): name: Duplicate name: jobs[0] has it too."),
    ("jobs: [{name: x, schedule_type: daily, schedule_expression: '25:00', task_name: tests.echo}]",
     "jobs.yaml: jobs[0] (x): schedule_expression:"),
    ("jobs: [{name: x, schedule_type: daily, schedule_expression: '01:00', task_name: tests.nope}]",
     "jobs.yaml: jobs[0] (x): task_name:"),
    ("jobs: [{name: wf, kind: workflow, schedule_type: daily, schedule_expression: '01:00',"
     " task_kwargs: {input: hi}, config: {workflow_id: missing, job_id: wf, user_id: '1'}}]",
     "jobs.yaml: jobs[0] (wf): config: Workflow 'missing' does not exist."),
    ("jobs: [{name: ok, schedule_type: daily, schedule_expression: '01:00', task_name: tests.echo}]\n"
     "workflows: [{id: wf, name: W, steps: 'not a list'}]", "jobs.yaml: workflows[0] (wf): steps"),
    ("{\"jobs\": [}", "jobs.yaml: Not valid JSON"),
    ("jobs: [\n", "jobs.yaml: Not valid YAML"),
])
def test_every_bad_file_gets_a_clear_error_and_writes_nothing(root, text, message):
    with pytest.raises(ManifestError) as refused:
        apply(text, actor=root)
    assert message in refused.value.message, refused.value.message
    assert not Job.objects.exists() and not Workflow.objects.exists() and not AuditLog.objects.exists()
    assert not PeriodicTask.objects.filter(name__startswith="job:").exists()


def test_a_file_over_the_size_cap_is_refused(root, settings):
    settings.JOBS_APPLY_MAX_BYTES = 100
    with pytest.raises(ManifestError, match="JOBS_APPLY_MAX_BYTES"):
        apply(FILE, actor=root)


def test_a_job_may_run_a_workflow_the_same_file_creates(root):
    text = textwrap.dedent("""\
        workflows:
          - id: wf-etl
            name: ETL
            steps: [{name: one, type: task, task_name: tests.echo}]
        jobs:
          - name: etl-nightly
            kind: workflow
            job_type: workflow
            schedule_type: cron
            schedule_expression: "0 3 * * *"
            task_kwargs: {input: hello}
            config: {workflow_id: wf-etl, job_id: etl-nightly, user_id: "1"}
    """)
    plan = apply(text, actor=root)
    assert [(c.section, c.action) for c in plan.changes] == [("workflows", "create"), ("jobs", "create")]
    assert Job.objects.get(name="etl-nightly").config["workflow_id"] == "wf-etl"
    assert apply(text, actor=root).changes == []


# -- export → apply on a fresh database: the same jobs, for every kind -------------------------------
@pytest.fixture
def every_kind(root, org):
    from scheduling import services
    from vision_pipeline.services.cron_jobs import cron_job_create

    services.job_create(actor=root, name="digest", title="Weekly digest", schedule_type="weekly",
                        schedule_expression="0:09:00", timezone="Europe/Paris", task_name="tests.echo",
                        task_kwargs={"days": 7}, task_args=[1, "two"], queue="default", priority=8, max_retries=3,
                        catch_up_policy="all", organization=org, secrets={"TOKEN": "digest-token-123456"})
    paused = services.job_create(actor=root, name="poll", schedule_type="interval", schedule_expression="45",
                                 task_name="tests.noop", is_enabled=False)
    services.job_pause(job=paused, actor=root)
    workflow_services.workflow_create(actor=root, id="wf-two", name="Two steps", description="d",
                                      secrets={"HOOK": "hook-secret-value-1"}, steps=[
                                          {"name": "one", "type": "task", "task_name": "tests.echo"}])
    workflow_services.workflow_schedule_save(actor=root, job_id="nightly", workflow_id="wf-two",
                                             user_id=str(root.pk), input="hello", schedule_type="cron",
                                             cron_expression="0 3 * * *")
    cron_job_create(actor=root, name="Scans", schedule="*/5 * * * *",
                    external_api_get_url="http://127.0.0.1:9/analyses",
                    external_api_post_url="http://127.0.0.1:9/results",
                    external_api_key="sk-very-secret-key-123", organization_id="org-7")
    services.job_ensure_manual(name="vision.batch", kind="vision_batch")  # internal: never exported
    services.calendar_create(name="DE holidays", holidays_country="DE", holidays_subdivision="BY",
                             timezone="Europe/Berlin", weekly_windows=[{"day": 4, "start": "18:00", "end": "22:00"}])
    services.calendar_create(name="freeze", dates=["2026-12-24"], date_ranges=[{"start": "2026-12-27", "end": "2026-12-31"}],
                             ical="BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nEND:VCALENDAR\r\n")
    services.job_set_calendars(job=Job.objects.get(name="digest"), names=["DE holidays", "freeze"])


COMPARED = ("name", "title", "description", "kind", "job_type", "schedule_type", "schedule_expression", "timezone",
            "task_name", "task_args", "task_kwargs", "config", "queue", "priority", "timeout_seconds", "max_retries",
            "retry_backoff_seconds", "overlap_policy", "catch_up_policy", "is_enabled", "status", "organization_id")


def _jobs():
    jobs = Job.objects.exclude(kind="vision_batch").order_by("name")
    return [({f: getattr(j, f) for f in COMPARED}, secrets_decrypt(j.secrets), j.periodic_task.enabled,
             j.periodic_task.crontab and str(j.periodic_task.crontab), sorted(c.name for c in j.calendars.all()))
            for j in jobs]


CALENDAR_FIELDS = ("name", "description", "timezone", "dates", "date_ranges", "weekly_windows", "holidays_country",
                   "holidays_subdivision", "ical")


def test_export_then_apply_on_a_fresh_database_gives_the_same_jobs(root, every_kind):
    text = manifest.export()
    assert "vision.batch" not in text and "sk-very-secret" not in text and "digest-token" not in text
    assert {"digest", "poll", "Scans", "wf-two"} <= set(text.replace(":", " ").split()) | {"Scans"}
    before_jobs = _jobs()
    before_workflows = list(Workflow.objects.values("id", "name", "description", "steps", "enabled"))
    before_calendars = list(Calendar.objects.values(*CALENDAR_FIELDS))
    assert len(before_calendars) == 2 and ["DE holidays", "freeze"] in [j[-1] for j in before_jobs]
    env = {"DIGEST_TOKEN": "digest-token-123456", "WORKFLOW_WF_TWO_HOOK": "hook-secret-value-1"}
    vision = Job.objects.get(kind="vision_analysis")
    env[f"{vision.name.upper().replace('-', '_')}_EXTERNAL_API_KEY"] = "sk-very-secret-key-123"
    # a fresh database
    Job.objects.exclude(kind="vision_batch").delete()
    Workflow.objects.all().delete()
    Calendar.objects.all().delete()
    plan = apply(text, actor=root, env=env)
    assert plan.summary == {"create": 7, "update": 0, "delete": 0}
    assert list(Calendar.objects.values(*CALENDAR_FIELDS)) == before_calendars
    assert _jobs() == before_jobs
    assert list(Workflow.objects.values("id", "name", "description", "steps", "enabled")) == before_workflows
    assert secrets_decrypt(Workflow.objects.get().secrets) == {"HOOK": "hook-secret-value-1"}
    # and exporting again writes the same file; applying it again changes nothing
    assert manifest.export() == text
    assert apply(text, actor=root, env={}).changes == []


def test_the_plan_lists_a_jobs_calendars_and_a_missing_calendar_is_refused(root):
    text = FILE + "    calendars: [release]\n"
    with pytest.raises(ManifestError, match=r"jobs\[1\] \(poll\): calendars: No calendar named 'release'."):
        apply(text, actor=root)
    assert not Job.objects.exists()
    with_calendar = ("calendars:\n  - {name: release, weekly_windows: [{day: 4, start: '18:00', end: '22:00'}], "
                     "dates: ['20261231', '2026-12-24']}\n" + text)
    apply(with_calendar, actor=root)
    assert [c.name for c in Job.objects.get(name="poll").calendars.all()] == ["release"]
    assert apply(with_calendar, actor=root).changes == []
    plan = apply(with_calendar.replace("    calendars: [release]\n", ""), actor=root, dry_run=True)
    assert [(c.name, c.fields) for c in plan.changes] == [("poll", {"calendars": [["release"], []]})]
    plan = apply(with_calendar.replace("'22:00'", "'23:00'"), actor=root)
    assert [(c.section, c.name, list(c.fields)) for c in plan.changes] == [("calendars", "release", ["weekly_windows"])]


def test_export_of_one_kind(root, every_kind):
    text = manifest.export(kinds=["workflow"])
    data = manifest.parse(text)
    assert list(data) == ["jobs"] and [d["kind"] for d in data["jobs"]] == ["workflow"]


def test_a_job_created_between_plan_and_apply_is_a_clear_error(root):
    from scheduling import services

    def meanwhile(plan):
        services.job_create(name="poll", schedule_type="interval", schedule_expression="5", task_name="tests.noop")

    with pytest.raises(ManifestError, match=r"jobs\[1\] \(poll\): name: A job named 'poll' already exists."):
        manifest_apply(documents=manifest.read(FILE), actor=root, on_plan=meanwhile)
    assert not Job.objects.exists()


def test_export_leaves_out_one_offs_whose_time_has_passed(root):
    from datetime import timedelta

    from django.utils import timezone

    from scheduling import services

    soon = (timezone.now() + timedelta(days=2)).replace(microsecond=0).isoformat()
    services.job_create(name="later", schedule_type="once", schedule_expression=soon, task_name="tests.noop")
    gone = services.job_create(name="gone", schedule_type="once", schedule_expression=soon, task_name="tests.noop")
    Job.objects.filter(pk=gone.pk).update(schedule_expression="2020-01-01T00:00:00")
    text = manifest.export()
    assert "# Left out: one-off jobs whose time has passed (they cannot be created again): gone" in text
    assert [d["name"] for d in manifest.parse(text)["jobs"]] == ["later"]


def test_the_guides_example_file_applies(root, org):
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[3] / "docs" / "guides" / "jobs-as-code.md").read_text()
    example = guide.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert org.name == "Acme"
    plan = apply(example, actor=root, env={"ETL_API_TOKEN": "etl-token-value-123"})
    assert plan.summary == {"create": 6, "update": 0, "delete": 0}
    publish = Job.objects.get(name="publish-report")
    assert [(link.upstream.name, link.condition) for link in publish.upstream_links.all()] == [
        ("nightly-report", "success")]
    assert (publish.concurrency_group.name, publish.max_concurrent_runs) == ("document-api", 2)
    assert apply(example, actor=root, env={}).changes == []
