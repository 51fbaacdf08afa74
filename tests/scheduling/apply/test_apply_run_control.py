"""Jobs as code with run control: jitter, overlap, max_concurrent_runs, concurrency groups (a section of their
own) and run-after, for every kind; the audit of every section says who and "apply"."""
import textwrap

import pytest

import tests.tasks  # noqa: F401  (the tests.* schedulable tasks)
from scheduling import manifest, services
from scheduling.models import AuditLog, ConcurrencyGroup, Job, JobDependency
from scheduling.services.apply import ManifestError, manifest_apply
from scheduling.services.dependencies import job_set_run_after
from scheduling.services.limits import concurrency_group_set
from scheduling.workflows import services as workflow_services
from scheduling.workflows.models import Workflow

pytestmark = pytest.mark.django_db


def apply(text, *, file="jobs.yaml", **kwargs):
    return manifest_apply(documents=manifest.read(text, file=file), file=file, **kwargs)


@pytest.fixture
def run_controlled(root):
    """One job of each kind a file can hold, each with run control set through the services, and a task that
    runs after the predictions app's internal job (which the file never holds)."""
    from predictions.services import bulk_upload_job
    from vision_pipeline.services.cron_jobs import cron_job_create

    group = concurrency_group_set(name="docs-api", max_runs=2, description="The external document API", actor=root)
    digest = services.job_create(actor=root, name="digest", schedule_type="daily", schedule_expression="06:00",
                                 task_name="tests.echo", jitter_seconds=30, overlap_policy="queue",
                                 concurrency_group=group)
    workflow_services.workflow_create(actor=root, id="wf-one", name="One step",
                                      steps=[{"name": "one", "type": "task", "task_name": "tests.echo"}])
    nightly, _ = workflow_services.workflow_schedule_save(actor=root, job_id="nightly", workflow_id="wf-one",
                                                          user_id=str(root.pk), input="hi", schedule_type="cron",
                                                          cron_expression="0 3 * * *")
    nightly = services.job_update(job=nightly, actor=root, data={"overlap_policy": "replace", "jitter_seconds": 5})
    scans = cron_job_create(actor=root, name="Scans", schedule="*/5 * * * *",
                            external_api_get_url="http://127.0.0.1:9/analyses",
                            external_api_post_url="http://127.0.0.1:9/results",
                            external_api_key="sk-very-secret-key-123", organization_id="org-7")
    scans = services.job_update(job=scans, actor=root, data={"overlap_policy": "allow", "max_concurrent_runs": 3,
                                                             "concurrency_group": group})
    uploads = bulk_upload_job()
    report = services.job_create(actor=root, name="report", schedule_type="manual", task_name="tests.echo")
    job_set_run_after(job=nightly, upstreams=[(digest, "success")], actor=root)
    job_set_run_after(job=scans, upstreams=[(nightly, "finished"), (digest, "success")], actor=root)
    job_set_run_after(job=report, upstreams=[(uploads, "success")], actor=root)
    return {"sk": "sk-very-secret-key-123", "scans": scans, "uploads": uploads, "nightly": nightly}


RUN_CONTROL = ("name", "kind", "overlap_policy", "jitter_seconds", "max_concurrent_runs", "catch_up_policy",
               "schedule_type", "schedule_expression", "config", "task_kwargs", "status", "is_enabled")


def _state():
    jobs = Job.objects.exclude(kind__in=["vision_batch", "bulk_prediction"]).order_by("name")
    return [({f: getattr(j, f) for f in RUN_CONTROL}, j.concurrency_group.name if j.concurrency_group_id else None,
             sorted((link.upstream.name, link.condition) for link in j.upstream_links.all()),
             j.has_downstream, j.periodic_task.enabled if j.periodic_task_id else None) for j in jobs]


def test_run_control_round_trips_for_every_kind(root, run_controlled):
    # given
    text = manifest.export()
    data = manifest.parse(text)
    assert data["concurrency_groups"] == [{"name": "docs-api", "max_runs": 2,
                                           "description": "The external document API"}]
    by_name = {d["name"]: d for d in data["jobs"]}
    assert by_name["digest"]["jitter_seconds"] == 30 and by_name["digest"]["concurrency_group"] == "docs-api"
    scans = by_name[run_controlled["scans"].name]
    assert scans["max_concurrent_runs"] == 3 and scans["run_after"] == [
        {"job": "digest", "condition": "success"}, {"job": run_controlled["nightly"].name, "condition": "finished"}]
    assert by_name["report"]["run_after"] == [{"job": run_controlled["uploads"].name, "condition": "success"}]
    before = _state()
    env = {f"{run_controlled['scans'].name.upper().replace('-', '_')}_EXTERNAL_API_KEY": run_controlled["sk"]}
    # when: a fresh database (the apps' internal jobs are theirs: made on first use, never by a file)
    Job.objects.exclude(kind__in=["vision_batch", "bulk_prediction"]).delete()
    Workflow.objects.all().delete()
    ConcurrencyGroup.objects.all().delete()
    AuditLog.objects.all().delete()
    plan = apply(text, actor=root, env=env)
    # then
    assert plan.summary == {"create": 6, "update": 0, "delete": 0}
    assert _state() == before
    assert manifest.export() == text
    assert apply(text, actor=root, env={}).changes == []
    # every section's changes are audited with the actor and "apply"
    sections = set(AuditLog.objects.values_list("object_type", "actor_label", "actor"))
    assert {label for _, label, _ in sections} == {"root (apply)"} and {a for _, _, a in sections} == {root.pk}
    assert {kind for kind, _, _ in sections} >= {"job", "workflow", "concurrencygroup"}


FILE = textwrap.dedent("""\
    concurrency_groups:
      - {name: api, max_runs: 2}
    jobs:
      - {name: extract, schedule_type: daily, schedule_expression: "01:00", task_name: tests.echo, jitter_seconds: 10}
      - name: load
        schedule_type: manual
        task_name: tests.echo
        run_after: [{job: extract}]
      - {name: poll, schedule_type: interval, schedule_expression: "30", task_name: tests.noop, overlap_policy: allow,
         max_concurrent_runs: 2, concurrency_group: api}
""")


def test_the_plan_lists_exactly_the_changed_run_control_fields(root):
    apply(FILE, actor=root)
    load = Job.objects.get(name="load")
    assert [(link.upstream.name, link.condition) for link in load.upstream_links.all()] == [("extract", "success")]
    assert Job.objects.get(name="extract").has_downstream
    assert Job.objects.get(name="poll").concurrency_group.name == "api"
    edited = (FILE.replace("jitter_seconds: 10", "jitter_seconds: 20").replace("{job: extract}",
                                                                               "{job: extract, condition: finished}")
              .replace("max_concurrent_runs: 2, concurrency_group: api", "max_concurrent_runs: 4")
              .replace("max_runs: 2", "max_runs: 3"))
    plan = apply(edited, actor=root, dry_run=True)
    assert [(c.section, c.name, c.fields) for c in plan.changes] == [
        ("concurrency_groups", "api", {"max_runs": [2, 3]}),
        ("jobs", "extract", {"jitter_seconds": [10, 20]}),
        ("jobs", "load", {"run_after": [["extract (success)"], ["extract (finished)"]]}),
        ("jobs", "poll", {"max_concurrent_runs": [2, 4], "concurrency_group": ["api", None]}),
    ]
    apply(edited, actor=root)
    poll = Job.objects.get(name="poll")
    assert (poll.max_concurrent_runs, poll.concurrency_group) == (4, None)
    assert Job.objects.get(name="extract").jitter_seconds == 20
    assert ConcurrencyGroup.objects.get(name="api").max_runs == 3
    assert load.upstream_links.get().condition == "finished"
    update = AuditLog.objects.get(action="update", object_repr="poll")
    assert update.actor_label == "root (apply)" and update.changes["max_concurrent_runs"] == [2, 4]
    assert apply(edited, actor=root).changes == []


def test_a_job_left_out_of_run_after_loses_its_links(root):
    apply(FILE, actor=root)
    plan = apply(FILE.replace("    run_after: [{job: extract}]\n", ""), actor=root)
    assert [(c.name, c.fields) for c in plan.changes] == [("load", {"run_after": [["extract (success)"], []]})]
    assert not JobDependency.objects.exists() and not Job.objects.get(name="extract").has_downstream


@pytest.mark.parametrize("text, message", [
    ("jobs:\n"
     "  - {name: a, schedule_type: manual, task_name: tests.echo, run_after: [{job: b}]}\n"
     "  - {name: b, schedule_type: manual, task_name: tests.echo, run_after: [{job: c}]}\n"
     "  - {name: c, schedule_type: manual, task_name: tests.echo, run_after: [{job: a, condition: finished}]}\n",
     "jobs.yaml: jobs[2] (c): run_after: Dependency cycle (each runs after the next): c → a → b → c."),
    ("jobs:\n  - {name: a, schedule_type: manual, task_name: tests.echo, run_after: [{job: a}]}\n",
     "jobs.yaml: jobs[0] (a): run_after: Dependency cycle (each runs after the next): a → a."),
    ("jobs:\n  - {name: a, schedule_type: manual, task_name: tests.echo, run_after: [{job: nowhere}]}\n",
     "jobs.yaml: jobs[0] (a): run_after[0].job: No job named 'nowhere'."),
    ("jobs:\n  - {name: a, schedule_type: manual, task_name: tests.echo, run_after: [{job: b, condition: maybe}]}\n",
     "jobs.yaml: jobs[0] (a): run_after[0].condition: \"maybe\" is not a valid choice."),
    ("jobs:\n  - {name: a, schedule_type: manual, task_name: tests.echo, run_after: [{job: b, when: now}]}\n",
     "jobs.yaml: jobs[0] (a): run_after[0].when: Unknown field."),
    ("jobs:\n  - {name: a, schedule_type: manual, task_name: tests.echo, concurrency_group: nope}\n",
     "jobs.yaml: jobs[0] (a): concurrency_group: No concurrency group named 'nope'"),
    ("jobs:\n  - {name: a, schedule_type: manual, task_name: tests.echo, jitter_seconds: lots}\n",
     "jobs.yaml: jobs[0] (a): jitter_seconds: A valid integer is required."),
    ("jobs:\n  - {name: a, schedule_type: manual, task_name: tests.echo, max_concurrent_runs: 2}\n",
     "jobs.yaml: jobs[0] (a): max_concurrent_runs: Applies to overlap policy 'allow'"),
    ("jobs:\n  - {name: a, schedule_type: manual, task_name: tests.echo, overlap_policy: sometimes}\n",
     "jobs.yaml: jobs[0] (a): overlap_policy:"),
    ("concurrency_groups:\n  - {name: api, max_runs: 0}\n", "jobs.yaml: concurrency_groups[0] (api): max_runs:"),
    ("concurrency_groups:\n  - {name: api, max_runs: 1}\n  - {name: api, max_runs: 2}\n",
     "jobs.yaml: concurrency_groups[1] (api): name: Duplicate name: concurrency_groups[0] has it too."),
])
def test_bad_run_control_is_a_clear_error_and_writes_nothing(root, text, message):
    with pytest.raises(ManifestError) as refused:
        apply(text, actor=root)
    assert message in refused.value.message, refused.value.message
    assert not Job.objects.exists() and not ConcurrencyGroup.objects.exists() and not AuditLog.objects.exists()
    assert not JobDependency.objects.exists()


def test_workflows_applied_from_a_file_are_audited_with_the_actor_and_apply(root):
    text = textwrap.dedent("""\
        workflows:
          - id: wf-etl
            name: ETL
            steps: [{name: one, type: task, task_name: tests.echo}]
    """)
    apply(text, actor=root)
    apply(text.replace("name: ETL", "name: Extract"), actor=root)
    apply("jobs: []\n", actor=root, prune=True)
    rows = list(AuditLog.objects.filter(object_type="workflow").order_by("pk").values_list("action", "actor_label",
                                                                                          "actor"))
    assert rows == [("create", "root (apply)", root.pk), ("update", "root (apply)", root.pk),
                    ("delete", "root (apply)", root.pk)]
