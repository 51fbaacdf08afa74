"""Run after other jobs in the admin: the job page shows the jobs a job runs
after and those that run after it, and edits the first list through the
API's service with the API's refusals (a cycle named job by job); a run
another job's run started says which run on its page and in the runs list."""
from __future__ import annotations

import html as html_lib
from datetime import timedelta

import pytest
from django.utils import timezone

from scheduling import services
from scheduling.models import AuditLog, Execution
from scheduling.services.dependencies import job_set_run_after
from tests.factories import JobFactory
from tests.scheduling.admin.conftest import url

pytestmark = pytest.mark.django_db


def manual(name: str, **kwargs):
    return JobFactory(name=name, schedule_type="manual", schedule_expression="", overlap_policy="allow", **kwargs)


def rows(*pairs, extra: int = 2) -> dict:
    """The editor's POST: one row a (job, condition), then ``extra`` blank rows."""
    pairs = [*pairs, *([("", "success")] * extra)]
    data = {"run_after-TOTAL_FORMS": str(len(pairs)), "run_after-INITIAL_FORMS": "0",
            "run_after-MIN_NUM_FORMS": "0", "run_after-MAX_NUM_FORMS": "100"}
    for i, (job, condition) in enumerate(pairs):
        data[f"run_after-{i}-job"] = job
        data[f"run_after-{i}-condition"] = condition
    return data


def upstream_names(job) -> list[tuple[str, str]]:
    return sorted(job.upstream_links.values_list("upstream__name", "condition"))


def test_the_job_page_shows_what_it_runs_after_and_what_runs_after_it(admin_client):
    extract, transform, load = manual("extract"), manual("transform"), manual("load")
    job_set_run_after(job=transform, upstreams=[(extract, "success")])
    job_set_run_after(job=load, upstreams=[(transform, "finished")])

    page = admin_client.get(url("job_change", transform.pk)).content.decode()

    panel = page[page.index('id="ops-run-after"'):page.index('id="ops-run-after-edit"')]
    assert f'href="{url("job_change", extract.pk)}">extract</a>' in panel and "after it succeeds" in panel
    dependants = panel[panel.index('id="ops-run-after-dependants"'):]
    assert f'href="{url("job_change", load.pk)}">load</a> (after it finishes (any outcome))' in dependants
    # the editor: the current row filled in, blank rows to add more, the job names offered
    assert 'name="run_after-0-job" value="extract"' in page and 'name="run_after-2-job"' in page
    assert '<datalist id="ops-run-after-jobs">' in page and '<option value="load">' in page
    assert f'action="{url("job_run_after", transform.pk)}"' in page


def test_a_job_that_runs_after_none_says_so(admin_client):
    alone = manual("alone")
    page = admin_client.get(url("job_change", alone.pk)).content.decode()
    assert 'id="ops-run-after-none"' in page and 'id="ops-run-after-dependants"' not in page


def test_saving_sets_the_list_through_the_service_and_audits_it(admin_client, root):
    extract, clean, transform = manual("extract"), manual("clean"), manual("transform")

    response = admin_client.post(url("job_run_after", transform.pk),
                                 rows(("extract", "success"), (str(clean.pk), "finished")), follow=True)

    assert response.redirect_chain[-1][0] == url("job_change", transform.pk)
    assert upstream_names(transform) == [("clean", "finished"), ("extract", "success")]
    extract.refresh_from_db()
    assert extract.has_downstream  # the service's own bookkeeping: its runs look for dependants
    assert "ransform now runs after extract (once it succeeds), clean (once it finishes)." in response.content.decode()
    audit = AuditLog.objects.get(action="update", object_id=str(transform.pk), actor=root)
    assert audit.changes["run_after"][1] == ["clean (finished)", "extract (success)"]
    # cleared rows: it runs after none
    admin_client.post(url("job_run_after", transform.pk), rows())
    assert upstream_names(transform) == []


def test_a_cycle_is_refused_naming_it_as_the_api_does(admin_client, client_for, root):
    extract, transform = manual("extract"), manual("transform")
    job_set_run_after(job=transform, upstreams=[(extract, "success")])

    response = admin_client.post(url("job_run_after", extract.pk), rows(("transform", "success")))
    api = client_for(root).put(f"/api/v1/jobs/{extract.pk}/run-after", {"run_after": [{"job": "transform"}]},
                               format="json")

    assert response.status_code == 400 and api.status_code == 400
    message = "Dependency cycle (each runs after the next): extract → transform → extract."
    assert message in str(api.json())
    page = html_lib.unescape(response.content.decode())
    errors = page[page.index('id="ops-run-after-errors"'):]
    assert message in errors[:errors.index("</ul>")]
    assert upstream_names(extract) == []  # nothing changed


@pytest.mark.parametrize("posted, error", [
    (rows(("nope", "success")), "run_after[0].job: no job 'nope'."),
    (rows(("extract", "success"), ("extract", "finished")), "Job 'extract' is listed twice."),
    (rows(("extract", "sometimes")), "Select a valid choice. sometimes is not one of the available choices."),
])
def test_the_apis_refusals_are_the_forms_errors(admin_client, posted, error):
    manual("extract")
    transform = manual("transform")
    response = admin_client.post(url("job_run_after", transform.pk), posted)
    assert response.status_code == 400
    assert error in html_lib.unescape(response.content.decode())
    assert upstream_names(transform) == []


def test_a_job_the_user_cannot_see_is_no_job(make_user, org):
    from django.contrib.auth.models import Permission
    from django.test import Client

    member = make_user("member", organization=org, password=None)
    member.is_staff = True
    member.save(update_fields=["is_staff"])
    member.user_permissions.add(*Permission.objects.filter(codename__in=["view_job", "change_job"]))
    mine = manual("mine", organization=org)
    manual("theirs")  # no organization: the member does not see it
    client = Client()
    client.force_login(member)

    page = client.get(url("job_change", mine.pk)).content.decode()
    response = client.post(url("job_run_after", mine.pk), rows(("theirs", "success")))

    assert '<option value="theirs">' not in page
    assert response.status_code == 400 and "no job &#x27;theirs&#x27;" in response.content.decode()


def run_inline(execution: Execution) -> Execution:
    """What the worker does for a run, in this process (nothing was sent: no worker races it)."""
    return services.execution_run(execution_id=execution.pk, task_id=execution.celery_task_id, worker="inline pid 1")


def test_a_run_started_by_another_says_which_on_its_page_and_in_the_list(admin_client):
    extract = JobFactory(name="extract", task_name="tests.noop", schedule_type="cron", schedule_expression="* * * * *",
                         overlap_policy="allow")
    transform = manual("transform", task_name="tests.noop")
    job_set_run_after(job=transform, upstreams=[(extract, "success")])
    due = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=1)
    upstream = run_inline(services.job_dispatch_scheduled(job_id=extract.pk, scheduled_for=due))
    started = Execution.objects.get(job=transform)
    assert started.trigger_run_id == upstream.pk

    page = admin_client.get(url("execution_change", started.pk)).content.decode()
    listed = admin_client.get(url("execution_changelist") + "?did_nothing=show").content.decode()
    upstream_page = admin_client.get(url("execution_change", upstream.pk)).content.decode()

    line = page[page.index('id="ops-trigger-run"'):]
    assert line.startswith(f'id="ops-trigger-run">started after <a href="{url("execution_change", upstream.pk)}">'
                           f'run {upstream.pk}</a> of extract</span>')
    assert f"after run {upstream.pk}</div>" in listed
    assert 'id="ops-trigger-run"' not in upstream_page  # beat started that one
