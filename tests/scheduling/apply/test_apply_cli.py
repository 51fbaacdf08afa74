"""./manage jobs apply -f FILE [--dry-run] [--prune] and ./manage jobs export."""
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from scheduling.models import AuditLog, Job
from tests.scheduling.apply.test_apply import FILE

pytestmark = pytest.mark.django_db


def jobs(*args):
    out, err = StringIO(), StringIO()
    call_command("jobs", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_apply_prints_the_plan_then_applies_and_export_round_trips(tmp_path):
    path = tmp_path / "jobs.yaml"
    path.write_text(FILE)
    out, err = jobs("apply", "-f", str(path), "--dry-run")
    assert "+ create job nightly-report" in out and "Plan: 2 to create, 0 to update, 0 to delete." in out
    assert "Dry run: nothing was changed." in out + err and not Job.objects.exists()
    out, _ = jobs("apply", "-f", str(path))
    assert "Applied." in out and Job.objects.count() == 2
    assert set(AuditLog.objects.values_list("actor_label", flat=True)) == {"cli (apply)"}
    out, _ = jobs("apply", "-f", str(path))
    assert out.strip() == "No changes: everything matches the file."
    # export, edit, plan
    exported, _ = jobs("export")
    path.write_text(exported.replace("task_priority: 7", "task_priority: 3"))
    out, _ = jobs("apply", "-f", str(path), "--dry-run")
    assert "~ update job nightly-report\n    task_priority: 7 -> 3\n" in out
    out, _ = jobs("apply", "-f", str(path), "--prune")
    assert Job.objects.get(name="nightly-report").priority == 3


def test_a_bad_file_lists_every_problem_and_changes_nothing(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("jobs:\n  - {name: a, schedule_type: daily, schedule_expression: '01:00', task_name: tests.echo, x: 1}\n"
                    "  - {name: b, schedule_type: weekly, schedule_expression: '01:00', task_name: tests.echo, y: 2}\n")
    err = StringIO()
    with pytest.raises(CommandError, match="bad.yaml: 2 problems; nothing was changed"):
        call_command("jobs", "apply", "-f", str(path), stdout=StringIO(), stderr=err)
    assert f"{path}: jobs[0] (a): x: Unknown field." in err.getvalue()
    assert f"{path}: jobs[1] (b): y: Unknown field." in err.getvalue()
    assert not Job.objects.exists()
    with pytest.raises(CommandError, match="cannot read"):
        call_command("jobs", "apply", "-f", str(tmp_path / "missing.yaml"), stdout=StringIO(), stderr=StringIO())
